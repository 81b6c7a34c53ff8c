"""Writes the BC stand-in refuses as Business Central does: status, error code and message, over real HTTPS."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

import pytest

from bc_pipeline.sandbox import seed
from bc_pipeline.sandbox.bc_setup import RELATED_SERVICES, SETUP_CODES
from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox
from bc_pipeline.sandbox.schema import build_services, code_upper

from .bc_support import bc_error, odata_session

ANY = {"If-Match": "*"}


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    config = SandboxConfig(scale=0.05, seed=23, work_date=date(2026, 11, 20), state_dir=tmp_path_factory.mktemp("w"))
    with start_sandbox(config) as handle:
        yield handle


@pytest.fixture(scope="module")
def s(sb):
    with odata_session(sb) as session:
        yield session


def url(sb, service, key):
    """A record's URL: its key's literals quoted ('' inside) and percent-encoded, as the seed's codes need."""
    def lit(v):
        return str(v) if isinstance(v, int) else quote("'" + v.replace("'", "''") + "'", safe="")
    if not isinstance(key, tuple):
        return sb.company_url(service) + f"({lit(key)})"
    names = ("Document_Type", "No") if len(key) == 2 else ("Document_Type", "Document_No", "Line_No")
    return sb.company_url(service) + "(" + ",".join(f"{n}={lit(v)}" for n, v in zip(names, key)) + ")"


def new_customer(sb, s, **blocked) -> str:
    r = s.post(sb.company_url("CustomerCard"), json={"Name": "Test customer"})
    assert r.status_code == 201, r.text
    if blocked:
        sb.edit_record("CustomerCard", r.json()["No"], blocked)
    return r.json()["No"]


def new_order(sb, s, status="Open") -> str:
    r = s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": new_customer(sb, s)})
    assert r.status_code == 201, r.text
    if status != "Open":
        sb.edit_record("SalesOrders", ["Order", r.json()["No"]], {"Status": status})
    return r.json()["No"]


def sellable_item(sb) -> str:
    return sb.records("ItemCard", filter="Blocked eq false and Sales_Blocked eq false")[0]["No"]


def line(sb, s, order_no, **fields):
    return s.post(sb.company_url("SalesOrderLines"), json={"Document_Type": "Order", "Document_No": order_no,
                                                           "Type": "Item", "No": sellable_item(sb), **fields})


# --- read-only fields ------------------------------------------------------------------------------------

@pytest.mark.parametrize("service, field, value, caption", [
    ("ItemCard", "Inventory", 99, "Inventory"), ("ItemCard", "Last_Date_Modified", "2020-01-01", "Last Date Modified"),
    ("CustomerCard", "Balance_LCY", 1.5, "Balance (LCY)"), ("CustomerCard", "Last_Date_Modified", "2020-01-01",
                                                             "Last Date Modified")])
def test_a_read_only_field_is_refused_on_patch_and_post_and_keeps_its_value(sb, s, service, field, value, caption):
    key = sb.records(service)[0]["No"]
    before = sb.records(service, key=key)[0][field]
    error = bc_error(s.patch(url(sb, service, key), json={field: value}, headers=ANY), 400,
                     "BadRequest_InvalidOperation")
    assert error["message"].startswith(f"Control '{caption}' is read-only.  CorrelationId:  ")
    assert sb.records(service, key=key)[0][field] == before
    bc_error(s.post(sb.company_url(service), json={"Description" if service == "ItemCard" else "Name": "x",
                                                   field: value}), 400, "BadRequest_InvalidOperation")


def test_an_orders_status_is_read_only(sb, s):
    order_no = new_order(sb, s)
    error = bc_error(s.patch(url(sb, "SalesOrders", ("Order", order_no)), json={"Status": "Released"}, headers=ANY),
                     400, "BadRequest_InvalidOperation")
    assert "Control 'Status' is read-only." in error["message"]


# --- options -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("service, field, value", [("ItemCard", "Type", "Bogus"), ("CustomerCard", "Blocked", "Nope"),
                                                   ("CustomerCard", "Partner_Type", "Alien"),
                                                   ("ItemCard", "Costing_Method", "fifo")])
def test_a_value_outside_an_options_members_cannot_be_evaluated(sb, s, service, field, value):
    key = sb.records(service)[0]["No"]
    error = bc_error(s.patch(url(sb, service, key), json={field: value}, headers=ANY), 400,
                     "Application_EvaluateException")
    assert error["message"].startswith(f'The value "{value}" cannot be evaluated into type Option.')
    assert sb.records(service, key=key)[0][field] != value


def test_option_members_are_accepted(sb, s):
    no = new_customer(sb, s)
    r = s.patch(url(sb, "CustomerCard", no), json={"Blocked": "Invoice", "Partner_Type": "Person"}, headers=ANY)
    assert r.status_code == 200 and (r.json()["Blocked"], r.json()["Partner_Type"]) == ("Invoice", "Person")
    assert s.patch(url(sb, "CustomerCard", no), json={"Blocked": "_blank_"}, headers=ANY).json()["Blocked"] == "_blank_"
    item = s.post(sb.company_url("ItemCard"), json={"Description": "A service", "Type": "Service"})
    assert item.status_code == 201 and item.json()["Type"] == "Service"


# --- table relations -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("service, field, caption, table", [
    ("CustomerCard", "Shipping_Agent_Code", "Shipping Agent Code", "Shipping Agent"),
    ("CustomerCard", "Location_Code", "Location Code", "Location"),
    ("CustomerCard", "Customer_Price_Group", "Customer Price Group", "Customer Price Group"),
    ("CustomerCard", "Country_Region_Code", "Country/Region Code", "Country/Region"),
    ("CustomerCard", "Payment_Terms_Code", "Payment Terms Code", "Payment Terms"),
    ("CustomerCard", "Gen_Bus_Posting_Group", "Gen. Bus. Posting Group", "Gen. Business Posting Group"),
    ("CustomerCard", "Customer_Posting_Group", "Customer Posting Group", "Customer Posting Group"),
    ("CustomerCard", "VAT_Bus_Posting_Group", "VAT Bus. Posting Group", "VAT Business Posting Group"),
    ("ItemCard", "Gen_Prod_Posting_Group", "Gen. Prod. Posting Group", "Gen. Product Posting Group"),
    ("ItemCard", "Inventory_Posting_Group", "Inventory Posting Group", "Inventory Posting Group"),
    ("ItemCard", "VAT_Prod_Posting_Group", "VAT Prod. Posting Group", "VAT Product Posting Group"),
    ("ItemCard", "Tax_Group_Code", "Tax Group Code", "Tax Group"),
    ("CustomerCard", "Tax_Area_Code", "Tax Area Code", "Tax Area"),
    ("ItemCard", "Item_Category_Code", "Item Category Code", "Item Category")])
def test_a_code_missing_from_its_related_table_is_refused_naming_field_value_and_table(sb, s, service, field, caption,
                                                                                      table):
    key = sb.records(service)[0]["No"]
    before = sb.records(service, key=key)[0][field]
    error = bc_error(s.patch(url(sb, service, key), json={field: "nope"}, headers=ANY), 400,
                     "Internal_InvalidTableRelation")
    table_caption = {"CustomerCard": "Customer", "ItemCard": "Item"}[service]
    assert error["message"].startswith(f"The field {caption} of table {table_caption} contains a value (NOPE) that "
                                       f"cannot be found in the related table ({table}).")
    assert sb.records(service, key=key)[0][field] == before


def test_an_order_for_an_unknown_customer_and_a_line_of_an_unknown_order_or_location_are_refused(sb, s):
    error = bc_error(s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": "C99999"}), 400,
                     "Internal_InvalidTableRelation")
    assert ("The field Sell-to Customer No. of table Sales Header contains a value (C99999) that cannot be found in "
            "the related table (Customer).") in error["message"]
    error = bc_error(line(sb, s, "999999"), 400, "Internal_InvalidTableRelation")
    assert "The field Document No. of table Sales Line contains a value (999999)" in error["message"]
    assert "(Sales Header)" in error["message"]
    error = bc_error(line(sb, s, new_order(sb, s), Location_Code="ATLANTIS"), 400, "Internal_InvalidTableRelation")
    assert ("The field Location Code of table Sales Line contains a value (ATLANTIS) that cannot be found in the "
            "related table (Location).") in error["message"]


def test_an_in_transit_location_is_not_a_location_an_order_can_use(sb, s):
    transit = sb.records("Locations", filter="Use_As_In_Transit eq true")[0]["Code"]
    order_no = new_order(sb, s)
    bc_error(s.patch(url(sb, "SalesOrders", ("Order", order_no)), json={"Location_Code": transit}, headers=ANY), 400,
             "Internal_InvalidTableRelation")


def test_a_line_for_an_unknown_item_is_refused_as_bc_gets_the_item_itself(sb, s):
    # Sales Line "No." has ValidateTableRelation = false: its OnValidate does Item.Get, so the record is not found
    error = bc_error(line(sb, s, new_order(sb, s), No="NO-SUCH-ITEM"), 400, "Internal_RecordNotFound")
    assert "The Item does not exist. Identification fields and values: No.='NO-SUCH-ITEM'" in error["message"]


def test_existing_codes_are_accepted_whatever_their_case(sb, s):
    no = new_customer(sb, s)
    agent = sb.records("ShippingAgents")[0]["Code"]
    location = sb.records("Locations", filter="Use_As_In_Transit eq false")[0]["Code"]
    r = s.patch(url(sb, "CustomerCard", no), headers=ANY, json={
        "Shipping_Agent_Code": agent.lower(), "Location_Code": location.lower(), "Payment_Terms_Code": "14 days",
        "Gen_Bus_Posting_Group": "DOMESTIC", "Customer_Posting_Group": "domestic", "Country_Region_Code": "us"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["Shipping_Agent_Code"], got["Location_Code"], got["Payment_Terms_Code"], got["Customer_Posting_Group"],
            got["Country_Region_Code"]) == (agent, location, "14 DAYS", "DOMESTIC", "US")
    assert s.patch(url(sb, "CustomerCard", no), json={"Shipping_Agent_Code": ""}, headers=ANY).status_code == 200


# --- blocked records -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("blocked", ["All", "Invoice", "Ship"])
def test_no_order_can_be_created_for_a_blocked_customer(sb, s, blocked):
    no = new_customer(sb, s, Blocked=blocked)
    error = bc_error(s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": no}), 400,
                     "Application_DialogException")
    assert error["message"].startswith(f"You cannot create this type of document when Customer {no} is blocked "
                                       f"with type {blocked}  CorrelationId:  ")
    assert sb.records("SalesOrders", filter=f"Sell_to_Customer_No eq '{no}'") == []
    order_no = new_order(sb, s)
    bc_error(s.patch(url(sb, "SalesOrders", ("Order", order_no)), json={"Sell_to_Customer_No": no}, headers=ANY),
             400, "Application_DialogException")


def test_no_order_for_a_customer_blocked_for_privacy(sb, s):
    no = new_customer(sb, s, Privacy_Blocked=True)
    error = bc_error(s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": no}), 400,
                     "Application_DialogException")
    assert f"Customer {no} is blocked for privacy." in error["message"]


def test_a_line_for_a_blocked_or_sales_blocked_item_is_refused(sb, s):
    order_no = new_order(sb, s)
    blocked, sales_blocked = (r["No"] for r in sb.records("ItemCard", filter="Blocked eq false")[1:3])
    sb.edit_record("ItemCard", blocked, {"Blocked": True})
    sb.edit_record("ItemCard", sales_blocked, {"Sales_Blocked": True})
    error = bc_error(line(sb, s, order_no, No=blocked), 400, "Application_FieldValidationException")
    assert f"Blocked must be equal to 'No'  in Item: No.={blocked}. Current value is 'Yes'." in error["message"]
    error = bc_error(line(sb, s, order_no, No=sales_blocked), 400, "Application_DialogException")
    assert (f"You cannot sell Item {sales_blocked} because the Sales Blocked check box is selected on the Item card."
            in error["message"])
    assert sb.records("SalesOrderLines", filter=f"Document_No eq '{order_no}'") == []


# --- orders that are not Open -----------------------------------------------------------------------------------

def test_a_released_orders_lines_cannot_be_added_changed_or_deleted(sb, s):
    order_no = new_order(sb, s)
    first = line(sb, s, order_no, Quantity=2)
    assert first.status_code == 201, first.text
    line_url = url(sb, "SalesOrderLines", ("Order", order_no, first.json()["Line_No"]))
    sb.edit_record("SalesOrders", ["Order", order_no], {"Status": "Released"})
    expected = (f"Status must be equal to 'Open'  in Sales Header: Document Type=Order, No.={order_no}. Current value "
                "is 'Released'.")
    for r in (line(sb, s, order_no), s.patch(line_url, json={"Quantity": 5}, headers=ANY),
              s.delete(line_url, headers=ANY)):
        assert expected in bc_error(r, 400, "Application_FieldValidationException")["message"]
    assert [ln["Quantity"] for ln in sb.records("SalesOrderLines", filter=f"Document_No eq '{order_no}'")] == [2]
    comment = line(sb, s, order_no, Type="_blank_", No="", Description="Call before delivery")
    assert comment.status_code == 201, comment.text  # TestStatusOpen lets comment lines through


def test_a_released_orders_guarded_header_fields_cannot_change_but_its_references_can(sb, s):
    order_no = new_order(sb, s, status="Released")
    header = url(sb, "SalesOrders", ("Order", order_no))
    location = sb.records("Locations", filter="Use_As_In_Transit eq false")[0]["Code"]
    error = bc_error(s.patch(header, json={"Location_Code": location}, headers=ANY), 400,
                     "Application_FieldValidationException")
    assert "Current value is 'Released'." in error["message"]
    r = s.patch(header, json={"External_Document_No": "web-9", "Your_Reference": "Rush"}, headers=ANY)
    assert r.status_code == 200 and r.json()["External_Document_No"] == "WEB-9"


# --- Code fields are upper-cased -------------------------------------------------------------------------------

def test_code_fields_and_keys_are_upper_cased_text_fields_keep_their_case(sb, s):
    r = s.post(sb.company_url("ItemCard"), json={"No": "low'er/c&", "Description": "Mixed Case", "Shelf_No": "straße"})
    assert r.status_code == 201, r.text
    assert (r.json()["No"], r.json()["Shelf_No"], r.json()["Description"]) == ("LOW'ER/C&", "STRAßE", "Mixed Case")
    assert r.headers["Location"].endswith("/ItemCard('LOW''ER/C&')")
    assert sb.records("ItemCard", key="LOW'ER/C&")[0]["Search_Description"] == "MIXED CASE"
    assert s.get(url(sb, "ItemCard", "Low'er/C&")).json()["No"] == "LOW'ER/C&"  # a Code key finds it in any case
    again = s.post(sb.company_url("ItemCard"), json={"No": "LOW'ER/c&", "Description": "again"})
    bc_error(again, 400, "Internal_EntityWithSameKeyExists")
    order = s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": new_customer(sb, s).lower()})
    assert order.status_code == 201, order.text
    added = line(sb, s, order.json()["No"], No="low'er/c&")
    assert added.status_code == 201 and added.json()["No"] == "LOW'ER/C&"


def test_a_code_longer_than_its_length_is_refused(sb, s):
    no = sb.records("CustomerCard")[0]["No"]
    error = bc_error(s.patch(url(sb, "CustomerCard", no), json={"Payment_Terms_Code": "X" * 11}, headers=ANY), 400,
                     "Application_StringExceededLength")
    assert "The length of the string is 11, but it must be less than or equal to 10 characters." in error["message"]


# --- the service's own answers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [502, 503])
def test_502_and_503_carry_retry_after_even_when_the_fault_sets_none(sb, s, status):
    sb.set_faults({"kind": "status", "status": status, "count": 1})
    r = s.get(sb.company_url("Locations"))
    bc_error(r, status)
    assert r.headers["Retry-After"] == "1"
    sb.set_faults({"kind": "status", "status": status, "count": 1, "retry_after": 0})
    assert s.get(sb.company_url("Locations")).headers["Retry-After"] == "0"


@pytest.mark.parametrize("status", [429, 500, 504])
def test_other_statuses_carry_retry_after_only_when_the_fault_sets_one(sb, s, status):
    sb.set_faults({"kind": "status", "status": status, "count": 1})
    r = s.get(sb.company_url("Locations"))
    bc_error(r, status)
    assert "Retry-After" not in r.headers


def test_an_unpublished_service_is_resource_not_found_a_bad_filter_stays_not_found(sb, s):
    sb.set_faults({"action": "unpublish", "service": "ShippingAgents"})
    try:
        error = bc_error(s.get(sb.company_url("ShippingAgents")), 404, "BadRequest_ResourceNotFound")
        assert error["message"].startswith("Resource not found for the segment 'ShippingAgents'.")
    finally:
        sb.set_faults({"action": "publish", "service": "ShippingAgents"})
    error = bc_error(s.get(sb.company_url("Locations"), params={"$filter": "Code eq"}), 400, "BadRequest_NotFound")
    assert error["message"].startswith("Bad Request - Error in query syntax.")


# --- the seed obeys the rules it enforces (in process) -------------------------------------------------------------

def test_every_seeded_option_is_a_member_and_every_seeded_code_exists_in_its_related_table():
    services = build_services()
    data = seed.generate(services, seed=5, scale=0.2, work_date=date(2026, 11, 20))
    keys = {name: {tuple(r[i] for i in services[name].key_index) for r in rows} for name, rows in data.items()}
    for name, rows in data.items():
        svc = services[name]
        for row in rows:
            for f, allowed in svc.options.items():
                assert row[svc.index[f]] in allowed, (name, f, row[svc.index[f]])
            for f, table in svc.relations.items():
                value = row[svc.index[f]]
                if not value or table not in SETUP_CODES and table not in RELATED_SERVICES:
                    continue
                known = SETUP_CODES.get(table) or {k[0] for k in keys[RELATED_SERVICES[table]]}
                assert value in known, (name, f, value, table)
            for f in svc.code_fields:
                assert row[svc.index[f]] == code_upper(row[svc.index[f]]), (name, f)


@pytest.mark.parametrize("service", ["PostedSalesInvoices", "PostedSalesInvoiceLines"])
def test_a_posted_invoice_cannot_be_inserted_through_its_page(sb, s, service):
    before = len(sb.records(service))
    r = s.post(sb.company_url(service), json={"No": "PS-INV999999", "Document_No": "PS-INV999999", "Line_No": 10000})
    assert r.status_code >= 400
    assert len(sb.records(service)) == before

"""The BC stand-in's seed data, page schema and OData query parsing, in process (no server)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

import pytest

from bc_pipeline.catalog import ENTITIES
from bc_pipeline.sandbox import flowfields, odata, seed
from bc_pipeline.sandbox.bc_store import Store, Table, etag_for
from bc_pipeline.sandbox.config import SandboxConfig
from bc_pipeline.sandbox.schema import build_services, code_upper

SERVICES = build_services()
WORK_DATE = date(2026, 11, 20)


@pytest.fixture(scope="module")
def data():
    return seed.generate(SERVICES, seed=7, scale=0.2, work_date=WORK_DATE)


def as_dicts(service: str, rows: list[list]) -> list[dict]:
    fields = SERVICES[service].fields
    return [dict(zip(fields, r)) for r in rows]


def test_every_catalog_field_is_served():
    for entity in ENTITIES:
        svc = SERVICES[entity.service]
        assert not [f for f in entity.select if f not in svc.index], entity.service
        assert svc.keys == tuple(k for k in entity.keys if svc.object_type == "Page")


def test_page_fields_come_from_the_tsvs_without_quoted_names():
    item = SERVICES["ItemCard"]
    assert item.fields[0] == "No" and "Description" in item.fields
    assert not [f for s in SERVICES.values() for f in s.fields if '"' in f or "'" in f]
    assert SERVICES["SalesOrders"].fields[:2] == ["Document_Type", "No"]
    assert {"UPC_Code", "Product_Group_Code", "CatItemGroup", "Manufacturer_Code"} <= set(item.fields)


def test_seed_is_deterministic_and_seed_dependent(data):
    again = seed.generate(SERVICES, seed=7, scale=0.2, work_date=WORK_DATE)
    assert again == data
    other = seed.generate(SERVICES, seed=8, scale=0.2, work_date=WORK_DATE)
    assert other["CustomerCard"] != data["CustomerCard"]


def test_counts_follow_the_scale(data):
    n = {k: len(v) for k, v in data.items()}
    assert n["CustomerCard"] == 60 and n["ItemCard"] == 80 and n["SalesOrders"] == 200
    assert n["Locations"] == 12 and n["ShippingAgents"] == 8 and n["CustomerPriceGroups"] == 5
    assert 200 <= n["SalesOrderLines"] <= 2000
    counts = seed.resolve_counts(1, "benchmark")
    assert counts["items"] == 40000 and counts["customers"] == 23000 and counts["sales_orders"] == 15000


def test_guide_item_10010_is_exactly_as_in_the_guide(data):
    items = {r["No"]: r for r in as_dicts("ItemCard", data["ItemCard"])}
    for k, v in seed.GUIDE_ITEM.items():
        assert items["10010"][k] == v, k
    assert items["10010"]["CatItemGroup"] == "CLASSIC WATERMELON LED W/STAINLESS STEEL FLANGE MOUNT BEZEL"


def test_data_is_realistic_and_consistent(data):
    customers = as_dicts("CustomerCard", data["CustomerCard"])
    names = [c["Name"] for c in customers]
    assert names.count("O'Brien Supply") == 1 and "Müller GmbH" in names and "Åsa Ström" in names
    assert any("," in n for n in names)
    assert [c["No"] for c in customers[:3]] == ["ADATUM", "O'BRIEN", "MÜLLER"]
    assert customers[len(seed.FIXED_CUSTOMERS)]["No"] == f"C{10000 + 10 * len(seed.FIXED_CUSTOMERS)}"
    cust_nos = {c["No"] for c in customers}
    item_nos = {r[0] for r in data["ItemCard"]}
    orders = as_dicts("SalesOrders", data["SalesOrders"])
    assert orders[0]["No"] == "101001" and all(o["Document_Type"] == "Order" for o in orders)
    assert all(o["Sell_to_Customer_No"] in cust_nos for o in orders)
    statuses = {o["Status"] for o in orders}
    assert statuses == {"Open", "Released"}
    shipped = [o for o in orders if o["Package_Tracking_No"]]
    assert shipped and all(o["Shipping_Agent_Code"] for o in shipped)
    lines = as_dicts("SalesOrderLines", data["SalesOrderLines"])
    order_nos = {o["No"] for o in orders}
    for line in lines:
        assert line["Document_No"] in order_nos and line["Line_No"] % 10000 == 0
        if line["Type"] == "Item":
            assert line["No"] in item_nos
            expected = round(line["Quantity"] * line["Unit_Price"] * (1 - line["Line_Discount_Percent"] / 100), 2)
            assert line["Line_Amount"] == pytest.approx(expected, abs=0.011)
    dates = [c["Last_Date_Modified"] for c in customers]
    assert min(dates) >= "2024-11-01" and max(dates) <= WORK_DATE.isoformat()
    # every page field is present with BC's blank values
    assert all(len(r) == len(SERVICES["ItemCard"].fields) for r in data["ItemCard"])
    assert {type(v) for v in as_dicts("ItemCard", data["ItemCard"])[0].values()} <= {str, int, float, bool}
    inv = as_dicts("Itemsbylocation", data["Itemsbylocation"])
    assert inv and all(r["ItemNo"] in item_nos for r in inv)


SUMMED = {"Quantity", "RemainingQuantity", "ReservedQuantity"}


def test_items_by_location_is_open_ledger_entries_summed_per_distinct_column_values(data):
    inv = as_dicts("Itemsbylocation", data["Itemsbylocation"])
    # the query sums Quantity, RemainingQuantity, ReservedQuantity and groups by every other column
    groups = [tuple(v for k, v in r.items() if k not in SUMMED) for r in inv]
    assert len(set(groups)) == len(groups)
    per_pair = Counter((r["ItemNo"], r["LocationCode"]) for r in inv)
    assert max(per_pair.values()) >= 4 and sum(n >= 3 for n in per_pair.values()) >= len(per_pair) // 4
    # open entries only: never 0 left; a partly applied one has less left than it had; both signs agree
    assert all(r["RemainingQuantity"] != 0 for r in inv)
    assert all(abs(r["RemainingQuantity"]) <= abs(r["Quantity"]) for r in inv)
    assert all((r["RemainingQuantity"] > 0) == (r["Quantity"] > 0) for r in inv)
    assert sum(abs(r["RemainingQuantity"]) < abs(r["Quantity"]) for r in inv) >= len(inv) // 4
    negative = [r for r in inv if r["Quantity"] < 0]
    assert negative and all(not r["LotNo"] and not r["SerialNo"] and r["ReservedQuantity"] == 0 for r in negative)
    assert all(r["Quantity"] == r["RemainingQuantity"] == 1 for r in inv if r["SerialNo"])
    assert any(r["LotNo"] for r in inv) and any(r["VariantCode"] for r in inv)
    assert any(r["QtyPerUnitOfMeasure"] > 1 for r in inv)


def test_item_inventory_is_the_remaining_quantity_summed_over_every_location(data):
    remaining: dict[str, float] = defaultdict(float)
    for r in as_dicts("Itemsbylocation", data["Itemsbylocation"]):
        remaining[r["ItemNo"]] += r["RemainingQuantity"]
    items = as_dicts("ItemCard", data["ItemCard"])
    assert all(i["Inventory"] == i["InventoryNonFoundation"] == remaining.get(i["No"], 0.0) for i in items)
    assert all(i["Inventory"] == 0 for i in items if i["Type"] != "Inventory")


def test_unfiltered_flowfields_are_what_the_filtered_sums_give_with_every_value_let_through(data):
    store = Store(SERVICES, data)
    adjust = flowfields.adjuster(store, SERVICES["ItemCard"], {"Location_Filter": lambda v: True,
                                                               "Date_Filter": lambda v: True})
    assert all(adjust(row) == row for row in data["ItemCard"])
    east = flowfields.adjuster(store, SERVICES["ItemCard"], {"Location_Filter": lambda v: v == "EAST"})
    inv = SERVICES["ItemCard"].index["Inventory"]
    at_east: dict[str, float] = defaultdict(float)
    for r in as_dicts("Itemsbylocation", data["Itemsbylocation"]):
        if r["LocationCode"] == "EAST":
            at_east[r["ItemNo"]] += r["RemainingQuantity"]
    assert at_east and all(east(row)[inv] == at_east.get(row[0], 0.0) for row in data["ItemCard"])


def test_default_company_and_codes_carry_what_urls_filters_and_external_ids_must_encode(data):
    company = SandboxConfig().company_name
    assert "'" in company and "," in company and not company.isascii() and len(company) <= 30
    codes = {
        "CustomerCard": [r["No"] for r in as_dicts("CustomerCard", data["CustomerCard"])],
        "ItemCard": [r["No"] for r in as_dicts("ItemCard", data["ItemCard"])],
        "SalesOrders": [r["No"] for r in as_dicts("SalesOrders", data["SalesOrders"])],
        "Locations": [r["Code"] for r in as_dicts("Locations", data["Locations"])],
        "ShippingAgents": [r["Code"] for r in as_dicts("ShippingAgents", data["ShippingAgents"])],
        "CustomerPriceGroups": [r["Code"] for r in as_dicts("CustomerPriceGroups", data["CustomerPriceGroups"])],
    }
    for service, values in codes.items():
        length = 10 if service in ("Locations", "ShippingAgents", "CustomerPriceGroups") else 20  # Code[10], [20]
        assert all(len(v) <= length and code_upper(v) == v for v in values), service
    every = "".join(v for values in codes.values() for v in values)
    for ch in "/&'éüß—":
        assert ch in every.lower() or ch.upper() in every, ch
    assert "10010" in codes["ItemCard"] and any("/" in v for v in codes["SalesOrders"])
    assert any(not v.isascii() for v in codes["Locations"]) and any("'" in v for v in codes["Locations"])


def test_records_share_their_modification_date_and_time():
    services = build_services(system_modified_at=True)
    data = seed.generate(services, seed=7, scale=0.05, work_date=WORK_DATE)
    for service in ("CustomerCard", "ItemCard"):
        fields = services[service].fields
        rows = [dict(zip(fields, r)) for r in data[service]]
        newest = max(r["SystemModifiedAt"] for r in rows)
        assert sum(r["SystemModifiedAt"] == newest for r in rows) >= 2, service
        assert max(r["Last_Date_Modified"] for r in rows) == WORK_DATE.isoformat()


def test_etag_changes_with_every_version():
    assert etag_for(("C10000",), 1) != etag_for(("C10000",), 2)
    assert etag_for(("C10000",), 1).startswith('W/"Jz')


@pytest.mark.parametrize("text, service, count_check", [
    ("Name eq 'O''Brien Supply'", "CustomerCard", lambda r: r["Name"] == "O'Brien Supply"),
    ("Last_Date_Modified ge 2026-06-01", "CustomerCard", lambda r: r["Last_Date_Modified"] >= "2026-06-01"),
    ("Last_Date_Modified lt 2026-06-01 and Blocked ne '_blank_'", "CustomerCard",
     lambda r: r["Last_Date_Modified"] < "2026-06-01" and r["Blocked"] != "_blank_"),
    ("(Status eq 'Open' or Status eq 'Released') and startswith(No,'1010')", "SalesOrders",
     lambda r: r["No"].startswith("1010")),
    ("Unit_Price gt 100.5 and Type in ('Inventory','Service')", "ItemCard",
     lambda r: r["Unit_Price"] > 100.5 and r["Type"] in ("Inventory", "Service")),
    ("contains(Description,'LED') and not Blocked", "ItemCard", lambda r: "LED" in r["Description"] and not r["Blocked"]),
    ("Location_Filter eq 'EAST' and endswith(No,'0')", "ItemCard", lambda r: r["No"].endswith("0")),
    ("No eq 'SOCIÉTÉ/GÉN' or No eq 'O''BRIEN'", "CustomerCard", lambda r: r["No"] in ("SOCIÉTÉ/GÉN", "O'BRIEN")),
    ("Line_No eq 10000", "SalesOrderLines", lambda r: r["Line_No"] == 10000),
    ("tolower(Name) eq 'müller gmbh'", "CustomerCard", lambda r: r["Name"] == "Müller GmbH"),
])
def test_filters_select_what_they_say(data, text, service, count_check):
    predicate = odata.compile_filter(text, SERVICES[service])
    rows = data[service]
    got = [r for r in rows if predicate(r)]
    want = [r for r, d in zip(rows, as_dicts(service, rows)) if count_check(d)]
    assert got == want


@pytest.mark.parametrize("text, error", [
    ("Name eq 'unterminated", odata.ODataSyntaxError),
    ("Name eq", odata.ODataSyntaxError),
    ("(Name eq 'a'", odata.ODataSyntaxError),
    ("Name eq 'a' andd No eq 'b'", odata.ODataSyntaxError),
    ("Name eq 'a' ;", odata.ODataSyntaxError),
    ("Last_Date_Modified ge 2026-13-01", odata.ODataSyntaxError),
    ("Name eq 'a' or No eq 'b'", odata.ODataQueryError),
    ("Nope eq 1", odata.ODataQueryError),
    ("Last_Date_Modified ge '2026-01-01'", odata.ODataQueryError),
    ("Last_Date_Modified ge 2026-01-01T00:00:00Z", odata.ODataQueryError),
    ("Credit_Limit_LCY gt 'x'", odata.ODataQueryError),
])
def test_bad_filters_raise(text, error):
    with pytest.raises(error):
        odata.compile_filter(text, SERVICES["CustomerCard"])


def test_flow_filters_come_back_apart_and_join_the_rest_only_by_and():
    items = SERVICES["ItemCard"]
    predicate, flow = odata.compile_query("Location_Filter eq 'R&D/LAB' and Type eq 'Inventory' and "
                                          "(Variant_Filter eq '' or Variant_Filter eq 'WEIß')", items)
    assert set(flow) == {"Location_Filter", "Variant_Filter"}
    assert flow["Location_Filter"]("R&D/LAB") and not flow["Location_Filter"]("EAST")
    assert flow["Variant_Filter"]("WEIß") and flow["Variant_Filter"]("") and not flow["Variant_Filter"]("RED")
    row = list(items.defaults)
    assert predicate(row) and odata.compile_query("Date_Filter le 2026-11-01", items)[0] is None
    for bad in ("Location_Filter eq 'EAST' or No eq '10010'", "not (Location_Filter eq 'EAST' and Blocked)"):
        with pytest.raises(odata.ODataQueryError, match="FlowFilter"):
            odata.compile_query(bad, items)
    with pytest.raises(odata.ODataQueryError):
        odata.compile_query("Date_Filter le '2026-11-01'", items)


def test_key_predicates():
    assert odata.parse_key_segment("'C10000'", SERVICES["CustomerCard"]) == ("C10000",)
    assert odata.parse_key_segment("No='O''X,=1'", SERVICES["CustomerCard"]) == ("O'X,=1",)
    assert odata.parse_key_segment("Document_Type='Order',No='101005'", SERVICES["SalesOrders"]) == ("Order", "101005")
    assert odata.parse_key_segment("Document_Type='Order',Document_No='101005',Line_No=10000",
                                   SERVICES["SalesOrderLines"]) == ("Order", "101005", 10000)
    with pytest.raises(odata.ODataQueryError):
        odata.parse_key_segment("'101005'", SERVICES["SalesOrders"])


def test_table_pages_in_key_order_and_survives_inserts(data):
    svc = SERVICES["CustomerCard"]
    table = Table(svc, [list(r) for r in data["CustomerCard"]])
    first = [k for k, _ in table.iter_from(None)][:10]
    new = list(svc.defaults)
    new[svc.index["No"]] = "C00001"  # sorts before everything already read
    table.insert(new)
    rest = [k for k, _ in table.iter_from(first[-1])]
    assert ("C00001",) not in rest and not set(first) & set(rest)
    assert len(first) + len(rest) == len(data["CustomerCard"])


def test_posted_invoices_come_from_the_orders_invoiced_lines_and_a_few_from_elsewhere(data):
    invoices = as_dicts("PostedSalesInvoices", data["PostedSalesInvoices"])
    lines = as_dicts("PostedSalesInvoiceLines", data["PostedSalesInvoiceLines"])
    orders = {o["No"] for o in as_dicts("SalesOrders", data["SalesOrders"])}
    order_lines = as_dicts("SalesOrderLines", data["SalesOrderLines"])
    invoiced = {(ln["Document_No"], ln["No"], ln["Quantity_Invoiced"]) for ln in order_lines if ln["Quantity_Invoiced"]}
    by_invoice = Counter(ln["Document_No"] for ln in lines)
    assert set(by_invoice) == {i["No"] for i in invoices} and max(by_invoice.values()) >= 3
    from_orders = {i["No"]: i["Order_No"] for i in invoices if i["Order_No"] in orders}
    assert {(from_orders[ln["Document_No"]], ln["No"], ln["Quantity"]) for ln in lines
            if ln["Document_No"] in from_orders} == invoiced
    others = [i for i in invoices if i["No"] not in from_orders]
    assert any(not i["Order_No"] for i in others) and any(i["Order_No"] for i in others)
    assert all(i["No"].startswith("PS-INV") for i in invoices)
    assert any("'" in i["Sell_to_Customer_Name"] or not i["Sell_to_Customer_Name"].isascii() for i in invoices)


def test_item_categories_form_a_tree_holding_every_items_category(data):
    categories = {c["Code"]: c for c in as_dicts("ItemCategoryCard", data["ItemCategoryCard"])}
    assert all(not c["Parent_Category"] or c["Parent_Category"] in categories for c in categories.values())
    grandchildren = [c for c in categories.values()
                     if c["Parent_Category"] and categories[c["Parent_Category"]]["Parent_Category"]]
    assert grandchildren
    used = {i["Item_Category_Code"] for i in as_dicts("ItemCard", data["ItemCard"])} - {""}
    assert used and used <= set(categories)


def test_customers_have_ship_to_addresses_contacts_and_parent_companies(data):
    customers = {c["No"]: c for c in as_dicts("CustomerCard", data["CustomerCard"])}
    companies = {no for no, c in customers.items() if c["Partner_Type"] != "Person"}
    ship_tos = as_dicts("ShipToAddresses", data["ShipToAddresses"])
    assert ship_tos and {s["Customer_No"] for s in ship_tos} <= set(customers)
    assert len({(s["Customer_No"], s["Code"]) for s in ship_tos}) == len(ship_tos)
    assert all(s["Code"] == code_upper(s["Code"]) and len(s["Code"]) <= 10 for s in ship_tos)
    assert any("'" in s["Code"] for s in ship_tos) and any(not s["Name"].isascii() for s in ship_tos)
    contacts = as_dicts("Contacts", data["Contacts"])
    company_contacts = {c["No"]: c for c in contacts if c["Type"] == "Company"}
    assert {c["IntegrationCustomerNo"] for c in company_contacts.values()} == companies
    people = [c for c in contacts if c["Type"] == "Person"]
    assert people and all(company_contacts[p["Company_No"]]["IntegrationCustomerNo"] == p["IntegrationCustomerNo"]
                          for p in people)
    assert len({p["E_Mail"] for p in people}) == len(people)
    children = [c for c in customers.values() if c["Bill_to_Customer_No"] and c["No"] in companies]
    assert len(children) >= 2 and all(c["Bill_to_Customer_No"] in companies for c in children)

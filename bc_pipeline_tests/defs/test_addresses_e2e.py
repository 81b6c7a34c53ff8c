"""Addresses, company relationships, contacts and payment terms, both ways, through real Dagster runs."""

import pytest

from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import records as state
from bc_pipeline.state.database import engine_for

pytestmark = pytest.mark.e2e


def _links(world, table):
    return {link["external_id"]: str(link["internal_id"]) for link in world.ipaas_links()
            if link["table_name"].lower() == table.lower() and not link.get("deleted")}


def _initial_load(instance):
    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error
    assert all(load["failed"] == 0 for load in outcome.loads.values())
    return outcome


def _by_id(world, *models):
    return {str(r["id"]): r for model in models for r in world.ipaas_records(model)}


def test_the_initial_load_carries_addresses_relationships_contacts_and_payment_terms_each_once(world, instance):
    # Three company creates whose answers are lost on the way: found, not created again (one load serves both).
    world.handle.set_faults({"kind": "lost_answer", "then": 503, "target": "ipaas", "method": "POST",
                             "path_prefix": "/customers/v2/Customer/Company", "count": 3, "retry_after": 0})
    assert [f["count"] for f in world.handle.faults()["faults"] if f["kind"] == "lost_answer"] == [3]
    _initial_load(instance)
    assert not [f for f in world.handle.faults()["faults"] if f["kind"] == "lost_answer"]  # all three fired
    world.handle.clear_faults()
    bc = world.handle
    customers = {c["No"]: c for c in bc.records("CustomerCard")}
    ship_tos = bc.records("ShipToAddresses")
    assert any("'" in s["Customer_No"] or "'" in s["Name"] for s in ship_tos)
    assert any(not s["Code"].isascii() for s in ship_tos)
    links = _links(world, "customer")
    records = _by_id(world, "Company", "Customer")
    engine = engine_for(load_settings().state_database_url)
    address_links = state.links(engine, "Address")
    linked_in_ipaas = _links(world, "Address")

    # Every company and customer: the card's address (identified by its type and flag: linked in the pipeline's
    # state), then each of its ship-to addresses, linked in iPaaS.com too.
    for no, customer in customers.items():
        record = records[links[no]]
        expected = [f"{no}|billing"] * bool(customer["Address"].strip()) + [
            f"{s['Customer_No']}|{s['Code']}" for s in ship_tos if s["Customer_No"] == no]
        assert [address_links.get(e) for e in expected] == [str(a["id"]) for a in record["addresses"]], no
        assert all(linked_in_ipaas.get(e) == address_links[e] for e in expected if not e.endswith("|billing")), no
        if customer["Address"].strip():
            billing = record["addresses"][0]
            assert (billing["address_1"], billing["city"], billing["country"], billing["is_primary_billing"]) == (
                customer["Address"].strip(), customer["City"].strip() or None, customer["Country_Region_Code"], True)
    some = ship_tos[0]
    [landed] = [a for a in records[links[some["Customer_No"]]]["addresses"]
                if str(a["id"]) == address_links[f"{some['Customer_No']}|{some['Code']}"]]
    assert (landed["company"], landed["city"], landed["type"]) == (some["Name"], some["City"], "Shipping")
    assert len(world.ipaas_records("Address")) == len(address_links)

    # Contacts (people) are iPaaS.com customers, each related to its company; parent companies are linked.
    people = [c for c in bc.records("Contacts") if c["Type"] == "Person"]
    assert people
    for contact in people:
        person = records[links[f"{contact['No']}|contact"]]
        assert person["company"] == contact["Company_Name"] and person["customer_number"] == contact["No"]
        assert [address_links.get(f"{contact['No']}|contact|billing")] * bool(contact["Address"].strip()) == [
            str(a["id"]) for a in person["addresses"]]
        company = records[links[contact["IntegrationCustomerNo"]]]
        assert {"customer_id": int(person["id"]), "type": "Contact"} in company["relationships"]
    companies = [c for c in customers.values() if c["Partner_Type"] != "Person"]
    related = sum(len(records[links[c["No"]]]["relationships"]) for c in companies)
    assert related == len(people)
    children = [c for c in companies if c["Bill_to_Customer_No"]]
    assert children
    for child in children:
        assert str(records[links[child["No"]]]["parent_company_id"]) == links[child["Bill_to_Customer_No"]]

    # Every released order: bill-to and ship-to addresses and its payment terms.
    transactions = {t["transaction_number"]: t for t in world.ipaas_records("Transaction") if t["type"] == "Order"}
    released = [o for o in bc.records("SalesOrders") if o["Status"] == "Released"]
    assert set(transactions) == {o["No"] for o in released}
    for order in released:
        t = transactions[order["No"]]
        billing, shipping = t["addresses"]
        assert (billing["type"], billing["company"], billing["address_1"]) == (
            "Billing", order["Bill_to_Name"], order["Bill_to_Address"])
        assert (shipping["type"], shipping["company"], shipping["city"], shipping["is_primary_shipping"]) == (
            "Shipping", order["Ship_to_Name"], order["Ship_to_City"], True)
        assert [p["method"] for p in t["payments"]] == [order["Payment_Terms_Code"]]
    # Identified by their type / method (as lines by sequence number): linked in the pipeline's state, no request.
    assert state.links(engine, "Transaction Address") == {
        f"{o['No']}|{kind.lower()}": str(a["id"]) for o in released
        for kind, a in zip(("Billing", "Shipping"), transactions[o["No"]]["addresses"])}
    assert len(state.links(engine, "transaction payment")) == sum(1 for o in released if o["Payment_Terms_Code"])

    # The pipeline's links of the addresses lost, then a company and one of its ship-to addresses changed in BC: its
    # addresses are updated in place, the card's found by its type and flag alone (no link in iPaaS.com either).
    ids_before = sorted(a["id"] for a in world.ipaas_records("Address"))
    state.forget_links(engine, "Address", list(address_links))  # as if the state were lost
    ship_to = next(s for s in ship_tos if customers[s["Customer_No"]]["Partner_Type"] != "Person"
                   and customers[s["Customer_No"]]["Address"].strip() and s["Customer_No"].isalnum())
    company = customers[ship_to["Customer_No"]]
    world.ipaas("DELETE", f"links/Address/{company['No']}%7Cbilling")
    world.handle.edit_record("CustomerCard", company["No"], {"City": "Coeur d'Alene"})
    world.handle.edit_record("ShipToAddresses", [ship_to["Customer_No"], ship_to["Code"]], {"City": "Sandpoint"})
    outcome = run_job("sync_to_ipaas", instance=instance)
    assert outcome.success, outcome.error
    after = {str(a["id"]): a for a in world.ipaas_records("Address")}
    assert sorted(int(i) for i in after) == ids_before  # the same addresses: none created, none replaced
    now_linked = state.links(engine, "Address")
    assert after[now_linked[f"{company['No']}|billing"]]["city"] == "Coeur d'Alene"
    assert after[now_linked[f"{ship_to['Customer_No']}|{ship_to['Code']}"]]["city"] == "Sandpoint"


def test_a_refused_company_lands_later_with_all_its_addresses(world, instance):
    """A dead letter is mapped again from BC as it is now: the company with its card and ship-to addresses."""
    ship_to = world.handle.records("ShipToAddresses")[0]
    [company] = world.handle.records("CustomerCard", key=ship_to["Customer_No"])
    world.ipaas("POST", "faults", json={"reject": {"model": "Company", "field": "name", "equals": company["Name"]}})
    first = run_job("initial_load", instance=instance)
    assert first.loads["company_to_ipaas"]["failed"] == 1
    world.ipaas("DELETE", "faults")
    outcome = run_job("sync_to_ipaas", instance=instance)
    assert outcome.success, outcome.error
    assert outcome.loads["company_to_ipaas"]["created"] == 1
    record = next(c for c in world.ipaas_records("Company") if str(c["id"]) == _links(world, "customer")[company["No"]])
    expected = [f"{company['No']}|billing"] + [f"{s['Customer_No']}|{s['Code']}" for s in world.handle.records(
        "ShipToAddresses") if s["Customer_No"] == company["No"]]
    linked = state.links(engine_for(load_settings().state_database_url), "Address")
    assert [linked[e] for e in expected] == [str(a["id"]) for a in record["addresses"]]


def _ipaas_put(world, path, body):
    response = world.handle.session.put(f"{world.handle.base_url}/{path}", json=body, timeout=30,
                                        headers={"Authorization": f"Bearer {world.handle.config.ipaas_api_token}"})
    assert response.status_code < 300, response.text
    return response.json()


def _write(instance, slug, ids):
    from bc_pipeline.definitions import defs

    job = defs.resolve_job_def("sync_from_ipaas")
    import dagster as dg

    result = job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["bc_out", slug])],
        run_config={"ops": {f"bc_out__{slug}": {"config": {"ipaas_ids": [str(i) for i in ids]}}}}, raise_on_error=False)
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


BILLING = {"address_1": "12 Rue de l'Église", "address_2": "Bâtiment C", "city": "Québec", "region": "QC",
           "postal_code": "G1R 4S9", "country": "ca", "type": "Billing", "is_primary_billing": True,
           "is_primary_shipping": False}
SHIPPING = {"first_name": "Zoë", "last_name": "O'Neil", "company": "Dock 4 – Müller & Söhne", "address_1": "7 Harbor Blvd",
            "city": "Seattle", "region": "WA", "postal_code": "98101", "country": "US", "type": "Shipping",
            "is_primary_billing": False, "is_primary_shipping": True}


def test_a_company_billing_address_and_an_order_shipping_address_reach_business_central(world, instance):
    outcome = run_job("initial_load", ["customer_price_groups", "customers", "items"], instance=instance)
    assert outcome.success, outcome.error
    company = world.ipaas("POST", "records/Company", json={
        "name": "Société Générale d'Équipement", "email_address": "achats@sge.example",
        "addresses": [{**SHIPPING, "is_primary_shipping": True}, BILLING]})
    meta = _write(instance, "company_from_ipaas", [company["id"]])
    assert (meta["created"], meta["failed"]) == (1, 0)
    customer_no = {str(k["internal_id"]): k["external_id"] for k in world.ipaas_links()
                   if k["table_name"] == "customer"}[str(company["id"])]
    [customer] = world.handle.records("CustomerCard", key=customer_no)
    assert (customer["Address"], customer["Address_2"], customer["City"], customer["County"], customer["Post_Code"],
            customer["Country_Region_Code"]) == ("12 Rue de l'Église", "Bâtiment C", "Québec", "QC", "G1R 4S9", "CA")

    sku = next(i["No"] for i in world.handle.records("ItemCard") if not i["Blocked"] and not i["Sales_Blocked"])
    transaction = world.ipaas("POST", "records/Transaction", json={
        "transaction_number": "WEB-2001", "type": "Order", "status": "Pending", "customer_id": int(company["id"]),
        "addresses": [{**BILLING, "is_primary_shipping": False}, SHIPPING],
        "lines": [{"sequence_number": 1, "sku": sku, "qty": 2, "unit_price": 4.5}]})
    meta = _write(instance, "sales_order_from_ipaas", [transaction["id"]])
    assert (meta["created"], meta["failed"]) == (1, 0)
    [order] = [o for o in world.handle.records("SalesOrders") if o["External_Document_No"] == "WEB-2001"]
    assert (order["Ship_to_Name"], order["Ship_to_Contact"], order["Ship_to_Address"], order["Ship_to_City"],
            order["Ship_to_County"], order["Ship_to_Post_Code"], order["Ship_to_Country_Region_Code"]) == (
        "Dock 4 – Müller & Söhne", "Zoë O'Neil", "7 Harbor Blvd", "Seattle", "WA", "98101", "US")
    assert order["Bill_to_Address"] == "12 Rue de l'Église"  # BC's bill-to: the customer's address

    # The shipping address changed in iPaaS.com: the same BC order gets the new ship-to.
    stored = next(t for t in world.ipaas_records("Transaction") if t["id"] == transaction["id"])
    body = {k: v for k, v in stored.items() if k not in ("id", "tracking_guid", "external_ids")}
    body["addresses"] = [{**a, "city": "Tacoma", "postal_code": "98402"} if a.get("is_primary_shipping") else a
                         for a in body["addresses"]]
    _ipaas_put(world, f"transactions/v2/Transaction/{transaction['id']}", body)
    meta = _write(instance, "sales_order_from_ipaas", [transaction["id"]])
    assert (meta["updated"], meta["failed"]) == (1, 0)
    [order] = [o for o in world.handle.records("SalesOrders") if o["External_Document_No"] == "WEB-2001"]
    assert (order["Ship_to_City"], order["Ship_to_Post_Code"]) == ("Tacoma", "98402")

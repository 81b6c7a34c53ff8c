"""Business Central → iPaaS.com with real Dagster runs against the sandbox: every record lands once, linked."""

import pytest

from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import records as state
from bc_pipeline.state.database import engine_for

pytestmark = pytest.mark.e2e

SYSTEM_ID = "1001"


def _links(world, table):
    return {
        link["external_id"]: str(link["internal_id"])
        for link in world.ipaas_links()
        if link["table_name"].lower() == table.lower() and not link.get("deleted")
    }


def _initial_load(world, instance):
    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error
    return outcome


def test_the_initial_load_puts_every_bc_record_into_ipaas_linked_by_external_id(world, instance):
    outcome = _initial_load(world, instance)
    bc = world.handle

    customers = bc.records("CustomerCard")
    links = {k: v for k, v in _links(world, "customer").items() if not k.endswith("|contact")}  # contacts: own test
    assert set(links) == {c["No"] for c in customers}
    companies = {str(c["id"]): c for c in world.ipaas_records("Company")}
    people = {str(c["id"]): c for c in world.ipaas_records("Customer")}
    for customer in customers:
        target = companies.get(links[customer["No"]]) or people.get(links[customer["No"]])
        assert target is not None, customer["No"]
        if customer["Partner_Type"] == "Person":
            assert target["customer_number"] == customer["No"]
        else:
            assert target["name"] == customer["Name"].strip()

    products = {p["sku"]: p for p in world.ipaas_records("Product")}
    assert set(products) == {i["No"] for i in bc.records("ItemCard")}
    guide_item = products["10010"]
    assert {"custom_field_name": "CatItemGroup",
            "value": "CLASSIC WATERMELON LED W/STAINLESS STEEL FLANGE MOUNT BEZEL"} in [
        {k: c[k] for k in ("custom_field_name", "value")} for c in guide_item["custom_fields"]]
    assert all(c["value"] for p in products.values() for c in p.get("custom_fields") or [])

    assert {loc["name"] for loc in world.ipaas_records("Location")} == {
        loc["Code"] for loc in bc.records("Locations") if not loc["Use_As_In_Transit"]}
    assert {s["name"] for s in world.ipaas_records("Shipping Method")} == {s["Code"] for s in bc.records("ShippingAgents")}
    assert {c["name"] for c in world.ipaas_records("Customer Category")} == {
        g["Code"] for g in bc.records("CustomerPriceGroups")}

    released = {o["No"]: o for o in bc.records("SalesOrders") if o["Status"] == "Released"}
    transactions = {t["transaction_number"]: t for t in world.ipaas_records("Transaction") if t["type"] == "Order"}
    assert set(transactions) == set(released)
    lines = bc.records("SalesOrderLines")
    some_order = next(iter(released))
    bc_lines = [ln for ln in lines if ln["Document_No"] == some_order and ln["Type"] != "_blank_"]
    assert [ln["sku"] for ln in transactions[some_order]["lines"]] == [ln["No"] for ln in bc_lines]
    # A line is its transaction's line with BC's Line_No as sequence number: no link request of its own, and the
    # pipeline knows each line's iPaaS id from the create's answer.
    assert [ln["sequence_number"] for ln in transactions[some_order]["lines"]] == [ln["Line_No"] for ln in bc_lines]
    line_links = state.links(engine_for(load_settings().state_database_url), "Transaction Line")
    assert {e: line_links[e] for e in line_links if e.startswith(f"{some_order}|")} == {
        f"{some_order}|{bc['Line_No']}": str(line["id"]) for bc, line in zip(bc_lines, transactions[some_order]["lines"])}
    orders = outcome.loads["sales_order_to_ipaas"]
    assert orders["requests_links"] == 0  # the transaction's link travels in its create, the lines need none
    assert orders["requests_creates"] == orders["created"] == len(released)
    assert orders["requests"] <= 1.5 * orders["created"]
    tracked = [o for o in released.values() if o["Package_Tracking_No"]]
    assert tracked
    assert any(t["tracking_number"] == tracked[0]["Package_Tracking_No"]
               for t in transactions[tracked[0]["No"]].get("tracking") or [])

    inventory = world.ipaas_records("Product Inventory")
    assert inventory and len(_links(world, "product inventory")) == len(inventory)
    for load in outcome.loads.values():
        assert load["failed"] == 0


def test_a_second_run_with_no_bc_change_writes_nothing(world, instance, state_url, monkeypatch):
    monkeypatch.setenv("BC_PIPELINE_STATE_URL", state_url)  # on SQLite and on PostgreSQL
    _initial_load(world, instance)
    since = world.ipaas_last_seq()
    outcome = run_job("sync_to_ipaas", instance=instance)
    assert outcome.success, outcome.error
    assert world.ipaas_writes(since) == []
    assert all(m["created"] == m["updated"] == m["failed"] == 0 for m in outcome.loads.values())
    assert outcome.extracts["customers"]["mode"] == "incremental"


def test_one_changed_bc_customer_gives_exactly_one_update(world, instance):
    _initial_load(world, instance)
    customer = next(c for c in world.handle.records("CustomerCard") if c["Partner_Type"] != "Person")
    world.handle.edit_record("CustomerCard", customer["No"], {"Phone_No": "+1 555 0199"})
    since = world.ipaas_last_seq()
    outcome = run_job("sync_to_ipaas", instance=instance)
    assert outcome.success, outcome.error
    writes = world.ipaas_writes(since)
    assert [w["method"] for w in writes] == ["PUT"]
    assert outcome.loads["company_to_ipaas"]["updated"] == 1
    company = next(c for c in world.ipaas_records("Company") if str(c["id"]) == _links(world, "customer")[customer["No"]])
    assert company["phone_number"] == "+1 555 0199"
    assert company["name"] == customer["Name"].strip()  # the PUT kept every other field


def test_a_rejected_record_waits_in_dead_letters_and_lands_once_fixed(world, instance):
    world.ipaas("POST", "faults", json={"reject": {"model": "Product", "field": "sku", "equals": "10010",
                                                   "message": "SKU blocked by a test"}})
    outcome = _initial_load_allowing_failures(world, instance)
    assert outcome.loads["product_to_ipaas"]["failed"] == 1
    assert outcome.loads["product_to_ipaas"]["created"] == len(world.handle.records("ItemCard")) - 1
    engine = engine_for(load_settings().state_database_url)
    letters = state.dead_letters_of(engine, "product_to_ipaas")
    assert [(d.external_id, d.status) for d in letters] == [("10010", 400)]
    assert "SKU blocked by a test" in letters[0].error
    assert letters[0].payload["sku"] == "10010"

    world.ipaas("DELETE", "faults")
    outcome = run_job("sync_to_ipaas", instance=instance)
    assert outcome.success, outcome.error
    assert outcome.loads["product_to_ipaas"]["created"] == 1
    assert state.dead_letters_of(engine, "product_to_ipaas") == []
    assert "10010" in {p["sku"] for p in world.ipaas_records("Product")}


def _initial_load_allowing_failures(world, instance):
    outcome = run_job("initial_load", instance=instance)
    return outcome


def test_a_link_deleted_on_the_ipaas_side_is_recovered_without_a_duplicate(world, instance):
    _initial_load(world, instance)
    location = world.handle.records("Locations")[0]["Code"]
    before = len(world.ipaas_records("Location"))
    world.ipaas("DELETE", f"links/location/{location}")
    engine = engine_for(load_settings().state_database_url)
    state.forget_links(engine, "location", [location])  # as if the pipeline's cache were lost too
    world.handle.edit_record("Locations", location, {"Name": "Renamed warehouse"})
    outcome = run_job("sync_to_ipaas", instance=instance)
    assert outcome.success, outcome.error
    assert len(world.ipaas_records("Location")) == before
    assert location in _links(world, "location")
    renamed = next(loc for loc in world.ipaas_records("Location") if loc["name"] == location)
    assert renamed["description"] == "Renamed warehouse"


def test_no_secret_reaches_the_event_log_the_state_or_any_file(world, instance):
    world.ipaas("POST", "faults", json={"reject": {"model": "Product", "field": "sku", "equals": "10010"}})
    outcome = run_job("initial_load", instance=instance)
    secrets = [world.handle.config.client_secret, world.handle.config.ipaas_api_token]
    events = " ".join(str(r.event_log_entry) for r in instance.get_records_for_run(outcome.run_id, limit=100000).records)
    assert "SKU" in events or "10010" in events  # the dead letter's error is in the log, the secrets are not
    for secret in secrets:
        assert secret not in events
    for path in world.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, path


def test_two_bc_customers_with_one_email_make_one_ipaas_customer_and_no_failure(world, instance):
    people = [c for c in world.handle.records("CustomerCard") if c["Partner_Type"] == "Person"][:2]
    assert len(people) == 2
    for person in people:
        world.handle.edit_record("CustomerCard", person["No"], {"E_Mail": "shared@example.com"})
    outcome = _initial_load(world, instance)
    load = outcome.loads["customer_to_ipaas"]
    assert load["failed"] == 0
    assert load["linked"] == 1
    shared = [c for c in world.ipaas_records("Customer") if c["email_address"] == "shared@example.com"]
    assert len(shared) == 1

"""iPaaS.com → Business Central with real Dagster runs against the sandbox."""

import pytest

from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import records as state
from bc_pipeline.state.database import engine_for

pytestmark = pytest.mark.e2e


def _write(instance, collection_slug, ids):
    from bc_pipeline.definitions import defs

    job = defs.resolve_job_def("sync_from_ipaas")
    import dagster as dg

    result = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(["bc_out", collection_slug])],
        run_config={"ops": {f"bc_out__{collection_slug}": {"config": {"ipaas_ids": [str(i) for i in ids]}}}},
        raise_on_error=False,
    )
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def _links(world, table):
    return {str(link["internal_id"]): link["external_id"] for link in world.ipaas_links()
            if link["table_name"].lower() == table.lower() and not link.get("deleted")}


@pytest.fixture
def loaded(world, instance):
    outcome = run_job("initial_load", ["customer_price_groups", "customers", "items"], instance=instance)
    assert outcome.success, outcome.error
    return world


def _new_transaction(world, customer_ipaas_id, skus):
    return world.ipaas("POST", "records/Transaction", json={
        "transaction_number": "WEB-1001", "type": "Order", "status": "Pending", "customer_id": int(customer_ipaas_id),
        "email_address": "buyer@example.com",
        "lines": [{"sequence_number": i + 1, "sku": sku, "description": f"line {i + 1}", "qty": i + 2,
                   "unit_price": 9.5} for i, sku in enumerate(skus)],
    })


def _only_writes(requests):
    return [r for r in requests if r["method"] in ("POST", "PATCH", "DELETE") and "/ODataV4/" in r["path"]]


def test_an_ipaas_transaction_becomes_a_bc_sales_order_with_all_its_lines_linked_both_ways(loaded, instance):
    world = loaded
    customer_no, customer_id = _open_customer(world)
    skus = [i["No"] for i in world.handle.records("ItemCard")[:3]]
    transaction = _new_transaction(world, customer_id, skus)

    meta = _write(instance, "sales_order_from_ipaas", [transaction["id"]])
    assert (meta["created"], meta["failed"]) == (1, 0)
    order_no = _links(world, "transaction")[str(transaction["id"])]
    [order] = [o for o in world.handle.records("SalesOrders") if o["No"] == order_no]
    assert order["Sell_to_Customer_No"] == customer_no
    assert order["External_Document_No"] == "WEB-1001"
    lines = [ln for ln in world.handle.records("SalesOrderLines") if ln["Document_No"] == order_no]
    assert [(ln["No"], ln["Quantity"]) for ln in lines] == [(sku, i + 2) for i, sku in enumerate(skus)]
    line_links = _links(world, "Transaction Line")
    stored = world.ipaas_records("Transaction")
    ipaas_lines = next(t for t in stored if t["id"] == transaction["id"])["lines"]
    assert sorted(line_links[str(ln["id"])] for ln in ipaas_lines) == sorted(f"{order_no}|{ln['Line_No']}" for ln in lines)

    # The same request replayed changes nothing in Business Central.
    since = world.handle.last_seq()
    meta = _write(instance, "sales_order_from_ipaas", [transaction["id"]])
    assert meta["unchanged"] == 1
    assert _only_writes(world.handle.requests(since)) == []
    assert len([o for o in world.handle.records("SalesOrders") if o["External_Document_No"] == "WEB-1001"]) == 1


def test_a_line_refused_halfway_is_completed_by_the_next_run_without_a_second_order(loaded, instance):
    world = loaded
    _, customer_id = _open_customer(world)
    good = world.handle.records("ItemCard")[0]["No"]
    transaction = _new_transaction(world, customer_id, [good, "NO-SUCH-ITEM"])
    meta = _write(instance, "sales_order_from_ipaas", [transaction["id"]])
    assert meta["failed"] == 1
    engine = engine_for(load_settings().state_database_url)
    [letter] = state.dead_letters_of(engine, "sales_order_from_ipaas")
    assert "was refused" in letter.error
    order_no = _links(world, "transaction")[str(transaction["id"])]
    # The lines went in one $batch, one transaction: none of them was written, not the good one either.
    assert [ln for ln in world.handle.records("SalesOrderLines") if ln["Document_No"] == order_no] == []

    world.handle.insert_record("ItemCard", {"No": "NO-SUCH-ITEM", "Description": "Added later"})
    meta = _write(instance, "sales_order_from_ipaas", [transaction["id"]])
    assert meta["failed"] == 0
    orders = [o for o in world.handle.records("SalesOrders") if o["External_Document_No"] == "WEB-1001"]
    assert [o["No"] for o in orders] == [order_no]
    lines = [ln["No"] for ln in world.handle.records("SalesOrderLines") if ln["Document_No"] == order_no]
    assert lines == [good, "NO-SUCH-ITEM"]
    assert state.dead_letters_of(engine, "sales_order_from_ipaas") == []


def _put_company(world, company, **changes):
    body = {k: v for k, v in company.items() if k not in ("id", "tracking_guid", "external_ids")}
    response = world.handle.session.put(
        f"{world.handle.base_url}/customers/v2/Customer/Company/{company['id']}",
        json={**body, **changes}, headers={"Authorization": f"Bearer {world.handle.config.ipaas_api_token}"}, timeout=30)
    assert response.status_code < 300, response.text


def _open_customer(world):
    """A linked BC customer that is not blocked (BC refuses orders for blocked ones): (Customer No, iPaaS id)."""
    blocked = {c["No"] for c in world.handle.records("CustomerCard") if c.get("Blocked") not in (None, "", " ", "_blank_")}
    return next((no, i) for no, i in _ext_to_int(world, "customer").items() if no not in blocked)


def _ext_to_int(world, table):
    return {link["external_id"]: str(link["internal_id"]) for link in world.ipaas_links()
            if link["table_name"].lower() == table.lower() and not link.get("deleted")}


def test_a_line_change_on_an_order_released_in_bc_is_refused_with_what_to_do(loaded, instance):
    from bc_pipeline.clients.ipaas import IpaasClient

    world = loaded
    _, customer_id = _open_customer(world)
    skus = [i["No"] for i in world.handle.records("ItemCard")[:2]]
    transaction = _new_transaction(world, customer_id, skus)
    assert _write(instance, "sales_order_from_ipaas", [transaction["id"]])["created"] == 1
    order_no = _links(world, "transaction")[str(transaction["id"])]
    world.handle.edit_record("SalesOrders", ["Order", order_no], {"Status": "Released"})

    client = IpaasClient(load_settings())
    current = client.get("Transaction", transaction["id"])
    current["lines"][0]["qty"] = 99
    client.replace("Transaction", transaction["id"], {k: v for k, v in current.items() if k != "external_ids"})
    since = world.handle.last_seq()
    meta = _write(instance, "sales_order_from_ipaas", [transaction["id"]])
    assert meta["failed"] == 1
    [letter] = state.dead_letters_of(engine_for(load_settings().state_database_url), "sales_order_from_ipaas")
    assert f"order {order_no} is Released in Business Central, so its lines cannot change" in letter.error
    assert "reopen the order" in letter.error
    assert _only_writes(world.handle.requests(since)) == []


def test_a_tax_class_bc_does_not_know_is_a_dead_letter_that_says_which_mapping_to_fix(loaded, instance):
    world = loaded
    product = world.ipaas("POST", "records/Product", json={
        "sku": "web-sku-tax", "name": "Shirt", "type": "Physical", "tracking_method": "Product", "status": "Active",
        "tax_class": "Clothing"})
    meta = _write(instance, "product_from_ipaas", [product["id"]])
    assert meta["failed"] == 1
    [letter] = state.dead_letters_of(engine_for(load_settings().state_database_url), "product_from_ipaas")
    assert letter.code == "Internal_InvalidTableRelation"
    assert "CLOTHING" in letter.error and "product_from_ipaas.yaml" in letter.error
    assert world.handle.records("ItemCard", key="WEB-SKU-TAX") == []


# -- echoes: what one direction wrote is not written back by the other ----------------------------------------------

ECHO_SERVICES = ("CustomerCard", "ItemCard", "SalesOrders", "SalesOrderLines")


def _poll(instance, slugs):
    """A scheduled sync_from_ipaas run without ids (every record of each model), for these collections."""
    from bc_pipeline.definitions import defs
    import dagster as dg

    result = defs.resolve_job_def("sync_from_ipaas").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["bc_out", s]) for s in slugs], raise_on_error=False)
    assert result.success
    return {e.event_specific_data.materialization.asset_key.path[-1]:
            {k: v.value for k, v in e.event_specific_data.materialization.metadata.items()}
            for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}


def _bc_data(world):
    """Every record of the services both directions touch, without their ETags."""
    return {s: sorted(({k: v for k, v in r.items() if k != "@odata.etag"} for r in world.handle.records(s)),
                      key=repr) for s in ECHO_SERVICES}


def _ipaas_record(world, model, ipaas_id):
    return next(r for r in world.ipaas_records(model) if str(r["id"]) == str(ipaas_id))


def test_what_the_sync_to_ipaas_wrote_is_not_written_back_and_genuine_edits_still_cross(world, instance):
    from bc_pipeline.clients.ipaas import IpaasClient

    outcome = run_job("initial_load", ["customer_price_groups", "customers", "ship_to_addresses", "items",
                                       "sales_orders", "sales_order_lines"], instance=instance)
    assert outcome.success, outcome.error
    assert all(outcome.loads[s]["created"] > 0 for s in ("company_to_ipaas", "product_to_ipaas", "sales_order_to_ipaas"))
    companies = _ext_to_int(world, "customer")
    company_ids = {str(c["id"]) for c in world.ipaas_records("Company")}
    [(edited_in_bc, _), (edited_in_ipaas, company_id)] = [(no, i) for no, i in companies.items() if i in company_ids][:2]
    item_no, product_id = next(iter(_ext_to_int(world, "product").items()))

    # A BC edit made after the load to iPaaS.com, before the poll: the older iPaaS.com copy must not overwrite it.
    world.handle.edit_record("CustomerCard", edited_in_bc, {"Phone_No": "+1 555 0101"})
    before = _bc_data(world)
    since = world.handle.last_seq()
    polled = _poll(instance, ["company_from_ipaas", "customer_from_ipaas", "product_from_ipaas", "sales_order_from_ipaas"])
    assert _only_writes(world.handle.requests(since)) == []
    assert _bc_data(world) == before
    for slug in ("company_from_ipaas", "product_from_ipaas", "sales_order_from_ipaas"):
        assert (polled[slug]["echoes"] > 0, polled[slug]["created"], polled[slug]["updated"], polled[slug]["failed"]) \
            == (True, 0, 0, 0), (slug, polled[slug])

    # Edits made in iPaaS.com reach BC, and only those records are written; with the record's ETag, even after a
    # conflicting edit in BC (re-read, applied again). A new product arrives with its custom field and Add defaults.
    client = IpaasClient(load_settings())
    company = client.get("Company", company_id)
    client.replace("Company", company_id, {**{k: v for k, v in company.items() if k != "external_ids"},
                                           "phone_number": "+1 555 0142"})
    product = client.get("Product", product_id)
    client.replace("Product", product_id, {**{k: v for k, v in product.items() if k != "external_ids"},
                                           "default_price": 123.45})
    new_product = world.ipaas("POST", "records/Product", json={
        "sku": "WEB-SKU-1", "name": "Sparkling Water 'Lemon' — 12 × 330 ml", "type": "Physical",
        "tracking_method": "Product", "status": "Active", "default_price": 4.25,
        "custom_fields": [{"custom_field_name": "CatItemGroup", "value": "BEVERAGES"}],
    })
    world.handle.set_faults({"kind": "etag_conflict", "service": "CustomerCard", "key": edited_in_ipaas, "count": 1})
    # ... and a BC edit after the last poll is not overwritten by the next one.
    world.handle.edit_record("CustomerCard", edited_in_bc, {"Phone_No": "+1 555 0199"})
    since = world.handle.last_seq()
    polled = _poll(instance, ["company_from_ipaas", "product_from_ipaas"])
    assert (polled["company_from_ipaas"]["updated"], polled["product_from_ipaas"]["updated"],
            polled["product_from_ipaas"]["created"]) == (1, 1, 1)
    writes = [(r["method"], r["path"].split("/")[-1].split("(")[0], r["status"])
              for r in _only_writes(world.handle.requests(since))]
    assert writes == [("PATCH", "CustomerCard", 409), ("PATCH", "CustomerCard", 200), ("PATCH", "ItemCard", 200),
                      ("POST", "ItemCard", 201)]
    assert world.handle.records("CustomerCard", key=edited_in_ipaas)[0]["Phone_No"] == "+1 555 0142"
    assert world.handle.records("CustomerCard", key=edited_in_bc)[0]["Phone_No"] == "+1 555 0199"
    assert world.handle.records("ItemCard", key=item_no)[0]["Unit_Price"] == 123.45
    [item] = world.handle.records("ItemCard", key="WEB-SKU-1")
    assert (item["CatItemGroup"], item["Description"], item["Gen_Prod_Posting_Group"]) \
        == ("BEVERAGES", "Sparkling Water 'Lemon' — 12 × 330 ml", "RETAIL")  # the posting group is set on Add

    # The sync to iPaaS.com sends BC's edit, not the company, item and price the poll just wrote (iPaaS.com is where
    # they came from) ...
    since = world.ipaas_last_seq()
    outcome = run_job("sync_to_ipaas", ["customers", "ship_to_addresses", "items"], instance=instance)
    assert outcome.success, outcome.error
    assert (outcome.loads["product_to_ipaas"]["echoes"], outcome.loads["product_to_ipaas"]["created"]) == (2, 0)
    assert (outcome.loads["company_to_ipaas"]["echoes"], outcome.loads["company_to_ipaas"]["updated"]) == (1, 1)
    assert [w for w in world.ipaas_writes(since) if "/Catalog/Product" in w["path"] or w["path"].endswith(
        f"/Company/{company_id}")] == []
    assert _ipaas_record(world, "Product", product_id)["default_price"] == 123.45
    assert _ipaas_record(world, "Company", company_id)["phone_number"] == "+1 555 0142"
    assert _ipaas_record(world, "Company", companies[edited_in_bc])["phone_number"] == "+1 555 0199"

    # ... and a poll writes back neither what that sync sent nor anything over BC's edits (no ping-pong).
    before = _bc_data(world)
    since = world.handle.last_seq()
    polled = _poll(instance, ["company_from_ipaas", "product_from_ipaas"])
    assert _only_writes(world.handle.requests(since)) == []
    assert _bc_data(world) == before
    assert (polled["company_from_ipaas"]["echoes"], polled["company_from_ipaas"]["updated"]) == (1, 0)

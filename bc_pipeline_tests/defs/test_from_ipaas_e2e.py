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


def test_a_product_custom_field_reaches_the_items_catitemgroup(loaded, instance):
    world = loaded
    product = world.ipaas("POST", "records/Product", json={
        "sku": "WEB-SKU-1", "name": "Sparkling Water 'Lemon' — 12 × 330 ml", "type": "Physical",
        "tracking_method": "Product", "status": "Active", "default_price": 4.25,
        "custom_fields": [{"custom_field_name": "CatItemGroup", "value": "BEVERAGES"}],
    })
    meta = _write(instance, "product_from_ipaas", [product["id"]])
    assert meta["created"] == 1
    [item] = world.handle.records("ItemCard", key="WEB-SKU-1")
    assert item["CatItemGroup"] == "BEVERAGES"
    assert item["Description"] == "Sparkling Water 'Lemon' — 12 × 330 ml"
    assert item["Gen_Prod_Posting_Group"] == "RETAIL"  # set on Add


def test_an_ipaas_update_reaches_the_bc_customer_with_its_etag_even_after_a_conflicting_edit(loaded, instance):
    world = loaded
    customer_no, company_id = next((no, i) for no, i in _ext_to_int(world, "customer").items()
                                   if any(str(c["id"]) == i for c in world.ipaas_records("Company")))
    company = next(c for c in world.ipaas_records("Company") if str(c["id"]) == company_id)
    _put_company(world, company, phone_number="+1 555 0142")
    world.handle.set_faults({"kind": "etag_conflict", "service": "CustomerCard", "key": customer_no, "count": 1})
    meta = _write(instance, "company_from_ipaas", [company_id])
    assert (meta["updated"], meta["failed"]) == (1, 0)
    [customer] = world.handle.records("CustomerCard", key=customer_no)
    assert customer["Phone_No"] == "+1 555 0142"
    patches = [r for r in world.handle.requests(0) if r["method"] == "PATCH" and "CustomerCard" in r["path"]]
    assert [p["status"] for p in patches][-2:] == [409, 200]


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

"""Sync requests end to end: a webhook or a Manual Sync becomes a run that moves just the requested records."""

import dagster as dg
import pytest
from starlette.testclient import TestClient

from bc_pipeline.manual_sync import enqueue_manual_sync
from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import inbox
from bc_pipeline.state.database import engine_for
from bc_pipeline.webhooks import build_receiver
from bc_pipeline_tests.sensor_runs import tick as _tick

pytestmark = pytest.mark.e2e

KEY = "webhook-key-for-tests"


@pytest.fixture
def hooks(world, monkeypatch):
    monkeypatch.setenv("IPAAS_WEBHOOK_API_KEY", KEY)
    settings = load_settings()
    return TestClient(build_receiver(settings, engine_for(settings.state_database_url)))


def _engine():
    return engine_for(load_settings().state_database_url)


def _links(world, table):
    return {str(link["internal_id"]): link["external_id"] for link in world.ipaas_links()
            if link["table_name"].lower() == table.lower() and not link.get("deleted")}


def test_a_transaction_announced_by_webhook_becomes_a_bc_order_and_a_replay_changes_nothing(world, instance, hooks):
    assert run_job("initial_load", ["customer_price_groups", "customers", "items"], instance=instance).success
    blocked = {c["No"] for c in world.handle.records("CustomerCard") if c.get("Blocked") not in (None, "", " ", "_blank_")}
    customer_id = next(i for i, no in _links(world, "customer").items() if no not in blocked)  # BC refuses blocked ones
    skus = [i["No"] for i in world.handle.records("ItemCard")[:2]]
    transaction = world.ipaas("POST", "records/Transaction", json={
        "transaction_number": "HOOK-7", "type": "Order", "status": "Pending", "customer_id": int(customer_id),
        "lines": [{"sequence_number": n + 1, "sku": sku, "qty": 1, "unit_price": 3.0} for n, sku in enumerate(skus)],
    })
    body = {"notifications": [{"scope": "transaction/created", "id": str(transaction["id"])}]}
    answer = hooks.post("/webhooks/ipaas", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 202

    [request] = _tick(instance)
    assert request.job_name == "sync_from_ipaas"
    order_no = _links(world, "transaction")[str(transaction["id"])]
    lines = [ln for ln in world.handle.records("SalesOrderLines") if ln["Document_No"] == order_no]
    assert [ln["No"] for ln in lines] == skus
    [row] = inbox.status(_engine(), ipaas_id=str(transaction["id"]))
    assert row.status == "done"

    since = world.handle.last_seq()
    assert hooks.post("/webhooks/ipaas", json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 202
    _tick(instance)
    writes = [r for r in world.handle.requests(since) if r["method"] in ("POST", "PATCH") and "/ODataV4/" in r["path"]]
    assert writes == []
    assert len([o for o in world.handle.records("SalesOrders") if o["External_Document_No"] == "HOOK-7"]) == 1
    assert _tick(instance) == []  # nothing pending: the sensor skips


def test_a_manual_sync_of_one_customer_moves_just_that_customer(world, instance):
    assert run_job("initial_load", ["customer_price_groups"], instance=instance).success
    customer = next(c for c in world.handle.records("CustomerCard") if c["Partner_Type"] != "Person")
    enqueue_manual_sync(_engine(), collection="Dynamics Company Add/Update to iPaaS", scope="created",
                        external_ids=[customer["No"]])
    [request] = _tick(instance)
    assert request.job_name == "sync_to_ipaas"
    assert _links(world, "customer") and set(_links(world, "customer").values()) == {customer["No"]}
    assert [c["name"] for c in world.ipaas_records("Company")] == [customer["Name"].strip()]
    [row] = inbox.status(_engine(), external_id=customer["No"])
    assert row.status == "done"


def test_an_external_id_with_odata_syntax_reaches_bc_as_a_literal(world, instance):
    assert run_job("initial_load", ["customer_price_groups"], instance=instance).success
    hostile = "C1' or No ne '"
    enqueue_manual_sync(_engine(), collection="Dynamics Company Add/Update to iPaaS", scope="created",
                        external_ids=[hostile])
    since = world.handle.last_seq()
    _tick(instance)
    reads = [r for r in world.handle.requests(since) if "CustomerCard" in r["path"]]
    assert reads and all(r["status"] == 200 for r in reads)
    assert world.ipaas_records("Company") == []
    [row] = inbox.status(_engine(), external_id=hostile)
    assert row.status == "failed" and "was not found in CustomerCard" in row.error


def test_an_initialize_scope_reads_the_whole_entity_not_just_the_changes(world, instance, hooks):
    assert run_job("initial_load", ["customer_price_groups", "customers"], instance=instance).success
    people = [c for c in world.handle.records("CustomerCard") if c.get("Partner_Type") == "Person"]
    before = {c["customer_number"]: c for c in world.ipaas_records("Customer")}
    assert len(before) == len(people) > 2

    body = {"notifications": [{"scope": "customer/initialize"}]}
    assert hooks.post("/webhooks/ipaas", json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 202
    [request] = _tick(instance)

    extracted = instance.get_latest_materialization_event(dg.AssetKey(["bc", "customers"])).asset_materialization
    assert extracted.metadata["mode"].value == "full"
    assert extracted.metadata["rows"].value == len(world.handle.records("CustomerCard"))
    [row] = inbox.status(_engine(), collection="Dynamics Customer Add/Update to iPaaS")
    assert row.status == "done"

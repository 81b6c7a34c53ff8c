"""Business Central webhooks end to end: subscriptions kept with BC's rules, and a change saved in BC reaching
iPaaS.com through its notification, the receiver (one API GET), the inbox, the sensor and a targeted run."""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
import pytest
import requests

from bc_pipeline.clients.bc_api import BusinessCentralApi
from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import inbox
from bc_pipeline.state.database import engine_for
from bc_pipeline.webhooks import build_receiver
from bc_pipeline_tests.sensor_runs import tick as _tick
from bc_pipeline.webhooks import subscriptions as subs
from bc_pipeline.webhooks.resolution import api_resolver
from bc_pipeline_tests.webhooks.tls_receiver import served

pytestmark = pytest.mark.e2e

CLIENT_STATE = "client-state-for-tests"


@pytest.fixture
def receiver(world, monkeypatch):
    """`bc-pipeline webhooks serve` as BC reaches it: over HTTPS, resolving SystemIds through the sandbox's API."""
    monkeypatch.setenv("BC_WEBHOOK_CLIENT_STATE", CLIENT_STATE)
    settings = load_settings()
    app = build_receiver(settings, engine_for(settings.state_database_url), resolver=api_resolver(settings))
    with served(app, world.handle) as base:
        monkeypatch.setenv("BC_WEBHOOK_NOTIFICATION_URL", f"{base}/webhooks/bc")
        yield f"{base}/webhooks/bc"


@pytest.fixture
def api(receiver):
    client = BusinessCentralClient(load_settings())
    yield BusinessCentralApi(client)
    client.close()


def _engine():
    return engine_for(load_settings().state_database_url)


def _wait_for_requests(count: int, timeout: float = 15.0) -> list[inbox.SyncRequest]:
    deadline = time.monotonic() + timeout
    while True:
        rows = inbox.status(_engine(), source="bc_webhook", limit=None)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _states(api) -> dict[str, str]:
    return {s.entity.name: s.state for s in subs.states(api, load_settings())}


def test_subscriptions_are_created_renewed_before_expiry_recreated_after_it_and_deleted(world, api):
    settings = load_settings()
    assert set(_states(api).values()) == {"missing"}
    created = subs.ensure(api, settings)
    assert {s.entity.name for s in created} == {"customers", "items", "sales_orders", "locations", "item_categories",
                                                "posted_sales_invoices", "contacts"}
    assert {s.action for s in created} == {"created"}
    assert set(_states(api).values()) == {"active"}
    assert subs.ensure(api, settings) and all(s.action == "" for s in subs.ensure(api, settings))  # nothing to do

    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2, hours=1)  # within a day of BC's 3 days
    renewed = subs.ensure(api, settings, now=later)
    assert {s.action for s in renewed} == {"renewed"}
    before = {s.entity.name: s.expires for s in created}
    assert all(s.expires > before[s.entity.name] for s in renewed)

    expired = next(s for s in renewed if s.entity.name == "items")
    world.handle.expire_subscription(expired.subscription["subscriptionId"])
    assert _states(api)["items"] == "missing"
    assert "items" in subs.in_force(subs.states(api, settings)) and "15-minute" in subs.in_force(subs.states(api, settings))
    assert [s.entity.name for s in subs.ensure(api, settings) if s.action == "created"] == ["items"]

    assert {s.action for s in subs.delete(api, settings)} == {"deleted"}
    assert world.handle.webhooks()["subscriptions"] == []


def test_the_subscriptions_command_lists_creates_and_deletes(world, api, capsys):
    settings = load_settings()
    assert subs.run_subscriptions_command("list", settings) == 1  # missing ones
    assert subs.run_subscriptions_command("create", settings) == 0
    out = capsys.readouterr().out
    assert "created" in out and "webhook subscriptions are in force" in out and CLIENT_STATE not in out
    assert subs.run_subscriptions_command("list", settings) == 0
    assert subs.run_subscriptions_command("delete", settings) == 0
    assert world.handle.webhooks()["subscriptions"] == []


def test_a_forged_notification_records_nothing(world, receiver):
    body = {"value": [{"subscriptionId": "x", "clientState": "forged", "expirationDateTime": "2030-01-01T00:00:00Z",
                       "resource": "api/v2.0/companies(8c7a1f0e-2d3b-4a5c-9e6f-7b8c9d0e1f2a)/customers"
                                   "(7dd273ac-cbf3-523b-ac08-cea3483457d4)",
                       "changeType": "updated", "lastModifiedDateTime": "2030-01-01T00:00:00Z"}]}
    answer = requests.post(receiver, json=body, verify=str(world.handle.ca_path), timeout=10)
    assert answer.status_code == 401
    assert inbox.status(_engine(), limit=None) == []


def test_a_collection_notification_triggers_one_incremental_read_of_the_entity(world, receiver, api, instance):
    assert run_job("initial_load", ["items"], instance=instance).success
    company = api.company_id()
    body = {"value": [{"subscriptionId": "s", "clientState": CLIENT_STATE, "expirationDateTime": "2030-01-01T00:00:00Z",
                       "resource": f"api/v2.0/companies({company})/items?$filter=lastModifiedDateTime%20gt%20"
                                   "2026-01-01T00:00:00Z",
                       "changeType": "collection", "lastModifiedDateTime": "2030-01-01T00:00:00Z"}]}
    assert requests.post(receiver, json=body, verify=str(world.handle.ca_path), timeout=10).status_code == 202
    since = world.handle.last_seq()
    [run] = _tick(instance)
    reads = [r for r in world.handle.requests(since) if r.get("service") == "ItemCard"]
    assert reads and all("Last_Date_Modified" in requests.utils.unquote(r["path"]) for r in reads)
    assert sum("skiptoken" not in r["path"] for r in reads) == 1  # one query (its pages follow nextLinks)
    assert {r.status for r in inbox.status(_engine(), limit=None)} == {"done"}


def test_a_record_deleted_before_its_notification_was_read_ends_visibly(world, api, instance):
    subs.ensure(api, load_settings())
    customer = world.handle.records("CustomerCard")[0]
    world.handle.edit_record("CustomerCard", customer["No"], {"Name": "About to go"})
    world.handle.edit_record("CustomerCard", customer["No"], delete=True)
    rows = _wait_for_requests(4)  # updated + deleted, each for the customer and the company collection
    assert len(rows) == 4
    assert _tick(instance) == []  # nothing to run, nothing crashed
    rows = inbox.status(_engine(), source="bc_webhook", limit=None)
    assert {r.status for r in rows} == {"failed"}
    updated = [r for r in rows if r.action == "updated"]
    assert all("deleted in Business Central before it could be read" in r.error for r in updated)
    deleted = [r for r in rows if r.action == "deleted"]
    assert len(deleted) == 2 and all("not synced by this integration" in r.error for r in deleted)


def test_a_customer_edited_in_bc_reaches_ipaas_through_its_notification(world, api, instance):
    assert run_job("initial_load", ["customer_price_groups", "customers"], instance=instance).success
    subs.ensure(api, load_settings())
    company = next(c for c in world.handle.records("CustomerCard") if c["Partner_Type"] != "Person")
    world.handle.edit_record("CustomerCard", company["No"], {"Name": "Renamed in Business Central"})
    rows = _wait_for_requests(2)
    assert [r.external_id for r in rows] == [company["No"]] * len(rows)  # the key, read back by SystemId
    since = world.handle.last_seq()
    # The company and the customer collection (with their ship-to addresses) share one run, in the run's own
    # process (a few records: a process per step would cost seconds each), reading only the changed key once.
    [request] = _tick(instance)
    assert request.run_config["execution"] == {"config": {"in_process": {}}}
    assert len(request.tags["bc_pipeline/inbox_batch"].split(",")) == len(rows)
    names = [c["name"] for c in world.ipaas_records("Company")]
    assert "Renamed in Business Central" in names and len(names) == len(set(names))
    reads = [r for r in world.handle.requests(since) if r.get("service") == "CustomerCard"]
    assert len(reads) == 1 and company["No"] in requests.utils.unquote(reads[0]["path"])
    assert {r.status for r in inbox.status(_engine(), source="bc_webhook", limit=None)} == {"done"}


def test_doctor_says_which_way_changes_travel(world, api, monkeypatch):
    from bc_pipeline.doctor import diagnose

    [missing] = [f for f in diagnose(check_ipaas=False) if f.check == "webhook subscriptions"]
    assert not missing.ok and "15-minute incremental schedule" in missing.detail
    assert "bc-pipeline webhooks subscriptions create" in missing.fix
    subs.ensure(api, load_settings())
    [active] = [f for f in diagnose(check_ipaas=False) if f.check == "webhook subscriptions"]
    assert active.ok and "webhook subscriptions are in force" in active.detail and "active until" in active.detail
    monkeypatch.delenv("BC_WEBHOOK_NOTIFICATION_URL")
    [off] = [f for f in diagnose(check_ipaas=False) if f.check == "webhook subscriptions"]
    assert off.ok and "incremental_sync_every_15_minutes" in off.detail


def test_the_hourly_schedule_keeps_the_subscriptions_and_skips_without_a_notification_url(world, api, instance,
                                                                                         monkeypatch):
    from bc_pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("bc_webhook_subscriptions_hourly")
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 29, 15)) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    job = defs.resolve_job_def("bc_webhook_subscriptions")
    assert job.execute_in_process(instance=instance, run_config=request.run_config).success
    assert set(_states(api).values()) == {"active"}
    monkeypatch.delenv("BC_WEBHOOK_NOTIFICATION_URL")
    with dg.build_schedule_context(instance=instance) as context:
        result = schedule.evaluate_tick(context)
    assert not result.run_requests and "BC_WEBHOOK_NOTIFICATION_URL is not set" in result.skip_message


def test_a_released_order_edited_in_bc_reaches_ipaas_with_its_lines_through_its_notification(world, api, instance):
    assert run_job("initial_load", instance=instance).success
    subs.ensure(api, load_settings())
    order = next(o for o in world.handle.records("SalesOrders") if o["Status"] == "Released")
    world.handle.edit_record("SalesOrders", ["Order", order["No"]], {"Sell_to_E_Mail": "Buyer@Example.com"})
    # The entities the guide's schedule once read in full: an item category, a person's contact card, and a posted
    # invoice updated (BC's "Update Document"), each through its API v2.0 notification.
    category = world.handle.records("ItemCategoryCard")[0]
    world.handle.edit_record("ItemCategoryCard", category["Code"], {"Description": "Renamed category"})
    contact = next(c for c in world.handle.records("Contacts") if c["Type"] == "Person" and c["E_Mail"])
    world.handle.edit_record("Contacts", contact["No"], {"E_Mail": "Moved@Example.com"})
    invoice = world.handle.records("PostedSalesInvoices")[0]
    world.handle.edit_record("PostedSalesInvoices", invoice["No"], {"SellToEmail": "Payer@Example.com"})
    rows = _wait_for_requests(6, timeout=30)  # the order and its tracking, the invoice and its tracking, 2 more
    assert len(rows) == 6
    assert {(r.collection, r.external_id) for r in rows} >= {
        ("Dynamics Sales Order Add/Update to iPaaS", order["No"]),
        ("Dynamics Product Category Add/Update to iPaaS", category["Code"]),
        ("Dynamics Sales Invoice Add/Update to iPaaS", invoice["No"])}
    assert [r.external_id for r in rows if r.collection.startswith("Dynamics Contact")] == [contact["No"]]
    assert len(_tick(instance)) >= 4
    [transaction] = [t for t in world.ipaas_records("Transaction") if t["transaction_number"] == order["No"]]
    assert transaction["email_address"] == "buyer@example.com"
    [billed] = [t for t in world.ipaas_records("Transaction") if t["transaction_number"] == invoice["No"]]
    assert billed["email_address"] == "payer@example.com"
    assert "Renamed category" in [c["description"] for c in world.ipaas_records("Product Category")]
    assert "moved@example.com" in [c["email_address"] for c in world.ipaas_records("Customer")]
    assert {r.status for r in inbox.status(_engine(), source="bc_webhook", limit=None)} == {"done"}

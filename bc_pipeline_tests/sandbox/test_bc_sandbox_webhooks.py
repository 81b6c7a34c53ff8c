"""The sandbox's API v2.0 and webhooks behave as Business Central documents them (subscriptions, handshake, expiry,
delayed and batched notifications, retries, deletion on refusal)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from types import SimpleNamespace

import pytest

from bc_pipeline.sandbox.webhooks import Change, Subscription, WebhookHub
from bc_pipeline_tests.sandbox.bc_support import odata_session
from bc_pipeline_tests.webhooks.tls_receiver import Recorder, served

pytestmark = pytest.mark.e2e


@pytest.fixture
def bc(world):
    with odata_session(world.handle) as session:
        yield session


@pytest.fixture
def hook(world):
    recorder = Recorder()
    with served(recorder.app(), world.handle) as base:
        recorder.url = f"{base}/hook"
        yield recorder


def _company(world, bc) -> str:
    return bc.get(f"{world.handle.api_root}/companies").json()["value"][0]["id"]


def _subscribe(world, bc, hook, entity="customers", client_state="our-secret"):
    body = {"notificationUrl": hook.url, "resource": f"/api/v2.0/companies({_company(world, bc)})/{entity}",
            "clientState": client_state}
    return bc.post(f"{world.handle.api_root}/subscriptions", json=body)


def _expires(sub) -> dt.datetime:
    return dt.datetime.fromisoformat(sub["expirationDateTime"].replace("Z", "+00:00"))


def test_api_records_carry_their_system_id_and_number_and_are_read_by_id(world, bc):
    company = _company(world, bc)
    root = f"{world.handle.api_root}/companies({company})"
    customer = bc.get(f"{root}/customers").json()["value"][0]
    assert {"id", "number", "displayName", "lastModifiedDateTime"} <= set(customer)
    again = bc.get(f"{root}/customers({customer['id']})")
    assert again.status_code == 200 and again.json()["number"] == customer["number"]
    assert {c["No"] for c in world.handle.records("CustomerCard")} >= {customer["number"]}
    location = bc.get(f"{root}/locations").json()["value"][0]
    assert "code" in location and "number" not in location
    gone = bc.get(f"{root}/customers(00000000-0000-0000-0000-000000000001)")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "BadRequest_NotFound"


def test_a_subscription_is_created_after_the_handshake_and_expires_in_three_days(world, bc, hook):
    answer = _subscribe(world, bc, hook)
    assert answer.status_code == 201, answer.text
    sub = answer.json()
    assert hook.handshakes == 1 and sub["clientState"] == "our-secret"
    left = _expires(sub) - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=3) - dt.timedelta(minutes=1) < left <= dt.timedelta(days=3)
    listed = bc.get(f"{world.handle.api_root}/subscriptions").json()["value"]
    assert [s["subscriptionId"] for s in listed] == [sub["subscriptionId"]]


def test_no_subscription_without_a_handshake_or_for_a_resource_bc_does_not_notify(world, bc, hook):
    hook.echo_token = False
    answer = _subscribe(world, bc, hook)
    assert answer.status_code == 400 and "validationToken" in answer.json()["error"]["message"]
    hook.echo_token = True
    assert _subscribe(world, bc, hook, entity="vendors").status_code == 400
    assert bc.get(f"{world.handle.api_root}/subscriptions").json()["value"] == []


def test_renewal_needs_if_match_repeats_the_handshake_and_moves_the_expiry(world, bc, hook):
    sub = _subscribe(world, bc, hook).json()
    url = f"{world.handle.api_root}/subscriptions('{sub['subscriptionId']}')"
    assert bc.patch(url, json={}).status_code == 400
    assert bc.patch(url, json={}, headers={"If-Match": 'W/"stale"'}).status_code == 409
    time.sleep(0.01)
    renewed = bc.patch(url, json={"clientState": "our-secret"}, headers={"If-Match": sub["@odata.etag"]})
    assert renewed.status_code == 200, renewed.text
    assert hook.handshakes == 2
    assert _expires(renewed.json()) > _expires(sub) and renewed.json()["@odata.etag"] != sub["@odata.etag"]


def test_a_deleted_or_expired_subscription_notifies_nothing(world, bc, hook):
    first, second = _subscribe(world, bc, hook).json(), _subscribe(world, bc, hook, entity="items").json()
    url = f"{world.handle.api_root}/subscriptions('{first['subscriptionId']}')"
    assert bc.delete(url, headers={"If-Match": first["@odata.etag"]}).status_code == 204
    world.handle.expire_subscription(second["subscriptionId"])
    assert bc.get(f"{world.handle.api_root}/subscriptions").json()["value"] == []
    assert bc.get(url).status_code == 404
    customer = world.handle.records("CustomerCard")[0]
    item = world.handle.records("ItemCard")[0]
    world.handle.edit_record("CustomerCard", customer["No"], {"Name": "Renamed"})
    world.handle.edit_record("ItemCard", item["No"], {"Description": "Renamed"})
    time.sleep(1.6)
    assert hook.items() == []


def test_changes_are_notified_after_the_delay_batched_with_the_record_system_id(world, bc, hook):
    sub = _subscribe(world, bc, hook).json()
    first, second = world.handle.records("CustomerCard")[:2]
    started = time.monotonic()
    world.handle.edit_record("CustomerCard", first["No"], {"Name": "Renamed by a user"})
    page = bc.get(world.handle.company_url(f"CustomerCard('{second['No']}')")).json()
    patched = bc.patch(world.handle.company_url(f"CustomerCard('{second['No']}')"), json={"Name": "Via the page"},
                       headers={"If-Match": page["@odata.etag"]})
    assert patched.status_code == 200, patched.text
    items = hook.wait(2)
    assert time.monotonic() - started >= 1.0  # the configured delay (BC: ~30 s)
    assert len(hook.bodies) == 1 and [i["changeType"] for i in items] == ["updated", "updated"]
    assert {i["subscriptionId"] for i in items} == {sub["subscriptionId"]}
    assert {i["clientState"] for i in items} == {"our-secret"}
    root = f"{world.handle.api_root}/companies({_company(world, bc)})"
    numbers = [bc.get(f"{root}/{i['resource'].split('/', 3)[3]}").json()["number"] for i in items]
    assert numbers == [first["No"], second["No"]]


def test_a_refused_notification_deletes_the_subscription(world, bc, hook):
    _subscribe(world, bc, hook)
    hook.status = 401
    world.handle.edit_record("CustomerCard", world.handle.records("CustomerCard")[0]["No"], {"Name": "X"})
    hook.wait(1)
    deadline = time.monotonic() + 5
    while bc.get(f"{world.handle.api_root}/subscriptions").json()["value"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bc.get(f"{world.handle.api_root}/subscriptions").json()["value"] == []


# -- the dispatcher's rules, without waiting for BC's intervals -----------------------------------------

def _hub(**config) -> WebhookHub:
    defaults = dict(webhook_delay_seconds=0.0, webhook_collection_threshold=3, webhook_retry_seconds=0.01,
                    webhook_retry_hours=36.0, webhook_subscription_seconds=3 * 86400)
    state = SimpleNamespace(config=SimpleNamespace(**{**defaults, **config}))
    hub = WebhookHub(state)
    state.webhooks = hub
    now = time.time()
    hub.subscriptions["s1"] = Subscription("s1", "https://x/hook", "/api/v2.0/companies(c)/customers", "customers",
                                           "secret", "app", now + 3600, now, now)
    return hub


def test_over_the_threshold_changes_become_one_collection_notification():
    hub = _hub()
    sub = hub.subscriptions["s1"]
    few = hub._items(sub, [Change(f"/api/v2.0/companies(c)/customers({n})", "updated", time.time()) for n in range(3)])
    assert [i["changeType"] for i in few] == ["updated"] * 3
    many = hub._items(sub, [Change(f"/api/v2.0/companies(c)/customers({n})", "updated", time.time()) for n in range(4)])
    assert len(many) == 1 and many[0]["changeType"] == "collection"
    assert many[0]["resource"].startswith("api/v2.0/companies(c)/customers?$filter=lastModifiedDateTime%20gt%20")


@pytest.mark.parametrize("status, kept, retried", [(503, True, True), (429, True, True), (408, True, True),
                                                   (None, True, True), (404, False, False), (200, True, False)])
def test_failed_deliveries_are_retried_only_for_408_429_5xx_else_the_subscription_is_deleted(status, kept, retried):
    hub = _hub()
    hub._post = lambda url, body: status
    hub.changed("customers", "/api/v2.0/companies(c)/customers(1)", "updated")

    async def run():
        hub._due()
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert ("s1" in hub.subscriptions) is kept
    assert bool(hub.retries) is retried

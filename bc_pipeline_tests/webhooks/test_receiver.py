"""The webhook receiver authenticates, validates and records every request durably before answering."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from bc_pipeline.settings import load_settings
from bc_pipeline.state import inbox
from bc_pipeline.state.database import engine_for
from bc_pipeline.webhooks import build_receiver

KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}
COMPANY = "/api/v2.0/companies(11111111-1111-1111-1111-111111111111)"
CUSTOMER_GUID = "22222222-2222-2222-2222-222222222222"


def _settings(tmp_path, key=KEY):
    return load_settings(
        {"ipaas_webhook_api_key": key, "home": tmp_path, "state_url": f"sqlite:///{tmp_path}/s.sqlite"},
        from_environment=False,
    )


@pytest.fixture
def engine(tmp_path):
    return engine_for(_settings(tmp_path).state_database_url)


KEYS_BY_SYSTEM_ID = {CUSTOMER_GUID: "C10000"}
GONE_GUID = "55555555-5555-5555-5555-555555555555"


def fake_bc(entity_set, company_id, system_id):
    """Business Central's API as the receiver's resolver sees it: a SystemId → the record's key (None: gone)."""
    return KEYS_BY_SYSTEM_ID.get(system_id)


@pytest.fixture
def client(tmp_path, engine):
    return TestClient(build_receiver(_settings(tmp_path), engine, max_body_bytes=4096, resolver=fake_bc))


def rows(engine):
    return inbox.status(engine, limit=None)


def post(client, body, headers=AUTH, **kwargs):
    return client.post("/webhooks/ipaas", json=body, headers=headers, **kwargs)


def notify(*notifications):
    return {"notifications": list(notifications)}


CUSTOMER = {"scope": "customer/created", "external_id": "C10000"}


# -- authentication --------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Bearer ", "Basic k", KEY, "Bearer kk", "Bearer K"])
def test_a_missing_or_wrong_key_is_401_and_nothing_is_recorded(client, engine, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = post(client, notify(CUSTOMER), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert rows(engine) == []


def test_without_a_configured_key_every_webhook_is_refused_with_503(tmp_path):
    settings = load_settings({"home": tmp_path, "state_url": f"sqlite:///{tmp_path}/s.sqlite"}, from_environment=False)
    engine = engine_for(settings.state_database_url)
    client = TestClient(build_receiver(settings, engine))
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}):
        response = post(client, notify(CUSTOMER), headers=headers)
        assert response.status_code == 503
        assert "IPAAS_WEBHOOK_API_KEY" in response.json()["error"]
    assert rows(engine) == []


def test_the_secrets_are_never_logged(tmp_path, caplog):
    secret = "s3cr3t-webhook-key-0123456789"
    settings = _settings(tmp_path, key=secret)
    engine = engine_for(settings.state_database_url)
    client = TestClient(build_receiver(settings, engine))
    with caplog.at_level(logging.DEBUG):
        post(client, notify(CUSTOMER), headers={"Authorization": f"Bearer {secret}x"})
        post(client, notify(CUSTOMER), headers={"Authorization": f"Bearer {secret}"})
        post(client, notify({"scope": "nope"}), headers={"Authorization": f"Bearer {secret}"})
        client.post("/webhooks/bc", json={"value": [{"clientState": secret + "x", "changeType": "updated",
                                                     "resource": f"{COMPANY}/customers({CUSTOMER_GUID})"}]})
        client.post("/webhooks/bc", json={"value": [{"clientState": secret, "changeType": "updated",
                                                     "resource": f"{COMPANY}/customers({CUSTOMER_GUID})"}]})
    assert caplog.records, "the receiver logs what it refused and recorded"
    assert secret not in caplog.text


# -- malformed requests ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"{", b"", b"not json", b'{"notifications": [}', b"\xff\xfe{}", b"[" * 100_000])
def test_malformed_json_is_400_and_nothing_is_recorded(tmp_path, engine, raw):
    client = TestClient(build_receiver(_settings(tmp_path), engine, max_body_bytes=200_000))
    response = client.post("/webhooks/ipaas", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()
    assert rows(engine) == []


@pytest.mark.parametrize("body", [[], "x", {"notifications": {}}, {"notifications": []}, {"other": 1}, {"notifications": [1]}])
def test_a_body_without_a_notifications_list_is_400(client, engine, body):
    assert post(client, body).status_code == 400
    assert rows(engine) == []


def test_a_non_json_content_type_is_415(client, engine):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
        response = client.post("/webhooks/ipaas", content=json.dumps(notify(CUSTOMER)), headers=headers)
        assert response.status_code == 415, content_type
    response = client.post("/webhooks/ipaas", content=json.dumps(notify(CUSTOMER)),
                           headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 202
    assert len(rows(engine)) == 1


def _big_body() -> bytes:
    return json.dumps(notify(*[{"scope": "customer/created", "external_id": f"C{i:05}"} for i in range(200)])).encode()


def test_an_oversized_body_with_an_honest_content_length_is_413(client, engine):
    body = _big_body()
    assert len(body) > 4096
    response = client.post("/webhooks/ipaas", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.request.headers["content-length"] == str(len(body))
    assert response.status_code == 413
    assert rows(engine) == []


def test_an_oversized_body_without_a_content_length_is_413(client, engine):
    body = _big_body()
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))  # sent chunked, no Content-Length
    response = client.post("/webhooks/ipaas", content=chunks, headers={**AUTH, "Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert rows(engine) == []


def test_an_oversized_body_behind_a_lying_content_length_is_413(client, engine):
    body = _big_body()
    response = client.post("/webhooks/ipaas", content=body,
                           headers={**AUTH, "Content-Type": "application/json", "Content-Length": "100"})
    assert response.status_code == 413
    assert rows(engine) == []


# -- notification validation ------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", [10000, 1.5, True, ["C10000"], {"no": "C10000"}])
def test_an_id_that_is_not_a_string_is_400(client, engine, bad_id):
    for field in ("external_id", "id"):
        response = post(client, notify({"scope": "customer/created", field: bad_id}))
        assert response.status_code == 400
        [problem] = response.json()["problems"]
        assert problem["index"] == 0 and problem["field"] == field and "must be a string" in problem["message"]
    assert rows(engine) == []


@pytest.mark.parametrize("bad_id", ["", "   ", "C1\n0000", "C1\x00", "x" * 256, "\ud800"])
def test_an_empty_overlong_or_control_character_id_is_400(client, engine, bad_id):
    response = client.post("/webhooks/ipaas", content=json.dumps(notify({"scope": "customer/created", "external_id": bad_id})),
                           headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert rows(engine) == []


@pytest.mark.parametrize("scope", ["vendor/created", "customer/exploded", "customer", "", 7, None, "customer/category"])
def test_an_unknown_or_malformed_scope_is_400(client, engine, scope):
    response = post(client, notify({"scope": scope, "external_id": "C10000"}))
    assert response.status_code == 400
    assert response.json()["problems"][0]["field"] == "scope"
    assert rows(engine) == []


def test_an_id_is_required_except_to_poll_or_initialize(client, engine):
    assert post(client, notify({"scope": "customer/updated"})).status_code == 400
    assert rows(engine) == []
    response = post(client, notify({"scope": "customer/poll"}, {"scope": "customer/category/initialize"}))
    assert response.status_code == 202
    assert {(r.collection, r.scope, r.external_id) for r in rows(engine)} == {
        ("Dynamics Customer Add/Update to iPaaS", "customer/poll", None),
        ("Dynamics Customer Category Add/Update to iPaaS", "customer/category/initialize", None),
    }


def test_one_bad_notification_among_good_ones_is_400_naming_it_and_nothing_is_recorded(client, engine):
    body = notify(CUSTOMER, {"scope": "product/updated", "external_id": "1000"},
                  {"scope": "customer/created", "external_id": 42}, {"scope": "location/updated", "external_id": "EAST"})
    response = post(client, body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["problems"] == [{"index": 2, "field": "external_id", "message": "must be a string, got a number"}]
    assert "notifications[2].external_id" in answer["error"]
    assert rows(engine) == []


def test_more_than_3000_notifications_is_400(tmp_path, engine):
    client = TestClient(build_receiver(_settings(tmp_path), engine))
    body = notify(*[{"scope": "customer/created", "external_id": f"C{i}"} for i in range(3001)])
    response = post(client, body)
    assert response.status_code == 400 and "3,000" in response.json()["error"]
    assert rows(engine) == []


def test_a_named_collection_must_be_known_and_fit_the_kind_of_id(client, engine):
    unknown = post(client, notify({**CUSTOMER, "collection": "Dynamics Vendor Add/Update to iPaaS"}))
    assert unknown.status_code == 400 and "unknown mapping collection" in unknown.json()["error"]
    wrong_way = post(client, notify({"scope": "customer/updated", "id": "77", "collection": "Dynamics Customer Add/Update to iPaaS"}))
    assert wrong_way.status_code == 400 and wrong_way.json()["problems"][0]["field"] == "id"
    both = post(client, notify({"scope": "customer/updated", "id": "77", "external_id": "C10000"}))
    assert both.status_code == 400
    no_from = post(client, notify({"scope": "location/updated", "id": "77"}))
    assert no_from.status_code == 400 and "no collection from iPaaS.com" in no_from.json()["error"]
    assert rows(engine) == []


# -- recording ----------------------------------------------------------------------------------------

def test_valid_notifications_are_recorded_pending_and_answered_202(client, engine):
    body = {"id": 9, "attempt": 1, "notifications": [
        CUSTOMER,
        {"scope": "transaction/updated", "id": "5521"},
        {"scope": "Shipping Method/updated", "external_id": "DHL"},
        {"scope": "customer/updated", "external_id": "C20000", "collection": "Dynamics Company Add/Update to iPaaS",
         "action": "ignored", "destination": None, "type": 1, "tracking_guid": "x"},
        {"scope": "product/inventory/updated", "external_id": "EAST|1000"},
    ]}
    response = post(client, body)
    assert response.status_code == 202
    answer = response.json()
    assert answer["accepted"] == 5 and len(answer["ids"]) == 5
    recorded = {r.id: r for r in rows(engine)}
    got = [(recorded[i].collection, recorded[i].direction, recorded[i].scope, recorded[i].external_id,
            recorded[i].ipaas_id) for i in answer["ids"]]
    assert got == [
        ("Dynamics Customer Add/Update to iPaaS", "TO_IPAAS", "customer/created", "C10000", None),
        ("Dynamics Sales Order Add/Update From iPaaS", "FROM_IPAAS", "transaction/updated", None, "5521"),
        ("Dynamics Shipping Method Add/Update to iPaaS", "TO_IPAAS", "shipping method/updated", "DHL", None),
        ("Dynamics Company Add/Update to iPaaS", "TO_IPAAS", "customer/updated", "C20000", None),
        ("Dynamics Product Inventory Add/Update to iPaaS", "TO_IPAAS", "product/inventory/updated", "EAST|1000", None),
    ]
    assert all(r.status == "pending" and r.source == "ipaas_webhook" and r.system == "MSD 365" for r in recorded.values())


def test_the_same_notification_replayed_while_pending_is_not_duplicated(client, engine):
    first = post(client, notify(CUSTOMER)).json()["ids"]
    again = post(client, notify(CUSTOMER, CUSTOMER)).json()
    assert again == {"accepted": 2, "ids": first * 2}
    assert len(rows(engine)) == 1
    inbox.claim(engine, first, run_id="run-1")
    later = post(client, notify(CUSTOMER)).json()["ids"]  # changed again while being synced: queued anew
    assert later != first and len(rows(engine)) == 2


def test_an_id_with_quotes_and_odata_syntax_is_stored_verbatim(client, engine):
    nasty = "C1' or No ne '"
    response = post(client, notify({"scope": "customer/updated", "external_id": nasty}))
    assert response.status_code == 202
    [row] = rows(engine)
    assert row.external_id == nasty


def test_the_inbox_is_written_on_a_connection_that_syncs_the_commit_before_the_202(client, engine):
    seen = []

    def spy(_conn, cursor, statement, *_args):
        if statement.lstrip().upper().startswith("INSERT INTO SYNC_REQUESTS"):
            seen.append(cursor.connection.execute("PRAGMA synchronous").fetchone()[0])

    event.listen(engine, "before_cursor_execute", spy)
    try:
        assert post(client, notify(CUSTOMER)).status_code == 202
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert seen == [2]  # FULL; NORMAL (1) can lose an acknowledged request on power loss


def test_when_the_inbox_cannot_record_the_answer_is_503_so_the_sender_retries(client, engine, monkeypatch):
    def broken(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(inbox, "enqueue", broken)
    response = post(client, notify(CUSTOMER))
    assert response.status_code == 503 and response.headers["retry-after"]
    monkeypatch.undo()
    assert rows(engine) == []


# -- Business Central ---------------------------------------------------------------------------------

def bc(change="updated", resource=f"{COMPANY}/customers({CUSTOMER_GUID})", client_state=KEY, **extra):
    return {"subscriptionId": "sub-1", "clientState": client_state, "expirationDateTime": "2030-01-01T00:00:00Z",
            "resource": resource, "changeType": change, "lastModifiedDateTime": "2030-01-01T00:00:00Z", **extra}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_bc_handshake_echoes_the_token_as_plain_text_and_records_nothing(client, engine, method):
    token = "Xy9+ä/=&token"
    response = client.request(method, "/webhooks/bc", params={"validationToken": token})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == token
    assert rows(engine) == []


@pytest.mark.parametrize("client_state", ["wrong", "", None, 7, "K"])
def test_a_bc_notification_with_a_wrong_client_state_is_401_and_nothing_is_recorded(client, engine, client_state):
    response = client.post("/webhooks/bc", json={"value": [bc(), bc(client_state=client_state)]})
    assert response.status_code == 401
    assert rows(engine) == []


def test_a_bc_notification_without_a_client_state_is_401(client, engine):
    item = bc()
    del item["clientState"]
    assert client.post("/webhooks/bc", json={"value": [item]}).status_code == 401
    assert rows(engine) == []


@pytest.mark.parametrize("body", [{"value": []}, {"value": "x"}, [], {"value": [bc(change="exploded")]},
                                  {"value": [bc(resource="/api/v2.0/customers")]},
                                  {"value": [bc(change="updated", resource=f"{COMPANY}/customers")]}])
def test_a_malformed_bc_body_is_400(client, engine, body):
    assert client.post("/webhooks/bc", json=body).status_code == 400
    assert rows(engine) == []


def test_valid_bc_notifications_are_recorded_for_the_collections_reading_the_entity(client, engine):
    response = client.post("/webhooks/bc", json={"value": [
        bc(),
        bc(change="deleted", resource=f"{COMPANY}/salesOrders(33333333-3333-3333-3333-333333333333)"),
        bc(change="collection", resource=f"{COMPANY}/items"),
        bc(change="updated", resource=f"{COMPANY}/vendors(44444444-4444-4444-4444-444444444444)"),
    ]})
    assert response.status_code == 202
    answer = response.json()
    assert answer["accepted"] == 5 and [i["index"] for i in answer["ignored"]] == [3]
    got = sorted((r.collection, r.scope, r.action, r.external_id, r.source, r.direction) for r in rows(engine))
    assert got == [
        ("Dynamics Company Add/Update to iPaaS", "company/updated", "updated", "C10000", "bc_webhook", "TO_IPAAS"),
        ("Dynamics Customer Add/Update to iPaaS", "customer/updated", "updated", "C10000", "bc_webhook", "TO_IPAAS"),
        ("Dynamics Product Add/Update to iPaaS", "product/poll", "poll", None, "bc_webhook", "TO_IPAAS"),
        ("Dynamics Sales Order Add/Update to iPaaS", "transaction/deleted", "deleted",
         "33333333-3333-3333-3333-333333333333", "bc_webhook", "TO_IPAAS"),
        ("Dynamics Transaction Tracking Add/Update to iPaaS", "transaction/tracking/deleted", "deleted",
         "33333333-3333-3333-3333-333333333333", "bc_webhook", "TO_IPAAS"),
    ]
    assert all(r.resource and r.resource.startswith(COMPANY) for r in rows(engine))
    # BC sends the same change again (a retry): nothing new.
    assert client.post("/webhooks/bc", json={"value": [bc()]}).status_code == 202
    assert len(rows(engine)) == 5


def test_a_collection_notification_names_the_entity_set_with_a_filter_and_becomes_a_poll(client, engine):
    resource = f"{COMPANY}/items?$filter=lastModifiedDateTime%20gt%202030-01-01T00:00:00Z"
    assert client.post("/webhooks/bc", json={"value": [bc(change="collection", resource=resource)]}).status_code == 202
    [row] = rows(engine)
    assert (row.action, row.external_id, row.status) == ("poll", None, "pending")
    filtered_update = bc(resource=f"{COMPANY}/customers({CUSTOMER_GUID})?$filter=x")
    assert client.post("/webhooks/bc", json={"value": [filtered_update]}).status_code == 400


def test_a_record_deleted_before_it_was_read_ends_failed_saying_so(client, engine):
    answer = client.post("/webhooks/bc", json={"value": [bc(resource=f"{COMPANY}/customers({GONE_GUID})")]})
    assert answer.status_code == 202
    got = rows(engine)
    assert {r.status for r in got} == {"failed"} and len(got) == 2  # the customer and the company collection
    assert all(GONE_GUID in r.error and "deleted in Business Central before it could be read" in r.error for r in got)


def test_when_business_central_cannot_answer_the_notification_is_refused_with_503_and_nothing_recorded(tmp_path, engine):
    def down(*_):
        raise ConnectionError("BC is down")

    client = TestClient(build_receiver(_settings(tmp_path), engine, resolver=down))
    response = client.post("/webhooks/bc", json={"value": [bc()]})
    assert response.status_code == 503 and response.headers["retry-after"] == "30"
    assert rows(engine) == []


def test_without_a_resolver_a_change_polls_its_entity(tmp_path, engine):
    client = TestClient(build_receiver(_settings(tmp_path), engine))
    assert client.post("/webhooks/bc", json={"value": [bc(), bc()]}).status_code == 202
    assert sorted((r.scope, r.external_id) for r in rows(engine)) == [("company/poll", None), ("customer/poll", None)]


def test_the_bc_client_state_can_be_its_own_secret(tmp_path, engine):
    client = TestClient(build_receiver(_settings(tmp_path), engine, bc_client_state="bc-secret"))
    assert client.post("/webhooks/bc", json={"value": [bc()]}).status_code == 401
    assert client.post("/webhooks/bc", json={"value": [bc(client_state="bc-secret")]}).status_code == 202


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}

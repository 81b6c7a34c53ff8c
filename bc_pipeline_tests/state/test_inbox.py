"""The inbox keeps sync requests durably, once while pending, and moves them pending → running → done/failed."""

from __future__ import annotations

import datetime as dt

import pytest

from bc_pipeline.state import inbox
from bc_pipeline.state.database import engine_for
from bc_pipeline.state.inbox import NewRequest

TO = "Dynamics Customer Add/Update to iPaaS"
FROM = "Dynamics Customer Add/Update From iPaaS"


def request(external_id="C10000", **overrides) -> NewRequest:
    values = dict(source="ipaas_webhook", system="MSD 365", collection=TO, direction="TO_IPAAS",
                  scope="customer/updated", action="updated", external_id=external_id)
    return NewRequest(**{**values, **overrides})


def test_enqueue_returns_one_id_per_request_in_order_and_records_them_pending(state_url):
    engine = engine_for(state_url)
    ids = inbox.enqueue(engine, [request("C1"), request("C2"),
                                 dict(source="manual", system="MSD 365", collection=FROM, direction="FROM_IPAAS",
                                      scope="customer/created", action="created", ipaas_id="77")])
    assert len(set(ids)) == 3
    rows = {r.id: r for r in inbox.status(engine)}
    assert [(rows[i].external_id, rows[i].ipaas_id, rows[i].status, rows[i].attempts) for i in ids] == [
        ("C1", None, "pending", 0), ("C2", None, "pending", 0), (None, "77", "pending", 0)]
    assert rows[ids[2]].collection == FROM and rows[ids[2]].direction == "FROM_IPAAS"
    assert inbox.enqueue(engine, []) == []


def test_the_same_request_is_enqueued_once_while_it_is_pending(state_url):
    engine = engine_for(state_url)
    [first] = inbox.enqueue(engine, [request()])
    again, other, third = inbox.enqueue(engine, [request(), request("C2"), request()])
    assert again == third == first and other != first
    # Another source, scope or collection is another request.
    others = inbox.enqueue(engine, [request(source="manual"), request(scope="customer/created", action="created"),
                                    request(collection="Dynamics Company Add/Update to iPaaS")])
    assert first not in others and len(set(others)) == 3
    assert len(inbox.status(engine, limit=None)) == 5


def test_a_request_claimed_is_queued_again_when_notified_again(state_url):
    engine = engine_for(state_url)
    [first] = inbox.enqueue(engine, [request()])
    assert inbox.claim(engine, [first], run_id="run-1", batch_key="b1") == [first]
    [second] = inbox.enqueue(engine, [request()])
    assert second != first
    assert [r.id for r in inbox.pending(engine, 10)] == [second]


def test_enqueue_is_all_or_nothing(state_url):
    engine = engine_for(state_url)
    with pytest.raises(ValueError, match="direction"):
        inbox.enqueue(engine, [request("C1"), request("C2", direction="SIDEWAYS")])
    with pytest.raises(ValueError, match="external_id"):
        inbox.enqueue(engine, [request("C1"), request("x" * 256)])
    assert inbox.status(engine) == []


def test_pending_puts_debug_requests_first_then_the_oldest(state_url):
    engine = engine_for(state_url)
    ids = inbox.enqueue(engine, [request("C1"), request("C2"), request("C3", priority=1)])
    assert [r.id for r in inbox.pending(engine, 10)] == [ids[2], ids[0], ids[1]]
    assert [r.id for r in inbox.pending(engine, 1)] == [ids[2]]
    assert inbox.pending(engine, 10, collection=FROM) == []
    # Enqueued again with Debug: the pending request moves to the front, it is not duplicated.
    assert inbox.enqueue(engine, [request("C2", priority=1)]) == [ids[1]]
    assert [r.id for r in inbox.pending(engine, 10)] == [ids[1], ids[2], ids[0]]


def test_a_request_is_claimed_by_one_run_only_and_finished_by_it(state_url):
    engine = engine_for(state_url)
    ids = inbox.enqueue(engine, [request("C1"), request("C2"), request("C3")])
    assert inbox.claim(engine, ids[:2], run_id="run-1", batch_key="customers-1") == ids[:2]
    assert inbox.claim(engine, ids, run_id="run-2") == [ids[2]]
    assert inbox.claim(engine, ids[:2], run_id="run-1") == ids[:2]  # the same run again: harmless
    running = inbox.status(engine, statuses=["running"], run_id="run-1")
    assert sorted(r.id for r in running) == ids[:2]
    assert {(r.batch_key, r.attempts) for r in running} == {("customers-1", 1)}
    assert inbox.finish(engine, ids[:2], "done", run_id="run-2") == 0  # not run-2's
    assert inbox.finish(engine, [ids[0]], "done", run_id="run-1") == 1
    assert inbox.finish(engine, [ids[1]], "failed", error="iPaaS.com answered 400: e-mail taken") == 1
    by_id = {r.id: r for r in inbox.status(engine)}
    assert (by_id[ids[0]].status, by_id[ids[0]].error) == ("done", None)
    assert (by_id[ids[1]].status, by_id[ids[1]].error) == ("failed", "iPaaS.com answered 400: e-mail taken")
    assert inbox.counts(engine) == {"pending": 0, "running": 1, "done": 1, "failed": 1}
    with pytest.raises(ValueError):
        inbox.finish(engine, ids, "running")


def test_status_filters(state_url):
    engine = engine_for(state_url)
    ids = inbox.enqueue(engine, [request("C1"), request("C2", source="manual"),
                                 request(None, collection=FROM, direction="FROM_IPAAS", ipaas_id="9")])
    assert [r.id for r in inbox.status(engine)] == ids[::-1]  # newest first
    assert [r.id for r in inbox.status(engine, source="manual")] == [ids[1]]
    assert [r.id for r in inbox.status(engine, collection=FROM)] == [ids[2]]
    assert [r.id for r in inbox.status(engine, ipaas_id="9")] == [ids[2]]
    assert [r.id for r in inbox.status(engine, external_id="C1")] == [ids[0]]
    assert [r.id for r in inbox.status(engine, ids=[ids[0], ids[2]], limit=1)] == [ids[2]]
    assert inbox.status(engine, statuses=["done"]) == []
    with pytest.raises(ValueError, match="unknown status"):
        inbox.status(engine, statuses=["lost"])


def test_requests_of_a_silent_run_are_requeued_or_given_up(state_url):
    engine = engine_for(state_url)
    ids = inbox.enqueue(engine, [request("C1"), request("C2"), request("C3")])
    inbox.claim(engine, ids, run_id="run-1")
    assert inbox.requeue_stale(engine, dt.timedelta(hours=1)) == []  # still fresh
    # Meanwhile C2 was notified again: it is pending twice after the requeue, which is harmless.
    [again] = inbox.enqueue(engine, [request("C2")])
    inbox.finish(engine, [ids[2]], "done", run_id="run-1")
    assert inbox.requeue_stale(engine, 0) == ids[:2]
    pending = inbox.pending(engine, 10)
    assert sorted(r.id for r in pending) == sorted([ids[0], ids[1], again])
    assert all(r.run_id == "run-1" and "went silent" in r.error for r in pending if r.id in ids)
    # C1 got its dedup key back: a replay is not a duplicate.
    assert inbox.enqueue(engine, [request("C1")]) == [ids[0]]
    # Tried twice now: with max_attempts=2 the next silent run gives up on them.
    inbox.claim(engine, ids[:2], run_id="run-2")
    assert inbox.requeue_stale(engine, dt.timedelta(0), max_attempts=2) == ids[:2]
    assert {r.status for r in inbox.status(engine, ids=ids[:2])} == {"failed"}


def test_ids_are_stored_verbatim(state_url):
    engine = engine_for(state_url)
    odd = ["C1' or No ne '", "O''BRIEN|1", "Müller & Söhne", "  padded  ", "a" * 255]
    ids = inbox.enqueue(engine, [request(v) for v in odd])
    by_id = {r.id: r.external_id for r in inbox.status(engine)}
    assert [by_id[i] for i in ids] == odd


def test_three_thousand_requests_in_one_transaction(state_url):
    engine = engine_for(state_url)
    ids = inbox.enqueue(engine, [request(f"C{i:05}") for i in range(3000)])
    assert len(set(ids)) == 3000
    assert inbox.enqueue(engine, [request(f"C{i:05}") for i in range(3000)]) == ids
    assert inbox.counts(engine)["pending"] == 3000
    assert len(inbox.claim(engine, ids, run_id="big")) == 3000


def test_every_sqlite_state_connection_syncs_each_commit(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path / 'state.sqlite'}")
    with engine.connect() as first, engine.connect() as second:
        # 2 = FULL: with WAL, NORMAL (1) can lose the last commits on power loss.
        assert [c.exec_driver_sql("PRAGMA synchronous").scalar() for c in (first, second)] == [2, 2]


def test_a_request_that_ended_before_any_run_is_recorded_failed_with_why_and_never_claimed(state_url):
    engine = engine_for(state_url)
    gone = request("11111111-1111-1111-1111-111111111111", source="bc_webhook")
    [failed_id] = inbox.record_failed(engine, [(gone, "deleted in Business Central before it could be read")])
    [row] = inbox.status(engine, ids=[failed_id])
    assert (row.status, row.error, row.external_id) == ("failed", "deleted in Business Central before it could be read",
                                                        gone.external_id)
    assert inbox.pending(engine) == []
    assert inbox.enqueue(engine, [gone]) != [failed_id]  # the same change notified again is a new request

"""Exactly once, whatever fails: lost answers, interrupted loads, lost local state and overlapping runs."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading

import dagster as dg
import pytest

from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import leases
from bc_pipeline.state import records as state
from bc_pipeline.state.database import engine_for

pytestmark = pytest.mark.e2e

TRANSACTIONS = "/transactions/v2/Transaction"


def _duplicates(world) -> dict[str, list]:
    """Every iPaaS.com record that exists more than once, by the value that makes it that record."""
    found: dict[str, list] = {}
    for model, field in (("Transaction", "transaction_number"), ("Product", "sku"), ("Location", "name"),
                         ("Shipping Method", "name"), ("Customer Category", "name"), ("Customer", "customer_number")):
        counts = collections.Counter(r.get(field) for r in world.ipaas_records(model))
        found.update({f"{model} {k}": n for k, n in counts.items() if n > 1})
    for transaction in world.ipaas_records("Transaction"):
        tracking = collections.Counter(t.get("tracking_number") for t in transaction.get("tracking") or [])
        found.update({f"tracking {transaction['transaction_number']} {k}": n for k, n in tracking.items() if n > 1})
    return found


def _released(world) -> set[str]:
    return {o["No"] for o in world.handle.records("SalesOrders") if o["Status"] == "Released"}


def _tracked(world) -> set[str]:
    return {o["No"] for o in world.handle.records("SalesOrders")
            if o["Status"] == "Released" and (o.get("Package_Tracking_No") or "").strip()}


def _delivered_everything(world) -> None:
    transactions = world.ipaas_records("Transaction")
    orders = [t for t in transactions if t["type"] == "Order"]
    assert {t["transaction_number"] for t in orders} == _released(world)
    with_tracking = {t["transaction_number"] for t in orders if t.get("tracking")}
    assert with_tracking == _tracked(world)
    invoices = world.handle.records("PostedSalesInvoices")
    sent = [t for t in transactions if t["type"] == "Invoice"]
    assert {t["transaction_number"] for t in sent} == {i["No"] for i in invoices}
    assert {t["transaction_number"] for t in sent if t.get("tracking")} == {
        i["No"] for i in invoices if i["Package_Tracking_No"]}
    assert {p["sku"] for p in world.ipaas_records("Product")} == {i["No"] for i in world.handle.records("ItemCard")}
    assert _duplicates(world) == {}


def _state_engine():
    return engine_for(load_settings().state_database_url)


# -- Business Central → iPaaS.com -----------------------------------------------------------------

@pytest.mark.parametrize("then", [503, 429, "drop"])
def test_transactions_and_tracking_whose_create_answers_are_lost_land_once(world, instance, then):
    world.handle.set_faults({"kind": "lost_answer", "then": then, "target": "ipaas", "method": "POST",
                             "path_prefix": TRANSACTIONS, "count": 6, "retry_after": 0})
    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error
    _delivered_everything(world)
    assert sum(int(m.get("failed", 0)) for m in outcome.loads.values()) == 0


def test_an_interrupted_load_resumes_without_duplicating_tracking(world, instance):
    """Links are committed as each record lands: what landed before a failure is known to the next run."""
    world.handle.set_faults({"kind": "status", "status": 400, "target": "ipaas", "method": "POST",
                             "path_prefix": TRANSACTIONS, "count": -1})
    first = run_job("initial_load", instance=instance)
    assert sum(int(m.get("failed", 0)) for m in first.loads.values()) > 0
    world.handle.clear_faults()
    second = run_job("sync_to_ipaas", instance=instance)
    assert second.success, second.error
    _delivered_everything(world)


def test_the_state_database_deleted_between_runs_creates_nothing_twice(world, instance):
    assert run_job("initial_load", instance=instance).success
    before = {m: len(world.ipaas_records(m)) for m in ("Transaction", "Product", "Company", "Customer")}
    tracking_before = sum(len(t.get("tracking") or []) for t in world.ipaas_records("Transaction"))
    url = load_settings().state_database_url
    from bc_pipeline.state import database

    database._engines.pop(url).dispose()
    for leftover in world.home.glob("state.sqlite*"):
        leftover.unlink()

    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error
    assert {m: len(world.ipaas_records(m)) for m in before} == before
    # Tracking is found by its transaction's link and its number: nothing in iPaaS.com links it.
    assert sum(len(t.get("tracking") or []) for t in world.ipaas_records("Transaction")) == tracking_before
    _delivered_everything(world)

    # A tracking number added in BC whose create answer is lost: found by its number, not created again.
    order = next(o for o in world.handle.records("SalesOrders")
                 if o["Status"] == "Released" and not (o.get("Package_Tracking_No") or "").strip())
    world.handle.edit_record("SalesOrders", ["Order", order["No"]], {"Package_Tracking_No": "1ZLOST0001"})
    [transaction_id] = [str(link["internal_id"]) for link in world.ipaas_links()
                        if link["table_name"] == "transaction" and link["external_id"] == order["No"]]
    world.handle.set_faults({"kind": "lost_answer", "then": 503, "target": "ipaas", "method": "POST", "count": 1,
                             "path_prefix": f"{TRANSACTIONS}/{transaction_id}/Tracking", "retry_after": 0})
    outcome = run_job("sync_to_ipaas", ["sales_orders", "sales_order_lines"], instance=instance)
    assert outcome.success, outcome.error
    assert not [f for f in world.handle.faults()["faults"] if f["kind"] == "lost_answer"]  # it fired
    [transaction] = [t for t in world.ipaas_records("Transaction") if str(t["id"]) == transaction_id]
    assert [t["tracking_number"] for t in transaction["tracking"]] == ["1ZLOST0001"]
    _delivered_everything(world)


def test_two_overlapping_runs_create_each_record_once(world, tmp_path):
    """Two processes started together: the second waits for the first's lease on each collection."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    (tmp_path / "dagster_home").mkdir()
    # Both storages exist before the race under test: the race is the loads', not the first schema creation's.
    dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")).dispose()
    _state_engine()
    # Everything _delivered_everything counts (inventory by location, the largest read, is left out: it races the
    # same way and only makes the test slower).
    select = ["customer_price_groups", "customers", "items", "locations", "shipping_agents", "sales_orders",
              "sales_order_lines", "posted_sales_invoices", "posted_sales_invoice_lines"]
    # Each run's steps one after another in its own process: the race is between the two runs' loads, and a process
    # per step would only add its start-up (without the leases this still makes dozens of duplicates).
    code = (f"from bc_pipeline.runner import run_job; import sys; o = run_job('initial_load', {select!r}, "
            "max_concurrent=1); sys.exit(0 if o.success else 1)")
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode()[-3000:]
    _delivered_everything(world)


def test_a_lease_is_waited_for_and_taken_once_free(world):
    engine = _state_engine()
    assert leases.try_acquire(engine, "load:x", "run A") is None
    assert leases.try_acquire(engine, "load:x", "run B") == "run A"
    released = threading.Timer(1.5, leases.release, args=(engine, "load:x", "run A"))
    released.start()
    waited_for: list[str] = []
    with leases.held(engine, "load:x", "run B", wait_seconds=30, on_wait=waited_for.append):
        assert leases.current_holder(engine, "load:x") == "run B"
    assert waited_for == ["run A"]
    assert leases.current_holder(engine, "load:x") is None


def test_a_dead_letter_is_mapped_again_from_its_current_source(world, instance):
    """An order refused while its customer was not linked is sent with the customer once that is linked."""
    outcome = run_job("initial_load", ["sales_orders", "sales_order_lines"], instance=instance)
    engine = _state_engine()
    letters = state.dead_letters_of(engine, "sales_order_to_ipaas")
    assert letters and all("customer" in d.error for d in letters)
    assert not outcome.success or sum(int(m.get("failed", 0)) for m in outcome.loads.values()) > 0

    assert run_job("initial_load", ["customer_price_groups", "customers", "items", "locations", "shipping_agents"],
                   instance=instance).success
    outcome = run_job("sync_to_ipaas", ["sales_orders", "sales_order_lines"], instance=instance)
    assert outcome.success, outcome.error
    assert state.dead_letters_of(engine, "sales_order_to_ipaas") == []
    transactions = world.ipaas_records("Transaction")
    assert {t["transaction_number"] for t in transactions} == _released(world)
    assert all(t.get("customer_id") for t in transactions)


# -- iPaaS.com → Business Central -----------------------------------------------------------------

@pytest.fixture
def linked(world, instance):
    outcome = run_job("initial_load", ["customer_price_groups", "customers", "items"], instance=instance)
    assert outcome.success, outcome.error
    return world


def _transaction(world, number: str, lines: int = 3, *, numbered: bool = True) -> dict:
    open_customers = {c["No"] for c in world.handle.records("CustomerCard") if c.get("Blocked") in (None, "", " ", "_blank_")}
    linked = {str(link["internal_id"]): link["external_id"] for link in world.ipaas_links()
              if link["table_name"].lower() == "customer"}
    customer_id = next(str(c["id"]) for c in world.ipaas_records("Company") if linked.get(str(c["id"])) in open_customers)
    skus = [i["No"] for i in world.handle.records("ItemCard")[:lines]]
    return world.ipaas("POST", "records/Transaction", json={
        "transaction_number": number, "type": "Order", "status": "Pending", "customer_id": int(customer_id),
        "lines": [{**({"sequence_number": n + 1} if numbered else {}), "sku": sku, "qty": n + 1, "unit_price": 5}
                  for n, sku in enumerate(skus)],
    })


def _write(instance, ids) -> dict:
    from bc_pipeline.definitions import defs

    result = defs.resolve_job_def("sync_from_ipaas").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["bc_out", "sales_order_from_ipaas"])],
        run_config={"ops": {"bc_out__sales_order_from_ipaas": {"config": {"ipaas_ids": [str(i) for i in ids]}}}},
        raise_on_error=False)
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def _orders(world, number: str) -> list[dict]:
    """The BC orders carrying a transaction number (External Document No. is a Code field: BC upper-cases it)."""
    return [o for o in world.handle.records("SalesOrders") if o["External_Document_No"] == number.upper()]


def _lines(world, order_no: str) -> list[tuple[int, str]]:
    return sorted((ln["Line_No"], ln["No"]) for ln in world.handle.records("SalesOrderLines") if ln["Document_No"] == order_no)


@pytest.mark.parametrize("then", [503, 500, "drop"])
def test_an_order_whose_create_answer_was_lost_is_in_bc_once_with_all_its_lines(linked, instance, then):
    world = linked
    transaction = _transaction(world, f"WEB-LOST-{then}")
    world.handle.set_faults({"kind": "lost_answer", "then": then, "target": "bc", "method": "POST",
                             "service": "SalesOrders", "count": 1, "retry_after": 0})
    meta = _write(instance, [transaction["id"]])
    assert meta["failed"] == 0
    [order] = _orders(world, f"WEB-LOST-{then}")
    assert len(_lines(world, order["No"])) == 3


@pytest.mark.parametrize("fault", [{"kind": "lost_answer", "then": 503, "retry_after": 0},
                                   {"kind": "status", "status": 500}], ids=["answer lost", "not processed"])
def test_a_line_answered_5xx_is_written_once_in_the_same_run(linked, instance, fault):
    """Lost: the lines' batch was processed, its answer replaced by 503. Not processed: a line answered 500 inside
    its batch, so BC rolled the batch back; the lines are then written one by one, each read first."""
    world = linked
    transaction = _transaction(world, "WEB-LINE")
    world.handle.set_faults({**fault, "target": "bc", "method": "POST", "service": "SalesOrderLines", "count": 2})
    meta = _write(instance, [transaction["id"]])
    assert meta["failed"] == 0
    [order] = _orders(world, "WEB-LINE")
    assert [n for n, _ in _lines(world, order["No"])] == [1, 2, 3]


def test_a_link_refused_by_ipaas_then_lost_local_state_never_make_a_second_order(linked, instance):
    world = linked
    transaction = _transaction(world, "WEB-UNLINKED")
    world.handle.set_faults({"kind": "status", "status": 500, "target": "ipaas", "method": "POST",
                             "path_prefix": "/transactions/v2/External/UpdateExternalId", "count": -1,
                             "retry_after": 0})  # every retry still made, without ~30 s of backoff per link
    meta = _write(instance, [transaction["id"]])
    assert meta["failed"] == 1
    world.handle.clear_faults()
    engine = _state_engine()
    assert [d.external_id for d in state.dead_letters_of(engine, "sales_order_from_ipaas")] == [str(transaction["id"])]
    state.forget_links(engine, "transaction", [o["No"] for o in _orders(world, "WEB-UNLINKED")])

    meta = _write(instance, [])  # a scheduled poll: the dead letter is retried with the rest
    assert meta["failed"] == 0
    [order] = _orders(world, "WEB-UNLINKED")
    assert [n for n, _ in _lines(world, order["No"])] == [1, 2, 3]
    assert state.dead_letters_of(engine, "sales_order_from_ipaas") == []


# -- failures are told ------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [400, 401])
def test_a_run_whose_records_failed_exits_3_and_says_how_many_where_and_the_command(world, tmp_path, status):
    world.handle.set_faults({"kind": "status", "status": status, "target": "ipaas", "method": "POST",
                             "path_prefix": "/products/v2/Catalog/Product", "count": -1})
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    run = subprocess.run([sys.executable, "-m", "bc_pipeline.cli", "run", "--select", "items", "--full-refresh"],
                         env=env, capture_output=True, text=True, timeout=300)
    items = len(world.handle.records("ItemCard"))
    assert run.returncode == 3, run.stderr[-3000:]
    assert f"{items} records failed in product_to_ipaas ({items})." in run.stderr
    assert "bc-pipeline dead-letters --collection product_to_ipaas" in run.stderr
    engine = _state_engine()
    assert len(state.dead_letters_of(engine, "product_to_ipaas")) == items


def test_lines_without_usable_sequence_numbers_are_numbered_by_position_and_written_once(linked, instance):
    world = linked
    transaction = _transaction(world, "WEB-NOSEQ", numbered=False)
    world.handle.set_faults({"kind": "lost_answer", "then": "drop", "target": "bc", "method": "POST",
                             "service": "SalesOrderLines", "count": 1})
    assert _write(instance, [transaction["id"]])["failed"] == 0
    [order] = _orders(world, "WEB-NOSEQ")
    assert [n for n, _ in _lines(world, order["No"])] == [10000, 20000, 30000]
    assert _write(instance, [transaction["id"]])["failed"] == 0
    assert [n for n, _ in _lines(world, order["No"])] == [10000, 20000, 30000]


def test_a_lease_held_by_a_process_that_was_killed_is_taken_over_at_once(world):
    engine = _state_engine()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead_holder = f"run r1 on {__import__('socket').gethostname()} pid {gone.pid}"
    assert leases.try_acquire(engine, "load:y", dead_holder) is None
    assert leases.try_acquire(engine, "load:y", "run r2") is None
    assert leases.current_holder(engine, "load:y") == "run r2"
    alive = leases.holder_name("r3")  # this very process: alive, so its lease is respected
    leases.release(engine, "load:y", "run r2")
    assert leases.try_acquire(engine, "load:y", alive) is None
    assert leases.try_acquire(engine, "load:y", "run r4") == alive

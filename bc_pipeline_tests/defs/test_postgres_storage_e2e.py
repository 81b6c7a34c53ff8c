"""Dagster's own storage on PostgreSQL (the README's snippet): a job, a sync-request sensor tick and a backfill
are recorded there; pool `business_central` keeps BC steps within the instance's limit across processes."""

import datetime as dt

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from bc_pipeline.defs.resources import BC_POOL
from bc_pipeline.manual_sync import enqueue_manual_sync
from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import inbox
from bc_pipeline.state.database import engine_for
from bc_pipeline_tests.dagster_storage import ROOT, dagster_pg_home  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def pg_instance(dagster_pg_home):
    with dg.DagsterInstance.from_config(str(dagster_pg_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        yield instance


def _spans(instance, run_id) -> dict[str, tuple[float, float]]:
    """Each step's (start, end) timestamps, from the event log."""
    spans: dict[str, list[float]] = {}
    for record in instance.get_records_for_run(run_id, limit=10_000).records:
        entry = record.event_log_entry
        if entry.dagster_event and entry.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            spans.setdefault(entry.step_key, []).append(entry.timestamp)
    return {key: (min(times), max(times)) for key, times in spans.items()}


def test_a_job_a_sensor_tick_and_a_backfill_on_postgres_storage(world, pg_instance):
    instance = pg_instance
    # A job in several processes (the multiprocess executor), each writing its events to PostgreSQL; the
    # instance's pool limit (1 here) keeps its Business Central steps one at a time.
    instance.event_log_storage.set_concurrency_slots(BC_POOL, 1)
    repository = ReconstructableRepository.for_module("bc_pipeline.definitions", "defs", str(ROOT))
    extracts = {dg.AssetKey(["bc", name]) for name in ("customer_price_groups", "shipping_agents")}
    job = repository.get_reconstructable_job("extract_business_central").get_subset(
        asset_selection=extracts, asset_check_selection=set())  # no checks: two steps, each a process
    with dg.execute_job(job, instance=instance) as result:
        assert result.success
        spans = sorted(_spans(instance, result.run_id).values())
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0], spans  # never both at once
    assert instance.event_log_storage.get_concurrency_info(BC_POOL).active_slot_count == 0

    # A sync-request sensor tick, and the run it asks for, recorded on PostgreSQL.
    assert run_job("initial_load", ["customer_price_groups"], instance=instance).success
    customer = next(c for c in world.handle.records("CustomerCard") if c["Partner_Type"] != "Person")
    engine = engine_for(load_settings().state_database_url)
    enqueue_manual_sync(engine, collection="Dynamics Company Add/Update to iPaaS", scope="created",
                        external_ids=[customer["No"]])
    from bc_pipeline.definitions import defs

    with dg.build_sensor_context(instance=instance, resources={"subscription": defs.resources["subscription"]},
                                 definitions=defs) as context:
        [request] = defs.resolve_sensor_def("sync_requests").evaluate_tick(context).run_requests
    # A few records: Dagster's default executor runs them in the run's process (no process per step).
    assert request.run_config.pop("execution") == {"config": {"in_process": {}}}
    run = defs.resolve_job_def(request.job_name).execute_in_process(
        instance=instance, run_config=request.run_config, asset_selection=list(request.asset_selection),
        tags=request.tags, raise_on_error=False)
    assert run.success
    [row] = inbox.status(engine, external_id=customer["No"])
    assert row.status == "done"
    assert [c["name"] for c in world.ipaas_records("Company")] == [customer["Name"].strip()]

    # A backfill of a date range: one run, its partitions materialized, on PostgreSQL.
    dates = sorted(c["Last_Date_Modified"] for c in world.handle.records("CustomerCard"))
    start = dates[len(dates) // 2]
    week = str(dt.date.fromisoformat(start) + dt.timedelta(days=6))
    end = max(d for d in dates if d <= week)  # a week at most: one materialization per day is written
    backfill = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["resync", "customers"])],
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
        raise_on_error=False)
    assert backfill.success
    materialized = instance.get_materialized_partitions(dg.AssetKey(["resync", "customers"]))
    assert {start, end} <= materialized

    runs = instance.get_runs()
    assert {r.job_name for r in runs} >= {"extract_business_central", "initial_load", "sync_to_ipaas"}
    assert len(runs) == 4 and all(r.is_success for r in runs)
    assert dg.DagsterInstance.from_config(str(instance.root_directory)).get_run_by_id(backfill.run_id) is not None

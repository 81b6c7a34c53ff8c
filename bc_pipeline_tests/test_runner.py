"""run_job reads independent Business Central services side by side, within CONCURRENT_CONNECTIONS."""

import io

import dagster as dg
import pytest
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

from bc_pipeline import progress
from bc_pipeline.catalog import ENTITIES
from bc_pipeline.cli import build_parser
from bc_pipeline.defs.jobs import COLLECTION_TAG, EVERY_COLLECTION
from bc_pipeline.runner import RunOutcome, run_job
from bc_pipeline.settings import load_settings


def _peak_overlap(entries):
    """The most requests whose [arrival, arrival + duration] intervals overlap in the sandbox's log."""
    edges = sorted([(e["time"], 1) for e in entries] + [(e["time"] + e["duration_ms"] / 1000, -1) for e in entries])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


@pytest.mark.e2e
def test_an_extraction_reads_services_side_by_side_within_the_concurrent_connections(world, instance):
    limit = load_settings().concurrent_connections
    # Every BC read answers 1.5 s late, as real BC pages do (long enough for reads to overlap on a busy machine,
    # whose step processes start seconds apart): one at a time, the requests could never overlap.
    world.handle.set_faults({"kind": "delay", "seconds": 1.5, "count": -1, "target": "bc", "method": "GET"})
    since = world.handle.last_seq()
    outcome = run_job("extract_business_central", instance=instance, max_concurrent=limit)
    assert outcome.success, outcome.error
    assert set(outcome.extracts) == {e.name for e in ENTITIES}
    reads = [e for e in world.handle.requests(since) if e["target"] == "bc" and e["method"] == "GET"]
    assert sum(int(meta["requests"]) for meta in outcome.extracts.values()) == len(reads)
    assert all(e["status"] == 200 for e in reads)
    assert 1 < _peak_overlap(reads) <= limit


@pytest.mark.e2e
def test_one_at_a_time_and_an_ephemeral_instance_run_in_this_process(world):
    with dg.DagsterInstance.ephemeral() as instance:
        outcome = run_job("extract_business_central", ["locations"], instance=instance, max_concurrent=5)
    assert outcome.success, outcome.error
    assert outcome.extracts["locations"]["rows"] > 0


def test_a_step_process_forks_from_a_server_that_has_the_code_location_imported(monkeypatch):
    """Without it each of a run's ~70 step processes imports the code location itself (~1.2 s of CPU apiece)."""
    from dagster._core.definitions.executor_definition import _core_multiprocess_executor_creation

    from bc_pipeline import runner

    monkeypatch.setattr(runner, "_forkserver_env", None)  # as in a new `bc-pipeline run`
    start_method = runner._start_method()
    if "forkserver" not in start_method:
        pytest.skip("no forkserver on this platform")
    executor = _core_multiprocess_executor_creation({"max_concurrent": 2, "retries": {"enabled": {}},
                                                     "start_method": start_method})
    assert runner.DEFINITIONS_MODULE in executor._explicit_forkserver_preload


def test_max_concurrent_is_a_positive_number_of_steps():
    parser = build_parser()
    assert parser.parse_args(["run"]).max_concurrent is None  # CONCURRENT_CONNECTIONS
    assert parser.parse_args(["run", "--max-concurrent", "1"]).max_concurrent == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--max-concurrent", "0"])


ENTRA_REFUSAL = ("Microsoft Entra ID answered invalid_client: AADSTS7000215: Invalid client secret provided. Trace ID: "
                 "{0}1-2 Correlation ID: {0}3-4 Timestamp: 2026-11-29 14:28:2{0}Z (correlation id {0}3-4). What to do: "
                 "the Client Secret is wrong: copy the secret's Value (not its ID) from Certificates & Secrets")


def test_one_error_that_stopped_every_step_is_told_once_with_what_to_do_and_where_the_log_is():
    outcome = RunOutcome(run_id="r1", success=False, step_errors={
        f"bc__{name}": ENTRA_REFUSAL.format(i) for i, name in enumerate(["items", "customers", "locations", "sales_orders"])})
    lines = outcome.failure_lines()
    assert lines[0] == ("Run r1 failed: the same error stopped all 4 steps (bc__customers, bc__items, bc__locations "
                        "and 1 more):")
    assert lines[1].startswith("  Microsoft Entra ID answered invalid_client: AADSTS7000215: Invalid client secret")
    assert "Trace ID" not in lines[1] and "Timestamp" not in lines[1]
    assert sum("copy the secret's Value (not its ID)" in line for line in lines) == 1
    assert any("bc-pipeline doctor" in line for line in lines)
    assert "http://127.0.0.1:3000/runs/r1" in lines[-1]
    assert outcome.exit_code == 1


def test_different_errors_are_each_told_with_their_steps():
    outcome = RunOutcome(run_id="r2", success=False, step_errors={
        "bc__items": ENTRA_REFUSAL.format(1), "bc__customers": ENTRA_REFUSAL.format(2),
        "ipaas__customer_to_ipaas": "iPaaS.com answered HTTP 401: no such key. What to do: check IPAAS_API_TOKEN"})
    lines = outcome.failure_lines()
    assert lines[0] == "Run r2 failed in 3 steps, on 2 different errors:"
    assert lines[1].startswith("  bc__customers, bc__items: Microsoft Entra ID answered")
    assert lines[3] == "  ipaas__customer_to_ipaas: iPaaS.com answered HTTP 401: no such key"
    assert lines[4] == "  What to do: check IPAAS_API_TOKEN"


@pytest.mark.e2e
def test_a_run_is_listed_under_its_job_in_the_code_location_bc_pipeline(world, instance):
    outcome = run_job("sync_to_ipaas", ["customer_price_groups"], instance=instance)
    assert outcome.success, outcome.error
    runs = instance.get_runs(filters=dg.RunsFilter(
        job_name="sync_to_ipaas", tags={REPOSITORY_LABEL_TAG: "__repository__@bc_pipeline", COLLECTION_TAG: EVERY_COLLECTION}))
    assert [r.run_id for r in runs] == [outcome.run_id]
    assert runs[0].remote_job_origin.location_name == "bc_pipeline"
    assert runs[0].remote_job_origin.job_name == "sync_to_ipaas"


@pytest.mark.e2e
def test_long_steps_tell_records_done_of_total_in_the_run_log_and_on_the_terminal(world, instance, monkeypatch):
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0)  # a line per record: the sandbox's small data loads in a blink
    terminal = io.StringIO()
    outcome = run_job("initial_load", ["customer_price_groups", "customers"], instance=instance, progress=terminal)
    assert outcome.success, outcome.error
    customers = outcome.loads["customer_to_ipaas"]["created"]
    in_ui = [e.user_message for e in instance.all_logs(outcome.run_id) if e.user_message.startswith("Progress ")]
    assert f"Progress customer_to_ipaas: {customers:,} / {customers:,} records (100%)" in "\n".join(in_ui)
    assert any(line.startswith("Progress CustomerCard: ") and "records so far" in line for line in in_ui)
    printed = terminal.getvalue().splitlines()
    assert any(f"] customer_to_ipaas: 1 / {customers:,} records" in line and "ETA" in line for line in printed)
    assert any("throttle waits" in line for line in printed)

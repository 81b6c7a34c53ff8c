"""run_job reads independent Business Central services side by side, within CONCURRENT_CONNECTIONS."""

import dagster as dg
import pytest

from bc_pipeline.catalog import ENTITIES
from bc_pipeline.cli import build_parser
from bc_pipeline.runner import run_job
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


def test_max_concurrent_is_a_positive_number_of_steps():
    parser = build_parser()
    assert parser.parse_args(["run"]).max_concurrent is None  # CONCURRENT_CONNECTIONS
    assert parser.parse_args(["run", "--max-concurrent", "1"]).max_concurrent == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--max-concurrent", "0"])

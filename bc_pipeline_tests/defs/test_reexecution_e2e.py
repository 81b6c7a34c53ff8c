"""Re-executing a failed load from the Dagster UI (a new run) delivers the parent run's data, and only that."""

from __future__ import annotations

import dagster as dg
import pytest

from bc_pipeline.runner import reconstructable_job, selection_for
from bc_pipeline.settings import load_settings
from bc_pipeline.state import watermarks
from bc_pipeline.state.database import engine_for
from bc_pipeline.state.staging import StagingArea

pytestmark = pytest.mark.e2e

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
WATERMARK = watermarks.consumer_key("items", "product_to_ipaas")


def _first_run_fails_at_its_load(world, instance, monkeypatch) -> dg.DagsterRun:
    """The run's extract and transform succeed; its load step dies before it sends anything (as when the
    machine running it goes away), so the user re-executes it from the UI."""
    from bc_pipeline.loading import Loader

    def crash(self, records, run_id=None):
        raise RuntimeError("the machine running this step went away")

    with monkeypatch.context() as patch:
        patch.setattr(Loader, "load", crash)
        keys = selection_for("sync_to_ipaas", ["items"])
        with dg.execute_job(reconstructable_job("sync_to_ipaas"), instance=instance, run_config=IN_PROCESS,
                            asset_selection=keys, raise_on_error=False) as result:
            assert not result.success
            failed = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
            assert "ipaas__product_to_ipaas" in failed, failed
            assert "bc__items" not in failed and "mapped__product_to_ipaas" not in failed
    return instance.get_run_by_id(result.run_id)


def _reexecute_from_failure(instance, parent: dg.DagsterRun):
    options = dg.ReexecutionOptions.from_failure(parent.run_id, instance)
    return dg.execute_job(reconstructable_job("sync_to_ipaas"), instance=instance, run_config=IN_PROCESS,
                          reexecution_options=options, raise_on_error=False)


def _messages(error) -> str:
    texts = []
    while error is not None:
        texts.append(error.message)
        error = error.cause
    return "\n".join(texts)


def _staging() -> StagingArea:
    return StagingArea(load_settings().staging_location)


def test_a_load_reexecuted_from_failure_delivers_its_parent_runs_extract(world, instance, monkeypatch):
    parent = _first_run_fails_at_its_load(world, instance, monkeypatch)
    engine = engine_for(load_settings().state_database_url)
    assert watermarks.committed(engine, WATERMARK) is None
    assert world.ipaas_records("Product") == []

    with _reexecute_from_failure(instance, parent) as result:
        assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        ran = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
        child = result.run_id
    assert "bc__items" not in ran and "mapped__product_to_ipaas" not in ran  # not read or mapped again
    assert "ipaas__product_to_ipaas" in ran

    items = world.handle.records("ItemCard")
    assert {p["sku"] for p in world.ipaas_records("Product")} == {i["No"] for i in items}
    assert watermarks.committed(engine, WATERMARK) is not None  # moved with the parent's extract it delivered
    assert _staging().runs("items") == [parent.run_id]
    assert instance.get_run_by_id(child).parent_run_id == parent.run_id


def test_a_reexecution_whose_parent_extract_is_gone_fails_naming_both_runs(world, instance, monkeypatch):
    parent = _first_run_fails_at_its_load(world, instance, monkeypatch)
    staging = _staging()
    staging.fs.rm(staging.payloads("product_to_ipaas", parent.run_id).path, recursive=True)

    with _reexecute_from_failure(instance, parent) as result:
        assert not result.success
        messages = "\n".join(_messages(e.event_specific_data.error) for e in result.all_events
                             if e.event_type_value == "STEP_FAILURE")
        child = result.run_id
    assert parent.run_id in messages and child in messages and "re-execute all its steps" in messages
    assert world.ipaas_records("Product") == []
    assert watermarks.committed(engine_for(load_settings().state_database_url), WATERMARK) is None

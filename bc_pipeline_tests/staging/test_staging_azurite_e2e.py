"""Staging on Azure Blob Storage (Azurite), state and throttle on PostgreSQL: real Dagster runs, the steps of one
run on two machines, no fallbacks."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import watermarks
from bc_pipeline.state.database import engine_for
from bc_pipeline.state.staging import StagingArea
from bc_pipeline.state.tables import throttle_sends
from bc_pipeline_tests.dagster_storage import fresh_database
from bc_pipeline_tests.staging.conftest import ACCOUNT_KEY

pytestmark = pytest.mark.e2e

EXTRACT = dg.AssetKey(["bc", "items"])
TRANSFORM = dg.AssetKey(["mapped", "product_to_ipaas"])
LOAD = dg.AssetKey(["ipaas", "product_to_ipaas"])
WATERMARK = watermarks.consumer_key("items", "product_to_ipaas")


class Machine:
    """One machine of the deployment: its own BC_PIPELINE_HOME and Dagster instance; staging and state shared."""

    def __init__(self, home: Path, instance: dg.DagsterInstance, monkeypatch):
        self.home, self.instance, self.monkeypatch = home, instance, monkeypatch

    def run(self, keys: list[dg.AssetKey], run_id: str) -> dg.ExecuteInProcessResult:
        """The steps of run `run_id` for `keys`, executed here (as a step worker of that run would)."""
        from bc_pipeline.definitions import defs

        self.monkeypatch.setenv("BC_PIPELINE_HOME", str(self.home))
        job = defs.resolve_job_def("sync_to_ipaas")
        return job.execute_in_process(instance=self.instance, asset_selection=keys, run_id=run_id, raise_on_error=False)


@pytest.fixture
def machines(world, azure_staging, tmp_path, monkeypatch, instance, postgres_server_url):
    """Two machines that share only the blob store (Azurite) and the PostgreSQL state database, which also holds
    the one throttle they both send through."""
    with fresh_database(postgres_server_url) as state_url:
        monkeypatch.setenv("BC_PIPELINE_STATE_URL", state_url)
        with dg.instance_for_test() as other:
            yield Machine(tmp_path / "machine-a", instance, monkeypatch), Machine(tmp_path / "machine-b", other,
                                                                                  monkeypatch)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    texts = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


def _products(world) -> dict[str, dict]:
    return {p["sku"]: p for p in world.ipaas_records("Product")}


def _engine():
    return engine_for(load_settings().state_database_url)


def test_a_sync_with_staging_on_azure_blob_lands_every_record(world, instance, azure_staging):
    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error
    assert set(_products(world)) == {i["No"] for i in world.handle.records("ItemCard")}
    customers = {link["external_id"] for link in world.ipaas_links() if link["table_name"].lower() == "customer"
                 and not link["external_id"].endswith("|contact")}  # contacts are iPaaS.com customers too
    assert customers == {c["No"] for c in world.handle.records("CustomerCard")}

    staging = StagingArea(azure_staging)
    assert staging.runs("items") == [outcome.run_id]
    assert staging.payloads("product_to_ipaas", outcome.run_id).complete
    assert outcome.extracts["items"]["staged_at"] == f"{azure_staging}/bc/items/{outcome.run_id}"
    assert not (world.home / "staging").exists()  # nothing on the machine's disk
    for entry in instance.all_logs(outcome.run_id):
        assert ACCOUNT_KEY not in (entry.user_message or "")


def _throttled_sends() -> dict[str, int]:
    """Requests each shared throttle window (BC's, iPaaS.com's) counted, as the state database holds them."""
    with _engine().connect() as conn:
        rows = conn.execute(select(throttle_sends.c.window_key, func.count()).group_by(throttle_sends.c.window_key))
        return {key: count for key, count in rows}


def test_a_run_extracted_on_one_machine_is_loaded_on_another(world, machines):
    a, b = machines
    assert _engine().dialect.name == "postgresql"
    run_id = str(uuid.uuid4())
    since = world.handle.last_seq()
    extracted = a.run([EXTRACT], run_id)
    assert extracted.success, _failure(extracted)
    middle = world.handle.last_seq()
    after_extract = _throttled_sends()
    loaded = b.run([TRANSFORM, LOAD], run_id)
    assert loaded.success, _failure(loaded)
    after_load = _throttled_sends()
    # Both machines sent through the one throttle in the state database: each request is counted there, in its
    # service's window, whichever machine sent it.
    def sent(start: int, end: int | None, target: str) -> int:
        return sum(1 for e in world.handle.requests(start) if e["target"] == target and (end is None or e["seq"] <= end))

    bc_extract, ipaas_load = sent(since, middle, "bc"), sent(middle, None, "ipaas")
    assert bc_extract > 0 and ipaas_load > 0
    assert sum(after_extract.values()) == bc_extract, (after_extract, bc_extract)
    assert sum(after_load.values()) - sum(after_extract.values()) == ipaas_load + sent(middle, None, "bc")
    assert len(after_load) == 2, after_load  # BC's window and iPaaS.com's
    items = world.handle.records("ItemCard")
    products = _products(world)
    assert set(products) == {i["No"] for i in items}
    assert watermarks.committed(_engine(), WATERMARK) is not None  # moved with the data it describes
    assert not (a.home / "staging").exists() and not (b.home / "staging").exists()


def test_a_transform_whose_extract_is_gone_fails_naming_it_and_moves_no_watermark(world, machines, azure_staging):
    a, b = machines
    run_id = str(uuid.uuid4())
    assert a.run([EXTRACT], run_id).success
    staging = StagingArea(azure_staging)
    staging.fs.rm(staging.extract("items", run_id).path, recursive=True)

    loaded = b.run([TRANSFORM, LOAD], run_id)
    assert not loaded.success
    message = _failure(loaded)
    assert "items" in message and run_id in message
    assert f"{azure_staging}/bc/items/{run_id}" in message
    assert ACCOUNT_KEY not in message and "AccountKey" not in message
    assert watermarks.committed(_engine(), WATERMARK) is None
    assert _products(world) == {}


def test_an_older_extract_of_another_run_is_never_used_in_place_of_this_runs(world, machines, azure_staging):
    a, b = machines
    first = str(uuid.uuid4())
    assert a.run([EXTRACT], first).success
    assert b.run([TRANSFORM, LOAD], first).success
    engine = _engine()
    delivered = watermarks.committed(engine, WATERMARK)
    item = world.handle.records("ItemCard")[0]
    world.handle.edit_record("ItemCard", item["No"], {"Description": "CHANGED AFTER THE FIRST RUN"})
    since = world.ipaas_last_seq()

    second = str(uuid.uuid4())
    assert a.run([EXTRACT], second).success
    staging = StagingArea(azure_staging)
    staging.fs.rm(staging.extract("items", second).path, recursive=True)
    assert staging.runs("items") == [first]  # the older extract is there to be (wrongly) taken

    loaded = b.run([TRANSFORM, LOAD], second)
    assert not loaded.success
    message = _failure(loaded)
    assert second in message and first not in message
    assert world.ipaas_writes(since) == []
    assert not staging.payloads("product_to_ipaas", second).complete
    assert watermarks.committed(engine, WATERMARK) == delivered


def test_a_transform_materialized_without_its_extract_says_to_run_them_together(world, machines):
    a, _ = machines
    result = a.run([TRANSFORM], str(uuid.uuid4()))
    assert not result.success
    message = _failure(result)
    assert "in the same run" in message and "bc/items" in message
    assert watermarks.committed(_engine(), WATERMARK) is None

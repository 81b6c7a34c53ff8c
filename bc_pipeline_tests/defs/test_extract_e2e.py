"""Real Dagster runs of every extraction asset against the HTTPS sandbox."""

import pytest

from bc_pipeline.catalog import ENTITIES
from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state.staging import StagingArea

pytestmark = pytest.mark.e2e


def _staged(entity: str, run_id: str):
    """The run's own extract (staging is addressed by run id)."""
    return StagingArea(load_settings().staging_location).require_extract(entity, run_id)


def test_every_published_service_is_extracted_with_its_counts(world, instance):
    outcome = run_job("extract_business_central", instance=instance)
    assert outcome.success, outcome.error
    assert set(outcome.extracts) == {e.name for e in ENTITIES}
    for entity in ENTITIES:
        meta = outcome.extracts[entity.name]
        assert meta["rows"] == len(world.handle.records(entity.service)), entity.name
        assert meta["requests"] >= 1
        assert meta["mode"] == "full"
    for record in instance.get_records_for_run(outcome.run_id).records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.event_type_value == "ASSET_CHECK_EVALUATION":
            assert event.event_specific_data.passed, event.event_specific_data.asset_check_key


def test_the_guides_item_10010_arrives_with_its_custom_field(world, instance):
    outcome = run_job("extract_business_central", ["items"], instance=instance)
    assert outcome.success, outcome.error
    item = next(r for r in _staged("items", outcome.run_id).records() if r["No"] == "10010")
    assert item["Description"] == "DISC. REPLACEMENT 10039"
    assert item["UPC_Code"] == "760479100105"
    assert item["Product_Group_Code"] == "BULK"
    assert item["CatItemGroup"] == "CLASSIC WATERMELON LED W/STAINLESS STEEL FLANGE MOUNT BEZEL"
    assert item["Unit_Price"] == 0.16


def test_only_the_fields_the_catalog_needs_are_asked_for(world, instance):
    since = world.handle.last_seq()
    outcome = run_job("extract_business_central", ["locations"], instance=instance)
    paths = [r["path"] for r in world.handle.requests(since) if "Locations" in r["path"]]
    assert paths and all("%24select=" in p or "$select=" in p for p in paths)
    record = next(_staged("locations", outcome.run_id).records())
    assert "Bin_Mandatory" not in record and "Name" in record


def test_a_failure_is_reported_in_the_guides_words(world, instance):
    world.handle.set_faults({"action": "unpublish", "service": "ShippingAgents"})
    outcome = run_job("extract_business_central", ["shipping_agents"], instance=instance)
    assert not outcome.success
    assert "Object ID 428" in outcome.error and "ShippingAgents" in outcome.error


def test_a_page_extensions_systemmodifiedat_drives_incremental_reads(tmp_path, monkeypatch, instance):
    from bc_pipeline.mapping.registry import consumers_of
    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox
    from bc_pipeline.settings import load_settings
    from bc_pipeline.state import watermarks
    from bc_pipeline.state.database import engine_for

    with start_sandbox(SandboxConfig(scale=0.05, state_dir=tmp_path / "sb", system_modified_at=True)) as sandbox:
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("BC_PIPELINE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("BC_MODIFIED_AT_FIELDS", "customers=SystemModifiedAt")
        first = run_job("extract_business_central", ["customers"], instance=instance)
        assert first.success, first.error
        assert first.extracts["customers"]["rows"] == len(sandbox.records("CustomerCard"))
        engine = engine_for(load_settings().state_database_url)
        for consumer in consumers_of("customers"):  # as their loads do once delivered
            newest = watermarks.commit_for_consumer(engine, "customers", consumer, first.run_id)
        assert "T" in newest  # a timestamp, not a date
        customer = sandbox.records("CustomerCard")[0]["No"]
        sandbox.edit_record("CustomerCard", customer, {"Phone_No": "555-0111"})
        second = run_job("extract_business_central", ["customers"], instance=instance)
        assert second.extracts["customers"]["mode"] == "incremental"
        assert "SystemModifiedAt ge " in second.extracts["customers"]["filter"]
        staged = [r["No"] for r in _staged("customers", second.run_id).records()]
        assert customer in staged and len(staged) < len(sandbox.records("CustomerCard"))


def test_a_run_launched_without_run_config_reads_services_side_by_side(world, instance):
    """As from the UI, a schedule or a sensor: no `max_concurrent` in the run config, yet the steps use BC's
    connections (CONCURRENT_CONNECTIONS), not only as many as the machine has CPUs (Dagster's default)."""
    import dagster as dg

    from bc_pipeline.runner import reconstructable_job, selection_for

    services = ["customer_price_groups", "shipping_agents", "locations"]  # a page or two each
    since = world.handle.last_seq()
    world.handle.set_faults({"kind": "delay", "seconds": 6.0, "count": len(services), "target": "bc"})
    try:
        with dg.execute_job(reconstructable_job("extract_business_central"), instance=instance,
                            asset_selection=selection_for("extract_business_central", services),
                            raise_on_error=False) as result:
            assert result.success
    finally:
        world.handle.clear_faults()
    bc = [e for e in world.handle.requests(since) if e["target"] == "bc" and e["duration_ms"] is not None]
    overlapping = [sum(1 for o in bc if o["time"] <= e["time"] < o["time"] + o["duration_ms"] / 1000) for e in bc]
    assert 3 <= max(overlapping) <= load_settings().concurrent_connections

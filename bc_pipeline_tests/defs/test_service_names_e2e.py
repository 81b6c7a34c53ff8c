"""Service names are the user's: a page published under a Service Name of its own is read and written by it."""

import dagster as dg
import pytest

from bc_pipeline.dead_letters import retry
from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import records as state
from bc_pipeline.state.database import engine_for

pytestmark = pytest.mark.e2e

RENAMED = {"CustomerCard": "MyCustomerCard", "SalesOrders": "WebSalesOrders"}


@pytest.fixture
def renamed(tmp_path, monkeypatch):
    """A sandbox whose Customer Card and Sales Order pages are published under the tenant's own names."""
    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox
    from bc_pipeline_tests.conftest import World

    config = SandboxConfig(scale=0.02, state_dir=tmp_path / "sb", service_names=RENAMED,
                           ipaas_rate_limit=100_000, ipaas_rate_window_seconds=60)
    with start_sandbox(config) as sandbox:
        for key in ("BC_SERVICE_NAMES", "BC_MODIFIED_AT_FIELDS", "BC_PIPELINE_COLLECTIONS_DIR"):
            monkeypatch.delenv(key, raising=False)
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("BC_PIPELINE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("IPAAS_THROTTLE_LIMIT", "100000")
        yield World(sandbox, tmp_path / "home")


def _findings():
    from bc_pipeline.doctor import diagnose
    from bc_pipeline.settings import load_settings

    return {f.check: f for f in diagnose(load_settings(), check_ipaas=False)}


def test_a_service_published_under_another_name_needs_its_setting_then_is_read_and_written(renamed, instance,
                                                                                            monkeypatch):
    world = renamed
    missing = _findings()["service CustomerCard"]
    assert not missing.ok and "CustomerCard" in missing.detail
    assert "Object ID 21 (Customer Card), Service Name CustomerCard" in missing.fix
    assert "set BC_SERVICE_NAMES=customers=<that name>" in missing.fix

    monkeypatch.setenv("BC_SERVICE_NAMES", "customers=MyCustomerCard,sales_orders=WebSalesOrders")
    found = _findings()
    failed = {name: f.detail for name, f in found.items() if not f.ok and name != "webhooks"}
    assert failed == {}
    assert found["service CustomerCard"].detail.startswith("Page 21 published as MyCustomerCard")
    assert found["service SalesOrders"].detail.startswith("Page 42 published as WebSalesOrders")

    # Orders read before their customers are linked: dead letters, replayed below by keyed reads of WebSalesOrders.
    run_job("initial_load", ["sales_orders", "sales_order_lines"], instance=instance)
    engine = engine_for(load_settings().state_database_url)
    letters = state.dead_letters_of(engine, "sales_order_to_ipaas")
    assert letters and all("customer" in d.error for d in letters)

    outcome = run_job("initial_load", ["customer_price_groups", "customers"], instance=instance)
    assert outcome.success, outcome.error
    customers = world.handle.records("CustomerCard")
    sent = {c["customer_number"] for c in world.ipaas_records("Customer")} | {
        link["external_id"] for link in world.ipaas_links() if link["table_name"].lower() == "customer"}
    assert {c["No"] for c in customers} <= sent

    said: list[str] = []
    assert retry(engine, letters, instance, out=said.append) == 0, said
    released = {o["No"] for o in world.handle.records("SalesOrders") if o["Status"] == "Released"}
    assert {t["transaction_number"] for t in world.ipaas_records("Transaction")} == released
    assert state.dead_letters_of(engine, "sales_order_to_ipaas") == []

    new = world.ipaas("POST", "records/Customer", json={
        "first_name": "Åsa", "last_name": "O'Neill", "email_address": "asa.oneill@example.com"})
    from bc_pipeline.definitions import defs

    result = defs.resolve_job_def("sync_from_ipaas").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["bc_out", "customer_from_ipaas"])],
        run_config={"ops": {"bc_out__customer_from_ipaas": {"config": {"ipaas_ids": [str(new["id"])]}}}},
        raise_on_error=False)
    assert result.success
    [created] = [c for c in world.handle.records("CustomerCard") if c.get("E_Mail") == "asa.oneill@example.com"]
    assert created["Name"] == "Åsa O'Neill"

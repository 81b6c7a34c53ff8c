"""Orders and lines read by their page extension's SystemModifiedAt: only changes, yet whole documents land."""

import pytest

from bc_pipeline.runner import run_job

pytestmark = pytest.mark.e2e

WATCHED = "customers=SystemModifiedAt,items=SystemModifiedAt,sales_orders=SystemModifiedAt," \
          "sales_order_lines=SystemModifiedAt"
# What an order needs linked first (price groups and inventory are not: their links are optional or unrelated).
ENTITIES = ["customers", "items", "locations", "shipping_agents", "sales_orders", "sales_order_lines"]


@pytest.fixture
def stamped(tmp_path, monkeypatch):
    """A sandbox whose customers, items, orders and lines carry SystemModifiedAt, watched by the pipeline."""
    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox
    from bc_pipeline_tests.conftest import World

    config = SandboxConfig(scale=0.02, state_dir=tmp_path / "sb", system_modified_at=True,
                           ipaas_rate_limit=100_000, ipaas_rate_window_seconds=60)
    with start_sandbox(config) as sandbox:
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("BC_PIPELINE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("IPAAS_THROTTLE_LIMIT", "100000")
        monkeypatch.setenv("BC_MODIFIED_AT_FIELDS", WATCHED)
        yield World(sandbox, tmp_path / "home")


def _transaction(world, number):
    [found] = [t for t in world.ipaas_records("Transaction") if t["transaction_number"] == number]
    return found


def test_a_changed_line_alone_sends_its_whole_order_and_an_unchanged_sync_reads_only_the_newest(stamped, instance,
                                                                                                 monkeypatch):
    from bc_pipeline.doctor import diagnose
    from bc_pipeline.settings import load_settings

    world = stamped
    monkeypatch.delenv("BC_MODIFIED_AT_FIELDS")
    dates = next(f for f in diagnose(load_settings(), check_ipaas=False) if f.check == "change dates")
    assert dates.ok and f"read only their changes with BC_MODIFIED_AT_FIELDS={WATCHED}" in dates.detail
    monkeypatch.setenv("BC_MODIFIED_AT_FIELDS", WATCHED)
    first = run_job("sync_to_ipaas", ENTITIES, instance=instance)
    assert first.success and not first.failed_records, first.error or first.failed_records
    assert first.extracts["sales_orders"]["mode"] == first.extracts["sales_order_lines"]["mode"] == "full"
    orders = [o for o in world.handle.records("SalesOrders") if o["Status"] == "Released"]
    assert len([t for t in world.ipaas_records("Transaction")]) == len(orders)

    quiet = run_job("sync_to_ipaas", ENTITIES, instance=instance)
    assert quiet.success
    for entity in ("sales_orders", "sales_order_lines"):
        assert quiet.extracts[entity]["mode"] == "incremental"
        assert "SystemModifiedAt ge " in quiet.extracts[entity]["filter"]
    assert quiet.extracts["sales_orders"]["rows"] < len(world.handle.records("SalesOrders"))
    assert quiet.loads["sales_order_to_ipaas"]["created"] == quiet.loads["sales_order_to_ipaas"]["updated"] == 0

    # An old order: one of its lines changes in BC; its header does not.
    order = min(orders, key=lambda o: o["SystemModifiedAt"])
    lines = [ln for ln in world.handle.records("SalesOrderLines")
             if ln["Document_No"] == order["No"] and ln["Type"] != "_blank_"]
    assert len(lines) >= 2, "an order with several lines"
    changed = lines[0]
    world.handle.edit_record("SalesOrderLines", [order["No"], changed["Line_No"]], {"Quantity": changed["Quantity"] + 7})

    after = run_job("sync_to_ipaas", ENTITIES, instance=instance)
    assert after.success and not after.failed_records
    assert after.extracts["sales_orders"]["mode"] == "incremental"
    sent = _transaction(world, order["No"])
    by_sequence = {line["sequence_number"]: line for line in sent["lines"]}
    assert sorted(by_sequence) == sorted(ln["Line_No"] for ln in lines)  # every line, not just the changed one
    assert by_sequence[changed["Line_No"]]["qty"] == changed["Quantity"] + 7
    assert after.loads["sales_order_to_ipaas"]["updated"] == 1


def test_an_order_watched_without_its_lines_is_refused_by_the_settings(monkeypatch):
    from bc_pipeline.settings import SettingsError, load_settings

    monkeypatch.setenv("BC_MODIFIED_AT_FIELDS", "sales_orders=SystemModifiedAt")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "sales_orders is read with its sales_order_lines" in str(refused.value)
    assert "sales_order_lines=SystemModifiedAt" in str(refused.value)

"""`bc-pipeline dead-letters retry` and `discard` against the sandbox: what happens to the records."""

import dagster as dg
import pytest

from bc_pipeline.cli import main
from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import records as state
from bc_pipeline.state.database import engine_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def refused(world, instance, tmp_path, monkeypatch):
    """Two products iPaaS.com refused: their dead letters, then the refusal lifted."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))  # where the commands record their runs
    skus = [i["No"] for i in world.handle.records("ItemCard")[:2]]
    for sku in skus:
        world.ipaas("POST", "faults", json={"reject": {"model": "Product", "field": "sku", "equals": sku,
                                                       "message": "SKU blocked by a test"}})
    outcome = run_job("initial_load", ["items"], instance=instance)
    assert outcome.failed_records == {"product_to_ipaas": 2}
    world.ipaas("DELETE", "faults")
    return skus


def _engine():
    return engine_for(load_settings().state_database_url)


def _skus(world):
    return [p["sku"] for p in world.ipaas_records("Product")]


def _observations(slug):
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_observations(dg.AssetKey(["ipaas", slug]), limit=10).records
        return [{k: v.value for k, v in r.asset_observation.metadata.items()} for r in records]


def test_retry_of_one_id_lands_that_record_now_and_leaves_the_other(world, refused, capsys):
    first, second = refused
    assert main(["dead-letters", "retry", "--collection", "product_to_ipaas", "--id", first]) == 0
    out = capsys.readouterr().out
    assert f"retried product_to_ipaas {first}: landed (iPaaS.com id" in out
    assert second not in out
    assert _skus(world).count(first) == 1 and second not in _skus(world)
    assert [d.external_id for d in state.dead_letters_of(_engine(), "product_to_ipaas")] == [second]
    [entry] = _observations("product_to_ipaas")
    assert entry["dead_letters"] == "retried" and entry["records"] == first and entry["failed_again"] == 0


def test_retry_of_a_record_still_refused_says_so_and_exits_3(world, refused, capsys):
    first, _ = refused
    world.ipaas("POST", "faults", json={"reject": {"model": "Product", "field": "sku", "equals": first,
                                                   "message": "still blocked"}})
    assert main(["dead-letters", "retry", "--id", first]) == 3
    assert f"retried product_to_ipaas {first}: failed again (attempt 2): " in capsys.readouterr().out
    assert first not in _skus(world)
    assert first in {d.external_id for d in state.dead_letters_of(_engine(), "product_to_ipaas")}


def test_discard_needs_a_choice_then_removes_the_record_and_the_next_run_does_not_send_it(world, refused, instance,
                                                                                       capsys):
    first, second = refused
    assert main(["dead-letters", "discard"]) == 2
    assert "--collection C, --id X or --all" in capsys.readouterr().err
    assert len(state.dead_letters_of(_engine(), "product_to_ipaas")) == 2  # nothing discarded

    assert main(["dead-letters", "discard", "--id", second]) == 0
    assert f"discarded product_to_ipaas {second}: 1 attempt(s), last error: " in capsys.readouterr().out
    assert [d.external_id for d in state.dead_letters_of(_engine(), "product_to_ipaas")] == [first]
    assert main(["dead-letters", "--collection", "product_to_ipaas"]) == 0
    assert second not in capsys.readouterr().out
    [entry] = _observations("product_to_ipaas")
    assert entry["dead_letters"] == "discarded" and entry["records"] == second

    outcome = run_job("sync_to_ipaas", ["items"], instance=instance)  # the next run
    assert outcome.exit_code == 0, outcome.error
    assert _skus(world).count(first) == 1  # the one kept was retried by the run
    assert second not in _skus(world)  # the one discarded was not
    assert state.dead_letters_of(_engine(), "product_to_ipaas") == []


def test_retry_of_a_from_ipaas_dead_letter_writes_it_to_business_central(world, instance, tmp_path, monkeypatch,
                                                                        capsys):
    from bc_pipeline.clients.ipaas import IpaasClient
    from bc_pipeline.definitions import defs

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    product = world.ipaas("POST", "records/Product", json={
        "sku": "web-sku-tax", "name": "Shirt", "type": "Physical", "tracking_method": "Product", "status": "Active",
        "tax_class": "Clothing"})
    defs.resolve_job_def("sync_from_ipaas").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["bc_out", "product_from_ipaas"])], raise_on_error=False,
        run_config={"ops": {"bc_out__product_from_ipaas": {"config": {"ipaas_ids": [str(product["id"])]}}}})
    [letter] = state.dead_letters_of(_engine(), "product_from_ipaas")
    assert letter.code == "Internal_InvalidTableRelation"
    client = IpaasClient(load_settings())
    try:  # the fix, in iPaaS.com: no tax class BC does not know
        client.replace("Product", product["id"], {**client.get("Product", product["id"]), "tax_class": None})
    finally:
        client.close()
    assert main(["dead-letters", "retry", "--collection", "product_from_ipaas"]) == 0
    assert f"retried product_from_ipaas {product['id']}: landed (BC key WEB-SKU-TAX)" in capsys.readouterr().out
    assert [i["Description"] for i in world.handle.records("ItemCard", key="WEB-SKU-TAX")] == ["Shirt"]
    assert state.dead_letters_of(_engine(), "product_from_ipaas") == []
    assert main(["dead-letters", "retry", "--id", str(product["id"])]) == 0
    assert "No dead letters match." in capsys.readouterr().out

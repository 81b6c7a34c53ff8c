"""Items by Location's ledger-shaped rows, read in pages, become one iPaaS.com inventory record per item and location."""

from collections import defaultdict

import pytest

from bc_pipeline.mapping.fields import tenant_fields_by_service
from bc_pipeline.mapping.registry import to_ipaas_collections
from bc_pipeline.runner import run_job
from bc_pipeline.service_fields import MissingFieldsError, require_fields

pytestmark = pytest.mark.e2e


def _links(world, table):
    return {link["external_id"]: str(link["internal_id"]) for link in world.ipaas_links()
            if link["table_name"].lower() == table.lower() and not link.get("deleted")}


def test_qty_on_hand_is_the_remaining_quantity_summed_over_the_ledger_rows_of_an_item_and_location(world, instance):
    bc = world.handle
    rows = defaultdict(list)
    for row in bc.records("Itemsbylocation"):
        rows[(row["ItemNo"], row["LocationCode"])].append(row)
    ledger_shaped = [pair for pair, found in rows.items() if pair[1] and len(found) >= 3
                     and sum(r["RemainingQuantity"] for r in found) != sum(r["Quantity"] for r in found)]
    assert ledger_shaped, "the seed has an item and location with three open entries, some partly applied"

    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error
    extract = outcome.extracts["inventory_by_location"]
    assert extract["rows"] == sum(len(found) for found in rows.values())
    assert extract["pages"] >= 3  # the server's Max Page Size split it; every nextLink was followed

    products, locations = _links(world, "product"), _links(world, "location")
    inventory = {(str(i["parent_id"]), str(i["location_id"])): i for i in world.ipaas_records("Product Inventory")}
    checked = 0
    for item, location in ledger_shaped:
        if item not in products or location not in locations:
            continue  # a blocked item or an in-transit location is not sent: no parent to hang stock on
        record = inventory[(products[item], locations[location])]
        remaining = sum(r["RemainingQuantity"] for r in rows[(item, location)])
        assert record["qty_on_hand"] == record["qty_available"] == remaining, (item, location)
        checked += 1
    assert checked
    assert len(_links(world, "product inventory")) == len(inventory)
    linked_pairs = {(i, loc) for i, loc in rows if loc and i in products and loc in locations}
    assert len(inventory) == len(linked_pairs)


def _check_inventory_columns(collections):
    from bc_pipeline.clients.business_central import BusinessCentralClient
    from bc_pipeline.settings import load_settings

    client = BusinessCentralClient(load_settings())
    try:
        require_fields(client, tenant_fields_by_service(collections, ["inventory_by_location"]))
    finally:
        client.close()


RENAMED = {"ItemNo": "Item_No", "LocationCode": "Location_Code", "RemainingQuantity": "Remaining_Qty"}
LOAD_INVENTORY = """
import dagster as dg
from bc_pipeline.mapping.fields import tenant_fields_by_service
from bc_pipeline.mapping.registry import to_ipaas_collections
from bc_pipeline.runner import run_job
from bc_pipeline.service_fields import MissingFieldsError, require_fields

with dg.instance_for_test() as instance:
    outcome = run_job("initial_load", ["locations", "items", "inventory_by_location"], instance=instance)
    print(outcome.error or "", outcome.extracts.get("inventory_by_location", {}).get("filter"))
    assert outcome.success and not outcome.failed_records, outcome.failed_records
"""


def test_a_tenant_query_with_its_own_column_names_is_read_by_renaming_them_in_the_collection(tmp_path, monkeypatch):
    """Items by Location is a tenant's own query: its column names are the collection's settings (YAML only)."""
    import os
    import subprocess
    import sys

    from bc_pipeline.mapping.collection import COLLECTIONS_DIR
    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox
    from bc_pipeline_tests.conftest import World

    folder = tmp_path / "collections"
    folder.mkdir()
    text = (COLLECTIONS_DIR / "product_inventory_to_ipaas.yaml").read_text(encoding="utf-8")
    for standard, renamed in RENAMED.items():
        text = text.replace(standard, renamed)
    (folder / "product_inventory_to_ipaas.yaml").write_text(text, encoding="utf-8")

    config = SandboxConfig(scale=0.02, state_dir=tmp_path / "sb", itemsbylocation_names=RENAMED,
                           ipaas_rate_limit=100_000, ipaas_rate_window_seconds=60)
    with start_sandbox(config) as sandbox:
        rows = sandbox.records("Itemsbylocation")
        assert rows and "ItemNo" not in rows[0] and "Item_No" in rows[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_", "DAGSTER_"))}
        env.update(sandbox.env(), BC_PIPELINE_HOME=str(tmp_path / "home"), IPAAS_THROTTLE_LIMIT="100000")
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)
        with pytest.raises(MissingFieldsError) as refused:  # the shipped collection: this tenant's query lacks ItemNo
            _check_inventory_columns(to_ipaas_collections().values())
        assert str(refused.value).startswith("Itemsbylocation has no field 'ItemNo' (named in "
                                             "product_inventory_to_ipaas.yaml), 'LocationCode' (named in")

        env["BC_PIPELINE_COLLECTIONS_DIR"] = str(folder)
        done = subprocess.run([sys.executable, "-c", LOAD_INVENTORY], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

        world = World(sandbox, tmp_path / "home")
        products, locations = _links(world, "product"), _links(world, "location")
        expected = defaultdict(float)
        for row in rows:
            if row["Item_No"] in products and row["Location_Code"] in locations:
                expected[(products[row["Item_No"]], locations[row["Location_Code"]])] += row["Remaining_Qty"]
        landed = {(str(i["parent_id"]), str(i["location_id"])): i["qty_on_hand"]
                  for i in world.ipaas_records("Product Inventory")}
        assert expected and landed == pytest.approx(dict(expected))

"""Custom fields by YAML alone on products and sales orders: tenant fields the catalog never heard of, both ways."""

import json
import os
import subprocess
import sys

import pytest

from bc_pipeline.mapping.collection import COLLECTIONS_DIR

pytestmark = pytest.mark.e2e

# Runs in a process of its own, so the Dagster definitions are built from the user's collection folder.
SCRIPT = """
import json, sys
import dagster as dg
from bc_pipeline.runner import run_job
from bc_pipeline.definitions import defs

with dg.instance_for_test() as instance:
    if sys.argv[1] == "load":
        out = run_job("initial_load", ["customer_price_groups", "customers", "items", "sales_orders",
                                       "sales_order_lines"], instance=instance)
        print(json.dumps({"success": out.success, "errors": [out.error] if out.error else []}))
        sys.exit()
    slugs = sys.argv[2].split(",")
    ids = json.loads(sys.argv[3])
    result = defs.resolve_job_def("sync_from_ipaas").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["bc_out", slug]) for slug in slugs],
        run_config={"ops": {f"bc_out__{slug}": {"config": {"ipaas_ids": ids[slug]}}} for slug in slugs},
        raise_on_error=False)
    errors = [e.message for e in result.all_events if e.is_failure]
    print(json.dumps({"success": result.success, "errors": errors}))
"""


def _add_line(folder, name, marker, line):
    """The shipped collection with one line added after `marker` (at its end without one): YAML only."""
    text = (COLLECTIONS_DIR / name).read_text(encoding="utf-8")
    assert marker is None or marker in text
    (folder / name).write_text(text + line if marker is None else text.replace(marker, marker + line),
                               encoding="utf-8")


def _user_collections(tmp_path):
    folder = tmp_path / "collections"
    folder.mkdir()
    _add_line(folder, "product_to_ipaas.yaml", None, "  - {custom_field_name: Season, source: Season}\n")
    _add_line(folder, "product_from_ipaas.yaml", "  Net_Weight: {source: weight, type: number}\n",
              "  Season: {source: custom_fields.Season}\n")
    text = (COLLECTIONS_DIR / "sales_order_to_ipaas.yaml").read_text(encoding="utf-8")
    assert "custom_fields:" not in text
    _add_line(folder, "sales_order_to_ipaas.yaml", None,
              "custom_fields:\n  - {custom_field_name: WebChannel, source: WebChannel}\n")
    _add_line(folder, "sales_order_from_ipaas.yaml",
              "  Sell_to_E_Mail: {source: email_address, transforms: [trim, empty_as_null]}\n",
              "  WebChannel: {source: custom_fields.WebChannel}\n")
    return folder


def _run(folder, *args):
    env = {**os.environ, "BC_PIPELINE_COLLECTIONS_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _custom(record, name):
    return next((c.get("value") for c in record.get("custom_fields") or [] if c["custom_field_name"] == name), None)


def _links(world, table):
    return {str(link["internal_id"]): link["external_id"] for link in world.ipaas_links()
            if link["table_name"].lower() == table.lower() and not link.get("deleted")}


def test_tenant_fields_named_only_in_yaml_move_products_and_orders_both_ways(world, tmp_path):
    """Season (Item Card) and WebChannel (Sales Order): TO iPaaS.com as custom fields, and back into BC."""
    folder = _user_collections(tmp_path)
    assert _run(folder, "load") == {"success": True, "errors": []}

    items = {i["No"]: i["Season"] or None for i in world.handle.records("ItemCard")}
    products = {p["sku"]: _custom(p, "Season") for p in world.ipaas_records("Product")}
    assert products == {no: season for no, season in items.items() if no in products} and len(products) >= 3
    assert len(set(products.values()) - {None}) >= 2  # the seeded seasons, not one constant
    orders = {o["No"]: o["WebChannel"] or None for o in world.handle.records("SalesOrders")
              if o["Status"] == "Released"}
    sent = {t["transaction_number"]: _custom(t, "WebChannel") for t in world.ipaas_records("Transaction")}
    assert sent == orders and len(set(sent.values()) - {None}) >= 2

    product = world.ipaas("POST", "records/Product", json={
        "sku": "WEB-SEASON-1", "name": "Parasol 'Riviera' – ø 2 m", "type": "Physical",
        "tracking_method": "Product", "status": "Active", "default_price": 89.0,
        "custom_fields": [{"custom_field_name": "Season", "value": "SUMMER"}],
    })
    customer_id = next(i for i, no in _links(world, "customer").items()
                       if no in {c["No"] for c in world.handle.records("CustomerCard")
                                 if c.get("Blocked") in (None, "", " ", "_blank_")})
    sku = next(i["No"] for i in world.handle.records("ItemCard") if i["Type"] == "Inventory" and not i["Blocked"]
               and not i["Sales_Blocked"])
    transaction = world.ipaas("POST", "records/Transaction", json={
        "transaction_number": "WEB-CHANNEL-1", "type": "Order", "status": "Pending",
        "customer_id": int(customer_id), "email_address": "buyer@example.com",
        "custom_fields": [{"custom_field_name": "WebChannel", "value": "MARKETPLACE"}],
        "lines": [{"sequence_number": 1, "sku": sku, "description": "line 1", "qty": 2,
                   "unit_price": 9.5}],
    })
    ids = {"product_from_ipaas": [str(product["id"])], "sales_order_from_ipaas": [str(transaction["id"])]}
    outcome = _run(folder, "write", "product_from_ipaas,sales_order_from_ipaas", json.dumps(ids))
    assert outcome == {"success": True, "errors": []}

    [item] = world.handle.records("ItemCard", key="WEB-SEASON-1")
    assert item["Season"] == "SUMMER"
    [order] = [o for o in world.handle.records("SalesOrders") if o["External_Document_No"] == "WEB-CHANNEL-1"]
    assert order["WebChannel"] == "MARKETPLACE"

"""Posted sales invoices become Invoice transactions related to their order; item categories become product categories."""

from collections import Counter

import pytest

from bc_pipeline.runner import run_job
from bc_pipeline_tests.defs.test_inventory_e2e import _links

pytestmark = pytest.mark.e2e


def test_every_posted_invoice_lands_once_as_an_invoice_with_its_lines_tracking_and_order(world, instance):
    bc = world.handle
    invoices = {i["No"]: i for i in bc.records("PostedSalesInvoices")}
    lines = Counter(line["Document_No"] for line in bc.records("PostedSalesInvoiceLines") if line["Type"] != "_blank_")
    orders = {o["No"] for o in bc.records("SalesOrders")}
    from_orders = [i for i in invoices.values() if i["Order_No"] in orders]
    assert from_orders and any(not i["Order_No"] for i in invoices.values()), "the seed has both kinds"

    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error

    transactions = {t["transaction_number"]: t for t in world.ipaas_records("Transaction")}
    invoice_links, order_links = _links(world, "transaction"), _links(world, "transaction")
    customers = _links(world, "customer")
    landed = {no: transactions[no] for no in invoices if no in transactions}
    assert set(landed) == set(invoices)
    for no, invoice in invoices.items():
        sent = landed[no]
        assert sent["type"] == "Invoice"
        assert str(sent["id"]) == invoice_links[no]
        assert str(sent["customer_id"]) == customers[invoice["Sell_to_Customer_No"]]
        assert len(sent["lines"]) == lines[no]
        assert sent["total_qty"] == pytest.approx(sum(line["qty"] for line in sent["lines"]))
        if invoice["Order_No"] in order_links and invoice["Order_No"] in orders:
            assert str(sent["transaction_parent_id"]) == order_links[invoice["Order_No"]], no
            assert transactions[invoice["Order_No"]]["type"] == "Order"
        else:
            assert sent["transaction_parent_id"] is None, no
        tracking = [t["tracking_number"] for t in sent["tracking"]]
        assert tracking == ([invoice["Package_Tracking_No"]] if invoice["Package_Tracking_No"] else []), no
    related = [t for t in landed.values() if t["transaction_parent_id"]]
    assert len(related) == len([i for i in from_orders if i["Order_No"] in order_links])
    assert related

    # Exactly once: a second run sends no invoice again, and every invoice number is there once.
    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error
    numbers = Counter(t["transaction_number"] for t in world.ipaas_records("Transaction") if t["type"] == "Invoice")
    assert numbers == Counter(set(invoices))


def test_item_categories_land_as_a_product_category_tree_and_each_product_in_its_category(world, instance):
    bc = world.handle
    categories = {c["Code"]: c for c in bc.records("ItemCategoryCard")}
    assert any(c["Parent_Category"] for c in categories.values())

    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error

    landed = {str(c["id"]): c for c in world.ipaas_records("Product Category")}
    linked = _links(world, "Product Category")
    assert set(linked) == set(categories) and len(landed) == len(categories)
    for code, category in categories.items():
        sent = landed[linked[code]]
        assert sent["name"] == code and sent["description"] == category["Description"]
        parent = category["Parent_Category"]
        assert (str(sent["parent_id"]) if sent["parent_id"] is not None else None) == (linked[parent] if parent else None)

    products = {str(p["id"]): p for p in world.ipaas_records("Product")}
    items = {i["No"]: i for i in bc.records("ItemCard")}
    checked = 0
    for no, product_id in _links(world, "product").items():
        code = items[no]["Item_Category_Code"]
        assigned = [str(a["category_id"]) for a in products[product_id]["categories"]]
        assert assigned == ([linked[code]] if code else []), no
        checked += bool(code)
    assert checked


def test_inventory_at_a_location_not_linked_yet_creates_the_location_first_then_the_inventory(world, instance):
    bc = world.handle
    held = {(r["ItemNo"], r["LocationCode"]) for r in bc.records("Itemsbylocation") if r["LocationCode"]}
    # Locations are not in this run: every inventory record's location is unlinked when the inventory loads.
    outcome = run_job("sync_to_ipaas", ["items", "item_categories", "inventory_by_location"], full_refresh=True,
                      instance=instance)
    assert outcome.success, outcome.error
    assert "location_to_ipaas" not in outcome.loads

    products, locations = _links(world, "product"), _links(world, "location")
    expected = {(item, loc) for item, loc in held if item in products}
    assert {loc for _, loc in expected} == set(locations)
    landed = {(str(i["parent_id"]), str(i["location_id"])) for i in world.ipaas_records("Product Inventory")}
    assert landed == {(products[item], locations[loc]) for item, loc in expected}
    names = Counter(loc["name"] for loc in world.ipaas_records("Location"))
    assert set(names) == set(locations) and set(names.values()) == {1}

    # The location collection's own run later finds them linked: no second location.
    outcome = run_job("initial_load", instance=instance)
    assert outcome.success, outcome.error
    names = Counter(loc["name"] for loc in world.ipaas_records("Location"))
    assert set(names.values()) == {1}
    assert outcome.loads["location_to_ipaas"]["created"] == len(names) - len(locations)

"""The preview's comparison and what it shows: field by field, capped, in load order."""

from bc_pipeline.mapping.registry import to_ipaas_collections
from bc_pipeline.preview import (Change, CollectionPreview, Planned, TO_IPAAS, in_load_order, payload_changes,
                                 render_markdown, render_terminal, same)


def test_values_the_services_hold_alike_are_the_same():
    assert same(12, "12") and same(12.0, 12) and same(None, "") and same("", None)
    assert not same(True, "1") and not same("a", "b") and not same(None, "x") and not same(1.5, 1.25)


def test_a_payload_is_compared_field_by_field_with_custom_fields_and_lines():
    current = {"id": 7, "name": "Adatum", "phone_number": "+1 555 0100", "email_address": None, "note": "kept",
               "custom_fields": [{"custom_field_name": "CatItemGroup", "value": "FOOD"}],
               "lines": [{"id": 1, "sku": "A", "qty": 2}, {"id": 2, "sku": "B", "qty": 1}, {"id": 3, "sku": "C", "qty": 1}]}
    payload = {"name": "Adatum", "phone_number": "+1 555 0199", "email_address": "", "status": "Active",
               "custom_fields": [{"custom_field_name": "CatItemGroup", "value": "DRINKS"}],
               "lines": [{"sku": "A", "qty": 3}, {"sku": "B", "qty": 1.0}]}
    changes = [(c.field, c.old, c.new) for c in payload_changes(payload, current, ["lines"])]
    assert changes == [
        ("phone_number", "+1 555 0100", "+1 555 0199"),
        ("custom_fields.CatItemGroup", "FOOD", "DRINKS"),
        ("lines[1].qty", 2, 3),
        ("lines[3]", "(there now)", None),
    ]  # status: not a field the service returns, so not one it keeps; "note": not the mapping's


def _preview(updates: int) -> CollectionPreview:
    p = CollectionPreview("Dynamics Company Add/Update to iPaaS", "company_to_ipaas", TO_IPAAS)
    for i in range(updates):
        p.add(Planned("updated", f"C{i:05d}", target=str(i), changes=[Change("phone_number", "old", f"new {i}")]))
    p.add(Planned("created", "NEW1", reason="name 'New'"))
    p.add(Planned("refused", "BAD1", reason="Customer_Price_Group 'X' is not linked in iPaaS.com table 'customer category'"))
    p.add(Planned("unchanged", "SAME1", target="99"))
    return p


def test_the_terminal_shows_a_table_and_the_first_records_with_a_count_of_the_rest():
    text = render_terminal([_preview(25)], limit=20)
    assert "nothing was written" in text
    assert "| company_to_ipaas" in text
    assert "~ updated C00000 (iPaaS.com id 0)" in text
    assert "    phone_number: 'old' -> 'new 0'" in text
    assert "C00019" in text and "C00020" not in text
    assert "… and 7 more records" in text  # 25 updates + 1 create + 1 refusal, 20 shown


def test_the_ui_gets_markdown_with_counts_and_each_change():
    p = _preview(2)
    text = render_markdown(p)
    assert text.startswith("**1 to create, 2 to update, 1 unchanged, 1 refused")
    assert "- ~ updated `C00001` (iPaaS.com id 1)" in text
    assert "    - `phone_number`: 'old' -> 'new 1'" in text
    assert "- ! refused `BAD1`: Customer_Price_Group" in text
    assert CollectionPreview.from_json(p.to_json()) == p


def test_collections_are_previewed_parents_first_as_a_run_loads_them():
    collections = to_ipaas_collections()
    order = [c.slug for c in in_load_order(list(reversed(list(collections.values()))))]
    assert order.index("customer_category_to_ipaas") < order.index("company_to_ipaas")
    assert order.index("product_to_ipaas") < order.index("product_inventory_to_ipaas")
    assert order.index("sales_order_to_ipaas") < order.index("transaction_tracking_to_ipaas")
    assert sorted(order) == sorted(collections)

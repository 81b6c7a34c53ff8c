"""Echo fingerprints: each direction finds the collection that reads its writes back, and what that one reads."""

from bc_pipeline.echoes import from_counterpart, ipaas_fingerprint, to_counterparts
from bc_pipeline.mapping.registry import from_ipaas_collections, to_ipaas_collections

ORDER = {
    "id": 7, "transaction_number": "WEB-1", "type": "Order", "status": "Pending", "customer_id": 3,
    "email_address": "a@example.com", "updated_datetime": "2026-12-01T10:00:00Z",
    "addresses": [{"id": 1, "type": "Billing", "is_primary_billing": True, "city": "Chicago"},
                  {"id": 2, "type": "Shipping", "is_primary_shipping": True, "city": "Atlanta", "company": "Adatum"}],
    "lines": [{"id": 11, "sequence_number": 10000, "sku": "1000", "qty": 2, "unit_price": 9.5, "qty_shipped": 0}],
}


def test_each_direction_finds_the_collections_that_read_its_writes_back():
    to, back = to_ipaas_collections(), from_ipaas_collections()
    assert from_counterpart(to["company_to_ipaas"]) is back["company_from_ipaas"]
    assert from_counterpart(to["contact_to_ipaas"]) is back["customer_from_ipaas"]  # contacts are iPaaS.com customers
    assert from_counterpart(to["sales_order_to_ipaas"]) is back["sales_order_from_ipaas"]
    assert from_counterpart(to["transaction_tracking_to_ipaas"]) is None  # a child of the transaction, not read back
    assert from_counterpart(to["location_to_ipaas"]) is None
    # Company relationships (update_only) read nothing a FROM write sets: not fingerprinted, no read of contacts.
    assert {c.slug for c in to_counterparts(back["company_from_ipaas"])} == {"company_to_ipaas", "customer_to_ipaas"}
    assert [c.slug for c in to_counterparts(back["product_from_ipaas"])] == ["product_to_ipaas"]


def test_a_fingerprint_changes_with_what_the_way_back_maps_and_with_nothing_else():
    orders = from_ipaas_collections()["sales_order_from_ipaas"]
    before = ipaas_fingerprint(orders, ORDER)
    unread = {**ORDER, "updated_datetime": "2026-12-02T08:00:00Z", "external_ids": [{"system_id": 1}],
              "tracking": [{"id": 5}], "lines": [{**ORDER["lines"][0], "qty_shipped": 2}],
              "addresses": [{**ORDER["addresses"][0], "city": "Boston"}, ORDER["addresses"][1]]}
    assert ipaas_fingerprint(orders, unread) == before  # billing address, shipped quantity, links: not mapped back
    assert ipaas_fingerprint(orders, {**ORDER, "lines": [{**ORDER["lines"][0], "qty": 3}]}) != before
    assert ipaas_fingerprint(orders, {**ORDER, "addresses": [ORDER["addresses"][0], {
        **ORDER["addresses"][1], "city": "Boston"}]}) != before
    assert ipaas_fingerprint(orders, {**ORDER, "status": "Shipped"}) != before  # the filter reads it

"""The iPaaS.com stand-in, in process (the HTTPS server around it is tested elsewhere)."""

from __future__ import annotations

import json
import time

import pytest
from starlette.testclient import TestClient

from bc_pipeline.sandbox.ipaas import build_ipaas_app
from bc_pipeline.sandbox.ipaas_endpoints import ENDPOINTS

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SYSTEM = "1001"
PRODUCT = {"sku": "10000", "name": "Bicycle", "type": "Physical", "tracking_method": "Product", "status": "Active"}


def client(**config) -> TestClient:
    return TestClient(build_ipaas_app({"api_token": TOKEN, "system_id": SYSTEM, **config}))


@pytest.fixture
def api() -> TestClient:
    return client()


def post(c, path, body, status=201):
    r = c.post(path, json=body, headers=AUTH)
    assert r.status_code == status, r.text
    return r.json()


def link(c, domain, table, external_id, internal_id):
    body = {"table_name": table, "system_id": int(SYSTEM), "external_id": external_id, "internal_id": str(internal_id)}
    return post(c, f"/{domain}/v2/External/UpdateExternalId", body, 200)


def assert_error(r, status, field=None, text=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"errors", "status", "correlation_id"} and body["status"] == status
    assert body["correlation_id"] == r.headers["X-Correlation-Id"]
    if field is not None:
        assert body["errors"][0]["field"] == field
    if text is not None:
        assert text in body["errors"][0]["message"], body


def test_bearer_auth_is_required(api):
    assert_error(api.get("/products/v2/Catalog/Products"), 401, "Authorization")
    assert_error(api.get("/products/v2/Catalog/Products", headers={"Authorization": "Bearer wrong"}), 401)
    r = api.get("/products/v2/Catalog/Products", headers=AUTH)
    assert r.status_code == 200 and r.json() == [] and r.headers["X-Correlation-Id"]
    login = api.post("/sso/v2/Auth/Login", json={"api_key": "x"})
    assert login.status_code == 200 and login.json()["access_token"] == TOKEN
    assert_error(api.get("/products/v2/Catalog/Nothing", headers=AUTH), 404)


def test_create_read_and_put_replaces_the_whole_record(api):
    created = post(api, "/products/v2/Catalog/Product", {
        **PRODUCT, "description": "Red bicycle", "default_price": 499.5, "ignored_field": 1,
        "custom_fields": [{"custom_field_name": "CatItemGroup", "value": "BIKES"}]})
    assert created["id"] == 1 and created["tracking_guid"] and created["created_datetime"]
    assert "ignored_field" not in created and created["external_ids"] == [] and created["inventory"] == []
    assert api.get("/products/v2/Catalog/Product/1", headers=AUTH).json() == created

    r = api.put("/products/v2/Catalog/Product/1", json={**PRODUCT, "name": "Bike"}, headers=AUTH)
    assert r.status_code == 200
    replaced = api.get("/products/v2/Catalog/Product/1", headers=AUTH).json()
    assert replaced["name"] == "Bike"
    assert replaced["description"] is None and replaced["default_price"] is None and replaced["custom_fields"] == []
    assert replaced["tracking_guid"] == created["tracking_guid"]
    assert replaced["created_datetime"] == created["created_datetime"]

    assert_error(api.put("/products/v2/Catalog/Product/1", json={"sku": "10000"}, headers=AUTH), 400, "name")
    assert_error(api.get("/products/v2/Catalog/Product/99", headers=AUTH), 404)
    assert api.delete("/products/v2/Catalog/Product/1", headers=AUTH).status_code == 204
    assert_error(api.get("/products/v2/Catalog/Product/1", headers=AUTH), 404)


def test_validation_rules(api):
    missing = api.post("/products/v2/Catalog/Product", json={"sku": "1", "name": "x"}, headers=AUTH)
    assert_error(missing, 400, "type")
    post(api, "/products/v2/Catalog/Location", {"name": "MAIN", "description": "Main warehouse"})
    assert_error(api.post("/products/v2/Catalog/Location", json={"name": "MAIN"}, headers=AUTH), 400, "name", "already exists")
    post(api, "/products/v2/Catalog/Location", {"name": "main"})  # names are case-sensitive
    post(api, "/transactions/v2/ShippingMethod", {"name": "DHL"})
    assert_error(api.post("/transactions/v2/ShippingMethod", json={"name": "DHL"}, headers=AUTH), 400, "name")
    post(api, "/customers/v2/Customer/Category", {"name": "RETAIL"})
    assert_error(api.post("/customers/v2/Customer/Category", json={"name": "RETAIL"}, headers=AUTH), 400, "name")
    post(api, "/customers/v2/Customer", {"first_name": "Ann", "email_address": "ann@example.com"})
    dup = api.post("/customers/v2/Customer", json={"email_address": "ANN@example.com"}, headers=AUTH)
    assert_error(dup, 400, "email_address")

    empty = {**PRODUCT, "custom_fields": [{"custom_field_name": "CatItemGroup", "value": ""}]}
    assert_error(api.post("/products/v2/Catalog/Product", json=empty, headers=AUTH), 400,
                 "custom_fields[0].value", "CatItemGroup")
    line = {"transaction_number": "S1", "type": "Order", "status": "Pending",
            "lines": [{"sku": "1", "custom_fields": [{"custom_field_name": "Note", "value": None}]}]}
    assert_error(api.post("/transactions/v2/Transaction", json=line, headers=AUTH), 400, text="Note")
    bad_type = {"transaction_number": "S1", "type": "Sales Order", "status": "Pending"}
    assert_error(api.post("/transactions/v2/Transaction", json=bad_type, headers=AUTH), 400, "type")
    orphan = {"parent_id": 77, "location_id": 1, "qty_on_hand": 3}
    assert_error(api.post("/products/v2/Catalog/Product/Inventory", json=orphan, headers=AUTH), 400, "parent_id")
    assert_error(api.post("/customers/v2/Customer/42/Address", json={"city": "X"}, headers=AUTH), 404)
    assert_error(api.post("/products/v2/Catalog/Location", content=b"{not json", headers=AUTH), 400)


def test_paging_with_x_pagination_and_filters(api):
    for n in range(1, 26):
        post(api, "/products/v2/Catalog/Location", {"name": f"LOC-{n:02d}"})
    seen, pages = [], []
    for number in (1, 2, 3):
        r = api.get(f"/products/v2/Catalog/Locations?pageNumber={number}&pageSize=10", headers=AUTH)
        assert r.status_code == 200
        pages.append(json.loads(r.headers["X-Pagination"]))
        seen += [loc["name"] for loc in r.json()]
    assert seen == [f"LOC-{n:02d}" for n in range(1, 26)]
    assert pages[0] == {"total_Count": 25, "page_Size": 10, "current_Page": 1, "total_Pages": 3,
                        "previous_Page": "No", "next_Page": "Yes"}
    assert pages[2]["current_Page"] == 3 and pages[2]["next_Page"] == "No"
    default = api.get("/products/v2/Catalog/Locations", headers=AUTH)
    assert json.loads(default.headers["X-Pagination"])["page_Size"] == 100 and len(default.json()) == 25
    found = api.get("/products/v2/Catalog/Locations?action=equals&Name=loc-07", headers=AUTH).json()
    assert [loc["id"] for loc in found] == [7]
    assert_error(api.get("/products/v2/Catalog/Locations?Colour=red", headers=AUTH), 400, "Colour")
    assert_error(api.get("/products/v2/Catalog/Locations?pageNumber=0", headers=AUTH), 400)


def test_external_ids_link_lookup_and_special_characters(api):
    post(api, "/products/v2/Catalog/Product", PRODUCT)
    lookup = "/products/v2/External/LookupSpaceport/1001/product/10000"
    assert_error(api.get(lookup, headers=AUTH), 404)
    answer = link(api, "products", "product", "10000", 1)
    assert answer["internal_id"] == "1" and answer["table_name"] == "product"
    r = api.get(lookup, headers=AUTH)
    assert r.status_code == 200 and r.text == '"1"'
    assert api.get("/products/v2/External/LookupSpaceport/1001/PRODUCT/10000", headers=AUTH).json() == "1"
    assert api.get("/products/v2/External/LookupExternal/1/1001/product", headers=AUTH).json() == "10000"
    ext = api.get("/products/v2/Catalog/Product/1", headers=AUTH).json()["external_ids"]
    assert ext == [{"id": answer["id"], "system_id": SYSTEM, "system_name": "MSD 365", "external_id": "10000",
                    "internal_id": "1", "message": None}]

    odd = "O'Brien/1 | x"
    customer = post(api, "/customers/v2/Customer", {"last_name": "O'Brien", "email_address": "ob@example.com"})
    link(api, "customers", "customer", odd, customer["id"])
    special = {"table_name": "customer", "system_id": SYSTEM, "external_id": odd}
    r = api.post("/customers/v2/External/LookupSpecial", json=special, headers=AUTH)
    assert r.status_code == 200 and r.json() == str(customer["id"])
    assert_error(api.get("/customers/v2/External/LookupSpaceport/1001/customer/O'Brien%2F1%20%7C%20x",
                         headers=AUTH), 400, text="LookupSpecial")

    assert_error(api.post("/customers/v2/External/UpdateExternalId", json={**special, "internal_id": "999"},
                          headers=AUTH), 404)
    assert_error(api.post("/customers/v2/External/UpdateExternalId",
                          json={**special, "table_name": "product", "internal_id": "1"}, headers=AUTH), 400)
    assert_error(api.post("/customers/v2/External/UpdateExternalId",
                          json={**special, "table_name": "nope", "internal_id": "1"}, headers=AUTH), 400, "table_name")

    post(api, "/products/v2/Catalog/Product", {**PRODUCT, "sku": "10001"})
    link(api, "products", "product", "10000", 2)  # re-link to another record
    assert api.get(lookup, headers=AUTH).json() == "2"
    assert api.get("/products/v2/Catalog/Product/1", headers=AUTH).json()["external_ids"] == []


def test_deleted_records_answer_deleted(api):
    post(api, "/products/v2/Catalog/Product", PRODUCT)
    link(api, "products", "product", "10000", 1)
    assert api.delete("/products/v2/Catalog/Product/1", headers=AUTH).status_code == 204
    assert api.get("/products/v2/External/LookupSpaceport/1001/product/10000", headers=AUTH).json() == "DELETED:1"
    assert api.get("/products/v2/External/LookupExternal/1/1001/product", headers=AUTH).json() == "DELETED:10000"
    special = {"table_name": "product", "system_id": SYSTEM, "external_id": "10000"}
    assert api.post("/products/v2/External/LookupSpecial", json=special, headers=AUTH).json() == "DELETED:1"
    post(api, "/products/v2/Catalog/Product", PRODUCT)  # same SKU is free again
    link(api, "products", "product", "10000", 2)
    assert api.get("/products/v2/External/LookupSpaceport/1001/product/10000", headers=AUTH).json() == "2"


def test_customer_addresses_and_company_share_the_customer_table(api):
    company = post(api, "/customers/v2/Customer/Company", {
        "name": "Adatum", "addresses": [{"address_1": "1 Main St", "city": "Atlanta", "is_primary_billing": True}]})
    person = post(api, "/customers/v2/Customer", {"first_name": "Ann", "email_address": "a@x.com"})
    assert person["id"] != company["id"]  # one id sequence for both, so "customer" links are unambiguous
    link(api, "customers", "customer", "C10000", company["id"])
    address_id = company["addresses"][0]["id"]
    link(api, "customers", "Address", f"C10000|{address_id}", address_id)
    post(api, f"/customers/v2/Customer/Company/{company['id']}/Address", {"address_1": "2 Side St"})
    listed = api.get(f"/customers/v2/Customer/Company/{company['id']}/Addresses", headers=AUTH).json()
    assert [a["address_1"] for a in listed] == ["1 Main St", "2 Side St"]

    r = api.put(f"/customers/v2/Customer/Company/{company['id']}", json={"name": "Adatum Corp"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["addresses"] == []  # left out, so replaced by nothing
    special = {"table_name": "Address", "system_id": SYSTEM, "external_id": f"C10000|{address_id}"}
    assert api.post("/customers/v2/External/LookupSpecial", json=special, headers=AUTH).json() == f"DELETED:{address_id}"
    assert r.json()["external_ids"][0]["external_id"] == "C10000"


def test_a_companys_relationships_name_existing_customers_once_and_its_parent_is_a_company(api):
    parent = post(api, "/customers/v2/Customer/Company", {"name": "O'Brien Holding"})
    person = post(api, "/customers/v2/Customer", {"first_name": "Zoë", "email_address": "zoe@x.com"})
    company = post(api, "/customers/v2/Customer/Company", {
        "name": "Müller GmbH", "parent_company_id": parent["id"],
        "relationships": [{"customer_id": person["id"], "type": "Contact"}]})
    assert company["relationships"] == [{"customer_id": person["id"], "type": "Contact"}]
    body = {"name": "Müller GmbH", "relationships": [{"customer_id": parent["id"]}]}
    assert_error(api.put(f"/customers/v2/Customer/Company/{company['id']}", json=body, headers=AUTH), 400,
                 "relationships[0].customer_id", "does not exist (Customer)")
    twice = {"name": "Müller GmbH", "relationships": [{"customer_id": person["id"]}] * 2}
    assert_error(api.put(f"/customers/v2/Customer/Company/{company['id']}", json=twice, headers=AUTH), 400,
                 "relationships[1].customer_id", "twice")
    assert_error(api.post("/customers/v2/Customer/Company", json={"name": "X", "parent_company_id": person["id"]},
                          headers=AUTH), 400, "parent_company_id")
    r = api.put(f"/customers/v2/Customer/Company/{company['id']}", json={"name": "Müller GmbH"}, headers=AUTH)
    assert r.json()["relationships"] == [] and r.json()["parent_company_id"] is None  # a PUT replaces them


def test_transactions_with_nested_children_and_tracking(api):
    customer = post(api, "/customers/v2/Customer", {"email_address": "buyer@example.com"})
    order = post(api, "/transactions/v2/Transaction", {
        "transaction_number": "101005", "type": "Order", "status": "Pending", "customer_id": customer["id"],
        "lines": [{"sku": "1000", "qty": 2, "unit_price": 10}, {"sku": "1001", "qty": 1}],
        "addresses": [{"type": "Shipping", "city": "Atlanta"}], "payments": [{"method": "Card", "amount": 30}]})
    lines = order["lines"]
    assert [line["sequence_number"] is None and line["parent_id"] == order["id"] for line in lines] == [True, True]
    link(api, "transactions", "Transaction Line", "101005|10000", lines[0]["id"])
    tracking = post(api, f"/transactions/v2/Transaction/{order['id']}/Tracking",
                    {"tracking_number": "1Z999", "shipping_method": "UPS"})
    assert api.get(f"/transactions/v2/Transaction/{order['id']}/Tracking/{tracking['id']}",
                   headers=AUTH).json()["tracking_number"] == "1Z999"
    full = api.get(f"/transactions/v2/Transaction/{order['id']}", headers=AUTH).json()
    assert full["tracking"][0]["id"] == tracking["id"] and full["lines"][0]["external_ids"][0]["external_id"] == "101005|10000"

    keep = {k: full[k] for k in ("transaction_number", "type", "status", "customer_id")}
    r = api.put(f"/transactions/v2/Transaction/{order['id']}", json={**keep, "lines": [full["lines"][1]]}, headers=AUTH)
    assert r.status_code == 200, r.text
    after = r.json()
    assert [line["id"] for line in after["lines"]] == [lines[1]["id"]]
    assert after["tracking"] == [] and after["payments"] == []
    special = {"table_name": "Transaction Line", "system_id": SYSTEM, "external_id": "101005|10000"}
    assert api.post("/transactions/v2/External/LookupSpecial", json=special,
                    headers=AUTH).json() == f"DELETED:{lines[0]['id']}"
    bad_customer = {**keep, "customer_id": 999}
    assert_error(api.post("/transactions/v2/Transaction", json=bad_customer, headers=AUTH), 400, "customer_id")


def test_rate_limit_answers_429_with_retry_after():
    c = client(rate_limit=5, rate_window_seconds=30)
    for _ in range(5):
        assert c.get("/products/v2/Catalog/Products", headers=AUTH).status_code == 200
    r = c.get("/products/v2/Catalog/Products", headers=AUTH)
    assert_error(r, 429, text="rate limit")
    assert 1 <= int(r.headers["Retry-After"]) <= 30
    stats = c.get("/_sandbox/ipaas/stats").json()
    assert stats["rate_limited"] == 1 and stats["responses_429"] == 1 and stats["peak_in_window"] == 5
    fast = client(rate_limit=2, rate_window_seconds=0.2)
    assert [fast.get("/products/v2/Catalog/Products", headers=AUTH).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.25)
    assert fast.get("/products/v2/Catalog/Products", headers=AUTH).status_code == 200


def test_fault_switch_and_reject_rule(api):
    r = api.post("/_sandbox/ipaas/faults", json={"status": 503, "count": 2, "retry_after": 3, "path_prefix": "/products"})
    assert r.status_code == 201
    first = api.get("/products/v2/Catalog/Products", headers=AUTH)
    assert_error(first, 503)
    assert first.headers["Retry-After"] == "3"
    assert api.get("/customers/v2/Customers", headers=AUTH).status_code == 200  # other prefixes unaffected
    assert api.get("/products/v2/Catalog/Products", headers=AUTH).status_code == 503
    assert api.get("/products/v2/Catalog/Products", headers=AUTH).status_code == 200  # count used up
    api.post("/_sandbox/ipaas/faults", json={"status": 500, "count": -1})
    assert api.get("/customers/v2/Customers", headers=AUTH).status_code == 500
    assert api.delete("/_sandbox/ipaas/faults").status_code == 200
    assert api.get("/customers/v2/Customers", headers=AUTH).status_code == 200

    rule = {"reject": {"model": "Product", "field": "sku", "equals": "10020", "message": "SKU 10020 is blocked"}}
    assert api.post("/_sandbox/ipaas/faults", json=rule).status_code == 201
    assert_error(api.post("/products/v2/Catalog/Product", json={**PRODUCT, "sku": "10020"}, headers=AUTH),
                 400, "sku", "SKU 10020 is blocked")
    post(api, "/products/v2/Catalog/Product", PRODUCT)
    api.delete("/_sandbox/ipaas/faults?kind=reject")
    post(api, "/products/v2/Catalog/Product", {**PRODUCT, "sku": "10020"})
    line_rule = {"reject": {"model": "Transaction", "field": "lines.sku", "equals": "BAD"}}
    api.post("/_sandbox/ipaas/faults", json=line_rule)
    order = {"transaction_number": "1", "type": "Order", "status": "Pending", "lines": [{"sku": "OK"}, {"sku": "BAD"}]}
    assert_error(api.post("/transactions/v2/Transaction", json=order, headers=AUTH), 400, "lines.sku")


def test_admin_read_outs():
    c = client(preload={"Company": [{"name": "Adatum Corporation"}],
                        "Customer": [{"email_address": "ann@example.com", "external_ids": [{"external_id": "OLD-1"}]}]})
    companies = c.get("/customers/v2/Customer/Companies?action=equals&Name=adatum corporation", headers=AUTH).json()
    assert [x["name"] for x in companies] == ["Adatum Corporation"]
    assert c.get("/customers/v2/Customers?action=equals&EmailAddress=ANN@example.com", headers=AUTH).json()[0]["id"] == 2
    made = c.post("/_sandbox/ipaas/records/Shipping Method", json={"name": "FEDEX"})
    assert made.status_code == 201 and made.json()["id"] == 1
    assert [m["name"] for m in c.get("/_sandbox/ipaas/records/shipping%20method").json()] == ["FEDEX"]
    assert c.get("/_sandbox/ipaas/records/Nope").status_code == 404

    links = c.get("/_sandbox/ipaas/links").json()
    assert [(x["table_name"], x["external_id"], x["internal_id"], x["deleted"]) for x in links] == [
        ("customer", "OLD-1", "2", False)]
    assert c.delete("/_sandbox/ipaas/links/customer/OLD-1").status_code == 200
    assert c.get("/customers/v2/External/LookupSpaceport/1001/customer/OLD-1", headers=AUTH).status_code == 404
    assert c.get("/_sandbox/ipaas/links").json() == []

    log = c.get("/_sandbox/ipaas/requests?since=0").json()
    assert [(e["seq"], e["method"], e["status"]) for e in log] == [(1, "GET", 200), (2, "GET", 200), (3, "GET", 404)]
    assert log[2]["path"] == "/customers/v2/External/LookupSpaceport/1001/customer/OLD-1"
    assert [e["seq"] for e in c.get("/_sandbox/ipaas/requests?since=2").json()] == [3]
    stats = c.get("/_sandbox/ipaas/stats").json()
    assert stats["by_model"] == {"Company": {"GET": 1}, "Customer": {"GET": 1}, "External": {"GET": 1}}
    assert stats["records"]["Shipping Method"] == 1
    assert c.post("/_sandbox/ipaas/reset").status_code == 200
    assert c.get("/_sandbox/ipaas/records/Shipping Method").json() == []
    assert len(c.get("/_sandbox/ipaas/records/Company").json()) == 1  # the preload comes back


def test_endpoint_table_is_consistent():
    seen = set()
    for ep in ENDPOINTS:
        assert (ep.method, ep.path.lower()) not in seen
        seen.add((ep.method, ep.path.lower()))
        assert ep.path.split("/")[0] in ("customers", "products", "transactions", "sso", "hookapi", "{domain}")


def test_ten_thousand_writes_are_quick():
    app = build_ipaas_app({"api_token": TOKEN})
    store = app.state.ipaas.store
    started = time.perf_counter()
    for n in range(10_000):
        rec = store.create("Product", {**PRODUCT, "sku": f"S{n}"})
        store.link("product", SYSTEM, f"S{n}", rec["id"])
        assert store.find(store_model("Product"), "sku", f"S{n}") == [rec["id"]]
    assert time.perf_counter() - started < 5
    c = TestClient(app)
    started = time.perf_counter()
    for n in range(200):
        post(c, "/products/v2/Catalog/Location", {"name": f"L{n}"})
    r = c.get("/products/v2/Catalog/Products?pageNumber=100&pageSize=100", headers=AUTH)
    assert len(r.json()) == 100 and json.loads(r.headers["X-Pagination"])["total_Pages"] == 100
    assert time.perf_counter() - started < 5


def store_model(name):
    from bc_pipeline.sandbox.ipaas_store import MODELS

    return MODELS[name]


def test_inventory_and_failed_writes_leave_nothing_behind():
    app = build_ipaas_app({"api_token": TOKEN})
    api = TestClient(app)
    post(api, "/products/v2/Catalog/Product", PRODUCT)
    post(api, "/products/v2/Catalog/Location", {"name": "MAIN"})
    stock = post(api, "/products/v2/Catalog/Product/Inventory",
                 {"parent_id": 1, "location_id": "1", "qty_on_hand": 5, "qty_available": 5})
    assert api.get("/products/v2/Catalog/Product/1", headers=AUTH).json()["inventory"][0]["id"] == stock["id"]
    twin = api.post("/products/v2/Catalog/Product/Inventory", json={"parent_id": 1, "location_id": 1}, headers=AUTH)
    assert_error(twin, 400, "location_id")
    assert_error(api.post("/products/v2/Catalog/Product/Inventory", json={"parent_id": 1, "location_id": 9},
                          headers=AUTH), 400, "location_id")

    bad = {"transaction_number": "1", "type": "Order", "status": "Pending", "lines": [{"sku": "A"}],
           "tracking": [{"tracking_number": "1Z", "custom_fields": [{"custom_field_name": "Carrier", "value": " "}]}]}
    assert_error(api.post("/transactions/v2/Transaction", json=bad, headers=AUTH), 400, "tracking[0].custom_fields[0].value")
    store = app.state.ipaas.store
    assert store.records["Transaction"] == {} and store.nested_owner["Transaction Line"] == {}
    bad_link = {"name": "Adatum", "external_ids": [{"system_id": SYSTEM}]}
    assert_error(api.post("/customers/v2/Customer/Company", json=bad_link, headers=AUTH), 400)
    assert store.records["Company"] == {}


def test_starts_empty_unless_preseeded():
    empty = build_ipaas_app({"seed": 42, "scale": 1.0, "state_dir": "/tmp/x"}).state.ipaas.store
    assert all(not records for records in empty.records.values())
    seeded = build_ipaas_app({"seed": 7, "scale": 2.0, "preseed": 3}).state.ipaas.store
    assert len(seeded.records["Company"]) == len(seeded.records["Customer"]) == len(seeded.records["Product"]) == 6
    assert seeded.links == {}


def test_the_templates_client_id_and_tracking_guid_are_accepted_on_every_call_and_never_filter(api):
    # The official Template sends X-Client-Id on every call and appends ?trackingGuid=<guid> to every URL.
    guid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    sent = {**AUTH, "X-Client-Id": "company-client-7", "TrackingGuid": guid}
    q = f"trackingGuid={guid}"

    def call(method, path, body=None, status=200):
        sep = "&" if "?" in path else "?"
        r = api.request(method, f"{path}{sep}{q}", json=body, headers=sent)
        assert r.status_code == status, r.text
        return r

    created = call("POST", "/products/v2/Catalog/Product", PRODUCT, 201).json()
    call("POST", "/products/v2/Catalog/Product", {**PRODUCT, "sku": "10001"}, 201)
    call("PUT", f"/products/v2/Catalog/Product/{created['id']}", {**PRODUCT, "name": "Bike"})
    assert call("GET", f"/products/v2/Catalog/Product/{created['id']}").json()["name"] == "Bike"
    assert len(call("GET", "/products/v2/Catalog/Products").json()) == 2
    assert len(call("GET", "/products/v2/Catalog/Products?pageSize=1&TrackingGuid=x&tracking_guid=y").json()) == 1
    assert [p["sku"] for p in call("GET", "/products/v2/Catalog/Products?action=equals&Sku=10001").json()] == ["10001"]
    link = {"table_name": "product", "system_id": SYSTEM, "external_id": "10000", "internal_id": "1",
            "tracking_guid": guid}
    assert call("POST", "/products/v2/External/UpdateExternalId", link).json()["tracking_guid"] == guid
    assert call("GET", "/products/v2/External/LookupSpaceport/1001/product/10000").json() == "1"
    assert call("GET", "/products/v2/External/LookupExternal/1/1001/product").json() == "10000"
    special = {"table_name": "product", "system_id": int(SYSTEM), "external_id": "10000", "tracking_guid": guid}
    assert call("POST", "/products/v2/External/LookupSpecial", special).json() == "1"
    order = call("POST", "/transactions/v2/Transaction",
                 {"transaction_number": "T1", "type": "Order", "status": "Pending"}, 201).json()
    call("POST", f"/transactions/v2/Transaction/{order['id']}/Tracking", {"tracking_number": "1Z"}, 201)
    assert len(call("GET", f"/transactions/v2/Transaction/{order['id']}/Trackings").json()) == 1
    call("DELETE", f"/products/v2/Catalog/Product/{created['id']}", status=204)
    assert {e["query"] for e in api.get("/_sandbox/ipaas/requests").json()} >= {q}


@pytest.mark.parametrize("path, body, field, allowed", [
    ("/products/v2/Catalog/Product", {**PRODUCT, "type": "Widget"}, "type", "Physical, Virtual, Service Items"),
    ("/products/v2/Catalog/Product", {**PRODUCT, "tracking_method": "Tracked"}, "tracking_method", "Product, Variant"),
    ("/products/v2/Catalog/Product", {**PRODUCT, "status": "Gone"}, "status", "Active, Inactive"),
    ("/transactions/v2/Transaction", {"transaction_number": "1", "type": "Sales Order", "status": "Pending"}, "type",
     "Order, Shipment, Invoice, Hold, Quote, Ticket, Return, Validated Return, Job"),
    ("/transactions/v2/Transaction", {"transaction_number": "1", "type": "Order", "status": "Open"}, "status",
     "Pending, Complete, Cancelled, Shipped, Backorder, Partial Refunded, Refunded"),
])
def test_every_enumerated_field_is_refused_alike_naming_the_field_and_its_values(api, path, body, field, allowed):
    wrong = body[field]
    r = api.post(path, json=body, headers=AUTH)
    assert_error(r, 400, field, f"{field} {wrong!r} is not one of: {allowed}")
    assert api.post("/_sandbox/ipaas/records/" + ("Product" if "Product" in path else "Transaction"),
                    json=body).status_code == 400  # a record made "in the UI" is held to the same values


def test_enumerated_values_are_matched_case_insensitively_and_checked_on_put_too(api):
    made = post(api, "/products/v2/Catalog/Product", {**PRODUCT, "type": "service items", "tracking_method": "VARIANT"})
    assert (made["type"], made["tracking_method"]) == ("service items", "VARIANT")
    for fieldname, value in (("type", "Virtual"), ("status", "inactive")):
        assert api.put(f"/products/v2/Catalog/Product/{made['id']}", json={**PRODUCT, fieldname: value},
                       headers=AUTH).status_code == 200
    assert_error(api.put(f"/products/v2/Catalog/Product/{made['id']}", json={**PRODUCT, "type": "Bundle"},
                         headers=AUTH), 400, "type", "is not one of: Physical, Virtual, Service Items")


def test_the_stand_ins_modules_import_each_other_one_way():
    import ast
    import pathlib

    import bc_pipeline.sandbox as package

    folder = pathlib.Path(package.__file__).parent
    graph = {}
    for path in folder.glob("ipaas*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {node.module.rsplit(".", 1)[-1] for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and node.module
                            and node.module.rsplit(".", 1)[-1].startswith("ipaas")}
    done: set = set()
    while len(done) < len(graph):
        ready = {m for m, deps in graph.items() if m not in done and deps <= done}
        assert ready, f"an import cycle among {sorted(set(graph) - done)}"
        done |= ready
    fault_answers = (folder / "fault_answers.py").read_text()
    assert "from .ipaas import" not in fault_answers and "from .ipaas_http import" in fault_answers

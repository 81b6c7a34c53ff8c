"""The BC stand-in's seed data, page schema and OData query parsing, in process (no server)."""

from __future__ import annotations

from datetime import date

import pytest

from bc_pipeline.catalog import ENTITIES
from bc_pipeline.sandbox import odata, seed
from bc_pipeline.sandbox.bc_store import Table, etag_for
from bc_pipeline.sandbox.schema import build_services

SERVICES = build_services()
WORK_DATE = date(2026, 11, 20)


@pytest.fixture(scope="module")
def data():
    return seed.generate(SERVICES, seed=7, scale=0.2, work_date=WORK_DATE)


def as_dicts(service: str, rows: list[list]) -> list[dict]:
    fields = SERVICES[service].fields
    return [dict(zip(fields, r)) for r in rows]


def test_every_catalog_field_is_served():
    for entity in ENTITIES:
        svc = SERVICES[entity.service]
        assert not [f for f in entity.select if f not in svc.index], entity.service
        assert svc.keys == tuple(k for k in entity.keys if svc.object_type == "Page")


def test_page_fields_come_from_the_tsvs_without_quoted_names():
    item = SERVICES["ItemCard"]
    assert item.fields[0] == "No" and "Description" in item.fields
    assert not [f for s in SERVICES.values() for f in s.fields if '"' in f or "'" in f]
    assert SERVICES["SalesOrders"].fields[:2] == ["Document_Type", "No"]
    assert {"UPC_Code", "Product_Group_Code", "CatItemGroup", "Manufacturer_Code"} <= set(item.fields)


def test_seed_is_deterministic_and_seed_dependent(data):
    again = seed.generate(SERVICES, seed=7, scale=0.2, work_date=WORK_DATE)
    assert again == data
    other = seed.generate(SERVICES, seed=8, scale=0.2, work_date=WORK_DATE)
    assert other["CustomerCard"] != data["CustomerCard"]


def test_counts_follow_the_scale(data):
    n = {k: len(v) for k, v in data.items()}
    assert n["CustomerCard"] == 60 and n["ItemCard"] == 80 and n["SalesOrders"] == 200
    assert n["Locations"] == 12 and n["ShippingAgents"] == 8 and n["CustomerPriceGroups"] == 5
    assert 200 <= n["SalesOrderLines"] <= 2000
    counts = seed.resolve_counts(1, "benchmark")
    assert counts["items"] == 40000 and counts["customers"] == 23000 and counts["sales_orders"] == 15000


def test_guide_item_10010_is_exactly_as_in_the_guide(data):
    items = {r["No"]: r for r in as_dicts("ItemCard", data["ItemCard"])}
    for k, v in seed.GUIDE_ITEM.items():
        assert items["10010"][k] == v, k
    assert items["10010"]["CatItemGroup"] == "CLASSIC WATERMELON LED W/STAINLESS STEEL FLANGE MOUNT BEZEL"


def test_data_is_realistic_and_consistent(data):
    customers = as_dicts("CustomerCard", data["CustomerCard"])
    names = [c["Name"] for c in customers]
    assert names.count("O'Brien Supply") == 1 and "Müller GmbH" in names and "Åsa Ström" in names
    assert any("," in n for n in names)
    assert [c["No"] for c in customers[:3]] == ["C10000", "C10010", "C10020"]
    cust_nos = {c["No"] for c in customers}
    item_nos = {r[0] for r in data["ItemCard"]}
    orders = as_dicts("SalesOrders", data["SalesOrders"])
    assert orders[0]["No"] == "101001" and all(o["Document_Type"] == "Order" for o in orders)
    assert all(o["Sell_to_Customer_No"] in cust_nos for o in orders)
    statuses = {o["Status"] for o in orders}
    assert statuses == {"Open", "Released"}
    shipped = [o for o in orders if o["Package_Tracking_No"]]
    assert shipped and all(o["Shipping_Agent_Code"] for o in shipped)
    lines = as_dicts("SalesOrderLines", data["SalesOrderLines"])
    order_nos = {o["No"] for o in orders}
    for line in lines:
        assert line["Document_No"] in order_nos and line["Line_No"] % 10000 == 0
        if line["Type"] == "Item":
            assert line["No"] in item_nos
            expected = round(line["Quantity"] * line["Unit_Price"] * (1 - line["Line_Discount_Percent"] / 100), 2)
            assert line["Line_Amount"] == pytest.approx(expected, abs=0.011)
    dates = [c["Last_Date_Modified"] for c in customers]
    assert min(dates) >= "2024-11-01" and max(dates) <= WORK_DATE.isoformat()
    # every page field is present with BC's blank values
    assert all(len(r) == len(SERVICES["ItemCard"].fields) for r in data["ItemCard"])
    assert {type(v) for v in as_dicts("ItemCard", data["ItemCard"])[0].values()} <= {str, int, float, bool}
    inv = as_dicts("Itemsbylocation", data["Itemsbylocation"])
    assert inv and all(r["ItemNo"] in item_nos for r in inv)
    assert len({(r["ItemNo"], r["LocationCode"], r["VariantCode"]) for r in inv}) == len(inv)


def test_etag_changes_with_every_version():
    assert etag_for(("C10000",), 1) != etag_for(("C10000",), 2)
    assert etag_for(("C10000",), 1).startswith('W/"Jz')


@pytest.mark.parametrize("text, service, count_check", [
    ("Name eq 'O''Brien Supply'", "CustomerCard", lambda r: r["Name"] == "O'Brien Supply"),
    ("Last_Date_Modified ge 2026-06-01", "CustomerCard", lambda r: r["Last_Date_Modified"] >= "2026-06-01"),
    ("Last_Date_Modified lt 2026-06-01 and Blocked ne '_blank_'", "CustomerCard",
     lambda r: r["Last_Date_Modified"] < "2026-06-01" and r["Blocked"] != "_blank_"),
    ("(Status eq 'Open' or Status eq 'Released') and startswith(No,'1010')", "SalesOrders",
     lambda r: r["No"].startswith("1010")),
    ("Unit_Price gt 100.5 and Type in ('Inventory','Service')", "ItemCard",
     lambda r: r["Unit_Price"] > 100.5 and r["Type"] in ("Inventory", "Service")),
    ("contains(Description,'LED') and not Blocked", "ItemCard", lambda r: "LED" in r["Description"] and not r["Blocked"]),
    ("Location_Filter eq 'EAST' and endswith(No,'0')", "ItemCard", lambda r: r["No"].endswith("0")),
    ("Line_No eq 10000", "SalesOrderLines", lambda r: r["Line_No"] == 10000),
    ("tolower(Name) eq 'müller gmbh'", "CustomerCard", lambda r: r["Name"] == "Müller GmbH"),
])
def test_filters_select_what_they_say(data, text, service, count_check):
    predicate = odata.compile_filter(text, SERVICES[service])
    rows = data[service]
    got = [r for r in rows if predicate(r)]
    want = [r for r, d in zip(rows, as_dicts(service, rows)) if count_check(d)]
    assert got == want


@pytest.mark.parametrize("text, error", [
    ("Name eq 'unterminated", odata.ODataSyntaxError),
    ("Name eq", odata.ODataSyntaxError),
    ("(Name eq 'a'", odata.ODataSyntaxError),
    ("Name eq 'a' andd No eq 'b'", odata.ODataSyntaxError),
    ("Name eq 'a' ;", odata.ODataSyntaxError),
    ("Last_Date_Modified ge 2026-13-01", odata.ODataSyntaxError),
    ("Name eq 'a' or No eq 'b'", odata.ODataQueryError),
    ("Nope eq 1", odata.ODataQueryError),
    ("Last_Date_Modified ge '2026-01-01'", odata.ODataQueryError),
    ("Last_Date_Modified ge 2026-01-01T00:00:00Z", odata.ODataQueryError),
    ("Credit_Limit_LCY gt 'x'", odata.ODataQueryError),
])
def test_bad_filters_raise(text, error):
    with pytest.raises(error):
        odata.compile_filter(text, SERVICES["CustomerCard"])


def test_key_predicates():
    assert odata.parse_key_segment("'C10000'", SERVICES["CustomerCard"]) == ("C10000",)
    assert odata.parse_key_segment("No='O''X,=1'", SERVICES["CustomerCard"]) == ("O'X,=1",)
    assert odata.parse_key_segment("Document_Type='Order',No='101005'", SERVICES["SalesOrders"]) == ("Order", "101005")
    assert odata.parse_key_segment("Document_Type='Order',Document_No='101005',Line_No=10000",
                                   SERVICES["SalesOrderLines"]) == ("Order", "101005", 10000)
    with pytest.raises(odata.ODataQueryError):
        odata.parse_key_segment("'101005'", SERVICES["SalesOrders"])


def test_table_pages_in_key_order_and_survives_inserts(data):
    svc = SERVICES["CustomerCard"]
    table = Table(svc, [list(r) for r in data["CustomerCard"]])
    first = [k for k, _ in table.iter_from(None)][:10]
    new = list(svc.defaults)
    new[svc.index["No"]] = "C00001"  # sorts before everything already read
    table.insert(new)
    rest = [k for k, _ in table.iter_from(first[-1])]
    assert ("C00001",) not in rest and not set(first) & set(rest)
    assert len(first) + len(rest) == len(data["CustomerCard"])

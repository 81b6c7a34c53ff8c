"""The BC stand-in's JSON $batch: every operation answered, snapshot batches rolled back whole, the Company header, faults."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote, urlsplit

import pytest
import requests

from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

from .bc_support import bc_error, odata_session

SNAPSHOT = {"Isolation": "snapshot"}


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    handle = start_sandbox(SandboxConfig(scale=0.05, seed=11, work_date=date(2026, 11, 20),
                                         state_dir=tmp_path_factory.mktemp("bc-batch")))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def company(sb):
    """The Company('…') segment, relative to the ODataV4 root."""
    return sb.company_url()[len(sb.odata_root) + 1:]


@pytest.fixture(scope="module")
def no(sb):
    return sb.records("CustomerCard")[0]["No"]


@pytest.fixture(scope="module")
def s(sb):
    session = odata_session(sb)
    yield session
    session.close()


def key(value):
    """A string key as an OData literal in a URL: quotes doubled, then percent-encoded."""
    return quote("'" + value.replace("'", "''") + "'", safe="'")


def op(rid, method, url, body=None, **headers):
    item = {"method": method, "url": url, "headers": {"Content-Type": "application/json", **headers}}
    if rid is not None:
        item["id"] = rid
    if method in ("PATCH", "DELETE"):
        item["headers"].setdefault("If-Match", "*")
    if body is not None:
        item["body"] = body
    return item


def batch(sb, s, *operations, headers=None):
    r = s.post(f"{sb.odata_root}/$batch", json={"requests": list(operations)}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["responses"]


def statuses(responses):
    return [(x["id"], x["status"]) for x in responses]


def customer(s, sb, no):
    r = s.get(sb.company_url("CustomerCard") + f"({key(no)})")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_plain_batch_runs_every_operation_on_its_own(sb, s, no, company):
    item = sb.records("ItemCard")[0]["No"]
    answers = batch(sb, s, op("1", "PATCH", f"{company}/CustomerCard({key(no)})", {"Name_2": "plain"}),
                    op("2", "GET", sb.company_url("ItemCard") + f"({key(item)})?$select=No"),
                    op("3", "PATCH", f"{company}/CustomerCard('NOPE')", {"Name_2": "x"}),
                    op("4", "GET", f"{company}/Locations"))
    assert statuses(answers) == [("1", 200), ("2", 200), ("3", 404), ("4", 200)]
    assert answers[1]["body"]["No"] == item and answers[1]["headers"]["odata-version"] == "4.0"
    assert answers[2]["body"]["error"]["code"] == "BadRequest_NotFound"
    assert customer(s, sb, no)["Name_2"] == "plain"  # the failure undid nothing


def test_a_snapshot_batch_answers_every_operation_and_a_failure_rolls_back_every_earlier_write(sb, s, no, company):
    before = customer(s, sb, no)
    answers = batch(sb, s,
                    op("edit", "PATCH", f"{company}/CustomerCard({key(no)})", {"Name_2": "snapshot"}),
                    op("order", "POST", f"{company}/SalesOrders",
                       {"Sell_to_Customer_No": no, "External_Document_No": "BATCH-ROLLBACK"}),
                    op("read", "GET", f"{company}/CustomerCard({key(no)})?$select=No,Name_2"),
                    op("bad", "PATCH", f"{company}/CustomerCard({key(no)})", {"No_Such_Field": 1}),
                    op("after", "PATCH", f"{company}/CustomerCard({key(no)})", {"Name_2": "after"}),
                    op("last", "GET", f"{company}/Locations"), headers=SNAPSHOT)
    assert statuses(answers) == [("edit", 200), ("order", 201), ("read", 200), ("bad", 400), ("after", 424),
                                 ("last", 424)]
    # Inside the transaction its own writes are visible; the answers before the failure are kept as they ran.
    assert answers[2]["body"]["Name_2"] == "snapshot" and answers[1]["body"]["No"]
    assert answers[3]["body"]["error"]["code"].startswith("BadRequest")
    assert "rolled back" in answers[4]["body"]["error"]["message"] and "'bad'" in answers[4]["body"]["error"]["message"]

    after = customer(s, sb, no)
    assert after["Name_2"] == before["Name_2"] and after["@odata.etag"] == before["@odata.etag"]
    assert sb.records("SalesOrders", filter="External_Document_No eq 'BATCH-ROLLBACK'") == []
    # The ETag read before the batch is still the record's: BC's rollback leaves the row as it was.
    r = s.patch(sb.company_url("CustomerCard") + f"({key(no)})", json={"Name_2": "kept"},
                headers={"If-Match": before["@odata.etag"]})
    assert r.status_code == 200, r.text


def test_a_snapshot_batch_failing_last_matches_microsofts_example_and_restores_a_deleted_order(sb, s, no, company):
    line = sb.records("SalesOrderLines")[0]
    order_no = line["Document_No"]
    lines_before = sb.records("SalesOrderLines", filter=f"Document_No eq '{order_no}'")
    order_url = f"SalesOrders(Document_Type='Order',No='{order_no}')"
    answers = batch(sb, s, op(None, "PATCH", f"{company}/CustomerCard({key(no)})", {"Name_2": "gone"}),
                    op(None, "DELETE", f"{company}/{order_url}"),
                    op(None, "PATCH", f"{company}/CustomerCard({key(no)})", {"Invalid_Field": "x"}),
                    headers=SNAPSHOT)
    assert statuses(answers) == [(None, 200), (None, 204), (None, 400)]  # ids null: the requests had none
    assert "body" not in answers[1]
    assert customer(s, sb, no)["Name_2"] != "gone"
    assert len(sb.records("SalesOrders", filter=f"No eq '{order_no}'")) == 1
    assert sb.records("SalesOrderLines", filter=f"Document_No eq '{order_no}'") == lines_before


def test_the_company_header_names_the_company_of_a_url_relative_to_the_odata_root(sb, s, no, company):
    name = sb.config.company_name
    answers = batch(sb, s, op("1", "GET", f"CustomerCard({key(no)})", Company=name),
                    op("2", "PATCH", f"CustomerCard({key(no)})", {"Name_2": "by header"}, Company=name),
                    op("3", "GET", f"CustomerCard({key(no)})"),
                    op("4", "GET", f"CustomerCard({key(no)})", Company="Nobody Ltd."),
                    op("5", "GET", f"{company}/CustomerCard({key(no)})", Company="Nobody Ltd."),
                    op("6", "GET", "Locations?$top=1", Company=name))
    assert statuses(answers) == [("1", 200), ("2", 200), ("3", 400), ("4", 404), ("5", 200), ("6", 200)]
    assert answers[1]["body"]["Name_2"] == "by header" and len(answers[5]["body"]["value"]) == 1
    assert answers[2]["body"]["error"]["code"] == answers[3]["body"]["error"]["code"] == "Internal_CompanyNotFound"

    rolled = batch(sb, s, op("a", "PATCH", f"CustomerCard({key(no)})", {"Name_2": "header snapshot"}, Company=name),
                   op("b", "GET", "CustomerCard('NOPE')", Company=name), headers=SNAPSHOT)
    assert statuses(rolled) == [("a", 200), ("b", 404)]
    assert customer(s, sb, no)["Name_2"] == "by header"


def test_a_batch_holds_at_most_100_operations(sb, s, company):
    hundred = [op(str(i), "GET", f"{company}/Locations?$top=1") for i in range(100)]
    assert len(batch(sb, s, *hundred)) == 100
    too_many = {"requests": hundred + [op("100", "GET", f"{company}/Locations")]}
    error = bc_error(s.post(f"{sb.odata_root}/$batch", json=too_many), 400)
    assert "101 operations" in error["message"] and "100" in error["message"]


def orders_numbered(sb, prefix):
    found = sb.records("SalesOrders", filter=f"startswith(External_Document_No,'{prefix}')")
    return sorted(o["External_Document_No"] for o in found)


def test_a_status_fault_on_an_operation_answers_that_operation_alone_one_count_each(sb, s, no, company):
    sb.set_faults({"kind": "status", "status": 500, "retry_after": 2, "service": "SalesOrders", "method": "POST",
                   "count": 2})
    answers = batch(sb, s, op("1", "POST", f"{company}/SalesOrders", {"Sell_to_Customer_No": no,
                                                                      "External_Document_No": "FAULT-1"}),
                    op("2", "PATCH", f"{company}/CustomerCard({key(no)})", {"Name_2": "beside a fault"}),
                    op("3", "POST", f"{company}/SalesOrders", {"Sell_to_Customer_No": no,
                                                               "External_Document_No": "FAULT-3"}),
                    op("4", "POST", f"{company}/SalesOrders", {"Sell_to_Customer_No": no,
                                                               "External_Document_No": "FAULT-4"}))
    assert statuses(answers) == [("1", 500), ("2", 200), ("3", 500), ("4", 201)]
    assert answers[0]["body"]["error"]["code"] == "Internal_ServerError" and answers[0]["headers"]["retry-after"] == "2"
    assert orders_numbered(sb, "FAULT-") == ["FAULT-4"]
    assert customer(s, sb, no)["Name_2"] == "beside a fault"
    assert sb.faults()["faults"] == []


def test_a_status_fault_in_a_snapshot_batch_rolls_it_back_and_the_operations_not_run_keep_their_counts(sb, s, no,
                                                                                                      company):
    order = s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": no}).json()["No"]
    item = sb.records("ItemCard")[0]["No"]
    before = customer(s, sb, no)["Name_2"]
    path = urlsplit(sb.odata_root).path + f"/{company}/SalesOrderLines"
    sb.set_faults({"kind": "status", "status": 503, "path_prefix": path, "method": "POST", "count": 2})
    lines = [op(str(n), "POST", f"{company}/SalesOrderLines", {"Document_Type": "Order", "Document_No": order,
                                                               "Line_No": n * 10000, "Type": "Item", "No": item,
                                                               "Quantity": n}) for n in (1, 2)]
    edit = op("edit", "PATCH", f"{company}/CustomerCard({key(no)})", {"Name_2": "rolled back"})
    answers = batch(sb, s, edit, *lines, headers=SNAPSHOT)
    assert statuses(answers) == [("edit", 200), ("1", 503), ("2", 424)]
    assert sb.records("SalesOrderLines", filter=f"Document_No eq '{order}'") == []
    assert customer(s, sb, no)["Name_2"] == before
    assert [f["count"] for f in sb.faults()["faults"]] == [1]  # line 2 was never run: it took no count
    assert statuses(batch(sb, s, *lines, headers=SNAPSHOT)) == [("1", 503), ("2", 424)]
    assert statuses(batch(sb, s, *lines, headers=SNAPSHOT)) == [("1", 201), ("2", 201)]
    assert [ln["Line_No"] for ln in sb.records("SalesOrderLines", filter=f"Document_No eq '{order}'")] == [10000, 20000]


def test_a_drop_on_an_operation_drops_the_whole_batch_unprocessed_one_count_per_batch(sb, s, no, company):
    before = customer(s, sb, no)["Name_2"]
    dropped = sb.stats()["dropped_connections"]
    sb.set_faults({"kind": "drop", "service": "SalesOrders", "method": "POST", "count": 1})
    operations = [op("edit", "PATCH", f"{company}/CustomerCard({key(no)})", {"Name_2": "dropped"}),
                  *(op(str(n), "POST", f"{company}/SalesOrders", {"Sell_to_Customer_No": no,
                                                                  "External_Document_No": f"DROPPED-{n}"})
                    for n in (1, 2))]
    with pytest.raises(requests.exceptions.ConnectionError):
        s.post(f"{sb.odata_root}/$batch", json={"requests": operations})
    assert orders_numbered(sb, "DROPPED-") == [] and customer(s, sb, no)["Name_2"] == before
    assert sb.stats()["dropped_connections"] == dropped + 1 and sb.faults()["faults"] == []
    assert statuses(batch(sb, s, *operations)) == [("edit", 200), ("1", 201), ("2", 201)]
    assert orders_numbered(sb, "DROPPED-") == ["DROPPED-1", "DROPPED-2"]

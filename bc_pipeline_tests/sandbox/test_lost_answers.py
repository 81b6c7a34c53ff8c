"""Lost answers: the request is processed and committed, then its answer is dropped or replaced by an error."""

from __future__ import annotations

import pytest
import requests

from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

from .bc_support import bc_error, odata_session

TRANSACTION = "/transactions/v2/Transaction"


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    with start_sandbox(SandboxConfig(scale=0.02, state_dir=tmp_path_factory.mktemp("lost-answers"))) as handle:
        yield handle


@pytest.fixture(scope="module")
def s(sb):
    session = odata_session(sb)
    yield session
    session.close()


@pytest.fixture(scope="module")
def ipaas(sb):
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sb.ca_path)
    session.headers["Authorization"] = f"Bearer {sb.config.ipaas_api_token}"
    yield session
    session.close()


def a_customer(sb) -> str:
    return sb.records("CustomerCard")[0]["No"]


def new_transaction(number: str) -> dict:
    return {"transaction_number": number, "type": "Order", "status": "Pending"}


def test_a_sales_order_answered_503_exists_and_a_retry_makes_a_duplicate(sb, s):
    sb.set_faults({"kind": "lost_answer", "then": 503, "retry_after": 1, "method": "POST", "service": "SalesOrders"})
    order = {"Sell_to_Customer_No": a_customer(sb), "External_Document_No": "LOST-503"}
    r = s.post(sb.company_url("SalesOrders"), json=order)
    bc_error(r, 503, "Application_ServiceUnavailable")
    assert r.headers["Retry-After"] == "1"
    created = sb.records("SalesOrders", filter="External_Document_No eq 'LOST-503'")
    assert [o["Sell_to_Customer_No"] for o in created] == [order["Sell_to_Customer_No"]]
    assert s.get(sb.company_url("SalesOrders") + f"(Document_Type='Order',No='{created[0]['No']}')").status_code == 200
    assert s.post(sb.company_url("SalesOrders"), json=order).status_code == 201  # the rule fired once
    counted = sb.count("SalesOrders", by="External_Document_No", filter="startswith(External_Document_No,'LOST-')")
    assert counted["count"] == 2 and counted["duplicates"] == {"LOST-503": 2}
    assert sb.stats()["lost_answers"] == 1 and sb.faults()["faults"] == []


def test_a_sales_line_answered_429_exists(sb, s):
    order = s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": a_customer(sb)}).json()["No"]
    sb.set_faults({"kind": "lost_answer", "then": 429, "method": "POST", "service": "SalesOrderLines"})
    line = {"Document_Type": "Order", "Document_No": order, "Type": "Item", "No": "10010", "Quantity": 2}
    r = s.post(sb.company_url("SalesOrderLines"), json=line)
    bc_error(r, 429, "Application_TooManyRequests")
    assert "Retry-After" not in r.headers
    assert [(x["Line_No"], x["Quantity"]) for x in sb.records("SalesOrderLines", filter=f"Document_No eq '{order}'")] \
        == [(10000, 2)]


def test_a_refused_request_does_not_use_up_the_rule(sb, s):
    sb.set_faults({"kind": "lost_answer", "method": "POST", "service": "SalesOrders"})
    bc_error(s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": "NOPE"}), 400)
    assert len(sb.faults()["faults"]) == 1
    with pytest.raises(requests.exceptions.ConnectionError):
        s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": a_customer(sb),
                                                    "External_Document_No": "LOST-DROP"})
    assert sb.count("SalesOrders", filter="External_Document_No eq 'LOST-DROP'")["count"] == 1


def test_an_ipaas_transaction_whose_answer_is_dropped_exists(sb, ipaas):
    sb.set_faults({"kind": "lost_answer", "then": "drop", "target": "ipaas", "method": "POST",
                   "path_prefix": TRANSACTION})
    with pytest.raises(requests.exceptions.ConnectionError):
        ipaas.post(sb.base_url + TRANSACTION, json=new_transaction("SO-DROP"))
    assert [t["transaction_number"] for t in sb.ipaas_records("Transaction")].count("SO-DROP") == 1
    assert ipaas.post(sb.base_url + TRANSACTION, json=new_transaction("SO-DROP")).status_code == 201
    counted = sb.ipaas_count("Transaction", by="transaction_number")
    assert counted["duplicates"] == {"SO-DROP": 2} and counted["count"] == len(sb.ipaas_records("Transaction"))
    assert sb.stats()["dropped_connections"] >= 1


def test_an_ipaas_transaction_answered_503_exists(sb, ipaas):
    sb.set_faults({"kind": "lost_answer", "then": 503, "retry_after": 2, "target": "ipaas", "method": "POST",
                   "path_prefix": TRANSACTION})
    r = ipaas.post(sb.base_url + TRANSACTION, json=new_transaction("SO-503"), headers={"X-Correlation-Id": "c-1"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "2" and r.headers["X-Correlation-Id"] == "c-1"
    assert r.json()["errors"][0]["message"] and r.json()["correlation_id"] == "c-1"
    assert [t["transaction_number"] for t in sb.ipaas_records("Transaction")].count("SO-503") == 1


def test_an_external_id_link_whose_answer_is_dropped_exists(sb, ipaas):
    created = ipaas.post(sb.base_url + TRANSACTION, json=new_transaction("SO-LINK"))
    assert created.status_code == 201
    system = sb.config.ipaas_system_id
    sb.set_faults({"kind": "lost_answer", "target": "ipaas", "method": "POST",
                   "path_prefix": "/transactions/v2/External/UpdateExternalId"})
    with pytest.raises(requests.exceptions.ConnectionError):
        ipaas.post(f"{sb.base_url}/transactions/v2/External/UpdateExternalId",
                   json={"table_name": "transaction", "system_id": system, "external_id": "Order|LINK-1",
                         "internal_id": created.json()["id"]})
    r = ipaas.post(f"{sb.base_url}/transactions/v2/External/LookupSpecial",
                   json={"table_name": "transaction", "system_id": system, "external_id": "Order|LINK-1"})
    assert r.status_code == 200 and r.json() == str(created.json()["id"])
    plain = ipaas.post(sb.base_url + TRANSACTION, json=new_transaction("SO-LINK-2")).json()["id"]
    sb.set_faults({"kind": "lost_answer", "target": "ipaas", "path_prefix": "/transactions/v2/External/Update"})
    with pytest.raises(requests.exceptions.ConnectionError):
        ipaas.post(f"{sb.base_url}/transactions/v2/External/UpdateExternalId",
                   json={"table_name": "transaction", "system_id": system, "external_id": "LINK-2",
                         "internal_id": plain})
    r = ipaas.get(f"{sb.base_url}/transactions/v2/External/LookupSpaceport/{system}/transaction/LINK-2")
    assert r.status_code == 200 and r.json() == str(plain)
    counted = sb.ipaas_count("Transaction", by="external_id")
    assert counted["distinct"] == 2 and counted["missing"] == counted["count"] - 2


def test_a_token_whose_answer_is_dropped_was_issued(sb):
    issued = sb.stats()["tokens_issued"]
    sb.set_faults({"kind": "lost_answer", "target": "entra", "method": "POST"})
    with pytest.raises(requests.exceptions.ConnectionError):
        sb.token()
    assert sb.stats()["tokens_issued"] == issued + 1
    assert sb.token()


def test_bad_lost_answer_specs_and_counts_are_refused(sb):
    for then in ("explode", 200, None):
        with pytest.raises(RuntimeError, match="400"):
            sb.set_faults({"kind": "lost_answer", "then": then})
    with pytest.raises(RuntimeError, match="400"):
        sb.count("SalesOrders", by="Nope")
    with pytest.raises(RuntimeError, match="400"):
        sb.ipaas_count("Transaction", by="nope")

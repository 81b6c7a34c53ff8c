"""A write whose answer is lost is never sent twice unless sending it twice is harmless; the error says so."""

import socket
import time

import pytest
import requests

from bc_pipeline.clients import transport
from bc_pipeline.clients.errors import (BusinessCentralError, EntityChangedError, IpaasError, TransportError,
                                        outcome_unclear)
from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.settings import load_settings
from bc_pipeline_tests.clients.support import Loss

ORDER = {"transaction_number": "SO-LOST-1", "type": "Order", "status": "Pending"}


def _transactions(world) -> list[str]:
    return [r["transaction_number"] for r in world.ipaas_records("Transaction")]


def _bc_orders(world, external_document_no: str) -> list[dict]:
    return world.handle.records("SalesOrders", filter=f"External_Document_No eq '{external_document_no}'")


@pytest.mark.parametrize("status", [429, 503])
def test_a_create_done_but_answered_with_a_busy_status_is_not_sent_again(world, proxy, ipaas_via_proxy, status):
    proxy.losses.append(Loss("POST", "/transactions/v2/Transaction", status=status, retry_after="0"))
    with pytest.raises(IpaasError) as error:
        ipaas_via_proxy.create("Transaction", ORDER)
    assert error.value.status == status
    assert outcome_unclear(error.value)
    assert _transactions(world) == ["SO-LOST-1"]
    assert ipaas_via_proxy.counter.retries == 0


def test_a_create_done_but_whose_connection_drops_may_have_been_sent(world, proxy, ipaas_via_proxy):
    proxy.losses.append(Loss("POST", "/transactions/v2/Transaction"))
    with pytest.raises(TransportError) as error:
        ipaas_via_proxy.create("Transaction", ORDER)
    assert error.value.maybe_sent is True
    assert outcome_unclear(error.value)
    assert "may have reached iPaaS.com" in str(error.value)
    assert _transactions(world) == ["SO-LOST-1"]


def test_a_create_whose_answer_is_too_slow_may_have_been_sent_and_is_sent_once(world, ipaas, monkeypatch):
    monkeypatch.setattr(transport, "READ_TIMEOUT_SECONDS", 0.5)
    world.handle.set_faults({"kind": "delay", "seconds": 2, "target": "ipaas", "method": "POST"})
    since = world.handle.last_seq()
    with pytest.raises(TransportError) as error:
        ipaas.create("Transaction", ORDER)
    assert isinstance(error.value.cause, requests.exceptions.ReadTimeout)
    assert error.value.maybe_sent is True
    assert outcome_unclear(error.value)
    assert [r["method"] for r in world.handle.requests(since) if "/Transaction" in r["path"]] == ["POST"]


def test_a_create_that_never_connected_was_not_sent(world, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("IPAAS_API_URL", f"https://127.0.0.1:{port}")
    client = IpaasClient(load_settings())
    with pytest.raises(TransportError) as error:
        client.create("Transaction", ORDER)
    client.close()
    assert error.value.maybe_sent is False
    assert not outcome_unclear(error.value)
    assert _transactions(world) == []


def test_a_bc_create_answered_429_after_the_work_is_not_resent_and_holds_back_the_next_request(
    world, proxy, bc_via_proxy
):
    customer = world.handle.records("CustomerCard")[0]["No"]
    proxy.losses.append(Loss("POST", "/SalesOrders", status=429, retry_after="1"))
    with pytest.raises(BusinessCentralError) as error:
        bc_via_proxy.create("SalesOrders", {"Sell_to_Customer_No": customer, "External_Document_No": "LOST-1"})
    assert error.value.status == 429
    assert outcome_unclear(error.value)
    assert len(_bc_orders(world, "LOST-1")) == 1
    started = time.monotonic()
    bc_via_proxy.companies()
    assert time.monotonic() - started >= 0.9


def test_a_batch_with_a_create_is_not_resent_but_a_batch_of_reads_is(world, proxy, bc_via_proxy):
    customer = world.handle.records("CustomerCard")[0]["No"]
    create = {"method": "POST", "url": f"{bc_via_proxy.company_root}/SalesOrders",
              "body": {"Sell_to_Customer_No": customer, "External_Document_No": "LOST-2"}}
    proxy.losses.append(Loss("POST", "/$batch", status=503, retry_after="0"))
    with pytest.raises(BusinessCentralError) as error:
        bc_via_proxy.batch([create])
    assert outcome_unclear(error.value)
    assert len(_bc_orders(world, "LOST-2")) == 1

    proxy.losses.append(Loss("POST", "/$batch", status=503, retry_after="0"))
    read = {"method": "GET", "url": f"{bc_via_proxy.company_root}/CustomerCard('{customer}')"}
    answers = bc_via_proxy.batch([read])
    assert [a["status"] for a in answers] == [200]
    assert bc_via_proxy.counter.retries == 1


def test_an_update_whose_answer_is_lost_is_resent_and_applied_once(world, proxy, bc_via_proxy):
    customer = bc_via_proxy.get("CustomerCard", {"No": world.handle.records("CustomerCard")[0]["No"]})
    proxy.losses.append(Loss("PATCH", "/CustomerCard", status=503, retry_after="0"))
    # The re-send carries the ETag the applied change made stale: BC refuses it instead of writing twice.
    with pytest.raises(EntityChangedError) as error:
        bc_via_proxy.update("CustomerCard", {"No": customer["No"]}, {"Name_2": "once"}, etag=customer["@odata.etag"])
    assert not outcome_unclear(error.value)
    assert bc_via_proxy.counter.retries == 1
    assert world.handle.records("CustomerCard", key=customer["No"])[0]["Name_2"] == "once"


def test_a_link_whose_answer_is_lost_is_resent_and_set(world, proxy, ipaas_via_proxy):
    created = ipaas_via_proxy.create("Transaction", ORDER)
    proxy.losses.append(Loss("POST", "/External/UpdateExternalId", status=503, retry_after="0"))
    ipaas_via_proxy.link("transaction", "Order|101099", created["id"])
    assert ipaas_via_proxy.lookup_internal_id("transaction", "Order|101099") == str(created["id"])
    assert ipaas_via_proxy.counter.retries == 1

"""BC's operational limits (made small) and the fault switches, over real HTTPS against a sandbox subprocess."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from bc_pipeline.sandbox.config import ClientRegistration
from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

from .bc_support import bc_error, odata_session

CLIENTS = {name: ClientRegistration(client_id=f"c1e27000-0000-4000-8000-00000000000{i}", client_secret=f"s{i}")
           for i, name in enumerate(["rate", "other", "slots", "faults"])}
WINDOW = 1.5


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    config = SandboxConfig(scale=0.02, bc_rate_limit=30, bc_rate_window_seconds=WINDOW, bc_max_concurrent=2,
                           bc_max_queue=3, extra_clients=list(CLIENTS.values()),
                           state_dir=tmp_path_factory.mktemp("bc-sandbox-limits"))
    handle = start_sandbox(config)
    yield handle
    handle.stop()


def session(sb, name):
    reg = CLIENTS[name]
    return odata_session(sb, reg.client_id, reg.client_secret)


def test_429_over_the_rate_limit_per_client_then_recovery(sb):
    s, other = session(sb, "rate"), session(sb, "other")
    url = sb.company_url("Locations")
    statuses = [s.get(url, params={"$select": "Code"}).status_code for _ in range(31)]
    assert statuses == [200] * 30 + [429]
    r = s.get(url)
    error = bc_error(r, 429, "Application_TooManyRequests")
    assert "Retry-After" not in r.headers and "Maximum (30)" in error["message"]
    assert other.get(url).status_code == 200  # the limit is per service principal
    time.sleep(WINDOW + 0.1)
    assert s.get(url).status_code == 200
    assert sb.stats()["throttled_429"] >= 2


def test_five_at_once_becomes_two_processing_three_queued_and_429_beyond(sb):
    token = sb.token(CLIENTS["slots"].client_id, CLIENTS["slots"].client_secret)
    sb.set_faults({"kind": "delay", "seconds": 0.4, "count": -1, "service": "ShippingAgents"})
    results: list[int] = []

    def call():
        r = requests.get(sb.company_url("ShippingAgents"), headers={"Authorization": f"Bearer {token}"},
                         verify=str(sb.ca_path), timeout=30)
        results.append(r.status_code)

    threads = [threading.Thread(target=call) for _ in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 5 + [429] * 2
    client = sb.stats()["clients"][CLIENTS["slots"].client_id]
    assert client["peak_concurrency"] == 2 and client["peak_in_flight"] == 5


def test_status_faults_answer_next_n_requests(sb):
    s = session(sb, "faults")
    url = sb.company_url("CustomerPriceGroups")
    sb.set_faults({"kind": "status", "status": 503, "retry_after": 2, "count": 2},
                  {"kind": "status", "status": 429, "count": 1},
                  {"kind": "status", "status": 504, "count": 1, "service": "ItemCard"})
    for _ in range(2):
        r = s.get(url)
        bc_error(r, 503)
        assert r.headers["Retry-After"] == "2"
    r = s.get(url)
    bc_error(r, 429, "Application_TooManyRequests")
    assert "Retry-After" not in r.headers
    assert s.get(url).status_code == 200  # the 504 waits for ItemCard
    bc_error(s.get(sb.company_url("ItemCard")), 504)
    assert s.get(sb.company_url("ItemCard"), params={"$top": "1"}).status_code == 200
    sb.set_faults({"kind": "status", "status": 500, "count": 1})
    bc_error(s.get(url), 500, "Internal_ServerError")


def test_dropped_connection_then_normal_service(sb):
    s = session(sb, "faults")
    sb.set_faults({"kind": "drop", "count": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(sb.company_url("Locations"))
    assert s.get(sb.company_url("Locations")).status_code == 200
    assert sb.stats()["dropped_connections"] == 1


def test_slow_answers(sb):
    s = session(sb, "faults")
    sb.set_faults({"kind": "delay", "seconds": 0.3, "count": 1})
    t0 = time.monotonic()
    assert s.get(sb.company_url("Locations")).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    s.get(sb.company_url("Locations"))
    assert time.monotonic() - t0 < 0.3


def test_entra_faults(sb):
    sb.set_faults({"kind": "status", "status": 503, "retry_after": 1, "target": "entra", "count": 1})
    r = requests.post(sb.token_url, data={"grant_type": "client_credentials"}, verify=str(sb.ca_path))
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and r.json()["error"] == "temporarily_unavailable"
    assert sb.token()


def test_bad_fault_specs_are_refused(sb):
    with pytest.raises(RuntimeError, match="400"):
        sb.set_faults({"kind": "explode"})
    with pytest.raises(RuntimeError, match="400"):
        sb.set_faults({"action": "unpublish", "service": "Nope"})

"""Clients of the sandbox, directly or through a LossyProxy."""

from __future__ import annotations

import pytest

from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.settings import load_settings
from bc_pipeline_tests.clients.support import LossyProxy


@pytest.fixture
def ipaas(world):
    client = IpaasClient(load_settings())
    yield client
    client.close()


@pytest.fixture
def proxy(world):
    with LossyProxy(world.handle) as served:
        yield served


@pytest.fixture
def ipaas_via_proxy(proxy, monkeypatch):
    monkeypatch.setenv("IPAAS_API_URL", proxy.url)
    client = IpaasClient(load_settings())
    yield client
    client.close()


@pytest.fixture
def bc_via_proxy(proxy, monkeypatch):
    monkeypatch.setenv("BC_API_URL", proxy.url)  # Entra ID stays at the sandbox (BC_AUTHORITY_HOST)
    client = BusinessCentralClient(load_settings())
    yield client
    client.close()

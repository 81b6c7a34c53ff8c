"""Shared fixtures: one HTTPS sandbox per test worker, and a fresh pipeline home and world per test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import dagster as dg
import pytest

from bc_pipeline.sandbox.launcher import SandboxConfig, SandboxHandle, start_sandbox

SANDBOX_SCALE = 0.05


class World:
    """The sandbox as a test sees it: BC through the launcher's handle, iPaaS.com through its admin API."""

    def __init__(self, handle: SandboxHandle, home: Path):
        self.handle = handle
        self.home = home

    def ipaas(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.handle.session.request(method, f"{self.handle.base_url}/_sandbox/ipaas/{path}", timeout=60, **kwargs)
        assert response.status_code < 400, response.text
        return response.json()

    def ipaas_records(self, model: str) -> list[dict[str, Any]]:
        answer = self.ipaas("GET", f"records/{quote(model)}")
        return answer["records"] if isinstance(answer, dict) and "records" in answer else answer

    def ipaas_links(self) -> list[dict[str, Any]]:
        answer = self.ipaas("GET", "links")
        return answer["links"] if isinstance(answer, dict) and "links" in answer else answer

    def ipaas_requests(self, since: int = 0) -> list[dict[str, Any]]:
        answer = self.ipaas("GET", "requests", params={"since": since})
        return answer["requests"] if isinstance(answer, dict) and "requests" in answer else answer

    def ipaas_writes(self, since: int = 0) -> list[dict[str, Any]]:
        return [r for r in self.ipaas_requests(since) if r["method"] in ("POST", "PUT", "DELETE")]

    def ipaas_last_seq(self) -> int:
        requests = self.ipaas_requests(0)
        return max((r["seq"] for r in requests), default=0)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Iterator[SandboxHandle]:
    state_dir = tmp_path_factory.mktemp("sandbox")
    handle = start_sandbox(
        SandboxConfig(
            scale=SANDBOX_SCALE,
            state_dir=state_dir,
            ipaas_rate_limit=100_000,
            ipaas_rate_window_seconds=60,
        )
    )
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def world(sandbox: SandboxHandle, tmp_path: Path, monkeypatch) -> World:
    """A reseeded sandbox, an empty iPaaS.com, and a pipeline home of the test's own."""
    sandbox.reset()
    sandbox.session.post(f"{sandbox.base_url}/_sandbox/ipaas/reset", timeout=60).raise_for_status()
    home = tmp_path / "home"
    for key in list(os.environ):
        if key.startswith(("BC_", "IPAAS_")) or key in ("CONCURRENT_CONNECTIONS", "REQUESTS_CA_BUNDLE"):
            monkeypatch.delenv(key, raising=False)
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BC_PIPELINE_HOME", str(home))
    monkeypatch.setenv("IPAAS_THROTTLE_LIMIT", "100000")
    return World(sandbox, home)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance

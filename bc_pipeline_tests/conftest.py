"""Shared fixtures: one HTTPS sandbox per test worker, and a fresh pipeline home and world per test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import dagster as dg
import pytest

from bc_pipeline.clients.auth import forget_shared_token_providers
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


def pytest_collection_modifyitems(config, items) -> None:
    """Under `make test` the files go to the two workers in collection order (xdist's reordering by test count,
    which handed out the long single-test files last, is off): the slow files first, then the other end-to-end
    ones, the quick ones last, so that neither worker is left alone with a long file at the end. Each file's tests
    stay together and in order. Outside xdist the order is as collected."""
    if not hasattr(config, "workerinput"):
        return
    rank: dict[str, int] = {}
    for item in items:
        file = item.nodeid.split("::")[0]
        here = 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("e2e") else 2
        rank[file] = min(rank.get(file, here), here)
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Iterator[SandboxHandle]:
    state_dir = tmp_path_factory.mktemp("sandbox")
    handle = start_sandbox(
        SandboxConfig(
            scale=SANDBOX_SCALE,
            state_dir=state_dir,
            ipaas_rate_limit=100_000,
            ipaas_rate_window_seconds=60,
            max_page_size=12,  # every service of more than 12 rows comes in pages linked by @odata.nextLink
            webhook_delay_seconds=1.0,  # BC waits ~30 s before it notifies a change
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
    forget_shared_token_providers()  # each test starts without a cached token
    sandbox.session.post(f"{sandbox.base_url}/_sandbox/ipaas/reset", timeout=60).raise_for_status()
    home = tmp_path / "home"
    for key in list(os.environ):
        if key.startswith("BC_PIPELINE_TEST_"):
            continue
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


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The test PostgreSQL server: `make test` (and CI) runs pytest under `scripts/test-postgres.sh run`, a cluster
    of that run's own (a new folder, a free port) that it stops afterwards."""
    url = os.environ.get("BC_PIPELINE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("BC_PIPELINE_TEST_POSTGRES_URL is not set: CI must test the PostgreSQL state database")
        pytest.skip("no test PostgreSQL (run the tests with `make test`, or under `scripts/test-postgres.sh run`)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty state database on each backend the pipeline supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.sqlite'}"
        return
    import uuid

    from sqlalchemy import create_engine, text

    server = request.getfixturevalue("postgres_server_url")
    name = f"bcp_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from bc_pipeline.state import database

        engine = database._engines.pop(server.rsplit("/", 1)[0] + f"/{name}", None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

"""Dagster's own storage on the test PostgreSQL: a fresh database, and a DAGSTER_HOME whose dagster.yaml is the
repo's plus the README's storage snippet, read from the README itself (so the documented snippet is the tested one)."""

from __future__ import annotations

import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
README_SECTION = "## PostgreSQL for Dagster's own storage"


def readme_storage_snippet() -> str:
    """The first ```yaml block of the README's section on Dagster's storage."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(README_SECTION):]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server; its SQLAlchemy URL; dropped afterwards."""
    name = f"bcp_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from bc_pipeline.state import database

        engine = database._engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def dagster_pg_home(postgres_server_url, tmp_path, monkeypatch) -> Iterator[Path]:
    """A DAGSTER_HOME (not set as the process's) with storage on a fresh database; DAGSTER_PG_* set as the README says."""
    with fresh_database(postgres_server_url) as url:
        server = urlsplit(url)
        for key, value in {"DAGSTER_PG_USERNAME": server.username or "postgres", "DAGSTER_PG_PASSWORD": server.password or "",
                           "DAGSTER_PG_HOST": server.hostname, "DAGSTER_PG_PORT": str(server.port or 5432),
                           "DAGSTER_PG_DB": server.path.lstrip("/")}.items():
            monkeypatch.setenv(key, value)
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        with open(home / "dagster.yaml", "a") as config:
            config.write("\n" + readme_storage_snippet())
        yield home

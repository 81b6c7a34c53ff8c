"""The state database: one SQLAlchemy engine per URL (SQLite file by default, PostgreSQL by setting)."""

from __future__ import annotations

import threading
from pathlib import Path

from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from bc_pipeline.state.tables import metadata
import bc_pipeline.state.inbox  # noqa: F401,E402  (its table is on the same metadata: create it with the rest)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """The engine for a state URL, with the tables created; SQLite gets WAL so processes can share it.

    SQLite syncs every commit (synchronous=FULL): with WAL, NORMAL can lose the last commits on power
    loss, and the receiver answers 202 once the inbox committed. Measured: +0.4–0.6 ms per commit.
    """
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 60})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - exercised by every test
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.close()
        else:
            engine = create_engine(url, pool_pre_ping=True)
        _create_tables(engine)
        _engines[url] = engine
        return engine


# Any constant: the advisory lock that serialises table creation across processes on one PostgreSQL database.
_SCHEMA_LOCK = 0x6263_7069_7065


def _create_tables(engine: Engine) -> None:
    """Create the tables once, even when several processes (steps, workers) start on a new database at once."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            metadata.create_all(conn)
        return
    database = engine.url.database
    if database and database != ":memory:":
        # SQLite has no advisory lock: a lock file beside the database serialises the creation instead.
        with FileLock(f"{database}.schema.lock", timeout=120):
            metadata.create_all(engine)
        return
    metadata.create_all(engine)

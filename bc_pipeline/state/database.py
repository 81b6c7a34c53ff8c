"""The state database: one SQLAlchemy engine per URL (SQLite file by default, PostgreSQL by setting)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
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
        metadata.create_all(engine)
        _engines[url] = engine
        return engine

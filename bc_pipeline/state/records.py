"""Per-record state: cached external-id links, delivered payload hashes, and dead letters."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import orjson
from sqlalchemy import Engine, Table, and_, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from bc_pipeline.state.tables import dead_letters, ipaas_external_id_links, payload_hashes


def digest(value: Any) -> str:
    """The hash kept for a payload or a fingerprint: SHA-256 of its canonical JSON (keys sorted)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()

_CHUNK = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def upsert(
    engine: Engine, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], keep: Sequence[str] = ()
) -> None:
    """Insert or update rows by primary key, on SQLite and PostgreSQL alike; `keep` columns are not updated."""
    if not rows:
        return
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    with engine.begin() as conn:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            statement = dialect.insert(table).values(chunk)
            updates = {c: statement.excluded[c] for c in chunk[0] if c not in keys and c not in keep}
            conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates))


def _delete(engine: Engine, table: Table, group_column: str, group: str, id_column: str, ids: Iterable[str]) -> None:
    """Delete the rows of one group (a table name, a collection) whose ids are given, in chunks."""
    ids = list(ids)
    with engine.begin() as conn:
        for start in range(0, len(ids), _CHUNK):
            conn.execute(
                delete(table).where(and_(table.c[group_column] == group, table.c[id_column].in_(ids[start : start + _CHUNK])))
            )


# -- links -----------------------------------------------------------------------------------

def links(engine: Engine, table_name: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(ipaas_external_id_links.c.external_id, ipaas_external_id_links.c.internal_id).where(
                ipaas_external_id_links.c.table_name == table_name
            )
        )
        return {external: internal for external, internal in rows}


def save_links(engine: Engine, table_name: str, pairs: Iterable[tuple[str, str]]) -> None:
    now = _now()
    rows = [{"table_name": table_name, "external_id": e, "internal_id": str(i), "updated_at": now} for e, i in pairs]
    upsert(engine, ipaas_external_id_links, rows, ("table_name", "external_id"))


def forget_links(engine: Engine, table_name: str, external_ids: Iterable[str]) -> None:
    _delete(engine, ipaas_external_id_links, "table_name", table_name, "external_id", external_ids)


# -- payload hashes --------------------------------------------------------------------------

def hashes(engine: Engine, collection: str) -> dict[str, tuple[str, str]]:
    """external id → (payload hash, iPaaS id) of what the collection last delivered."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(payload_hashes.c.external_id, payload_hashes.c.payload_hash, payload_hashes.c.internal_id).where(
                payload_hashes.c.collection == collection
            )
        )
        return {e: (h, i) for e, h, i in rows}


def save_hashes(engine: Engine, collection: str, delivered: Iterable[tuple[str, str, str]]) -> None:
    now = _now()
    rows = [
        {"collection": collection, "external_id": e, "payload_hash": h, "internal_id": str(i), "loaded_at": now}
        for e, h, i in delivered
    ]
    upsert(engine, payload_hashes, rows, ("collection", "external_id"))


def forget_hashes(engine: Engine, collection: str, external_ids: Iterable[str]) -> None:
    _delete(engine, payload_hashes, "collection", collection, "external_id", external_ids)


# -- dead letters ----------------------------------------------------------------------------

@dataclass
class DeadLetter:
    collection: str
    external_id: str
    payload: dict[str, Any]
    parent_id: Optional[str]
    error: str
    status: Optional[int]
    code: Optional[str]
    correlation_id: Optional[str]
    attempts: int
    first_seen: dt.datetime
    last_seen: dt.datetime


def dead_letters_of(engine: Engine, collection: Optional[str] = None) -> list[DeadLetter]:
    query = select(dead_letters)
    if collection is not None:
        query = query.where(dead_letters.c.collection == collection)
    with engine.connect() as conn:
        return [
            DeadLetter(**{**row, "payload": orjson.loads(row["payload"])})
            for row in conn.execute(query.order_by(dead_letters.c.first_seen)).mappings()
        ]


def record_failures(engine: Engine, collection: str, failures: Sequence[dict[str, Any]]) -> None:
    """Add or refresh dead letters; `attempts` counts every failed try, `first_seen` is kept."""
    if not failures:
        return
    now = _now()
    ids = [f["external_id"] for f in failures]
    with engine.connect() as conn:
        existing = {
            row.external_id: row.attempts
            for start in range(0, len(ids), _CHUNK)
            for row in conn.execute(
                select(dead_letters.c.external_id, dead_letters.c.attempts).where(
                    and_(dead_letters.c.collection == collection, dead_letters.c.external_id.in_(ids[start : start + _CHUNK]))
                )
            )
        }
    rows = []
    for f in failures:
        rows.append(
            {
                "collection": collection,
                "external_id": f["external_id"],
                "payload": orjson.dumps(f["payload"]).decode(),
                "parent_id": f.get("parent_id"),
                "error": f["error"],
                "status": f.get("status"),
                "code": f.get("code"),
                "correlation_id": f.get("correlation_id"),
                "attempts": existing.get(f["external_id"], 0) + 1,
                "first_seen": now,
                "last_seen": now,
            }
        )
    upsert(engine, dead_letters, rows, ("collection", "external_id"), keep=("first_seen",))


def clear_dead_letters(engine: Engine, collection: str, external_ids: Iterable[str]) -> None:
    _delete(engine, dead_letters, "collection", collection, "external_id", external_ids)


__all__ = [
    "DeadLetter", "clear_dead_letters", "dead_letters_of", "forget_hashes", "forget_links", "hashes", "links",
    "record_failures", "save_hashes", "save_links",
]

"""The durable inbox of sync requests (webhooks and Manual Sync): recorded first, processed later.

The table is defined on the shared `metadata`, so `engine_for` creates it when this module has been
imported before it runs (`bc_pipeline.state.tables` or `database` should `import bc_pipeline.state.inbox`).
Every function here also creates the table on first use of an engine, so the order never loses a request.

Lifecycle: pending → running (`claim`) → done | failed (`finish`); `requeue_stale` returns running
requests of a run that went silent to pending. A request carries a dedup key while it is pending: the
same notification replayed (same source, collection, scope and ids) is not enqueued twice. Claiming
clears the key, so a change notified while its record is being synced is queued again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import weakref
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from bc_pipeline.state.tables import metadata

SOURCES = ("ipaas_webhook", "bc_webhook", "manual")
DIRECTIONS = ("TO_IPAAS", "FROM_IPAAS")
STATUSES = ("pending", "running", "done", "failed")
MAX_ID_LENGTH = 255
MAX_ERROR_LENGTH = 4000
_CHUNK = 500

sync_requests = Table(
    "sync_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", String(20), nullable=False),  # ipaas_webhook | bc_webhook | manual
    Column("system", String(50), nullable=False),  # "MSD 365"
    Column("collection", String(100), nullable=False),  # the mapping collection's name
    Column("direction", String(10), nullable=False),  # TO_IPAAS | FROM_IPAAS
    Column("scope", String(100), nullable=False),  # e.g. customer/created
    Column("action", String(20), nullable=False),  # created | updated | deleted | initialize | poll | bulk
    Column("external_id", String(MAX_ID_LENGTH)),  # a BC key (TO iPaaS), verbatim; NULL = the whole entity
    Column("ipaas_id", String(MAX_ID_LENGTH)),  # an iPaaS.com id (FROM iPaaS), verbatim
    Column("resource", Text),  # BC webhooks: the notified resource path (its id is a SystemId GUID)
    Column("priority", Integer, nullable=False, default=0),  # higher first; Manual Sync "Debug" = 1
    Column("status", String(10), nullable=False),  # pending | running | done | failed
    Column("run_id", String(64)),
    Column("batch_key", String(128)),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # sha256 of source, collection, scope and ids while pending, NULL afterwards (NULLs never collide).
    Column("dedup_key", String(64)),
    UniqueConstraint("dedup_key", name="uq_sync_requests_dedup_key"),
    Index("ix_sync_requests_status_priority", "status", "priority", "id"),
    Index("ix_sync_requests_run_id", "run_id"),
    Index("ix_sync_requests_collection", "collection"),
)


@dataclass(frozen=True)
class NewRequest:
    """One request to enqueue; built by the webhook receiver and by Manual Sync from validated input."""

    source: str
    system: str
    collection: str
    direction: str
    scope: str
    action: str
    external_id: Optional[str] = None
    ipaas_id: Optional[str] = None
    resource: Optional[str] = None
    priority: int = 0

    def dedup_key(self) -> str:
        return dedup_key(self.source, self.collection, self.scope, self.external_id, self.ipaas_id)


@dataclass(frozen=True)
class SyncRequest:
    """A row of the inbox."""

    id: int
    received_at: dt.datetime
    source: str
    system: str
    collection: str
    direction: str
    scope: str
    action: str
    external_id: Optional[str]
    ipaas_id: Optional[str]
    resource: Optional[str]
    priority: int
    status: str
    run_id: Optional[str]
    batch_key: Optional[str]
    error: Optional[str]
    attempts: int
    updated_at: dt.datetime


_ROW_FIELDS = [f.name for f in fields(SyncRequest)]


def dedup_key(source: str, collection: str, scope: str, external_id: Optional[str], ipaas_id: Optional[str]) -> str:
    # Each part is length-prefixed, so no choice of ids can make two different requests share a key.
    parts = [source, collection, scope, external_id, ipaas_id]
    text = "".join("-" if p is None else f"{len(p)}:{p}" for p in parts)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_ready: "weakref.WeakSet[Engine]" = weakref.WeakSet()
_ready_lock = threading.Lock()


def ensure_table(engine: Engine) -> None:
    """Create the inbox table on this engine if it is not there yet (once per engine and process)."""
    if engine in _ready:
        return
    with _ready_lock:
        if engine not in _ready:
            metadata.create_all(engine, tables=[sync_requests], checkfirst=True)
            _ready.add(engine)


def _insert(engine: Engine):
    return (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(sync_requests)


def _check(request: NewRequest) -> None:
    if request.source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {request.source!r}")
    if request.direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {request.direction!r}")
    for name in ("system", "collection", "scope", "action"):
        if not isinstance(getattr(request, name), str) or not getattr(request, name):
            raise ValueError(f"{name} must be a non-empty string")
    for name in ("external_id", "ipaas_id"):
        value = getattr(request, name)
        if value is not None and (not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH):
            raise ValueError(f"{name} must be a non-empty string of at most {MAX_ID_LENGTH} characters")


def _as_request(item: Union[NewRequest, Mapping[str, Any]]) -> NewRequest:
    return item if isinstance(item, NewRequest) else NewRequest(**item)


def enqueue(engine: Engine, requests: Sequence[Union[NewRequest, Mapping[str, Any]]]) -> list[int]:
    """Record requests in one transaction (all or nothing); returns one inbox id per request, in order.

    A request equal to one still pending (same dedup key) is not added again: its id is the pending
    row's, whose priority is raised if the new request's is higher.
    """
    items = [_as_request(r) for r in requests]
    if not items:
        return []
    for item in items:
        _check(item)
    ensure_table(engine)
    keys = [item.dedup_key() for item in items]
    for attempt in range(5):
        try:
            return _enqueue_once(engine, items, keys)
        except IntegrityError:  # pragma: no cover - a concurrent claim or enqueue raced this one; try again
            if attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _enqueue_once(engine: Engine, items: list[NewRequest], keys: list[str]) -> list[int]:
    now = _now()
    first: dict[str, NewRequest] = {}
    for key, item in zip(keys, items):
        previous = first.get(key)
        if previous is None or item.priority > previous.priority:
            first[key] = item
    rows = [
        {
            "received_at": now, "source": i.source, "system": i.system, "collection": i.collection,
            "direction": i.direction, "scope": i.scope, "action": i.action, "external_id": i.external_id,
            "ipaas_id": i.ipaas_id, "resource": i.resource, "priority": i.priority, "status": "pending",
            "run_id": None, "batch_key": None, "error": None, "attempts": 0, "updated_at": now, "dedup_key": key,
        }
        for key, i in first.items()
    ]
    with engine.begin() as conn:
        # The first statement writes, so SQLite takes its write lock at once (no read-then-upgrade deadlock);
        # ON CONFLICT DO NOTHING leaves a request that is already pending as it is.
        statement = _insert(engine).on_conflict_do_nothing(index_elements=["dedup_key"])
        conn.execute(statement, rows)
        found: dict[str, tuple[int, int]] = {}
        unique_keys = list(first)
        for start in range(0, len(unique_keys), _CHUNK):
            chunk = unique_keys[start : start + _CHUNK]
            for row in conn.execute(
                select(sync_requests.c.dedup_key, sync_requests.c.id, sync_requests.c.priority).where(
                    sync_requests.c.dedup_key.in_(chunk)
                )
            ):
                found[row.dedup_key] = (row.id, row.priority)
        missing = [k for k in unique_keys if k not in found]
        if missing:  # pragma: no cover - claimed between our insert and select; the retry inserts it anew
            raise IntegrityError("sync request claimed while being enqueued", None, Exception())
        for key, item in first.items():
            row_id, priority = found[key]
            if item.priority > priority:
                conn.execute(
                    update(sync_requests).where(sync_requests.c.id == row_id).values(priority=item.priority)
                )
    return [found[key][0] for key in keys]


def record_failed(engine: Engine, failures: Sequence[tuple[NewRequest, str]]) -> list[int]:
    """Record requests that ended before any run (e.g. a notified record deleted before it was read), as failed
    with why, so `bc-pipeline sync --status` shows them. Returns their ids."""
    if not failures:
        return []
    for request, _ in failures:
        _check(request)
    ensure_table(engine)
    now = _now()
    ids = []
    with engine.begin() as conn:
        for i, error in failures:
            if len(error) > MAX_ERROR_LENGTH:
                error = error[: MAX_ERROR_LENGTH - 1] + "…"
            ids.append(conn.execute(sync_requests.insert().values(
                received_at=now, source=i.source, system=i.system, collection=i.collection, direction=i.direction,
                scope=i.scope, action=i.action, external_id=i.external_id, ipaas_id=i.ipaas_id, resource=i.resource,
                priority=i.priority, status="failed", run_id=None, batch_key=None, error=error, attempts=0,
                updated_at=now, dedup_key=None)).inserted_primary_key[0])
    return ids


def _rows(result) -> list[SyncRequest]:
    return [SyncRequest(**{name: row[name] for name in _ROW_FIELDS}) for row in result.mappings()]


def _columns():
    return [sync_requests.c[name] for name in _ROW_FIELDS]


def pending(engine: Engine, limit: int = 1000, *, collection: Optional[str] = None) -> list[SyncRequest]:
    """The oldest pending requests, highest priority (Manual Sync "Debug") first."""
    ensure_table(engine)
    query = select(*_columns()).where(sync_requests.c.status == "pending")
    if collection is not None:
        query = query.where(sync_requests.c.collection == collection)
    query = query.order_by(sync_requests.c.priority.desc(), sync_requests.c.id).limit(limit)
    with engine.connect() as conn:
        return _rows(conn.execute(query))


def claim(engine: Engine, ids: Iterable[int], run_id: str, batch_key: Optional[str] = None) -> list[int]:
    """Mark pending requests running for a run; returns the ids the run now holds (others were taken).

    Claiming again with the same run id is harmless: ids the run already holds are returned again.
    """
    ids = list(dict.fromkeys(int(i) for i in ids))
    if not ids:
        return []
    ensure_table(engine)
    now = _now()
    claimed: list[int] = []
    with engine.begin() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            conn.execute(
                update(sync_requests)
                .where(and_(sync_requests.c.id.in_(chunk), sync_requests.c.status == "pending"))
                .values(status="running", run_id=run_id, batch_key=batch_key, attempts=sync_requests.c.attempts + 1,
                        dedup_key=None, error=None, updated_at=now)
            )
            claimed += conn.execute(
                select(sync_requests.c.id).where(
                    and_(sync_requests.c.id.in_(chunk), sync_requests.c.status == "running",
                         sync_requests.c.run_id == run_id)
                )
            ).scalars().all()
    return sorted(claimed)


def finish(engine: Engine, ids: Iterable[int], status: str, error: Optional[str] = None, *,
           run_id: Optional[str] = None) -> int:
    """Mark requests done or failed (with the error); with `run_id`, only those that run holds. Returns the count."""
    if status not in ("done", "failed"):
        raise ValueError(f"finish takes status 'done' or 'failed', got {status!r}")
    ids = list(dict.fromkeys(int(i) for i in ids))
    if not ids:
        return 0
    ensure_table(engine)
    if error is not None and len(error) > MAX_ERROR_LENGTH:
        error = error[: MAX_ERROR_LENGTH - 1] + "…"
    changed = 0
    with engine.begin() as conn:
        for start in range(0, len(ids), _CHUNK):
            condition = sync_requests.c.id.in_(ids[start : start + _CHUNK])
            if run_id is not None:
                condition = and_(condition, sync_requests.c.run_id == run_id)
            changed += conn.execute(
                update(sync_requests).where(condition).values(status=status, error=error, dedup_key=None,
                                                              updated_at=_now())
            ).rowcount
    return changed


def status(engine: Engine, *, ids: Optional[Iterable[int]] = None, statuses: Optional[Iterable[str]] = None,
           collection: Optional[str] = None, source: Optional[str] = None, run_id: Optional[str] = None,
           batch_key: Optional[str] = None, external_id: Optional[str] = None, ipaas_id: Optional[str] = None,
           limit: Optional[int] = 100) -> list[SyncRequest]:
    """Requests matching every filter given, newest first."""
    ensure_table(engine)
    query = select(*_columns())
    if ids is not None:
        query = query.where(sync_requests.c.id.in_([int(i) for i in ids]))
    if statuses is not None:
        wanted = list(statuses)
        unknown = [s for s in wanted if s not in STATUSES]
        if unknown:
            raise ValueError(f"unknown status {unknown[0]!r}; known: {', '.join(STATUSES)}")
        query = query.where(sync_requests.c.status.in_(wanted))
    for column, value in (("collection", collection), ("source", source), ("run_id", run_id),
                          ("batch_key", batch_key), ("external_id", external_id), ("ipaas_id", ipaas_id)):
        if value is not None:
            query = query.where(sync_requests.c[column] == value)
    query = query.order_by(sync_requests.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return _rows(conn.execute(query))


def counts(engine: Engine) -> dict[str, int]:
    """How many requests are in each status."""
    ensure_table(engine)
    with engine.connect() as conn:
        found = dict(conn.execute(select(sync_requests.c.status, func.count()).group_by(sync_requests.c.status)).all())
    return {s: int(found.get(s, 0)) for s in STATUSES}


def requeue_stale(engine: Engine, older_than: Union[dt.timedelta, float], *,
                  max_attempts: Optional[int] = None) -> list[int]:
    """Return running requests untouched for `older_than` (a timedelta or seconds) to pending.

    With `max_attempts`, a request already tried that often becomes failed instead. A requeued request
    gets its dedup key back unless the same request has meanwhile been enqueued again (then both stay
    pending; processing a record twice is harmless). Returns the ids requeued or failed.
    """
    if not isinstance(older_than, dt.timedelta):
        older_than = dt.timedelta(seconds=float(older_than))
    ensure_table(engine)
    cutoff = _now() - older_than
    try:
        return _requeue(engine, cutoff, max_attempts, restore_keys=True)
    except IntegrityError:  # pragma: no cover - a concurrent enqueue took a key we meant to restore
        return _requeue(engine, cutoff, max_attempts, restore_keys=False)


def _requeue(engine: Engine, cutoff: dt.datetime, max_attempts: Optional[int], *, restore_keys: bool) -> list[int]:
    now = _now()
    with engine.begin() as conn:
        stale = conn.execute(
            select(sync_requests.c.id, sync_requests.c.source, sync_requests.c.collection, sync_requests.c.scope,
                   sync_requests.c.external_id, sync_requests.c.ipaas_id, sync_requests.c.attempts,
                   sync_requests.c.run_id)
            .where(and_(sync_requests.c.status == "running", sync_requests.c.updated_at < cutoff))
            .order_by(sync_requests.c.id)
        ).all()
        if not stale:
            return []
        keys = {row.id: dedup_key(row.source, row.collection, row.scope, row.external_id, row.ipaas_id) for row in stale}
        taken: set[str] = set()
        if restore_keys:
            values = list(set(keys.values()))
            for start in range(0, len(values), _CHUNK):
                taken.update(conn.execute(
                    select(sync_requests.c.dedup_key).where(sync_requests.c.dedup_key.in_(values[start : start + _CHUNK]))
                ).scalars())
        for row in stale:
            if max_attempts is not None and row.attempts >= max_attempts:
                values = {"status": "failed", "dedup_key": None,
                          "error": f"run {row.run_id} went silent; gave up after {row.attempts} attempt(s)"}
            else:
                key = keys[row.id] if restore_keys and keys[row.id] not in taken else None
                if key is not None:
                    taken.add(key)
                values = {"status": "pending", "dedup_key": key, "error": f"requeued: run {row.run_id} went silent"}
            conn.execute(
                update(sync_requests)
                .where(and_(sync_requests.c.id == row.id, sync_requests.c.status == "running"))
                .values(updated_at=now, **values)
            )
    return [row.id for row in stale]


__all__ = [
    "DIRECTIONS", "NewRequest", "SOURCES", "STATUSES", "SyncRequest", "claim", "counts", "dedup_key", "enqueue",
    "ensure_table", "finish", "pending", "record_failed", "requeue_stale", "status", "sync_requests",
]

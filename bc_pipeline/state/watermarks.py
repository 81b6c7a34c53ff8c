"""Incremental-read watermarks: read the committed one, propose a pending one, commit it after delivery."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Engine, select

from bc_pipeline.state.tables import watermarks


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def committed(engine: Engine, entity: str) -> Optional[str]:
    with engine.connect() as conn:
        return conn.execute(select(watermarks.c.committed).where(watermarks.c.entity == entity)).scalar_one_or_none()


def propose(engine: Engine, entity: str, field: str, value: Optional[str], run_id: str) -> None:
    """Remember the newest change date an extraction saw; it becomes the watermark only on commit."""
    with engine.begin() as conn:
        row = conn.execute(select(watermarks.c.entity).where(watermarks.c.entity == entity)).first()
        values = {"field": field, "pending": value, "pending_run_id": run_id, "updated_at": _now()}
        if row is None:
            conn.execute(watermarks.insert().values(entity=entity, committed=None, **values))
        else:
            conn.execute(watermarks.update().where(watermarks.c.entity == entity).values(**values))


def commit(engine: Engine, entity: str, run_id: Optional[str] = None) -> Optional[str]:
    """Move the pending watermark to committed (only the one proposed by `run_id`, when given)."""
    with engine.begin() as conn:
        row = conn.execute(select(watermarks).where(watermarks.c.entity == entity)).mappings().first()
        if row is None or row["pending"] is None:
            return row["committed"] if row else None
        if run_id is not None and row["pending_run_id"] != run_id:
            return row["committed"]
        newest = max(filter(None, [row["committed"], row["pending"]]))
        conn.execute(
            watermarks.update().where(watermarks.c.entity == entity).values(committed=newest, pending=None, updated_at=_now())
        )
        return newest


def reset(engine: Engine, entity: str) -> None:
    with engine.begin() as conn:
        conn.execute(watermarks.delete().where(watermarks.c.entity == entity))


def consumer_key(entity: str, consumer: str) -> str:
    return f"{entity}:{consumer}"


def committed_for_consumers(engine: Engine, entity: str, consumers: list[str]) -> Optional[str]:
    """The oldest watermark among the collections that read an entity: none of them may miss a change."""
    if not consumers:
        return committed(engine, entity)
    values = [committed(engine, consumer_key(entity, c)) for c in consumers]
    if any(v is None for v in values):
        return None
    return min(values)


def commit_for_consumer(engine: Engine, entity: str, consumer: str, run_id: str) -> Optional[str]:
    """After a collection delivered what `run_id` extracted, its watermark moves to what that run saw."""
    with engine.begin() as conn:
        row = conn.execute(select(watermarks).where(watermarks.c.entity == entity)).mappings().first()
        if row is None or row["pending"] is None or row["pending_run_id"] != run_id:
            return None
        key = consumer_key(entity, consumer)
        mine = conn.execute(select(watermarks.c.committed).where(watermarks.c.entity == key)).scalar_one_or_none()
        newest = max(filter(None, [mine, row["pending"]]))
        values = {"field": row["field"], "committed": newest, "pending": None, "pending_run_id": None, "updated_at": _now()}
        exists = conn.execute(select(watermarks.c.entity).where(watermarks.c.entity == key)).first()
        if exists is None:
            conn.execute(watermarks.insert().values(entity=key, **values))
        else:
            conn.execute(watermarks.update().where(watermarks.c.entity == key).values(**values))
        return newest

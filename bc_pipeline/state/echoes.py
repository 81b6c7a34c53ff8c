"""Per-record echo fingerprints: what one direction wrote, so the other does not write it back."""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import Engine, select

from bc_pipeline.state.records import _delete, _now, upsert
from bc_pipeline.state.tables import echoes


def expected(engine: Engine, collection: str) -> dict[str, tuple[str, str]]:
    """record id → (fingerprint, counterpart id) of what the other direction wrote, for the collection reading it back."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(echoes.c.record_id, echoes.c.fingerprint, echoes.c.counterpart_id).where(echoes.c.collection == collection)
        )
        return {r: (f, c) for r, f, c in rows}


def expect(engine: Engine, collection: str, written: Iterable[tuple[str, str, str]]) -> None:
    """(record id, fingerprint, counterpart id): the collection will read these back and must not write them back."""
    now = _now()
    rows = [{"collection": collection, "record_id": str(r), "fingerprint": f, "counterpart_id": str(c), "written_at": now}
            for r, f, c in written]
    upsert(engine, echoes, rows, ("collection", "record_id"))


def forget(engine: Engine, collection: str, record_ids: Iterable[str]) -> None:
    """Once a record was read back (echo or change), its fingerprint says nothing more."""
    ids = [str(r) for r in record_ids]
    if ids:
        _delete(engine, echoes, "collection", collection, "record_id", ids)

"""Transform staged Business Central extracts with a mapping collection into staged iPaaS.com payloads."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import orjson
import pandas as pd
from sqlalchemy import Engine

from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.mapping.collection import MappingCollection
from bc_pipeline.mapping.engine import MappedRecord, apply_collection
from bc_pipeline.replay import remap_dead_letters
from bc_pipeline.state import records as state
from bc_pipeline.state.staging import StagedExtract, StagingArea

PAYLOAD_CHUNK = 5_000


class MissingExtract(Exception):
    """No complete extract of a source entity exists yet."""


@dataclass
class TransformResult:
    collection: str
    source_rows: int
    mapped: int
    unmapped: int  # records the mapping could not complete (e.g. a reference not linked yet)
    seconds: float
    location: str
    sample: Optional[dict[str, Any]]


def _frame(extract: StagedExtract) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for page in extract.pages():
        rows.extend(page)
    return pd.DataFrame(rows)


def _extract_for(staging: StagingArea, entity: str, run_id: str) -> StagedExtract:
    staged = staging.extract(entity, run_id)
    if staged.complete:
        return staged
    latest = staging.latest(entity)
    if latest is None:
        raise MissingExtract(f"no extract of {entity} yet: materialize bc/{entity} first")
    return latest


def payload_dir(staging: StagingArea, collection: MappingCollection, run_id: str) -> Path:
    return staging.root / "payloads" / collection.slug / run_id


def transform(collection: MappingCollection, staging: StagingArea, engine: Engine, run_id: str,
              bc: Optional[BusinessCentralClient] = None) -> TransformResult:
    """Map this run's extract; with `bc`, also the dead letters' records, re-read as BC holds them now."""
    started = time.monotonic()
    frame = _frame(_extract_for(staging, collection.source, run_id))
    child_frames = {c.source: _frame(_extract_for(staging, c.source, run_id)) for c in collection.children}
    cache: dict[str, dict[str, str]] = {}

    def links(table: str) -> dict[str, str]:
        if table not in cache:
            cache[table] = state.links(engine, table)
        return cache[table]

    records = apply_collection(collection, frame, links, child_frames)
    if bc is not None:
        records += remap_dead_letters(collection, bc, engine, {r.external_id for r in records}, links)
    directory = payload_dir(staging, collection, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("part-*.json"):
        old.unlink()
    for number, start in enumerate(range(0, max(len(records), 1), PAYLOAD_CHUNK), start=1):
        chunk = records[start : start + PAYLOAD_CHUNK]
        (directory / f"part-{number:06d}.json").write_bytes(orjson.dumps([r.__dict__ for r in chunk]))
    unmapped = sum(1 for r in records if r.error)
    return TransformResult(
        collection=collection.name,
        source_rows=len(frame),
        mapped=len(records) - unmapped,
        unmapped=unmapped,
        seconds=time.monotonic() - started,
        location=str(directory),
        sample=records[0].payload if records else None,
    )


def read_payloads(staging: StagingArea, collection: MappingCollection, run_id: str) -> list[MappedRecord]:
    directory = payload_dir(staging, collection, run_id)
    if not directory.exists():
        earlier = sorted((d for d in directory.parent.glob("*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
        if not earlier:
            raise MissingExtract(f"no payloads for {collection.name} yet: materialize mapped/{collection.slug} first")
        directory = earlier[-1]
    records: list[MappedRecord] = []
    for part in sorted(directory.glob("part-*.json")):
        records.extend(MappedRecord(**item) for item in orjson.loads(part.read_bytes()))
    return records

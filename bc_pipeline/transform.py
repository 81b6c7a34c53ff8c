"""Transform staged Business Central extracts with a mapping collection into staged iPaaS.com payloads."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Collection, Optional, Sequence

import pandas as pd
from sqlalchemy import Engine

from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.documents import complete_documents
from bc_pipeline.mapping.collection import MappingCollection
from bc_pipeline.mapping.engine import MappedRecord, apply_collection
from bc_pipeline.replay import remap_dead_letters
from bc_pipeline.state import records as state
from bc_pipeline.state.staging import MissingExtract, StagedExtract, StagingArea

__all__ = ["MissingExtract", "TransformResult", "transform", "read_payloads", "payloads_of"]

PAYLOAD_CHUNK = 5_000


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


def transform(collection: MappingCollection, staging: StagingArea, engine: Engine, run_id: str,
              bc: Optional[BusinessCentralClient] = None, lineage: Sequence[str] = (),
              dead_letters: Optional[Collection[str]] = None) -> TransformResult:
    """Map this run's extract; with `bc`, also the dead letters' records (all, or those named), re-read as BC holds
    them now.

    `lineage` are the runs a re-execution re-executes, nearest first: an extract that was not re-executed is the
    one its parent run staged. Never another run's, whatever is newer or older (MissingExtract names it)."""
    started = time.monotonic()
    runs = [run_id, *[r for r in lineage if r != run_id]]
    extracts = {entity: staging.require_extract(entity, runs) for entity in collection.source_entities}
    frame = _frame(extracts[collection.source])
    child_frames = {c.source: _frame(extracts[c.source]) for c in collection.children}
    if bc is not None and collection.children:
        modes = {entity: str(e.manifest().get("mode")) for entity, e in extracts.items()}
        frame, child_frames = complete_documents(collection, frame, child_frames, modes, bc)
    cache: dict[str, dict[str, str]] = {}

    def links(table: str) -> dict[str, str]:
        if table not in cache:
            cache[table] = state.links(engine, table)
        return cache[table]

    records = apply_collection(collection, frame, links, child_frames)
    if bc is not None:
        records += remap_dead_letters(collection, bc, engine, {r.external_id for r in records}, links, dead_letters)
    writer = staging.payload_writer(collection.slug, run_id)
    for start in range(0, len(records), PAYLOAD_CHUNK):
        writer.write_page([r.__dict__ for r in records[start : start + PAYLOAD_CHUNK]])
    writer.finish(collection=collection.name, run_id=run_id,
                  extracts={entity: staged.run_id for entity, staged in extracts.items()})
    staging.prune_payloads(collection.slug)
    unmapped = sum(1 for r in records if r.error)
    return TransformResult(
        collection=collection.name,
        source_rows=len(frame),
        mapped=len(records) - unmapped,
        unmapped=unmapped,
        seconds=time.monotonic() - started,
        location=writer.location,
        sample=records[0].payload if records else None,
    )


def read_payloads(staging: StagingArea, collection: MappingCollection, run_id: str,
                  lineage: Sequence[str] = ()) -> list[MappedRecord]:
    """Exactly the payloads this run's transform wrote (or, re-executed, its parent run's), or MissingExtract."""
    return payloads_of(staging, collection, run_id, lineage)[1]


def payloads_of(staging: StagingArea, collection: MappingCollection, run_id: str,
                lineage: Sequence[str] = ()) -> tuple[StagedExtract, list[MappedRecord]]:
    """The staged payloads a load delivers (where they are, and what they map from), and the records."""
    staged = staging.require_payloads(collection.slug, [run_id, *[r for r in lineage if r != run_id]])
    records: list[MappedRecord] = []
    for page in staged.pages():
        records.extend(MappedRecord(**item) for item in page)
    return staged, records

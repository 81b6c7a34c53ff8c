"""Extract one Business Central entity into the staging area, full or incremental, a page at a time."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Optional

from sqlalchemy import Engine

from bc_pipeline.catalog import Entity
from bc_pipeline.clients import odata
from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.progress import Progress
from bc_pipeline.state import watermarks
from bc_pipeline.state.staging import StagedExtract, StagingArea
from bc_pipeline.state.tables import extractions

EMPTY_DATES = {"", "0001-01-01", "0001-01-01T00:00:00Z"}


@dataclass
class ExtractionResult:
    """What one extraction read, what it cost, and where it landed."""

    entity: str
    service: str
    mode: str
    filter: Optional[str]
    rows: int
    pages: int
    bytes: int
    requests: int
    seconds: float
    throttle_wait_seconds: float
    newest_change: Optional[str]
    location: str
    sample_keys: list[str] = field(default_factory=list)
    duplicate_keys: list[str] = field(default_factory=list)  # at most 10 shown
    records_without_key: int = 0


def incremental_filter(entity: Entity, since: Optional[str]) -> Optional[str]:
    """`Last_Date_Modified ge 2026-11-01`: `ge`, not `gt`, so records sharing the boundary date are re-read."""
    if not entity.modified_at or not since:
        return None
    if entity.modified_at_is_date:
        value: object = dt.date.fromisoformat(since[:10])
    else:
        value = dt.datetime.fromisoformat(since.replace("Z", "+00:00")) if "T" in since else dt.date.fromisoformat(since)
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    return odata.compare(entity.modified_at, "ge", value)


def extract(
    client: BusinessCentralClient,
    entity: Entity,
    staging: StagingArea,
    engine: Engine,
    run_id: str,
    *,
    full_refresh: bool = False,
    extra_filter: Optional[str] = None,
    page_size: Optional[int] = None,
    consumers: Optional[list[str]] = None,
    partial: bool = False,
    keys: Optional[list[str]] = None,
    key_field: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> tuple[ExtractionResult, StagedExtract]:
    """Read every page of the entity's service into staging and record what was read.

    `partial`: the read is narrowed (a date range, some keys): it neither uses nor proposes a watermark.
    """
    started = time.monotonic()
    requests_before = client.counter.requests
    wait_before = client.throttle.stats.waited_seconds
    partial = partial or bool(keys)
    since = None if (full_refresh or partial) else watermarks.committed_for_consumers(engine, entity.name, consumers or [])
    mode = "partial" if partial else "incremental" if (since and entity.modified_at) else "full"
    query_filter = odata.all_of(entity.fixed_filter, incremental_filter(entity, since), extra_filter)

    writer = staging.writer(entity.name, run_id)
    newest: Optional[str] = None
    samples: list[str] = []
    # Checked as the pages stream by, so the asset check needs no second read of the staged files.
    seen: set[tuple] = set()
    duplicates: list[str] = []
    without_key = 0
    check_keys = entity.object_type == "Page"
    for page in _pages(client, entity, query_filter, page_size, keys, key_field):
        writer.write_page(page.records)
        if progress is not None:
            progress.add(len(page.records))
        if check_keys:
            for record in page.records:
                key = tuple(record.get(k) for k in entity.keys)
                if None in key:
                    without_key += 1
                elif key in seen:
                    if len(duplicates) < 10:
                        duplicates.append("|".join(map(str, key)))
                else:
                    seen.add(key)
        if entity.modified_at:
            newest = _newest(newest, page.records, entity.modified_at)
        if len(samples) < 5:
            samples.extend(entity.external_id(r) for r in page.records[: 5 - len(samples)] if _has_keys(r, entity))

    seconds = time.monotonic() - started
    result = ExtractionResult(
        entity=entity.name,
        service=entity.service,
        mode=mode,
        filter=query_filter,
        rows=writer.rows,
        pages=writer.pages,
        bytes=writer.bytes,
        requests=client.counter.requests - requests_before,
        seconds=seconds,
        throttle_wait_seconds=client.throttle.stats.waited_seconds - wait_before,
        newest_change=newest,
        location=writer.location,
        sample_keys=samples,
        duplicate_keys=duplicates,
        records_without_key=without_key,
    )
    staged = writer.finish(entity=entity.name, service=entity.service, mode=mode, filter=query_filter, run_id=run_id)
    with engine.begin() as conn:
        conn.execute(
            extractions.insert().values(
                entity=entity.name, run_id=run_id, mode=mode, filter=query_filter, rows=result.rows,
                location=result.location, finished_at=dt.datetime.now(dt.timezone.utc),
            )
        )
    if entity.modified_at and not partial:
        watermarks.propose(engine, entity.name, entity.modified_at, newest or since, run_id)
    staging.prune(entity.name)
    return result, staged


KEYS_PER_QUERY = 40  # `or` chains over one field; many more would make the URL too long


def _pages(client, entity: Entity, query_filter, page_size, keys, key_field):
    """All pages of the query; for requested keys, one query per chunk of keys, each key a literal."""
    if not keys:
        yield from client.iter_pages(entity.service, select=entity.select or None, filter=query_filter, page_size=page_size)
        return
    field = key_field or entity.record_keys[0]
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), KEYS_PER_QUERY):
        chunk_filter = odata.all_of(query_filter, odata.any_of(field, unique[start : start + KEYS_PER_QUERY]))
        yield from client.iter_pages(entity.service, select=entity.select or None, filter=chunk_filter, page_size=page_size)


def _newest(current: Optional[str], records: list[dict], field_name: str) -> Optional[str]:
    values = [r.get(field_name) for r in records]
    values = [v for v in values if isinstance(v, str) and v not in EMPTY_DATES]
    if not values:
        return current
    page_max = max(values)
    return page_max if current is None or page_max > current else current


def _has_keys(record: dict, entity: Entity) -> bool:
    return all(k in record for k in entity.keys)

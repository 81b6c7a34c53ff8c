"""Load a collection whose records refer to records not linked yet: those are created (or linked) first."""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Callable, Optional

import pandas as pd
from sqlalchemy import Engine

from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.loading import Loader, LoadReport
from bc_pipeline.mapping.collection import Direction, MappingCollection
from bc_pipeline.mapping.engine import MappedRecord, apply_collection
from bc_pipeline.mapping.registry import all_collections
from bc_pipeline.replay import key_values, read_where
from bc_pipeline.state import records as state

log = logging.getLogger(__name__)

MAX_DEPTH = 10  # a category tree deeper than this (or a cycle) leaves the rest unresolved, with its error


def collection_for_table(table: str) -> Optional[MappingCollection]:
    """The one TO-iPaaS collection that loads `table` (None when none or several do)."""
    found = [c for c in all_collections().values()
             if c.direction is Direction.TO_IPAAS and c.table.lower() == table.lower() and c.parent is None]
    return found[0] if len(found) == 1 else None


class ReferenceResolver:
    """Creates or links the referenced records a batch is missing, each through its own collection's loader."""

    def __init__(self, client: IpaasClient, engine: Engine, bc_factory: Callable[[], BusinessCentralClient],
                 run_id: Optional[str]):
        self.client, self.engine, self.run_id = client, engine, run_id
        self._bc_factory = bc_factory
        self._bc: Optional[BusinessCentralClient] = None
        self.created_elsewhere: dict[str, LoadReport] = {}  # other collections' loads this made

    def close(self) -> None:
        if self._bc is not None:
            self._bc.close()

    def bc(self) -> BusinessCentralClient:
        if self._bc is None:
            self._bc = self._bc_factory()
        return self._bc

    def load(self, collection: MappingCollection, records: list[MappedRecord],
             progress_log: Optional[Callable[[str], None]] = None) -> LoadReport:
        """Load the records; those waiting for a reference wait until it is linked (parents before children)."""
        return self._load(collection, records, depth=0, progress_log=progress_log)

    def _load(self, collection: MappingCollection, records: list[MappedRecord], depth: int,
              progress_log: Optional[Callable[[str], None]] = None) -> LoadReport:
        report = LoadReport(collection=collection.name)
        remaining = list(records)
        while remaining:
            in_batch = {r.external_id for r in remaining}
            waiting = {id(r) for r in remaining if self._waits_in_batch(collection, r, in_batch)}
            ready = [r for r in remaining if id(r) not in waiting] or remaining  # a cycle: send as they are
            if depth < MAX_DEPTH:
                self._create_elsewhere(collection, ready, depth)
            self._fill(collection, ready)
            _add(report, Loader(self.client, self.engine, collection).load(ready, run_id=self.run_id,
                                                                           progress_log=progress_log))
            remaining = [r for r in remaining if id(r) in waiting] if len(ready) < len(remaining) else []
        return report

    @staticmethod
    def _waits_in_batch(collection: MappingCollection, record: MappedRecord, in_batch: set[str]) -> bool:
        """A record whose missing reference is another record of this batch (a category's parent) waits for it."""
        return any(m["table"].lower() == collection.table.lower() and m["key"] in in_batch
                   and m["key"] != record.external_id for m in record.missing_references)

    def _create_elsewhere(self, collection: MappingCollection, records: list[MappedRecord], depth: int) -> None:
        """Keys no record of this batch brings: read from Business Central and loaded through their collection."""
        wanted: dict[str, set[str]] = {}
        for record in records:
            for missing in record.missing_references:
                wanted.setdefault(missing["table"], set()).add(missing["key"])
        for table, keys in wanted.items():
            links = state.links(self.engine, table)
            keys = {k for k in keys if k not in links}
            target = collection_for_table(table)
            if not keys or target is None:
                continue
            parsed = [key_values(target.external_id, k) for k in sorted(keys)]
            parsed = [p for p in parsed if p and len(p) == 1]
            if not parsed:
                continue
            field = next(iter(parsed[0]))
            frame = pd.DataFrame(read_where(self.bc(), target.source, field, [p[field] for p in parsed]))
            cache: dict[str, dict[str, str]] = {}

            def link_lookup(t: str) -> dict[str, str]:
                if t not in cache:
                    cache[t] = state.links(self.engine, t)
                return cache[t]

            found = [r for r in apply_collection(target, frame, link_lookup) if r.external_id in keys]
            if not found:
                continue
            log.info("%s: %d %s record(s) not linked yet are created or linked first: %s", collection.name,
                     len(found), target.target_model, ", ".join(r.external_id for r in found[:20]))
            report = self._load(target, found, depth + 1)
            _add(self.created_elsewhere.setdefault(target.name, LoadReport(collection=target.name)), report)

    def _fill(self, collection: MappingCollection, records: list[MappedRecord]) -> None:
        """Each missing reference now linked gets its iPaaS id; a record's error goes once none is missing."""
        links: dict[str, dict[str, str]] = {}
        for record in records:
            if not record.missing_references:
                continue
            still, resolved_errors = [], set()
            for missing in record.missing_references:
                table = missing["table"]
                if table not in links:
                    links[table] = state.links(self.engine, table)
                internal_id = links[table].get(missing["key"])
                if internal_id is None:
                    still.append(missing)
                    continue
                rule = collection.fields[missing["field"]]
                record.payload[missing["field"]] = [{rule.as_list_item: internal_id}] if rule.as_list_item else internal_id
                if missing.get("error"):
                    resolved_errors.add(missing["error"])
            record.missing_references = still
            if record.error is not None and record.error in resolved_errors:
                record.error = next((m["error"] for m in still if m.get("error")), None)


def _add(total: LoadReport, part: LoadReport) -> None:
    for f in fields(LoadReport):
        if f.name in ("collection",):
            continue
        value = getattr(part, f.name)
        if isinstance(value, list):
            getattr(total, f.name).extend(value)
        elif isinstance(value, dict):
            getattr(total, f.name).update(value)
        else:
            setattr(total, f.name, getattr(total, f.name) + value)
    total.slowest = sorted(total.slowest, reverse=True)[:5]
    total.failed_keys = total.failed_keys[:20]


def load_collection(client: IpaasClient, engine: Engine, collection: MappingCollection, records: list[MappedRecord],
                    *, run_id: Optional[str], bc_factory: Callable[[], BusinessCentralClient],
                    progress_log: Optional[Callable[[str], None]] = None) -> LoadReport:
    """Loader.load, except that references marked create_missing are created or linked first."""
    if not any(r.missing_references for r in records):
        return Loader(client, engine, collection).load(records, run_id=run_id, progress_log=progress_log)
    resolver = ReferenceResolver(client, engine, bc_factory, run_id)
    try:
        report = resolver.load(collection, records, progress_log)
    finally:
        resolver.close()
    for name, made in resolver.created_elsewhere.items():
        log.info("%s: first %d created, %d linked, %d updated in %s", collection.name, made.created, made.linked,
                 made.updated, name)
    return report

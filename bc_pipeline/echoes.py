"""Echo suppression by origin: what one direction writes is fingerprinted as the other direction will read it back.

A TO-iPaaS load fingerprints each iPaaS.com record it wrote (its answer) as the FROM-iPaaS collection reads it; a
FROM-iPaaS write fingerprints each BC record it wrote (its answer, with the children read once) as the TO-iPaaS
collections map it. A record read back with exactly that fingerprint is the write coming back, not a change.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

import pandas as pd
from sqlalchemy import Engine

from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.mapping.collection import MappingCollection
from bc_pipeline.mapping.engine import apply_collection, filter_mask
from bc_pipeline.mapping.ipaas_rows import flat_row
from bc_pipeline.mapping.registry import from_ipaas_collections, to_ipaas_collections
from bc_pipeline.replay import read_where
from bc_pipeline.state import echoes as expected_echoes
from bc_pipeline.state import records as state

log = logging.getLogger(__name__)


def from_counterpart(to: MappingCollection) -> Optional[MappingCollection]:
    """The FROM-iPaaS collection that reads back what a TO-iPaaS collection writes (same iPaaS model and table)."""
    if to.parent is not None:
        return None
    return next((c for c in from_ipaas_collections().values() if c.source == to.target_model and c.table == to.table),
                None)


def to_counterparts(from_collection: MappingCollection) -> list[MappingCollection]:
    """The TO-iPaaS collections that read back what a FROM-iPaaS collection writes (same BC entity and table).
    update_only ones (company relationships: the bill-to parent and the contacts) read nothing a FROM write sets, so
    their payload stays what they last sent: fingerprinting them would cost a read of their children for nothing."""
    return [c for c in to_ipaas_collections().values()
            if c.source == from_collection.target_model and c.table == from_collection.table and c.parent is None
            and not c.update_only]


def _read_columns(rules, filters=()) -> list[str]:
    return sorted({f for r in rules for f in r.source_fields()} | {f.field for f in filters})


def ipaas_fingerprint(from_collection: MappingCollection, record: dict[str, Any]) -> str:
    """What a FROM-iPaaS collection reads of an iPaaS.com record (its columns, and its lines' with their ids), as a
    digest: fields it does not read (inventory, tracking, links, timestamps) change it not."""
    c = from_collection
    row = flat_row(record)
    read: dict[str, Any] = {name: row.get(name) for name in _read_columns(
        [*c.fields.values(), *c.custom_fields, *c.add_only_fields.values()], c.filter)}
    if c.link_when_key_equals:
        read[c.link_when_key_equals] = row.get(c.link_when_key_equals)
    for child in c.children:
        columns = _read_columns([*child.fields.values(), *child.custom_fields]) + ["id", "sequence_number"]
        items = [flat_row(i) for i in record.get(child.name) or [] if isinstance(i, dict)]
        read[f"{child.name}[]"] = [{name: item.get(name) for name in columns} for item in items]
    return state.digest(read)


class IpaasEchoes:
    """For a TO-iPaaS load: remembers each iPaaS.com record it wrote as its FROM counterpart will read it back, kept
    FLUSH_EVERY at a time (a load killed meanwhile loses at most those: they come back once, as without this)."""

    FLUSH_EVERY = 100

    def __init__(self, engine: Engine, to_collection: MappingCollection):
        self.engine = engine
        self.collection = from_counterpart(to_collection)
        self._pending: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()  # a load commits from several threads

    def remember(self, ipaas_id: str, bc_key: str, answer: Any) -> None:
        """`answer`: the record as iPaaS.com holds it after the write (the create's or update's answer)."""
        if self.collection is None or not isinstance(answer, dict):
            return
        fingerprint = ipaas_fingerprint(self.collection, answer)
        with self._lock:
            self._pending.append((ipaas_id, fingerprint, bc_key))
            full = len(self._pending) >= self.FLUSH_EVERY
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            expected_echoes.expect(self.engine, self.collection.slug, pending)


def remember_bc_writes(bc: BusinessCentralClient, engine: Engine, from_collection: MappingCollection,
                       written: dict[str, tuple[dict[str, Any], str]]) -> None:
    """After a FROM-iPaaS write: `written` is BC key → (the BC record as BC answered the write, its iPaaS id). For
    each TO-iPaaS collection that reads these records back, the payload hash its load will compute, so that load
    does not send them back. Children from another service (ship-to addresses, contacts, order lines) are read once,
    20 documents a request. Never fails the write: without a fingerprint the record is simply sent back once."""
    from bc_pipeline.loading import payload_hash  # loading imports this module

    if not written:
        return
    links_cache: dict[str, dict[str, str]] = {}

    def links(table: str) -> dict[str, str]:
        if table not in links_cache:
            links_cache[table] = state.links(engine, table)
        return links_cache[table]

    children_read: dict[tuple[str, str], pd.DataFrame] = {}
    for c in to_counterparts(from_collection):
        try:
            # An older fingerprint says nothing about these records now (one refused or filtered out keeps none).
            expected_echoes.forget(engine, c.slug, written)
            frame = pd.DataFrame([row for row, _ in written.values()])
            if c.filter:
                frame = frame[filter_mask(c.filter, frame)]
            if frame.empty:
                continue
            child_frames: dict[str, pd.DataFrame] = {}
            for child in c.children:
                if child.source == c.source:
                    child_frames[child.source] = frame
                    continue
                if (child.source, child.child_key) not in children_read:
                    every = sorted({str(row.get(child.parent_key)) for row, _ in written.values()})
                    children_read[(child.source, child.child_key)] = pd.DataFrame(
                        read_where(bc, child.source, child.child_key, every))
                rows = children_read[(child.source, child.child_key)]
                keys = {str(k) for k in frame[child.parent_key]}
                child_frames[child.source] = rows[rows[child.child_key].astype(str).isin(keys)] if len(rows) else rows
            expected_echoes.expect(engine, c.slug, [
                (r.external_id, payload_hash(r), written[r.external_id][1])
                for r in apply_collection(c, frame, links, child_frames)
                if r.error is None and not r.missing_references and r.external_id in written])
        except Exception as exc:  # noqa: BLE001 - the write is done; only its echo is not suppressed
            log.warning("%s: could not fingerprint the BC records just written as %s reads them (%s); the next sync to "
                        "iPaaS.com sends them back once", from_collection.name, c.name, getattr(exc, "message", exc))

"""The preview before writing: what a run would create, update, leave unchanged or refuse, field by field; reads only."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Optional, Sequence

import pandas as pd
from sqlalchemy import Engine
from tabulate import tabulate

from bc_pipeline.catalog import BY_NAME, with_change_field
from bc_pipeline.clients import odata
from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.echoes import ipaas_fingerprint
from bc_pipeline.extraction import incremental_filter
from bc_pipeline.loading import Loader, payload_hash
from bc_pipeline.mapping.collection import Collision, MappingCollection
from bc_pipeline.mapping.engine import MappedRecord, apply_collection, filter_mask
from bc_pipeline.mapping.registry import consumers_of, parents_of
from bc_pipeline.replay import dead_letter_records
from bc_pipeline.state import echoes as expected_echoes
from bc_pipeline.state import records as state
from bc_pipeline.state import watermarks
from bc_pipeline.writing import BcWriter, WriteFailed

KINDS = ("created", "updated", "unchanged", "refused")
COLUMNS = (*KINDS, "filtered_out", "requests", "seconds")
SHOWN = 20  # records listed per collection; the rest are counted
KEPT = 200  # records kept per collection (metadata stays small whatever the table's size)
TO_IPAAS, TO_BC = "to iPaaS.com", "to Business Central"
# Stands for the iPaaS id of a record this preview would create, so what refers to it maps as the run would map it.
NEW = "(new"
ECHO = "what the other direction just wrote: not written back"


@dataclass
class Change:
    field: str
    old: Any
    new: Any


@dataclass
class Planned:
    """What a run would do to one record."""

    kind: str  # created | updated | unchanged | refused
    key: str  # where it comes from: the BC key (to iPaaS.com) or the iPaaS id (to BC)
    target: Optional[str] = None  # what it would write to: an iPaaS id or a BC key
    changes: list[Change] = field(default_factory=list)
    reason: Optional[str] = None


@dataclass
class CollectionPreview:
    """One collection's preview: counts of every kind, and the first KEPT records that would change or are refused."""

    collection: str
    slug: str
    direction: str
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in (*KINDS, "filtered_out")})
    items: list[Planned] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0

    def add(self, item: Planned) -> None:
        self.counts[item.kind] += 1
        if item.kind != "unchanged" and len(self.items) < KEPT:
            self.items.append(item)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CollectionPreview":
        items = [Planned(**{**i, "changes": [Change(**c) for c in i.get("changes", [])]}) for i in data.get("items", [])]
        return cls(**{**data, "items": items})

    def headline(self) -> str:
        c = self.counts
        return (f"{self.slug}: {c['created']} to create, {c['updated']} to update, {c['unchanged']} unchanged, "
                f"{c['refused']} refused, {c['filtered_out']} left out by the filter")


# -- comparing -------------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def same(current: Any, wanted: Any) -> bool:
    """Equal as the services see it: 12 and 12.0 and "12" are one value; so are None and ""."""
    if _empty(current) and _empty(wanted):
        return True
    if current == wanted or (not isinstance(wanted, (dict, list)) and str(current) == str(wanted)):
        return True
    if isinstance(current, bool) or isinstance(wanted, bool):
        return False
    try:
        return abs(float(current) - float(wanted)) < 1e-9
    except (TypeError, ValueError):
        return False


def payload_changes(payload: dict[str, Any], current: dict[str, Any], child_names: Sequence[str] = ()) -> list[Change]:
    """Field by field, what the payload would change in the record as it is now (fields it does not own are kept)."""
    changes: list[Change] = []
    for name, wanted in payload.items():
        if name == "custom_fields":
            now = {c.get("custom_field_name"): c.get("value") for c in current.get("custom_fields") or [] if isinstance(c, dict)}
            changes += [Change(f"custom_fields.{c['custom_field_name']}", now.get(c["custom_field_name"]), c.get("value"))
                        for c in wanted or [] if not same(now.get(c["custom_field_name"]), c.get("value"))]
        elif name in child_names and isinstance(wanted, list):
            now_items = [i for i in current.get(name) or [] if isinstance(i, dict)]
            for position, item in enumerate(wanted, 1):
                if position > len(now_items):
                    changes.append(Change(f"{name}[{position}]", None, "(added)"))
                    continue
                changes += [Change(f"{name}[{position}].{k}", now_items[position - 1].get(k), v)
                            for k, v in item.items() if not same(now_items[position - 1].get(k), v)]
            changes += [Change(f"{name}[{p}]", "(there now)", None) for p in range(len(wanted) + 1, len(now_items) + 1)]
        elif name in current and not same(current[name], wanted):
            # A field the service does not return is one it does not keep: sending it shows no change there.
            changes.append(Change(name, current[name], wanted))
    return changes


def _summary(values: dict[str, Any], limit: int = 3) -> str:
    shown = [(k, v) for k, v in values.items() if not isinstance(v, (list, dict)) and not _empty(v)][:limit]
    return ", ".join(f"{k} {_value(v)}" for k, v in shown)


def _value(value: Any, width: int = 60) -> str:
    text = "—" if value is None else repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# -- Business Central → iPaaS.com --------------------------------------------------------------


def in_load_order(collections: Sequence[MappingCollection]) -> list[MappingCollection]:
    """Parents before the collections that refer to them, as a run loads them."""
    chosen = {c.slug: c for c in collections}
    ordered: list[MappingCollection] = []

    def visit(c: MappingCollection, path: tuple[str, ...] = ()) -> None:
        if any(o.slug == c.slug for o in ordered) or c.slug in path:
            return
        for parent in parents_of(c):
            if parent.slug in chosen:
                visit(parent, (*path, c.slug))
        ordered.append(c)

    for c in collections:
        visit(c)
    return ordered


class ToIpaasPreview:
    """Reads BC as the run's extracts would, maps as its transforms do and compares with iPaaS.com as its loads find it."""

    def __init__(self, bc: BusinessCentralClient, ipaas: IpaasClient, engine: Engine, *, full_refresh: bool = False):
        self.bc, self.ipaas, self.engine, self.full_refresh = bc, ipaas, engine, full_refresh
        self._frames: dict[str, pd.DataFrame] = {}
        self._links: dict[str, dict[str, str]] = {}
        self._new: dict[str, dict[str, str]] = {}  # table → external id → stand-in for a record this run would create

    def run(self, collections: Sequence[MappingCollection]) -> Iterator[CollectionPreview]:
        for collection in in_load_order(collections):
            yield self.preview(collection)

    def _frame(self, name: str) -> pd.DataFrame:
        """The entity as this run's extract would read it (incremental from the same watermark), held in memory."""
        if name not in self._frames:
            entity = with_change_field(BY_NAME[name], self.bc.settings.modified_at_fields)
            since = None if self.full_refresh else watermarks.committed_for_consumers(self.engine, name, consumers_of(name))
            query = odata.all_of(entity.fixed_filter, incremental_filter(entity, since))
            self._frames[name] = pd.DataFrame(list(self.bc.read(entity.service, select=entity.select or None, filter=query)))
        return self._frames[name]

    def links(self, table: str) -> dict[str, str]:
        if table not in self._links:
            self._links[table] = state.links(self.engine, table)
        new = self._new.get(table)
        return {**new, **self._links[table]} if new else self._links[table]

    def preview(self, c: MappingCollection) -> CollectionPreview:
        started, before = time.monotonic(), self.bc.counter.requests + self.ipaas.counter.requests
        out = CollectionPreview(c.name, c.slug, TO_IPAAS)
        frame = self._frame(c.source)
        if not frame.empty and c.filter:
            out.counts["filtered_out"] = int((~filter_mask(c.filter, frame)).sum())
        records = apply_collection(c, frame, self.links, {ch.source: self._frame(ch.source) for ch in c.children})
        retried, _ = dead_letter_records(c, self.bc, self.engine, {r.external_id for r in records}, self.links)
        batch = {r.external_id: r for r in records + retried}

        links = state.links(self.engine, c.table)
        delivered = state.hashes(self.engine, c.slug)
        echoes = expected_echoes.expected(self.engine, c.slug)
        dead = {d.external_id for d in state.dead_letters_of(self.engine, c.slug)}
        compare: list[MappedRecord] = []
        for record in batch.values():
            previous = delivered.get(record.external_id)
            if record.error is not None:
                out.add(Planned("refused", record.external_id, reason=record.error))
            elif str(record.parent_id or "").startswith(NEW):
                self._created(c, out, record, f"under {record.parent_id[1:-1]}, which this run would create")
            elif previous and previous[0] == payload_hash(record) and record.external_id in links \
                    and record.external_id not in dead:
                out.add(Planned("unchanged", record.external_id, target=links[record.external_id]))
            elif echoes.get(record.external_id) == (payload_hash(record), links.get(record.external_id)) \
                    and record.external_id not in dead:
                out.add(Planned("unchanged", record.external_id, target=links[record.external_id], reason=ECHO))
            else:
                compare.append(record)
        try:
            found = Loader(self.ipaas, self.engine, c).find_existing(compare, links) if compare else []
        except Exception as exc:  # the preview of the other collections goes on
            found = [(None, None, f"could not be compared: {getattr(exc, 'message', exc)}")] * len(compare)
        child_names = [child.name for child in c.children]
        for record, (internal_id, current, how) in zip(compare, found):
            if how.startswith("could not"):
                out.add(Planned("refused", record.external_id, reason=how))
            elif internal_id is None:
                self._created(c, out, record, _summary(record.payload))
            elif how == "matched" and c.collision is Collision.ERROR:
                out.add(Planned("refused", record.external_id, target=internal_id, reason=(
                    f"an iPaaS.com {c.target_model} with {c.match_on} {record.match_value!r} already exists and the "
                    "collection's collision method is ERROR")))
            elif how == "matched":
                changes = [] if c.collision is Collision.REMAP_AND_LINK else payload_changes(record.payload, current, child_names)
                out.add(Planned("updated", record.external_id, target=internal_id, changes=changes, reason=(
                    f"matches it by {c.match_on} {record.match_value!r}"
                    + ("" if c.collision is Collision.UPDATE_AND_NO_LINK else " and links it"))))
            else:
                changes = payload_changes(record.payload, current, child_names)
                out.add(Planned("updated" if changes else "unchanged", record.external_id, target=internal_id,
                                changes=changes))
        out.requests = self.bc.counter.requests + self.ipaas.counter.requests - before
        out.seconds = round(time.monotonic() - started, 3)
        return out

    def _created(self, c: MappingCollection, out: CollectionPreview, record: MappedRecord, reason: str) -> None:
        out.add(Planned("created", record.external_id, reason=reason or None))
        self._new.setdefault(c.table, {})[record.external_id] = f"{NEW} {c.table} {record.external_id})"


# -- iPaaS.com → Business Central --------------------------------------------------------------


def preview_from_ipaas(c: MappingCollection, bc: BusinessCentralClient, ipaas: IpaasClient, engine: Engine,
                       ipaas_ids: Optional[Sequence[str]] = None) -> CollectionPreview:
    """Reads iPaaS.com and maps as the writer does, and compares with the BC record the writer would find."""
    started, before = time.monotonic(), bc.counter.requests + ipaas.counter.requests
    out = CollectionPreview(c.name, c.slug, TO_BC)
    writer = BcWriter(bc, ipaas, engine, c)
    delivered = state.hashes(engine, c.slug)
    echoes = expected_echoes.expected(engine, c.slug)
    retried = [d.external_id for d in state.dead_letters_of(engine, c.slug)]
    for ipaas_id, record in _ipaas_records(c, ipaas, ipaas_ids, retried):
        if record is None:
            out.add(Planned("refused", ipaas_id, reason=f"iPaaS.com has no {c.source} with id {ipaas_id}"))
            continue
        try:
            planned = _planned_write(writer, c, ipaas_id, record, delivered.get(ipaas_id), echoes.get(ipaas_id))
        except Exception as exc:  # one record's surprise costs the others nothing
            planned = Planned("refused", ipaas_id, reason=str(exc) if isinstance(exc, WriteFailed)
                              else f"could not be compared: {getattr(exc, 'message', exc)}")
        if planned is None:
            out.counts["filtered_out"] += 1
        else:
            out.add(planned)
    out.requests = bc.counter.requests + ipaas.counter.requests - before
    out.seconds = round(time.monotonic() - started, 3)
    return out


def _ipaas_records(c: MappingCollection, ipaas: IpaasClient, ipaas_ids: Optional[Sequence[str]],
                   retried: list[str]) -> Iterator[tuple[str, Optional[dict[str, Any]]]]:
    """The requested records (none: every record of the model, listed as a poll lists them), then earlier failures."""
    seen: set[str] = set()
    if ipaas_ids:
        wanted = list(ipaas_ids)
    else:
        wanted = []
        for page in ipaas.iter_pages(c.source, page_size=1000):
            for record in page:
                seen.add(str(record["id"]))
                yield str(record["id"]), record
    for ipaas_id in dict.fromkeys([str(i) for i in wanted] + retried):
        if ipaas_id not in seen:
            yield ipaas_id, ipaas.get(c.source, ipaas_id)


def _planned_write(writer: BcWriter, c: MappingCollection, ipaas_id: str, record: dict[str, Any],
                   previous: Optional[tuple[str, str]], echo: Optional[tuple[str, str]]) -> Optional[Planned]:
    plan = writer.planned(record)
    if plan is None:
        return None
    values, children, digest = plan
    if echo is not None and echo[0] == ipaas_fingerprint(c, record):
        return Planned("unchanged", ipaas_id, target=echo[1], reason=ECHO)
    bc_key = writer.existing_key(ipaas_id, values)
    if bc_key is not None and previous and previous == (digest, bc_key):
        return Planned("unchanged", ipaas_id, target=bc_key)
    lines = sum(len(v) for v in children.values())
    if bc_key is None:
        return Planned("created", ipaas_id, reason=_summary(values) + (f"; {lines} lines" if lines else ""))
    entity = writer.entity
    keys = entity.keys_from_external_id(bc_key)
    current = writer.read_or_none(entity.service, keys)
    if current is None:
        return Planned("refused", ipaas_id, target=bc_key, reason=(
            f"linked to Business Central {entity.service} {bc_key}, which is no longer there: the write would fail"))
    changes = [Change(k, current.get(k), v) for k, v in values.items() if k not in keys and not same(current.get(k), v)]
    line_changes: list[Change] = []
    for child in c.children:
        line_entity = BY_NAME[child.model]
        for line in children[child.name]:
            line_keys = {"Document_Type": "Order", child.child_key: bc_key, "Line_No": line["Line_No"]}
            now = writer.read_or_none(line_entity.service, line_keys)
            label = f"{child.name}[{line['Line_No']}]"
            if now is None:
                line_changes.append(Change(label, None, f"(added: {line.get('No')})"))
                continue
            line_changes += [Change(f"{label}.{k}", now.get(k), v) for k, v in line.items()
                             if k not in line_keys and k != "_ipaas_id" and not same(now.get(k), v)]
    status = current.get("Status")
    if line_changes and status not in (None, "Open"):
        return Planned("refused", ipaas_id, target=bc_key, changes=line_changes, reason=(
            f"order {bc_key} is {status} in Business Central, so its lines cannot change: reopen it first"))
    changes += line_changes
    return Planned("updated" if changes else "unchanged", ipaas_id, target=bc_key, changes=changes)


# -- showing it --------------------------------------------------------------------------------


def _lines(p: CollectionPreview, limit: int, code: str = "") -> list[str]:
    """One line per record, changes indented under it; at most `limit` records, then how many more."""
    lines: list[str] = []
    where = {TO_IPAAS: "iPaaS.com id", TO_BC: "Business Central"}[p.direction]
    for item in p.items[:limit]:
        target = f" ({where} {item.target})" if item.target else ""
        mark = {"created": "+", "updated": "~", "refused": "!"}[item.kind]
        reason = f": {item.reason}" if item.reason else ""
        lines.append(f"{mark} {item.kind} {code}{item.key}{code}{target}{reason}")
        shown = item.changes[:SHOWN]
        lines += [f"    {code}{ch.field}{code}: {_value(ch.old)} -> {_value(ch.new)}" for ch in shown]
        if len(item.changes) > len(shown):
            lines.append(f"    … and {len(item.changes) - len(shown)} more fields")
    rest = p.counts["created"] + p.counts["updated"] + p.counts["refused"] - min(limit, len(p.items))
    if rest > 0:
        lines.append(f"… and {rest} more records")
    return lines


def table(previews: Sequence[CollectionPreview], tablefmt: str = "github") -> str:
    rows = [(p.slug, p.direction, *(p.counts[k] for k in (*KINDS, "filtered_out")), p.requests, f"{p.seconds:.2f}")
            for p in previews]
    return tabulate(rows, headers=["collection", "direction", *COLUMNS], tablefmt=tablefmt)


def render_terminal(previews: Sequence[CollectionPreview], limit: int = SHOWN) -> str:
    """A table of every collection, then each collection's records that would change or are refused."""
    parts = ["Preview: nothing was written (no record, link, hash, watermark or dead letter).", "", table(previews)]
    for p in previews:
        if p.items:
            parts += ["", f"{p.slug} ({p.collection}, {p.direction}):", *_lines(p, limit)]
    return "\n".join(parts)


def render_markdown(p: CollectionPreview, limit: int = SHOWN) -> str:
    """One collection's preview for the Dagster UI."""
    head = f"**{p.headline().split(': ', 1)[1]}** — nothing was written.\n\n"
    body = _lines(p, limit, code="`")
    return head + ("\n".join(f"- {line}" if not line.startswith("    ") else f"    - {line.strip()}" for line in body)
                   if body else "Nothing would change.")

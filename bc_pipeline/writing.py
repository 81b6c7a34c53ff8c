"""iPaaS.com → Business Central: create or update BC records by their links, with ETags, idempotently."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import orjson
import pandas as pd
from sqlalchemy import Engine

from bc_pipeline.catalog import BY_NAME, Entity
from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.clients import odata
from bc_pipeline.clients.errors import EntityChangedError, PipelineError, ServiceError, outcome_unclear
from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.find_before_create import create_once
from bc_pipeline.mapping.addresses import address_columns
from bc_pipeline.mapping.collection import Child, MappingCollection
from bc_pipeline.mapping.engine import filter_mask, map_rules
from bc_pipeline.state import records as state

log = logging.getLogger(__name__)

LINE_NO_STEP = 10_000


class WriteFailed(PipelineError):
    """A record that could not be written to Business Central; kept as a dead letter."""

    def __init__(self, message: str, *, status: Optional[int] = None, code: Optional[str] = None,
                 correlation_id: Optional[str] = None, details: Optional[dict] = None):
        super().__init__(message)
        self.status, self.code, self.correlation_id, self.details = status, code, correlation_id, details or {}


@dataclass
class WriteOutcome:
    ipaas_id: str
    kind: str  # created | updated | unchanged | skipped | failed
    bc_key: Optional[str] = None
    error: Optional[str] = None
    lines_created: int = 0
    lines_updated: int = 0


@dataclass
class WriteReport:
    collection: str
    outcomes: list[WriteOutcome] = field(default_factory=list)
    bc_requests: int = 0
    ipaas_requests: int = 0
    seconds: float = 0.0

    def count(self, kind: str) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind)


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    """An iPaaS record as one row: custom fields become `custom_fields.<name>` columns."""
    row = {k: v for k, v in record.items() if not isinstance(v, (list, dict))}
    for custom in record.get("custom_fields") or []:
        if isinstance(custom, dict) and custom.get("custom_field_name"):
            row[f"custom_fields.{custom['custom_field_name']}"] = custom.get("value")
    row.update(address_columns(record))  # billing_address.city, shipping_address.postal_code, …
    return row


def _digest(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


class BcWriter:
    """Writes the iPaaS records of one FROM-iPaaS collection into Business Central."""

    def __init__(self, bc: BusinessCentralClient, ipaas: IpaasClient, engine: Engine, collection: MappingCollection):
        self.bc = bc
        self.ipaas = ipaas
        self.engine = engine
        self.collection = collection
        self.entity: Entity = BY_NAME[collection.target_model]
        self._reverse: dict[str, dict[str, str]] = {}
        self._header: Optional[dict[str, Any]] = None  # the BC record last read before an update

    def _links(self, table: str) -> dict[str, str]:
        """iPaaS id → BC key, from the cached links (references point the other way on the way back)."""
        if table not in self._reverse:
            self._reverse[table] = {internal: external for external, internal in state.links(self.engine, table).items()}
        return self._reverse[table]

    # -- many records ------------------------------------------------------------------------

    def sync(self, ipaas_ids: list[str]) -> WriteReport:
        """Write the requested records, and every earlier failure of the collection again; each is committed as it lands."""
        started = time.monotonic()
        bc_before, ipaas_before = self.bc.counter.requests, self.ipaas.counter.requests
        report = WriteReport(collection=self.collection.name)
        hashes = state.hashes(self.engine, self.collection.slug)
        retried = [d.external_id for d in state.dead_letters_of(self.engine, self.collection.slug)]
        for ipaas_id in dict.fromkeys([str(i) for i in ipaas_ids] + retried):
            outcome, digest, failure = self._one_safely(ipaas_id, hashes.get(ipaas_id))
            report.outcomes.append(outcome)
            if failure is not None:
                state.record_failures(self.engine, self.collection.slug, [failure])
            elif outcome.kind in ("created", "updated", "unchanged", "skipped"):
                if digest and outcome.bc_key:
                    state.save_hashes(self.engine, self.collection.slug, [(ipaas_id, digest, outcome.bc_key)])
                state.clear_dead_letters(self.engine, self.collection.slug, [ipaas_id])
        report.bc_requests = self.bc.counter.requests - bc_before
        report.ipaas_requests = self.ipaas.counter.requests - ipaas_before
        report.seconds = time.monotonic() - started
        return report

    def _one_safely(self, ipaas_id: str, previous) -> tuple[WriteOutcome, Optional[str], Optional[dict[str, Any]]]:
        """One record as its own unit of work: whatever goes wrong becomes its dead letter, the rest go on."""
        try:
            outcome, digest = self._one(ipaas_id, previous)
            return outcome, digest, None
        except Exception as exc:  # each record is its own unit of work: the rest go on
            if not isinstance(exc, PipelineError):
                log.exception("%s: iPaaS id %s failed unexpectedly", self.collection.name, ipaas_id)
            error = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
            if getattr(exc, "code", None) == "Internal_InvalidTableRelation":
                where = (self.collection.source_file or "").rsplit("/", 1)[-1] or self.collection.name
                error += (f" What to do: create that code in Business Central, or translate the iPaaS.com value in "
                          f"{where} (a `lookup:` on the field).")
            failure = {"external_id": ipaas_id, "payload": getattr(exc, "details", None) or {}, "error": error,
                       "status": getattr(exc, "status", None),
                       "code": getattr(exc, "code", None) or type(exc).__name__,
                       "correlation_id": getattr(exc, "correlation_id", None)}
            return WriteOutcome(ipaas_id, "failed", error=error), None, failure

    def poll_ids(self) -> list[str]:
        """Every iPaaS record of the collection's model (a scheduled run without requested ids)."""
        ids: list[str] = []
        for page in self.ipaas.iter_pages(self.collection.source, page_size=1000):
            ids.extend(str(r["id"]) for r in page)
        return ids

    # -- one record --------------------------------------------------------------------------

    def _map(self, rules, custom, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Optional[str]]]:
        frame = pd.DataFrame(rows) if rows else pd.DataFrame()
        if frame.empty:
            return [], []
        return map_rules(rules, custom, frame, self._links)

    def _one(self, ipaas_id: str, previous: Optional[tuple[str, str]]) -> tuple[WriteOutcome, Optional[str]]:
        c = self.collection
        record = self.ipaas.get(c.source, ipaas_id)
        if record is None:
            raise WriteFailed(f"iPaaS.com has no {c.source} with id {ipaas_id}", status=404)
        row = _flatten(record)
        frame = pd.DataFrame([row])
        if c.filter and not bool(filter_mask(c.filter, frame).iloc[0]):
            rules = ", ".join(f"{r.field}" for r in c.filter)
            return WriteOutcome(ipaas_id, "skipped", error=f"not sent: the collection's filter on {rules} excludes it"), None
        [values], [error] = self._map(c.fields, c.custom_fields, [row])
        if error:
            raise WriteFailed(error, details={"ipaas": record})
        values = {k: v for k, v in values.items() if v is not None and k != "custom_fields"}
        children = {child.name: self._child_values(child, record) for child in c.children}
        digest = _digest({"header": values, "children": children})

        bc_key = self._linked_key(c.table, ipaas_id)
        if bc_key is None and c.match_on and values.get(c.match_on):
            bc_key = self._existing_key({c.match_on: values[c.match_on]})
        if bc_key is not None and previous and previous[0] == digest and previous[1] == bc_key:
            return WriteOutcome(ipaas_id, "unchanged", bc_key=bc_key), digest

        if bc_key is not None:
            kind = "updated" if self._update(bc_key, values, ipaas_id, record) else "unchanged"
        else:
            bc_key, kind = self._create(values, ipaas_id, record), "created"
        outcome = WriteOutcome(ipaas_id, kind, bc_key=bc_key)
        # BC refuses line changes on an order that is not Open (Released, pending approval): say so, write nothing.
        status = None if kind == "created" else (self._header or {}).get("Status")
        for child in c.children:
            created, updated = self._write_children(child, bc_key, record, children[child.name],
                                                    new_parent=kind == "created", parent_status=status)
            outcome.lines_created += created
            outcome.lines_updated += updated
            if (created or updated) and outcome.kind == "unchanged":
                outcome.kind = "updated"
        return outcome, digest

    def _linked_key(self, table: str, ipaas_id: str) -> Optional[str]:
        cached = self._links(table).get(ipaas_id)
        if cached is not None:
            return cached
        found = self.ipaas.lookup_external_id(table, ipaas_id)
        if found is not None:
            state.save_links(self.engine, table, [(found, ipaas_id)])
            self._links(table)[ipaas_id] = found
        return found

    def _existing_key(self, keys: dict[str, Any]) -> Optional[str]:
        """The BC record with these values: a key read when they are its key, else a filtered read."""
        if set(keys) <= set(self.entity.keys):
            record = self._get_or_none(self.entity.service, keys)
            return self.entity.external_id(record) if record is not None else None
        query = odata.all_of(self.entity.fixed_filter, *(odata.compare(k, "eq", v) for k, v in keys.items()))
        found = list(self.bc.read(self.entity.service, select=list(self.entity.keys), filter=query))
        if len(found) > 1:
            raise WriteFailed(
                f"{len(found)} Business Central {self.entity.service} records have "
                + ", ".join(f"{k} {v!r}" for k, v in keys.items())
                + f" ({', '.join(self.entity.external_id(r) for r in found[:5])}); link the right one in iPaaS.com "
                "or make the value unique, then sync again"
            )
        return self.entity.external_id(found[0]) if found else None

    def _get_or_none(self, service: str, keys: dict[str, Any]) -> Optional[dict[str, Any]]:
        try:
            return self.bc.get(service, keys)
        except ServiceError as exc:
            if exc.status == 404:  # a record read: 404 means no such record, not an unpublished service
                return None
            raise

    def _create_once(self, service: str, body: dict[str, Any], find) -> dict[str, Any]:
        return create_once(lambda: self.bc.create(service, body), find, service)

    def _create(self, values: dict[str, Any], ipaas_id: str, record: dict[str, Any]) -> str:
        c = self.collection
        [add_only], _ = self._map(c.add_only_fields, [], [_flatten(record)]) if c.add_only_fields else ([{}], [None])
        body = {**{k: v for k, v in add_only.items() if v is not None and k != "custom_fields"}, **values}

        def find() -> Optional[dict[str, Any]]:
            key = self._existing_key({c.match_on: values[c.match_on]}) if c.match_on and values.get(c.match_on) else None
            return {"key": key} if key is not None else None

        created = self._create_once(self.entity.service, body, find)
        bc_key = created["key"] if set(created) == {"key"} else self.entity.external_id(created)
        # Link at once, here first: if anything after this fails, the next run finds the order instead of creating another.
        state.save_links(self.engine, c.table, [(bc_key, ipaas_id)])
        self._links(c.table)[ipaas_id] = bc_key
        self.ipaas.link(c.table, bc_key, ipaas_id)
        return bc_key

    def _update(self, bc_key: str, values: dict[str, Any], ipaas_id: str, record: dict[str, Any]) -> bool:
        """PATCH what differs, with the record's ETag; one re-read and retry on a conflict. True if written."""
        service = self.entity.service
        keys = self.entity.keys_from_external_id(bc_key)
        for attempt in (1, 2):
            current = self._header = self.bc.get(service, keys)
            changes = {k: v for k, v in values.items() if k not in keys and not _same(current.get(k), v)}
            if not changes:
                return False
            try:
                self.bc.update(service, keys, changes, etag=current["@odata.etag"])
                return True
            except EntityChangedError as exc:
                if attempt == 2:
                    latest = self.bc.get(service, keys)
                    raise WriteFailed(
                        f"Business Central record {bc_key} kept changing while it was updated (twice "
                        f"Request_EntityChanged); both versions are kept in the dead letter",
                        status=exc.status, code=exc.code, correlation_id=exc.correlation_id,
                        details={"ipaas": record, "wanted": changes, "business_central": latest},
                    ) from None
                log.info("%s %s changed in Business Central meanwhile; re-reading and applying again", service, bc_key)
        return False

    # -- children (sales order lines) --------------------------------------------------------

    def _child_values(self, child: Child, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The lines as BC values, each with the Line_No its iPaaS sequence number gives it."""
        items = [i for i in record.get(child.name) or [] if isinstance(i, dict)]
        rows = [_flatten(i) for i in items]
        mapped, errors = self._map(child.fields, child.custom_fields, rows)
        for item, error in zip(items, errors):
            if error:
                raise WriteFailed(f"line {item.get('sequence_number') or item.get('id')}: {error}", details={"ipaas": record})
        line_numbers = _line_numbers(items)
        return [
            {**{k: v for k, v in m.items() if v is not None and k != "custom_fields"}, "Line_No": n,
             "_ipaas_id": str(i["id"]) if i.get("id") not in (None, "") else None}
            for m, i, n in zip(mapped, items, line_numbers)
        ]

    def _write_children(self, child: Child, parent_key: str, record: dict[str, Any],
                        lines: list[dict[str, Any]], *, new_parent: bool,
                        parent_status: Optional[str] = None) -> tuple[int, int]:
        """Each line by its key (order, Line_No): PATCH what differs if BC has it, else POST; then link it.

        A line's key is known before it is written, so a line is never created twice: lines of an order
        created just now are not read first, and after an unclear create the key is read before sending again.
        """
        entity = BY_NAME[child.model]
        created = updated = 0
        for line in lines:
            line = dict(line)
            line_ipaas_id = line.pop("_ipaas_id")
            keys = {"Document_Type": "Order", child.child_key: parent_key, "Line_No": line["Line_No"]}
            line_key = entity.external_id(keys)
            try:
                current = None if new_parent else self._get_or_none(entity.service, keys)
                changes = {k: v for k, v in line.items() if k not in keys and not _same(current.get(k), v)} \
                    if current is not None else line
                if changes and parent_status not in (None, "Open"):
                    raise WriteFailed(
                        f"order {parent_key} is {parent_status} in Business Central, so its lines cannot change "
                        f"(line {line['Line_No']}, {line.get('No')}): reopen the order in Business Central, then sync "
                        f"again", code="OrderNotOpen", details={"ipaas": record})
                if current is not None:
                    if changes:
                        self.bc.update(entity.service, keys, changes, etag=current["@odata.etag"])
                        updated += 1
                else:
                    body = {**line, **keys}
                    self._create_once(entity.service, body, lambda: self._get_or_none(entity.service, keys))
                    created += 1
                if child.table and line_ipaas_id is not None and self._links(child.table).get(line_ipaas_id) != line_key:
                    state.save_links(self.engine, child.table, [(line_key, line_ipaas_id)])
                    self._links(child.table)[line_ipaas_id] = line_key
                    self.ipaas.link(child.table, line_key, line_ipaas_id)
            except WriteFailed:
                raise
            except (ServiceError, PipelineError) as exc:
                status, code, correlation = (exc.status, exc.code, exc.correlation_id) if isinstance(exc, ServiceError) \
                    else (None, type(exc).__name__, None)
                what = "was refused" if isinstance(exc, ServiceError) and not outcome_unclear(exc) else "could not be written"
                raise WriteFailed(
                    f"order {parent_key} is in Business Central but line {line['Line_No']} ({line.get('No')}) {what}: "
                    f"{getattr(exc, 'message', exc)} (the next run adds the missing lines, without a second order)",
                    status=status, code=code, correlation_id=correlation, details={"ipaas": record},
                ) from None
        return created, updated


def _line_numbers(items: list[dict[str, Any]]) -> list[int]:
    """BC Line_No per line: the iPaaS sequence number when every line has a distinct one, else by position."""
    sequence = [i.get("sequence_number") for i in items]
    try:
        numbers = [int(s) for s in sequence]
    except (TypeError, ValueError):
        numbers = []
    if numbers and all(n > 0 for n in numbers) and len(set(numbers)) == len(numbers):
        return numbers
    return [(position + 1) * LINE_NO_STEP for position in range(len(items))]


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(current, (int, float)) and isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        return abs(float(current) - float(wanted)) < 1e-9
    return current == wanted

"""iPaaS.com → Business Central: create or update BC records by their links, with ETags, idempotently."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pandas as pd
from sqlalchemy import Engine

from bc_pipeline.catalog import BY_NAME, Entity
from bc_pipeline.clients.business_central import MAX_BATCH_OPERATIONS, BusinessCentralClient
from bc_pipeline.clients import odata
from bc_pipeline.clients.errors import EntityChangedError, PipelineError, ServiceError, outcome_unclear, status_unclear
from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.echoes import ipaas_fingerprint, remember_bc_writes
from bc_pipeline.find_before_create import create_once
from bc_pipeline.mapping.collection import Child, MappingCollection
from bc_pipeline.mapping.engine import filter_mask, map_rules
from bc_pipeline.mapping.ipaas_rows import flat_row
from bc_pipeline.progress import Progress
from bc_pipeline.state import echoes as expected_echoes
from bc_pipeline.state import records as state

log = logging.getLogger(__name__)

LINE_NO_STEP = 10_000
MATCHES_PER_QUERY = 20  # values per `F eq 'a' or F eq 'b' …` read: short enough for any URL limit


class WriteFailed(PipelineError):
    """A record that could not be written to Business Central; kept as a dead letter."""

    def __init__(self, message: str, *, status: Optional[int] = None, code: Optional[str] = None,
                 correlation_id: Optional[str] = None, details: Optional[dict] = None):
        super().__init__(message)
        self.status, self.code, self.correlation_id, self.details = status, code, correlation_id, details or {}


@dataclass
class WriteOutcome:
    ipaas_id: str
    kind: str  # created | updated | unchanged | echo (what the TO direction wrote, not written back) | skipped | failed
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
        self._records: dict[str, Optional[dict[str, Any]]] = {}  # iPaaS records read ahead, until written
        self._matches: dict[str, list[str]] = {}  # match value (casefolded) → BC keys, read for many at once
        self._key_codes: dict[str, list[str]] = {}  # link_when_key_equals code (casefolded) → BC keys, read at once
        self._created_now: dict[str, str] = {}  # iPaaS id → BC key of a header just created in a $batch
        self._link_errors: dict[str, Exception] = {}  # iPaaS id → why its link failed after its $batch create
        self._echoes: dict[str, tuple[str, str]] = {}  # iPaaS id → (fingerprint, BC key) of what the TO direction wrote
        self._row: Optional[dict[str, Any]] = None  # the BC record as the last write left it (its answer)
        self._created_rows: dict[str, dict[str, Any]] = {}  # iPaaS id → BC's answer to its $batch create

    def _links(self, table: str) -> dict[str, str]:
        """iPaaS id → BC key, from the cached links (references point the other way on the way back)."""
        if table not in self._reverse:
            self._reverse[table] = {internal: external for external, internal in state.links(self.engine, table).items()}
        return self._reverse[table]

    # -- many records ------------------------------------------------------------------------

    def sync(self, ipaas_ids: list[str], *, retry_dead_letters: bool = True,
             progress_log: Optional[Callable[[str], None]] = None) -> WriteReport:
        """Write the requested records, and (unless told not to) every earlier failure of the collection again; each
        is committed as it lands. progress_log: where a line on the records written so far goes every few seconds."""
        started = time.monotonic()
        bc_before, ipaas_before = self.bc.counter.requests, self.ipaas.counter.requests
        report = WriteReport(collection=self.collection.name)
        hashes = state.hashes(self.engine, self.collection.slug)
        self._echoes = expected_echoes.expected(self.engine, self.collection.slug)
        written: dict[str, tuple[dict[str, Any], str]] = {}  # BC key → (the record as written, iPaaS id)
        retried = [d.external_id for d in state.dead_letters_of(self.engine, self.collection.slug)] \
            if retry_dead_letters else []
        todo = list(dict.fromkeys([str(i) for i in ipaas_ids] + retried))
        progress = Progress(self.collection.slug, progress_log, total=len(todo),
                            throttle_waited=lambda: self.bc.throttle.stats.waited_seconds) if progress_log else None
        self._find_matches_at_once(todo)
        self._create_at_once(todo)
        for ipaas_id in todo:
            outcome, digest, failure = self._one_safely(ipaas_id, hashes.get(ipaas_id))
            if progress is not None:
                progress.add()
            report.outcomes.append(outcome)
            if failure is not None:
                state.record_failures(self.engine, self.collection.slug, [failure])
            elif outcome.kind in ("created", "updated", "unchanged", "echo", "skipped"):
                if digest and outcome.bc_key:
                    state.save_hashes(self.engine, self.collection.slug, [(ipaas_id, digest, outcome.bc_key)])
                state.clear_dead_letters(self.engine, self.collection.slug, [ipaas_id])
                if ipaas_id in self._echoes:  # read back (an echo, or a change since): good for one read only
                    expected_echoes.forget(self.engine, self.collection.slug, [ipaas_id])
                if outcome.kind in ("created", "updated") and self._row is not None:
                    written[outcome.bc_key] = (self._row, ipaas_id)
        remember_bc_writes(self.bc, self.engine, self.collection, written)
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

    def _find_matches_at_once(self, ipaas_ids: list[str]) -> None:
        """Before writing, the BC records that records not linked yet would match (by match_on, or by key for
        link_when_key_equals), read for all of them at once: one request per MATCHES_PER_QUERY values, not one
        per record. Each record read from iPaaS.com is kept for its write. A record that then finds nothing is
        created without a look-up of its own."""
        c = self.collection
        if not c.match_on and not c.link_when_key_equals:
            return
        values, codes = [], []
        for ipaas_id in ipaas_ids:
            if self._links(c.table).get(ipaas_id) is not None:
                continue
            try:
                record = self._records[ipaas_id] = self.ipaas.get(c.source, ipaas_id)
                plan = self.planned(record) if record is not None else None
            except Exception:  # noqa: BLE001 - the record's own write reports it, as its dead letter
                continue
            if plan is None:
                continue
            if c.match_on and plan[0].get(c.match_on) not in (None, ""):
                values.append(str(plan[0][c.match_on]))
            if c.link_when_key_equals and _code(record.get(c.link_when_key_equals)):
                codes.append(_code(record.get(c.link_when_key_equals)))
        if values:
            self._matches.update(self._read_many(c.match_on, values))
        if codes:
            self._key_codes.update(self._read_many(self._own_key(), codes))

    def _own_key(self) -> str:
        [key] = self.entity.record_keys
        return key

    def _read_many(self, field_name: str, values: list[str]) -> dict[str, list[str]]:
        """Value (casefolded) → the BC keys of the records holding it, for every value (none: [])."""
        found: dict[str, list[str]] = {}
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), MATCHES_PER_QUERY):
            chunk = unique[start : start + MATCHES_PER_QUERY]
            query = odata.all_of(self.entity.fixed_filter, odata.any_of(field_name, chunk))
            found.update({_match_key(v): [] for v in chunk})
            for row in self.bc.read(self.entity.service, select=list(dict.fromkeys([*self.entity.keys, field_name])),
                                    filter=query):
                keys = found.setdefault(_match_key(row.get(field_name)), [])
                if self.entity.external_id(row) not in keys:
                    keys.append(self.entity.external_id(row))
        return found

    def _one(self, ipaas_id: str, previous: Optional[tuple[str, str]]) -> tuple[WriteOutcome, Optional[str]]:
        c = self.collection
        self._row = None
        record = self._records.pop(ipaas_id) if ipaas_id in self._records else self.ipaas.get(c.source, ipaas_id)
        if record is None:
            raise WriteFailed(f"iPaaS.com has no {c.source} with id {ipaas_id}", status=404)
        plan = self.planned(record)
        if plan is None:
            rules = ", ".join(f"{r.field}" for r in c.filter)
            return WriteOutcome(ipaas_id, "skipped", error=f"not sent: the collection's filter on {rules} excludes it"), None
        values, children, digest = plan
        echo = self._echoes.get(ipaas_id)
        if echo is not None and echo[0] == ipaas_fingerprint(c, record) and self._links(c.table).get(ipaas_id) == echo[1]:
            # What the TO direction wrote from this BC record, unchanged since: BC is where it came from.
            return WriteOutcome(ipaas_id, "echo", bc_key=echo[1]), digest

        created_now = self._created_now.pop(ipaas_id, None)  # its header went in a $batch of new records
        if created_now is not None:
            bc_key, kind = created_now, "created"
            self._row = self._created_rows.pop(ipaas_id, None)
        else:
            bc_key = self._linked_key(c.table, ipaas_id)
            if bc_key is None and c.link_when_key_equals:
                bc_key = self._link_when_key_equals(record, ipaas_id)
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
        link_error = self._link_errors.pop(ipaas_id, None)
        if link_error is not None:  # as a create on its own would: a dead letter, and the run exits 3
            raise WriteFailed(f"created in Business Central as {bc_key}, but its link could not be saved: "
                              f"{getattr(link_error, 'message', link_error)}", details={"ipaas": record})
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

    def _link_when_key_equals(self, record: dict[str, Any], ipaas_id: str) -> Optional[str]:
        """iPaaS.com's integration: an iPaaS record whose id (or the named field) is a BC record's key is that record."""
        value = record.get(self.collection.link_when_key_equals)
        if value in (None, ""):
            return None
        code = _code(value)
        if not code:
            return None
        if _match_key(code) in self._key_codes:  # read with the others' (_find_matches_at_once)
            hits = self._key_codes[_match_key(code)]
            if not hits:
                return None
            bc_key = hits[0]
        else:
            found = self._get_or_none(self.entity.service, {self._own_key(): code})
            if found is None:
                return None
            bc_key = self.entity.external_id(found)
        state.save_links(self.engine, self.collection.table, [(bc_key, ipaas_id)])
        self._links(self.collection.table)[ipaas_id] = bc_key
        self.ipaas.link(self.collection.table, bc_key, ipaas_id)
        return bc_key

    def _existing_key(self, keys: dict[str, Any], *, live: bool = False) -> Optional[str]:
        """The BC record with these values: a key read when they are its key, else what the read of many found
        (_find_matches_at_once), else a filtered read; `live`: always read (after an unclear create)."""
        cached = self._matches.get(_match_key(next(iter(keys.values())))) \
            if len(keys) == 1 and not live and set(keys) == {self.collection.match_on} else None
        if cached is None and set(keys) <= set(self.entity.keys):
            record = self._get_or_none(self.entity.service, keys)
            return self.entity.external_id(record) if record is not None else None
        if cached is not None:
            found_keys = cached
        else:
            query = odata.all_of(self.entity.fixed_filter, *(odata.compare(k, "eq", v) for k, v in keys.items()))
            found_keys = [self.entity.external_id(r)
                          for r in self.bc.read(self.entity.service, select=list(self.entity.keys), filter=query)]
        if len(found_keys) > 1:
            raise WriteFailed(
                f"{len(found_keys)} Business Central {self.entity.service} records have "
                + ", ".join(f"{k} {v!r}" for k, v in keys.items())
                + f" ({', '.join(found_keys[:5])}); link the right one in iPaaS.com "
                "or make the value unique, then sync again"
            )
        return found_keys[0] if found_keys else None

    def _get_or_none(self, service: str, keys: dict[str, Any]) -> Optional[dict[str, Any]]:
        try:
            return self.bc.get(service, keys)
        except ServiceError as exc:
            if exc.status == 404:  # a record read: 404 means no such record, not an unpublished service
                return None
            raise

    def _create_once(self, service: str, body: dict[str, Any], find) -> dict[str, Any]:
        return create_once(lambda: self.bc.create(service, body), find, service)

    def _create_body(self, values: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        add_only_rules = self.collection.add_only_rules()
        [add_only], _ = self._map(add_only_rules, [], [flat_row(record)]) if add_only_rules else ([{}], [None])
        return {**{k: v for k, v in add_only.items() if v is not None and k != "custom_fields"}, **values}

    def _create_at_once(self, ipaas_ids: list[str]) -> None:
        """New orders' headers in one `$batch` per 100 (each its own operation), each linked the moment its answer
        is read; their lines then go per order. Only records whose match value BC was just asked about and does not
        hold; after an unclear answer, or an operation answered 5xx or 429, their look-up is read again, live."""
        c = self.collection
        if not c.children or not c.match_on or c.link_when_key_equals:
            return
        batchable, seen = [], set()
        for ipaas_id in ipaas_ids:
            record = self._records.get(ipaas_id)
            if record is None or self._links(c.table).get(ipaas_id) is not None:
                continue
            try:
                plan = self.planned(record)
                value = plan[0].get(c.match_on) if plan is not None else None
                if value in (None, "") or self._matches.get(_match_key(value)) != [] or _match_key(value) in seen:
                    continue
                if self._linked_key(c.table, ipaas_id) is not None:
                    continue
                batchable.append((ipaas_id, self._create_body(plan[0], record), plan[0]))
                seen.add(_match_key(value))
            except Exception:  # noqa: BLE001 - the record's own write reports it, as its dead letter
                continue
        for start in range(0, len(batchable), MAX_BATCH_OPERATIONS):
            chunk = batchable[start : start + MAX_BATCH_OPERATIONS]
            operations = [{"method": "POST", "url": self.bc.service_url(self.entity.service), "body": body}
                          for _, body, _ in chunk]
            try:
                answers = self.bc.batch(operations)
            except (ServiceError, PipelineError) as exc:
                log.info("%s: %d new records' batch went unanswered or was refused (%s); each is looked up and written "
                         "on its own", c.name, len(chunk), exc)
                for _, _, values in chunk:
                    self._matches.pop(_match_key(values[c.match_on]), None)
                continue
            for (ipaas_id, _, values), answer in zip(chunk, answers):
                status = int(answer.get("status") or 0)
                if 200 <= status < 300 and isinstance(answer.get("body"), dict):
                    bc_key = self.entity.external_id(answer["body"])
                    self._created_rows[ipaas_id] = answer["body"]
                    self._matches[_match_key(values[c.match_on])] = [bc_key]
                    try:
                        self._remember_created(ipaas_id, bc_key, values)
                    except Exception as exc:  # noqa: BLE001 - its lines still go; the record then fails (_one)
                        self._link_errors[ipaas_id] = exc
                    self._created_now[ipaas_id] = bc_key
                elif status_unclear(status):  # it may have been written: read before writing again
                    self._matches.pop(_match_key(values[c.match_on]), None)
                # any other answer: refused, nothing written; the record's own write tells why

    def _create(self, values: dict[str, Any], ipaas_id: str, record: dict[str, Any]) -> str:
        c = self.collection
        body = self._create_body(values, record)

        def find() -> Optional[dict[str, Any]]:
            key = self._existing_key({c.match_on: values[c.match_on]}, live=True) \
                if c.match_on and values.get(c.match_on) else None
            return {"key": key} if key is not None else None

        created = self._create_once(self.entity.service, body, find)
        bc_key = created["key"] if set(created) == {"key"} else self.entity.external_id(created)
        self._row = None if set(created) == {"key"} else created
        self._remember_created(ipaas_id, bc_key, values)
        return bc_key

    def _remember_created(self, ipaas_id: str, bc_key: str, values: dict[str, Any]) -> None:
        c = self.collection
        if c.match_on and values.get(c.match_on) not in (None, ""):  # a later record with the same value finds it
            self._matches[_match_key(values[c.match_on])] = [bc_key]
        # Link at once, here first: if anything after this fails, the next run finds the order instead of creating another.
        state.save_links(self.engine, c.table, [(bc_key, ipaas_id)])
        self._links(c.table)[ipaas_id] = bc_key
        self.ipaas.link(c.table, bc_key, ipaas_id)

    def _update(self, bc_key: str, values: dict[str, Any], ipaas_id: str, record: dict[str, Any]) -> bool:
        """PATCH what differs, with the record's ETag; one re-read and retry on a conflict. True if written."""
        service = self.entity.service
        keys = self.entity.keys_from_external_id(bc_key)
        for attempt in (1, 2):
            current = self._header = self._row = self.bc.get(service, keys)
            changes = {k: v for k, v in values.items() if k not in keys and not _same(current.get(k), v)}
            if not changes:
                return False
            try:
                self._row = self.bc.update(service, keys, changes, etag=current["@odata.etag"])
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
        rows = [flat_row(i) for i in items]
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
        if new_parent:
            lines = self._create_lines_at_once(child, entity, parent_key, record, lines)
            created = sum(1 for line in lines if line.get("_created"))
        # The order's lines, read at once (not one by one); a new order's just written are not read again.
        present = {} if new_parent else self._lines_of(entity, child, parent_key)
        for line in lines:
            line = dict(line)
            line_ipaas_id = line.pop("_ipaas_id")
            if line.pop("_created", False):
                self._link_line(child, entity, parent_key, line, line_ipaas_id)
                continue
            keys = {"Document_Type": "Order", child.child_key: parent_key, "Line_No": line["Line_No"]}
            line_key = entity.external_id(keys)
            try:
                # A new order's line left here had an unclear answer: read before writing it again.
                current = self._get_or_none(entity.service, keys) if new_parent else present.get(int(line["Line_No"]))
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
                self._link_line(child, entity, parent_key, line, line_ipaas_id)
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

    # -- read only: what a write would send (the preview, bc-pipeline run --dry-run) -----------

    def planned(self, record: dict[str, Any]) -> Optional[tuple[dict[str, Any], dict[str, list[dict[str, Any]]], str]]:
        """The BC values, lines per child and digest a write would send for an iPaaS record; None when the
        collection's filter excludes it; WriteFailed when the mapping refuses it. Reads and saves nothing."""
        c = self.collection
        row = flat_row(record)
        if c.filter and not bool(filter_mask(c.filter, pd.DataFrame([row])).iloc[0]):
            return None
        [values], [error] = self._map(c.fields, c.custom_fields, [row])
        if error:
            raise WriteFailed(error, details={"ipaas": record})
        values = {k: v for k, v in values.items() if v is not None and k != "custom_fields"}
        children = {child.name: self._child_values(child, record) for child in c.children}
        return values, children, state.digest({"header": values, "children": children})

    def existing_key(self, ipaas_id: str, values: dict[str, Any]) -> Optional[str]:
        """The BC key a write would use: the cached link, iPaaS.com's, then the match_on value. Saves nothing."""
        c = self.collection
        key = self._links(c.table).get(ipaas_id) or self.ipaas.lookup_external_id(c.table, ipaas_id)
        if key is None and c.match_on and values.get(c.match_on):
            key = self._existing_key({c.match_on: values[c.match_on]})
        return key

    def read_or_none(self, service: str, keys: dict[str, Any]) -> Optional[dict[str, Any]]:
        """A BC record by its keys, or None when BC has no such record."""
        return self._get_or_none(service, keys)


    def _link_line(self, child: Child, entity: Entity, parent_key: str, line: dict[str, Any],
                   line_ipaas_id: Optional[str]) -> None:
        keys = {"Document_Type": "Order", child.child_key: parent_key, "Line_No": line["Line_No"]}
        line_key = entity.external_id(keys)
        if child.table and line_ipaas_id is not None and self._links(child.table).get(line_ipaas_id) != line_key:
            state.save_links(self.engine, child.table, [(line_key, line_ipaas_id)])
            self._links(child.table)[line_ipaas_id] = line_key
            self.ipaas.link(child.table, line_key, line_ipaas_id)

    def _lines_of(self, entity: Entity, child: Child, parent_key: str) -> dict[int, dict[str, Any]]:
        """The order's lines in BC by Line_No: one read."""
        query = odata.all_of(odata.compare("Document_Type", "eq", "Order"), odata.compare(child.child_key, "eq", parent_key))
        return {int(row["Line_No"]): row for row in self.bc.read(entity.service, filter=query)}

    def _create_lines_at_once(self, child: Child, entity: Entity, parent_key: str, record: dict[str, Any],
                              lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A new order's lines in one `$batch` per 100, each batch one transaction (Isolation: snapshot): every
        line of it is written, or none. The lines written come back marked `_created`; after an unclear answer
        (lost, 5xx, 429 once sent), or a line answered 5xx or 429 (a passing fault: the batch was rolled back), the
        others are left to the line-by-line path, which reads each key first and retries."""
        done: list[dict[str, Any]] = []
        for start in range(0, len(lines), MAX_BATCH_OPERATIONS):
            chunk = lines[start : start + MAX_BATCH_OPERATIONS]
            operations = [{"method": "POST", "url": self.bc.service_url(entity.service),
                           "body": {**{k: v for k, v in line.items() if k != "_ipaas_id"},
                                    "Document_Type": "Order", child.child_key: parent_key}} for line in chunk]
            try:
                answers = self.bc.batch(operations, atomic=True)
            except (ServiceError, PipelineError) as exc:
                if isinstance(exc, ServiceError) and not outcome_unclear(exc):
                    raise self._line_refused(parent_key, chunk[0], exc, record) from None
                log.info("%s: the answer to order %s's lines %s-%s was lost (%s); reading each line before writing "
                         "it", self.collection.name, parent_key, chunk[0]["Line_No"], chunk[-1]["Line_No"], exc)
                done.extend(chunk)  # not marked: each is read, then written if missing
                continue
            failed = [(line, a) for line, a in zip(chunk, answers) if not 200 <= int(a.get("status") or 0) < 300]
            if failed:
                line, answer = next(((ln, a) for ln, a in failed if int(a.get("status") or 0) != 424), failed[0])
                status = int(answer.get("status") or 0)
                if status_unclear(status):
                    log.info("%s: order %s's line %s was answered %s inside its batch, so none of lines %s-%s were "
                             "written; writing each on its own", self.collection.name, parent_key, line["Line_No"],
                             status, chunk[0]["Line_No"], chunk[-1]["Line_No"])
                    done.extend(chunk)  # not marked: each is read, then written if missing
                    continue
                error = ((answer.get("body") or {}).get("error") or {}) if isinstance(answer.get("body"), dict) else {}
                raise WriteFailed(
                    f"order {parent_key} is in Business Central but line {line['Line_No']} ({line.get('No')}) was "
                    f"refused: {error.get('message') or answer.get('status')}; none of its lines were written (the next "
                    f"run adds them, without a second order)",
                    status=status or None, code=error.get("code"),
                    details={"ipaas": record})
            done.extend({**line, "_created": True} for line in chunk)
        return done

    def _line_refused(self, parent_key: str, line: dict[str, Any], exc: ServiceError, record: dict[str, Any]) -> WriteFailed:
        return WriteFailed(
            f"order {parent_key} is in Business Central but its lines were refused: {exc.message}; none of them were "
            f"written (the next run adds them, without a second order)",
            status=exc.status, code=exc.code, correlation_id=exc.correlation_id, details={"ipaas": record})


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


def _code(value: Any) -> str:
    """A value as a BC Code key: trimmed, upper case (ß and the like, whose upper case is longer, kept)."""
    if value in (None, ""):
        return ""
    return "".join(ch.upper() if len(ch.upper()) == 1 else ch for ch in str(value).strip())


def _match_key(value: Any) -> str:
    return str(value).strip().casefold()


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(current, (int, float)) and isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        return abs(float(current) - float(wanted)) < 1e-9
    return current == wanted

"""Load mapped records into iPaaS.com: link, create or update each one as its own unit of work."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from sqlalchemy import Engine

from bc_pipeline.clients.errors import PipelineError, ServiceError
from bc_pipeline.clients.ipaas import NESTED_IN_PARENT, IpaasClient
from bc_pipeline.echoes import IpaasEchoes
from bc_pipeline.find_before_create import create_once
from bc_pipeline.mapping.collection import Child, Collision, MappingCollection
from bc_pipeline.mapping.engine import MappedRecord
from bc_pipeline.progress import Progress
from bc_pipeline.state import echoes as expected_echoes
from bc_pipeline.state import leases
from bc_pipeline.state import records as state

log = logging.getLogger(__name__)

# Below this many records whose link is not cached, per-record lookups are cheaper than listing the model.
PREFETCH_THRESHOLD = 50
PREFETCH_PAGE_SIZE = 1000
READ_ONLY_FIELDS = ("id", "tracking_guid", "created_datetime", "updated_datetime", "external_ids", "inventory")


def lease_name(collection: MappingCollection) -> str:
    """The lease that keeps two runs from loading one collection at once."""
    return f"load:{collection.slug}"


def payload_hash(record: MappedRecord) -> str:
    body = {"payload": record.payload, "parent": record.parent_id}
    return state.digest(body)


@dataclass
class LoadReport:
    """What a load did to each record, and what it cost."""

    collection: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    linked: int = 0  # matched an existing iPaaS record and linked it
    echoes: int = 0  # what the FROM-iPaaS direction just wrote to BC, not sent back
    failed: int = 0
    retried_dead_letters: int = 0  # records that had failed before and were mapped again from their source
    requests: int = 0
    requests_by_kind: dict[str, int] = field(default_factory=dict)  # lookups, creates, updates, links
    seconds: float = 0.0
    failed_keys: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # external id → the service's error
    slowest: list[tuple[float, str]] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return self.created + self.updated + self.unchanged + self.linked + self.echoes

    @property
    def total(self) -> int:
        return self.delivered + self.failed


class _Prefetched:
    """Every record of a model, indexed by our external id and by the match field."""

    def __init__(self, records: list[dict[str, Any]], system_id: str, match_on: Optional[str]):
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_external: dict[str, str] = {}
        self.by_match: dict[str, str] = {}
        for record in records:
            rid = str(record.get("id"))
            self.by_id[rid] = record
            for link in record.get("external_ids") or []:
                if str(link.get("system_id")) == str(system_id) and link.get("external_id") is not None:
                    self.by_external[str(link["external_id"])] = rid
            if match_on and record.get(match_on) not in (None, ""):
                self.by_match.setdefault(_match_key(record[match_on]), rid)


def _match_key(value: Any) -> str:
    return str(value).strip().casefold()


class Loader:
    """Loads one collection's records; failures become dead letters and the rest go on."""

    def __init__(self, client: IpaasClient, engine: Engine, collection: MappingCollection, *, workers: Optional[int] = None):
        self.client = client
        self.engine = engine
        self.collection = collection
        self.model = collection.target_model
        self.table = collection.table
        self.workers = workers or client.settings.concurrent_connections
        self._lock = threading.Lock()
        self._prefetched: Optional[_Prefetched] = None
        self._child_links: dict[str, dict[str, str]] = {}
        self._children_of: dict[str, list[dict[str, Any]]] = {}  # parent iPaaS id → its children, listed once
        self._echoes = IpaasEchoes(engine, collection)  # what this load writes, as the way back will read it

    # -- the whole load ----------------------------------------------------------------------

    def load(self, records: list[MappedRecord], *, run_id: Optional[str] = None,
             progress_log: Optional[Callable[[str], None]] = None) -> LoadReport:
        """Load the records; waits while another run loads the same collection (never two at once).

        progress_log: where a line on the records delivered so far goes every few seconds (a step's log).
        """
        holder = leases.holder_name(run_id)

        def waiting(other: str) -> None:
            log.warning("%s is being loaded by %s; waiting for it to finish (two loads of one collection "
                        "never overlap)", self.collection.name, other)

        with leases.held(self.engine, lease_name(self.collection), holder, on_wait=waiting):
            return self._load(records, progress_log)

    def _load(self, records: list[MappedRecord], progress_log: Optional[Callable[[str], None]] = None) -> LoadReport:
        started = time.monotonic()
        requests_before, kinds_before = self.client.counter.requests, dict(self.client.counter.kinds)
        report = LoadReport(collection=self.collection.name)
        # Read after taking the lease: what a run before this one delivered is known here.
        links = state.links(self.engine, self.table)
        delivered = state.hashes(self.engine, self.collection.slug)
        echoes = expected_echoes.expected(self.engine, self.collection.slug)
        dead = {d.external_id for d in state.dead_letters_of(self.engine, self.collection.slug)}
        self._child_links = {c.table: state.links(self.engine, c.table) for c in self.collection.children if c.table}

        batch = {r.external_id: r for r in records}
        report.retried_dead_letters = sum(1 for e in batch if e in dead)
        work: list[tuple[MappedRecord, str]] = []
        echoed: list[tuple[str, str, str]] = []
        for record in batch.values():
            digest = payload_hash(record)
            previous = delivered.get(record.external_id)
            if record.error is None and previous and previous[0] == digest and record.external_id in links \
                    and record.external_id not in dead:
                report.unchanged += 1
                continue
            # What the FROM-iPaaS direction just wrote to BC, read back unchanged: iPaaS.com is where it came from.
            if record.error is None and echoes.get(record.external_id) == (digest, links.get(record.external_id)) \
                    and record.external_id not in dead:
                echoed.append((record.external_id, digest, links[record.external_id]))
                continue
            work.append((record, digest))
        state.save_hashes(self.engine, self.collection.slug, echoed)
        report.echoes = len(echoed)
        # Read back (an echo or a change since): a fingerprint is good for one read only.
        expected_echoes.forget(self.engine, self.collection.slug, [e for e in batch if e in echoes])

        uncached = sum(1 for r, _ in work if r.external_id not in links and r.error is None)
        if self.collection.parent is None:
            self._plan_reads([r for r, _ in work if r.error is None], links)
        elif uncached > PREFETCH_THRESHOLD:
            self._prefetch_children()

        # Records that share a match value (two BC customers with one e-mail) go after the others, one
        # at a time: the first creates, the rest then match it instead of creating a duplicate.
        first, repeats, seen = [], [], set()
        for item in work:
            key = _match_key(item[0].match_value) if item[0].match_value else None
            (repeats if key is not None and key in seen else first).append(item)
            if key is not None:
                seen.add(key)
        progress = Progress(self.collection.slug, progress_log, total=len(work),
                            throttle_waited=lambda: self.client.throttle.stats.waited_seconds) if progress_log else None

        def one(record: MappedRecord, digest: str) -> dict[str, Any]:
            outcome = self._one_committed(record, digest, links)
            if progress is not None:
                progress.add()
            return outcome

        outcomes: list[dict[str, Any]] = []
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
                outcomes.extend(pool.map(lambda item: one(*item), first))
            outcomes.extend(one(record, digest) for record, digest in repeats)
        finally:
            self._echoes.flush()

        self._count(outcomes, report)
        report.requests = self.client.counter.requests - requests_before
        report.requests_by_kind = self.client.counter.kinds_since(kinds_before)
        report.seconds = time.monotonic() - started
        return report

    def _plan_reads(self, records: list[MappedRecord], links: dict[str, str]) -> None:
        """List the model once (a request per 1,000) when that costs fewer requests than reading record by
        record: a record not linked yet is looked up by its link and its match value, a linked one is read before
        its update (a PUT replaces the whole record). An empty model is known from one count: nothing to find."""
        per_record = sum(1 if r.external_id in links else 1 + bool(self.collection.match_on and r.match_value)
                         for r in records)
        if per_record > PREFETCH_THRESHOLD:
            self._prefetch()
            return
        if per_record < 3:  # a count and a listing would cost as much
            return
        total = self.client.count(self.model)
        if total == 0:
            self._prefetched = _Prefetched([], self.client.system_id, self.collection.match_on)
        elif total is not None and -(-total // PREFETCH_PAGE_SIZE) < per_record - 1:
            self._prefetch()

    def _match_value(self, payload: dict[str, Any]) -> Optional[str]:
        value = payload.get(self.collection.match_on) if self.collection.match_on else None
        return str(value) if value not in (None, "") else None

    def _prefetch_children(self) -> None:
        """Every parent listed once, with the children it holds: one request per 1,000 parents, not one per child."""
        nested = NESTED_IN_PARENT.get(self.model)
        if nested is None:
            return
        parent_model, field_name = nested
        for page in self.client.iter_pages(parent_model, page_size=PREFETCH_PAGE_SIZE):
            for parent in page:
                # A parent listed without the field says nothing about its children: those are listed one by one.
                if isinstance(parent.get(field_name), list) and all(
                        isinstance(c, dict) and "external_ids" in c for c in parent[field_name]):
                    self._children_of[str(parent["id"])] = parent[field_name]

    def _prefetch(self) -> None:
        records: list[dict[str, Any]] = []
        for page in self.client.iter_pages(self.model, page_size=PREFETCH_PAGE_SIZE):
            records.extend(page)
        self._prefetched = _Prefetched(records, self.client.system_id, self.collection.match_on)

    def _commit(self, o: dict[str, Any]) -> None:
        """Record one record's outcome the moment it is known: its link, its hash, or its dead letter."""
        slug = self.collection.slug
        if o["kind"] == "failed":
            state.record_failures(self.engine, slug, [o])
            return
        if o.get("link"):
            state.save_links(self.engine, self.table, [(o["external_id"], o["internal_id"])])
        elif o.get("forget_link"):
            state.forget_links(self.engine, self.table, [o["external_id"]])
        for table, pairs in o.get("child_links", {}).items():
            state.save_links(self.engine, table, pairs)
        state.save_hashes(self.engine, slug, [(o["external_id"], o["hash"], o["internal_id"])])
        state.clear_dead_letters(self.engine, slug, [o["external_id"]])
        self._echoes.remember(o["internal_id"], o["external_id"], o.pop("answer", None))

    def _count(self, outcomes: list[dict[str, Any]], report: LoadReport) -> None:
        for o in outcomes:
            kind = o["kind"]
            if kind == "failed":
                report.failed += 1
                report.failures[o["external_id"]] = o["error"]
                if len(report.failed_keys) < 20:
                    report.failed_keys.append(o["external_id"])
                continue
            setattr(report, kind, getattr(report, kind) + 1)
            report.slowest.append((o["seconds"], o["external_id"]))
        report.slowest = sorted(report.slowest, reverse=True)[:5]

    # -- one record --------------------------------------------------------------------------

    def _one_committed(self, record: MappedRecord, digest: str, links: dict[str, str]) -> dict[str, Any]:
        outcome = self._one(record, digest, links)
        self._commit(outcome)
        return outcome

    def _one(self, record: MappedRecord, digest: str, links: dict[str, str]) -> dict[str, Any]:
        started = time.monotonic()
        base = {"external_id": record.external_id, "hash": digest, "payload": record.payload, "parent_id": record.parent_id}
        if record.error is not None:
            return {**base, "kind": "failed", "error": record.error, "status": None, "code": "mapping"}
        try:
            outcome = self._deliver(record, links)
        except ServiceError as exc:
            return {**base, "kind": "failed", "error": exc.message, "status": exc.status, "code": exc.code,
                    "correlation_id": exc.correlation_id}
        except PipelineError as exc:
            return {**base, "kind": "failed", "error": str(exc), "status": None, "code": type(exc).__name__}
        except Exception as exc:  # one record's surprise must not cost the others their delivery
            log.exception("%s %s failed unexpectedly", self.collection.name, record.external_id)
            return {**base, "kind": "failed", "error": f"{type(exc).__name__}: {exc}", "status": None,
                    "code": type(exc).__name__}
        return {**base, **outcome, "seconds": time.monotonic() - started}

    def _deliver(self, record: MappedRecord, links: dict[str, str]) -> dict[str, Any]:
        internal_id = links.get(record.external_id)
        if internal_id is not None:
            current = self._current(internal_id, record.parent_id)
            if current is not None:
                return self._update(record, internal_id, current, kind="updated")
            # Deleted on the iPaaS side: what remains is a stale cache entry; find or create again.
        internal_id = self._find_linked(record)
        if internal_id is not None:
            current = self._current(internal_id, record.parent_id)
            if current is not None:
                return {**self._update(record, internal_id, current, kind="updated"), "link": True}
        if self.collection.update_only:
            raise _NotLinkedYet(f"{self.collection.name} only updates: {self.table} {record.external_id!r} is not in "
                                f"iPaaS.com yet (the collection that creates it goes first; this record is retried)")
        matched = self._find_match(record)
        if matched is not None:
            collision = self.collection.collision
            if collision is Collision.ERROR:
                raise _Collision(f"an iPaaS.com {self.model} with {self.collection.match_on} {record.match_value!r} "
                                 f"already exists (id {matched}) and the collection's collision method is ERROR")
            if collision is Collision.REMAP_AND_LINK:
                self.client.link(self.table, record.external_id, matched)
                return {"kind": "linked", "internal_id": matched, "link": True}
            current = self._current(matched, record.parent_id) or {}
            outcome = self._update(record, matched, current, kind="linked", relink=collision is Collision.UPDATE_AND_LINK)
            if collision is Collision.UPDATE_AND_NO_LINK:
                return {**outcome, "link": False, "forget_link": True}
            return {**outcome, "link": True}
        # The link travels in the create (the documented request shape); a separate UpdateExternalId
        # only when the answer shows it was not made.
        body = {**self._with_child_links(record),
                "external_ids": [{"system_id": self.client.system_id, "external_id": record.external_id}]}
        created = self._create_once(record, body)
        if created.get("_found_after_unclear"):
            current = self._current(str(created["id"]), record.parent_id, live=True) or created
            return {**self._update(record, str(created["id"]), current, kind="created"), "link": True}
        new_id = str(created["id"])
        # A record identified by its parent's link and a field of its own (tracking by its number) needs none.
        if self.collection.identified_by is None and not self._answer_has_link(created, record.external_id):
            self.client.link(self.table, record.external_id, new_id)
        if self._prefetched is not None and record.match_value:
            with self._lock:
                self._prefetched.by_match.setdefault(_match_key(record.match_value), new_id)
                self._prefetched.by_id[new_id] = created
        return {"kind": "created", "internal_id": new_id, "link": True, "child_links": self._link_children(record, created),
                "answer": created}

    def _create_once(self, record: MappedRecord, body: dict[str, Any]) -> dict[str, Any]:
        def find() -> Optional[dict[str, Any]]:
            found = self._find_after_unclear(record)
            return {"id": found, "_found_after_unclear": True} if found is not None else None

        return create_once(lambda: self.client.create(self.model, body, parent_id=record.parent_id), find,
                           f"{self.collection.name} {record.external_id}")

    def _find_after_unclear(self, record: MappedRecord) -> Optional[str]:
        """A live look-up (never the prefetched list, which predates the create) by link, then match value."""
        if self.collection.parent is not None:
            return self._find_under_parent(record, fresh=True)
        found = self.client.lookup_internal_id(self.table, record.external_id)
        if found is None and self.collection.match_on and record.match_value:
            found = self._find_match(record, live=True)
        return found

    def _find_under_parent(self, record: MappedRecord, *, fresh: bool = False) -> Optional[str]:
        """A child (tracking under its transaction) is found among its parent's children: by link, then match."""
        if record.parent_id is None:
            return None
        with self._lock:
            children = None if fresh else self._children_of.get(record.parent_id)
        if children is None:
            children = [c for page in self.client.iter_pages(self.model, parent_id=record.parent_id, page_size=100)
                        for c in page]
            with self._lock:
                self._children_of[record.parent_id] = children
        for child in children:
            if any(str(e.get("system_id")) == str(self.client.system_id) and str(e.get("external_id")) == record.external_id
                   for e in child.get("external_ids") or [] if isinstance(e, dict)):
                return str(child["id"])
        match_on = self.collection.match_field
        if match_on and record.match_value:
            for child in children:
                if _match_key(child.get(match_on, "")) == _match_key(record.match_value):
                    return str(child["id"])
        return None

    def _answer_has_link(self, answer: dict[str, Any], external_id: str) -> bool:
        return any(
            str(e.get("system_id")) == str(self.client.system_id) and str(e.get("external_id")) == external_id
            for e in answer.get("external_ids") or []
            if isinstance(e, dict)
        )

    def _current(self, internal_id: str, parent_id: Optional[str], *, live: bool = False) -> Optional[dict[str, Any]]:
        if not live and self._prefetched is not None and internal_id in self._prefetched.by_id:
            return self._prefetched.by_id[internal_id]
        return self.client.get(self.model, internal_id, parent_id=parent_id)

    def _find_linked(self, record: MappedRecord) -> Optional[str]:
        if self._prefetched is not None:
            return self._prefetched.by_external.get(record.external_id)
        if self.collection.parent is not None:
            return self._find_under_parent(record)
        return self.client.lookup_internal_id(self.table, record.external_id)

    def _find_match(self, record: MappedRecord, *, live: bool = False) -> Optional[str]:
        if not self.collection.match_on or not record.match_value:
            return None
        if self.collection.parent is not None:
            return None  # a child's match is looked for among its parent's children (_find_under_parent)
        if self._prefetched is not None and not live:
            return self._prefetched.by_match.get(_match_key(record.match_value))
        field = "".join(part.capitalize() for part in self.collection.match_on.split("_"))
        for page in self.client.iter_pages(self.model, page_size=10, filters={field: record.match_value}):
            for candidate in page:
                if _match_key(candidate.get(self.collection.match_on, "")) == _match_key(record.match_value):
                    return str(candidate["id"])
            break
        return None

    def _update(self, record: MappedRecord, internal_id: str, current: dict[str, Any], *, kind: str,
                relink: bool = False) -> dict[str, Any]:
        # A PUT replaces the whole record: keep what the mapping does not own.
        merged = {k: v for k, v in current.items() if k not in READ_ONLY_FIELDS}
        merged.update(self._with_child_ids(record, current))
        merged["custom_fields"] = _merge_custom_fields(current.get("custom_fields"), record.payload.get("custom_fields"))
        answer = self.client.replace(self.model, internal_id, merged, parent_id=record.parent_id)
        mine = [e for e in answer.get("external_ids") or []
                if isinstance(e, dict) and str(e.get("system_id")) == str(self.client.system_id)]
        if relink or (not mine and answer.get("external_ids") is not None and self.collection.parent is None):
            # The link was removed on the iPaaS side (or never made): put it back. A record linked to
            # another BC record (two customers matched to one by e-mail) keeps that link: no tug of war.
            self.client.link(self.table, record.external_id, internal_id)
        return {"kind": kind, "internal_id": internal_id, "link": True, "child_links": self._link_children(record, answer),
                "answer": answer}

    def _child_items(self, record: MappedRecord, child: Child) -> list[tuple[dict[str, Any], Optional[str], Child]]:
        """The items of child's list, each with its external id (None: not linked, e.g. a child without a table) and
        the collection's child that mapped it (a company's card address and its ship-to addresses share a list)."""
        items = record.payload.get(child.name) or []
        external_ids = record.children.get(child.table, []) if child.table else []
        rules = record.child_rules.get(child.table or "", [])
        children = self.collection.children
        return [(item, external_ids[n] if n < len(external_ids) else None,
                 children[rules[n]] if n < len(rules) and rules[n] < len(children) else child)
                for n, item in enumerate(items)]

    def _carrying_link(self, item: dict[str, Any], external_id: Optional[str]) -> dict[str, Any]:
        """A new child with its link in the documented `external_ids` shape. A child identified by fields needs
        none of it; any other is linked by a request only when the answer shows iPaaS.com did not make the link
        (_link_children)."""
        if external_id is None:
            return item
        return {**item, "external_ids": [{"system_id": self.client.system_id, "external_id": external_id}]}

    def _with_child_links(self, record: MappedRecord) -> dict[str, Any]:
        """The payload for a create: each child carrying its link."""
        payload = dict(record.payload)
        for child in _distinct(self.collection.children):
            if child.table:
                payload[child.name] = [self._carrying_link(item, e) for item, e, _ in self._child_items(record, child)]
        return payload

    def _with_child_ids(self, record: MappedRecord, current: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Children sent with the ids they already have, so an update keeps them (and their links): by the
        links known here or carried by the current record's children, else, for children identified by
        fields, by those fields in the current record. No id is given to two children; a child without one is
        new, and carries its link."""
        payload = dict(record.payload)
        for child in _distinct(self.collection.children):
            theirs = (current or {}).get(child.name)
            # The record's own children, by the links they carry, win: known even when this state was lost.
            known = {**self._child_links.get(child.table or "", {}), **self._linked_children(theirs)}
            present: dict[tuple[str, ...], dict[Any, Any]] = {}
            taken: set[str] = set()
            sent = []
            for item, e, rule in self._child_items(record, child):
                existing = known.get(e) if e is not None else None
                if existing is None and rule.identity_fields:
                    fields = rule.identity_fields
                    if fields not in present:
                        present[fields] = _ids_by_identity(fields, theirs)
                    existing = present[fields].get(_identity_of(item, fields))
                if existing is None or str(existing) in taken:
                    sent.append(self._carrying_link(item, e))
                    continue
                taken.add(str(existing))
                sent.append({**item, "id": int(existing) if str(existing).isdigit() else existing})
            payload[child.name] = sent
        return payload

    def _linked_children(self, children: Any) -> dict[str, str]:
        return {str(e["external_id"]): str(c["id"]) for c in children or [] if isinstance(c, dict) and c.get("id")
                for e in c.get("external_ids") or []
                if isinstance(e, dict) and str(e.get("system_id")) == str(self.client.system_id)}

    def _link_children(self, record: MappedRecord, answer: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
        """Children (e.g. transaction lines) come back with their ids: link each one here, and in iPaaS.com
        only those neither identified by fields of theirs nor linked already (by the create, or before)."""
        result: dict[str, list[tuple[str, str]]] = {}
        for child in _distinct(self.collection.children):
            if not child.table:
                continue
            returned = [c for c in answer.get(child.name) or [] if isinstance(c, dict) and c.get("id")]
            carried = self._linked_children(returned)
            known = self._child_links.get(child.table, {})
            present: dict[tuple[str, ...], dict[Any, Any]] = {}
            pairs = []
            for position, (item, e, rule) in enumerate(self._child_items(record, child)):
                if e is None:
                    continue
                if e in carried:
                    pairs.append((e, carried[e]))
                elif rule.identity_fields:
                    fields = rule.identity_fields
                    if fields not in present:
                        present[fields] = _ids_by_identity(fields, returned)
                    found = present[fields].get(_identity_of(item, fields))
                    if found is not None:
                        pairs.append((e, str(found)))
                elif position < len(returned):  # iPaaS.com answers the children in the order they were sent
                    internal_id = str(returned[position]["id"])
                    if known.get(e) != internal_id:
                        self.client.link(child.table, e, internal_id)
                    pairs.append((e, internal_id))
            result[child.table] = pairs
        return result

    # -- read only: what a load would write to (the preview, bc-pipeline run --dry-run) ---------

    def find_existing(self, records: list[MappedRecord],
                      links: dict[str, str]) -> list[tuple[Optional[str], Optional[dict[str, Any]], str]]:
        """Per record, the iPaaS.com record a load would write to and how it is found ("linked", "matched"), or
        (None, None, "new"): the load's own look-ups (the model listed once when many are unlinked), reads only,
        nothing saved."""
        if self.collection.parent is None:
            self._plan_reads(records, links)
        elif sum(1 for r in records if r.external_id not in links) > PREFETCH_THRESHOLD:
            self._prefetch_children()
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(lambda record: self._existing(record, links), records))

    def _existing(self, record: MappedRecord, links: dict[str, str]) -> tuple[Optional[str], Optional[dict[str, Any]], str]:
        internal_id = links.get(record.external_id)
        current = self._current(internal_id, record.parent_id) if internal_id is not None else None
        if current is None:  # not cached, or deleted on the iPaaS side: looked up as a load would
            internal_id = self._find_linked(record)
            current = self._current(internal_id, record.parent_id) if internal_id is not None else None
        if current is not None:
            return internal_id, current, "linked"
        matched = self._find_match(record)
        if matched is not None:
            return matched, self._current(matched, record.parent_id) or {}, "matched"
        return None, None, "new"


def _identity(value: Any) -> Optional[str]:
    """A child's identifying value, compared as text (iPaaS.com may answer 10000 for "10000")."""
    if value in (None, ""):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _identity_of(child: dict[str, Any], fields: tuple[str, ...]) -> Optional[tuple[Optional[str], ...]]:
    """A child's identifying values, or None when one of them is empty."""
    values = tuple(_identity(child.get(name)) for name in fields)
    return None if None in values else values


def _ids_by_identity(fields: tuple[str, ...], children: Any) -> dict[Any, Any]:
    """Identity → id of the first child holding it."""
    if not fields or not isinstance(children, list):
        return {}
    found: dict[Any, Any] = {}
    for c in children:
        if isinstance(c, dict) and c.get("id") is not None and (identity := _identity_of(c, fields)) is not None:
            found.setdefault(identity, c["id"])
    return found


def _merge_custom_fields(current: Any, ours: Any) -> Any:
    if ours is None:
        return current or []
    mine = {c["custom_field_name"]: c for c in ours}
    kept = [c for c in (current or []) if isinstance(c, dict) and c.get("custom_field_name") not in mine]
    return kept + list(mine.values())


def _distinct(children: list[Child]) -> list[Child]:
    """One child per list: children that fill one list (card and ship-to addresses) are linked together."""
    return list({(c.name, c.table): c for c in children}.values())


class _Collision(PipelineError):
    pass


class _NotLinkedYet(PipelineError):
    pass

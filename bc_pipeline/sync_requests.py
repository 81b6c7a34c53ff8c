"""Sync requests (webhooks, manual sync) turned into runs: batches from the inbox, and their outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from sqlalchemy import Engine

from bc_pipeline.catalog import BY_NAME
from bc_pipeline.mapping.collection import Direction, MappingCollection
from bc_pipeline.mapping.registry import all_collections
from bc_pipeline.state import inbox

BATCH_LIMIT = 3000  # what one Manual Sync may carry; one run serves at most this many requests
UNSUPPORTED_ACTIONS = ("deleted",)


@dataclass
class Batch:
    """Pending requests of one mapping collection, to be served by one run."""

    key: str
    collection: MappingCollection
    requests: list[inbox.SyncRequest]

    @property
    def ids(self) -> list[str]:
        field = "ipaas_id" if self.collection.direction is Direction.FROM_IPAAS else "external_id"
        return list(dict.fromkeys(getattr(r, field) for r in self.requests if getattr(r, field)))

    @property
    def polls(self) -> bool:
        """All changed records, not some: a request without an id (an `initialize`/`poll` scope, or a BC
        `collection` notification). A BC change arrives with its key already read back from its SystemId."""
        return any(not (r.external_id or r.ipaas_id) for r in self.requests)

    @property
    def initializes(self) -> bool:
        """An `initialize` scope asks for every record, changed or not: a full read, not an incremental one."""
        return any(r.action == "initialize" for r in self.requests)


def claim_batches(engine: Engine, limit: int = BATCH_LIMIT) -> tuple[list[Batch], list[inbox.SyncRequest]]:
    """Claim the pending requests, grouped by collection; requests that cannot be served are failed at once."""
    collections = all_collections()
    batches: list[Batch] = []
    refused: list[inbox.SyncRequest] = []
    grouped: dict[str, list[inbox.SyncRequest]] = {}
    for request in inbox.pending(engine, limit=limit):
        collection = collections.get(request.collection)
        if collection is None:
            inbox.finish(engine, [request.id], "failed", error=f"unknown mapping collection {request.collection!r}")
            refused.append(request)
        elif request.action in UNSUPPORTED_ACTIONS:
            where = f" (deleted in Business Central: {request.resource})" if request.source == "bc_webhook" else ""
            inbox.finish(engine, [request.id], "failed",
                         error=f"'{request.action}' requests are not synced by this integration{where}; nothing was "
                               "changed in iPaaS.com")
            refused.append(request)
        else:
            grouped.setdefault(request.collection, []).append(request)
    for name, requests in grouped.items():
        collection = collections[name]
        first, last = requests[0].id, requests[-1].id
        attempt = max(r.attempts for r in requests) + 1
        key = f"inbox-{collection.slug}-{first}-{last}-a{attempt}"
        held = set(inbox.claim(engine, [r.id for r in requests], run_id=key, batch_key=key))
        mine = [r for r in requests if r.id in held]
        if mine:
            batches.append(Batch(key=key, collection=collection, requests=mine))
    return batches, refused


def run_config_for(batch: Batch) -> dict[str, Any]:
    """The run config that syncs exactly the batch's records (every id a literal in the query). No executor: the
    run uses the code location's (BC_PIPELINE_EXECUTOR; `in_process` is the lowest latency on one machine)."""
    c = batch.collection
    if c.direction is Direction.FROM_IPAAS:
        ids = [] if batch.polls else batch.ids
        return {"ops": {f"bc_out__{c.slug}": {"config": {"ipaas_ids": ids, "inbox_batch": batch.key}}}}
    ops: dict[str, Any] = {f"ipaas__{c.slug}": {"config": {"inbox_batch": batch.key}}}
    if batch.initializes:
        for source in c.source_entities:
            ops[f"bc__{source}"] = {"config": {"full_refresh": True}}
    elif not batch.polls:
        ops[f"bc__{c.source}"] = {"config": {"keys": batch.ids}}
        for child in c.children:
            # Read by its entity's own key, a child's read is the same as a main read of that entity (they merge).
            by_own_key = child.child_key == BY_NAME[child.source].record_keys[0]
            ops[f"bc__{child.source}"] = {"config": {"keys": batch.ids} if by_own_key else
                                          {"keys": batch.ids, "key_field": child.child_key}}
    return {"ops": ops}


def finish_batch(engine: Engine, batch_key: str, failures: Mapping[str, Optional[str]]) -> None:
    """Mark the batch's requests done, or failed with their record's error."""
    rows = inbox.status(engine, batch_key=batch_key, limit=None)
    done = [r.id for r in rows if (r.ipaas_id or r.external_id) not in failures]
    if done:
        inbox.finish(engine, done, "done")
    for row in rows:
        key = row.ipaas_id or row.external_id
        if key in failures:
            inbox.finish(engine, [row.id], "failed", error=failures[key])


def finish_to_ipaas_batch(engine: Engine, batch_key: str, records: list, report, *,
                          read: Optional[set[str]] = None) -> None:
    """After a load: a requested BC record that was not mapped (not found, filtered out) fails with why; one that
    a BC webhook announced and this collection's filter leaves out (a person, for the company collection) is done."""
    rows = inbox.status(engine, batch_key=batch_key, limit=None)
    mapped = {r.external_id for r in records}
    failures: dict[str, Optional[str]] = dict(report.failures)
    for row in rows:
        if row.source == "bc_webhook" and row.external_id in (read or set()):
            continue
        if row.external_id and row.external_id not in mapped and row.external_id not in failures:
            collection = all_collections().get(row.collection)
            service = BY_NAME[collection.source].service if collection else "Business Central"
            failures[row.external_id] = (
                f"{row.external_id!r} was not found in {service}, or the collection's filter excludes it"
            )
    finish_batch(engine, batch_key, failures)

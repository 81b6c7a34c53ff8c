"""`bc-pipeline dead-letters`: list the records a service refused, retry them now, or discard them — each logged."""

from __future__ import annotations

import getpass
import logging
import socket
from typing import Any, Callable, Iterable, Optional

import dagster as dg
from sqlalchemy import Engine
from tabulate import tabulate

from bc_pipeline.mapping.collection import Direction, MappingCollection
from bc_pipeline.mapping.registry import all_collections
from bc_pipeline.state import records as state
from bc_pipeline.state.records import DeadLetter

log = logging.getLogger(__name__)

# Exit codes, as `bc-pipeline run`'s: every retried record landed / some failed again / the retry run failed.
EXIT_OK, EXIT_RUN_FAILED, EXIT_RECORDS_FAILED = 0, 1, 3
ACTION_TAG = "bc_pipeline/dead_letters"


def _by_slug() -> dict[str, MappingCollection]:
    return {c.slug: c for c in all_collections().values()}


def chosen(engine: Engine, collection: Optional[str] = None, ids: Optional[Iterable[str]] = None) -> list[DeadLetter]:
    """The dead letters of a collection (slug) and/or with these ids; every one when neither is given."""
    wanted = set(ids) if ids else None
    return [d for d in state.dead_letters_of(engine, collection) if wanted is None or d.external_id in wanted]


def table(letters: list[DeadLetter]) -> str:
    rows = [(d.collection, d.external_id, d.attempts, d.status or "", (d.code or "")[:30], d.error[:120],
             d.last_seen.strftime("%Y-%m-%d %H:%M"), d.correlation_id or "") for d in letters]
    return tabulate(rows, headers=["collection", "id", "attempts", "status", "code", "error", "last seen",
                                   "correlation id"], tablefmt="github") if rows else "No dead letters."


def _asset_key(collection: MappingCollection) -> dg.AssetKey:
    return dg.AssetKey(["ipaas" if collection.direction is Direction.TO_IPAAS else "bc_out", collection.slug])


def _log_entry(instance: dg.DagsterInstance, collection: MappingCollection, action: str, ids: list[str],
               extra: Optional[dict[str, Any]] = None) -> None:
    """The action on the collection's asset in Dagster (its Events in the UI) and in the Python log."""
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    log.info("dead letters %s by %s: %s %s", action, who, collection.slug, ", ".join(ids))
    metadata: dict[str, Any] = {"dead_letters": action, "records": dg.MetadataValue.text(", ".join(ids)),
                                "count": len(ids), "by": who, **(extra or {})}
    instance.report_runless_asset_event(dg.AssetObservation(asset_key=_asset_key(collection), metadata=metadata))


def discard(engine: Engine, letters: list[DeadLetter], instance: dg.DagsterInstance,
            out: Callable[[str], None] = print) -> None:
    """Remove the dead letters: the next run does not send them again (a later change in the source still goes)."""
    collections = _by_slug()
    for slug in dict.fromkeys(d.collection for d in letters):
        mine = [d for d in letters if d.collection == slug]
        state.clear_dead_letters(engine, slug, [d.external_id for d in mine])
        for d in mine:
            out(f"discarded {slug} {d.external_id}: {d.attempts} attempt(s), last error: {d.error[:160]}")
        if slug in collections:
            _log_entry(instance, collections[slug], "discarded", [d.external_id for d in mine])


def _run_request(collection: MappingCollection, ids: list[str]) -> tuple[str, list[dg.AssetKey], dict[str, Any]]:
    """The job, assets and run config that send exactly these records again, as a sync request would."""
    from bc_pipeline.defs.run_report import report_key

    if collection.direction is Direction.FROM_IPAAS:
        from bc_pipeline.defs.from_ipaas import write_key

        config = {"ipaas_ids": ids, "retry_dead_letters": False}
        return ("sync_from_ipaas", [write_key(collection), report_key("bc_out")],
                {"ops": {f"bc_out__{collection.slug}": {"config": config}}})
    from bc_pipeline.catalog import BY_NAME
    from bc_pipeline.defs.extract import extract_asset_key
    from bc_pipeline.defs.to_ipaas import load_key, transform_key

    # The source read narrowed to the ids (no watermark used or moved); a composite id reads nothing there and
    # is re-read by its key fields when its dead letter is mapped again (replay.remap_dead_letters).
    ops: dict[str, Any] = {f"bc__{collection.source}": {"config": {"keys": ids}},
                           f"mapped__{collection.slug}": {"config": {"dead_letters": ids}}}
    for child in collection.children:
        ops[f"bc__{child.source}"] = {"config": {"keys": ids, "key_field": child.child_key}}
    keys = [extract_asset_key(BY_NAME[e]) for e in collection.source_entities]
    return "sync_to_ipaas", keys + [transform_key(collection), load_key(collection), report_key("ipaas")], {"ops": ops}


def _step_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """Failed steps other than the run report (which fails a run whose records failed)."""
    return [f"{e.step_key}: {e.event_specific_data.error.message.strip()}" for e in result.all_events
            if e.event_type_value == "STEP_FAILURE" and not (e.step_key or "").endswith("run_report")]


def retry(engine: Engine, letters: list[DeadLetter], instance: dg.DagsterInstance,
          out: Callable[[str], None] = print) -> int:
    """Send the dead letters again now, one Dagster run per collection; says per record whether it landed."""
    from bc_pipeline.definitions import defs
    from bc_pipeline.defs.jobs import COLLECTION_TAG

    collections = _by_slug()
    run_failed = records_failed = False
    for slug in dict.fromkeys(d.collection for d in letters):
        ids = [d.external_id for d in letters if d.collection == slug]
        collection = collections.get(slug)
        if collection is None:
            out(f"{slug}: no such mapping collection any more; discard its {len(ids)} dead letter(s) instead")
            records_failed = True
            continue
        job_name, keys, run_config = _run_request(collection, ids)
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, asset_selection=keys, raise_on_error=False,
            run_config={**run_config, "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={ACTION_TAG: "retry", COLLECTION_TAG: collection.name})
        crashed = _step_failures(result)
        left = {d.external_id: d for d in state.dead_letters_of(engine, slug)}
        delivered = state.hashes(engine, slug)
        for external_id in ids:
            if crashed:
                outcome = "not retried: the run failed"
            elif external_id in left:
                outcome = f"failed again (attempt {left[external_id].attempts}): {left[external_id].error[:160]}"
            elif external_id in delivered:
                outcome = f"landed ({'iPaaS.com id' if collection.direction is Direction.TO_IPAAS else 'BC key'} " \
                          f"{delivered[external_id][1]}); its dead letter is gone"
            else:
                outcome = "left the list: nothing to send (gone from its source, or no longer selected)"
            out(f"retried {slug} {external_id}: {outcome}")
        still = [i for i in ids if i in left]
        _log_entry(instance, collection, "retried", ids, {"run_id": result.run_id, "failed_again": len(still)})
        if crashed:
            out(f"Run {result.run_id} failed: {'; '.join(crashed)[:500]}")
        run_failed, records_failed = run_failed or bool(crashed), records_failed or bool(still)
    return EXIT_RUN_FAILED if run_failed else EXIT_RECORDS_FAILED if records_failed else EXIT_OK

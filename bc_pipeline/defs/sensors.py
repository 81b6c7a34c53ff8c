"""The sync-request sensor: pending inbox requests become runs, one per mapping collection and batch."""

import datetime as dt
from typing import Any

import dagster as dg

from bc_pipeline.catalog import BY_NAME
from bc_pipeline.defs.extract import extract_asset_key
from bc_pipeline.defs.from_ipaas import sync_from_ipaas, write_key
from bc_pipeline.defs.jobs import COLLECTION_TAG, sync_to_ipaas
from bc_pipeline.defs.resources import SubscriptionResource
from bc_pipeline.defs.run_report import report_key
from bc_pipeline.defs.to_ipaas import load_key, transform_key
from bc_pipeline.mapping.collection import Direction
from bc_pipeline.state import inbox
from bc_pipeline.sync_requests import claim_batches, run_config_for

# The daemon's sensor loop takes ~5 s; an interval equal to it makes every other tick skip (measured:
# 40 % of ticks 10 s apart). 1 s means every loop evaluates: p95 webhook → BC fell from 14 s to 11 s.
SENSOR_INTERVAL_SECONDS = 1
# A claimed request whose run never finished (the run failed to start, the process died) is retried.
STALE_AFTER = dt.timedelta(minutes=30)


def _selection(batch) -> list[dg.AssetKey]:
    c = batch.collection
    if c.direction is Direction.FROM_IPAAS:
        return [write_key(c), report_key("bc_out")]
    return [extract_asset_key(BY_NAME[s]) for s in c.source_entities] + [transform_key(c), load_key(c), report_key("ipaas")]


def _fits(ops: dict, more: dict) -> bool:
    """Whether a batch's ops can join a run's: an op both configure reads the same way (only its keys differ)."""
    def how(value: dict) -> dict:
        return {k: v for k, v in value["config"].items() if k != "keys"}

    return all(how(ops[op]) == how(value) for op, value in more.items() if op in ops)


def _one_run_per_read(batches: list) -> list[list]:
    """Targeted TO-iPaaS batches reading the same entity share one run: one read of the changed keys, one run
    process (a BC customer's change feeds the company and the customer collection, with their ship-to addresses).
    Each keeps its own inbox batch; their loads still take each collection's lease. A batch whose reads differ (a
    child read by another key field, a second batch of the same collection) gets a run of its own."""
    groups: list[tuple[Any, dict, list]] = []
    for batch in batches:
        c = batch.collection
        ops = run_config_for(batch)["ops"]
        shared = c.direction is Direction.TO_IPAAS and not batch.polls and not batch.initializes
        group = next((g for g in groups if shared and g[0] == c.source and _fits(g[1], ops)), None)
        if group is None:
            groups.append((c.source if shared else None, dict(ops), [batch]))
        else:
            group[1].update(ops)
            group[2].append(batch)
    return [batches for _, _, batches in groups]


def _targeted(group: list) -> bool:
    return all(not b.polls and not b.initializes for b in group)


def _merged_config(group: list, executor: Any = None) -> dict:
    ops: dict = {}
    for batch in group:
        for op, value in run_config_for(batch)["ops"].items():
            if op in ops and "keys" in value["config"]:
                keys = ops[op]["config"]["keys"] + value["config"]["keys"]
                ops[op] = {"config": {**ops[op]["config"], "keys": list(dict.fromkeys(keys))}}
            else:
                ops[op] = value
    config: dict = {"ops": ops}
    if _targeted(group) and executor is not None and executor.name == dg.multi_or_in_process_executor.name:
        # A handful of records: a process per step would cost more than the run's own work (seconds each).
        config["execution"] = {"config": {"in_process": {}}}
    return config


def _executor(context: dg.SensorEvaluationContext, job_name: str) -> Any:
    """The executor the code location gives the job (Dagster's default lets a run choose in_process)."""
    repository = context.repository_def
    return repository.get_job(job_name).executor_def if repository is not None else None


@dg.sensor(
    name="sync_requests",
    jobs=[sync_to_ipaas, sync_from_ipaas],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns webhook and Manual Sync requests (the inbox) into runs: one per mapping collection and "
    "batch, each run syncing just the requested records. `bc-pipeline sync --status` shows each request.",
)
def sync_requests_sensor(context: dg.SensorEvaluationContext, subscription: SubscriptionResource):
    engine = subscription.state_engine()
    inbox.requeue_stale(engine, STALE_AFTER)
    batches, refused = claim_batches(engine)
    for request in refused:
        context.log.warning(f"sync request {request.id} refused: {request.collection} {request.scope}")
    for group in _one_run_per_read(batches):
        job = sync_from_ipaas if group[0].collection.direction is Direction.FROM_IPAAS else sync_to_ipaas
        keys = [b.key for b in group]
        yield dg.RunRequest(
            run_key="+".join(keys),
            job_name=job.name,
            asset_selection=list(dict.fromkeys(k for b in group for k in _selection(b))),
            run_config=_merged_config(group, _executor(context, job.name)),
            tags={"bc_pipeline/inbox_batch": ",".join(keys), COLLECTION_TAG: " + ".join(b.collection.name for b in group),
                  "bc_pipeline/requests": str(sum(len(b.requests) for b in group))},
        )
    if not batches:
        yield dg.SkipReason("no pending sync requests")

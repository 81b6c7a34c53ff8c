"""Run the extraction job through Dagster in this process, recorded in DAGSTER_HOME, and summarise it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import dagster as dg
from tabulate import tabulate

from bc_pipeline.catalog import ENTITIES, entity as find_entity
from bc_pipeline.defs.extract import extract_asset_key


@dataclass
class EntityFigures:
    entity: str
    service: str
    records: int
    requests: int
    seconds: float
    mode: str


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    figures: list[EntityFigures] = field(default_factory=list)
    error: Optional[str] = None


def run_extraction(
    select: Optional[Sequence[str]] = None,
    *,
    full_refresh: bool = False,
    instance: Optional[dg.DagsterInstance] = None,
) -> RunOutcome:
    from bc_pipeline.definitions import defs

    entities = [find_entity(name) for name in select] if select else list(ENTITIES)
    keys = [extract_asset_key(e) for e in entities]
    job = defs.resolve_job_def("extract_business_central")
    run_config = {"ops": {_op_name(e.name): {"config": {"full_refresh": full_refresh}} for e in entities}}
    instance = instance or dg.DagsterInstance.get()
    result = job.execute_in_process(instance=instance, asset_selection=keys, run_config=run_config, raise_on_error=False)

    figures = []
    for event in result.all_events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        meta = {k: v.value for k, v in materialization.metadata.items()}
        name = materialization.asset_key.path[-1]
        figures.append(
            EntityFigures(
                entity=name,
                service=meta.get("service") or find_entity(name).service,
                records=int(meta.get("rows", 0)),
                requests=int(meta.get("requests", 0)),
                seconds=float(meta.get("seconds", 0.0)),
                mode=str(meta.get("mode", "")),
            )
        )
    order = {e.name: i for i, e in enumerate(ENTITIES)}
    figures.sort(key=lambda f: order.get(f.entity, 99))
    error = None
    if not result.success:
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        error = "; ".join(_failure_message(e) for e in failures) or "the run failed"
    return RunOutcome(run_id=result.run_id, success=result.success, figures=figures, error=error)


def _op_name(entity_name: str) -> str:
    return f"bc__{entity_name}"


def _failure_message(event: dg.DagsterEvent) -> str:
    data = event.event_specific_data
    err = getattr(data, "error", None)
    message = err.message.strip() if err is not None else "failed"
    cause = getattr(err, "cause", None)
    while cause is not None:
        message = cause.message.strip()
        cause = getattr(cause, "cause", None)
    return f"{event.step_key}: {message}"


def summary_table(outcome: RunOutcome) -> str:
    rows = [(f.entity, f.service, f.records, f.requests, f"{f.seconds:.2f}", f.mode) for f in outcome.figures]
    total = ("total", "", sum(f.records for f in outcome.figures), sum(f.requests for f in outcome.figures),
             f"{sum(f.seconds for f in outcome.figures):.2f}", "")
    return tabulate(rows + [total], headers=["entity", "service", "records", "requests", "seconds", "mode"], tablefmt="github")

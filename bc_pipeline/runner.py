"""Run a job through Dagster, recorded in DAGSTER_HOME, and summarise what it did.

Independent steps (the Business Central extracts above all) run side by side, each in a process of its own
(Dagster's multiprocess executor), up to CONCURRENT_CONNECTIONS at once: BC processes that many requests per
user at once, and the shared throttle keeps the requests in flight within it across the processes.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import dagster as dg
from tabulate import tabulate

from bc_pipeline.catalog import ENTITIES, entity as find_entity

EXTRACT_COLUMNS = ("rows", "requests", "seconds", "mode")
# Exit codes of `bc-pipeline run` (documented in the README).
EXIT_OK = 0
EXIT_RUN_FAILED = 1  # a step failed: settings, a service down, a bug; nothing after it ran
EXIT_RECORDS_FAILED = 3  # the run finished, but some records were not delivered (they are dead letters)
LOAD_COLUMNS = ("created", "updated", "linked", "unchanged", "failed", "requests", "seconds")


@dataclass
class RunOutcome:
    run_id: str
    success: bool  # every step ran; records may still have failed (see failed_records)
    extracts: dict[str, dict[str, Any]] = field(default_factory=dict)  # entity → metadata
    loads: dict[str, dict[str, Any]] = field(default_factory=dict)  # collection slug → metadata
    error: Optional[str] = None

    @property
    def failed_records(self) -> dict[str, int]:
        """Records not delivered, per collection slug (those with none left out)."""
        return {slug: int(meta.get("failed", 0)) for slug, meta in self.loads.items() if int(meta.get("failed", 0))}

    @property
    def exit_code(self) -> int:
        if not self.success:
            return EXIT_RUN_FAILED
        return EXIT_RECORDS_FAILED if self.failed_records else EXIT_OK

    def failure_lines(self) -> list[str]:
        """What failed, how many, where, and the command that shows it."""
        lines = []
        if self.failed_records:
            total = sum(self.failed_records.values())
            where = ", ".join(f"{slug} ({n})" for slug, n in sorted(self.failed_records.items()))
            lines.append(f"{total} record{'s' if total != 1 else ''} failed in {where}.")
            lines.append("See each one with its error: bc-pipeline dead-letters"
                         + (f" --collection {next(iter(self.failed_records))}" if len(self.failed_records) == 1 else ""))
            lines.append("They are sent again on the next run.")
        if not self.success:
            lines.append(f"Run {self.run_id} failed: {self.error}")
        return lines


def selection_for(job_name: str, select: Optional[Sequence[str]]) -> Optional[list[dg.AssetKey]]:
    """The selected entities' extracts, and the collections all of whose sources are selected."""
    if not select:
        return None
    from bc_pipeline.defs.extract import extract_asset_key
    from bc_pipeline.defs.run_report import report_key
    from bc_pipeline.defs.to_ipaas import COLLECTIONS, load_key, transform_key

    entities = {find_entity(name).name for name in select}
    # An entity read only as children (customers' ship-to addresses) comes with the entities it belongs to.
    main_sources = {c.source for c in COLLECTIONS.values()}
    entities |= {e.name for e in ENTITIES if e.name not in main_sources and e.parents and set(e.parents) <= entities}
    keys = [extract_asset_key(find_entity(name)) for name in entities]
    if job_name != "extract_business_central":
        for c in COLLECTIONS.values():
            if set(c.source_entities) <= entities:
                keys += [transform_key(c), load_key(c)]
        keys.append(report_key("ipaas"))
    return keys


def default_max_concurrent() -> int:
    """CONCURRENT_CONNECTIONS (5 unless set); its default when the settings do not load (the run says why)."""
    from bc_pipeline.settings import BC_DOCUMENTED_CONCURRENT_REQUESTS, SettingsError, load_settings

    try:
        return load_settings().concurrent_connections
    except SettingsError:
        return BC_DOCUMENTED_CONCURRENT_REQUESTS


def reconstructable_job(job_name: str):
    """The code location's job, as a pointer each step process can load it from (bc_pipeline.definitions:defs)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from bc_pipeline.settings import PROJECT_DIR

    repository = ReconstructableRepository.for_module("bc_pipeline.definitions", "defs", str(PROJECT_DIR))
    return repository.get_reconstructable_job(job_name)


# The environment a forkserver was started with: its children inherit it, not the caller's later changes.
_forkserver_env: Optional[dict[str, str]] = None


def _start_method() -> dict[str, Any]:
    """forkserver (a step forks from a process that has the code location imported: ~0.1 s instead of a
    new interpreter's ~2 s) while the environment is the one it started with; spawn once it changed."""
    global _forkserver_env
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return {"spawn": {}}
    if _forkserver_env is None:
        _forkserver_env = dict(os.environ)
    return {"forkserver": {}} if _forkserver_env == dict(os.environ) else {"spawn": {}}


def run_job(
    job_name: str = "sync_to_ipaas",
    select: Optional[Sequence[str]] = None,
    *,
    full_refresh: bool = False,
    instance: Optional[dg.DagsterInstance] = None,
    log_level: str = "INFO",
    max_concurrent: Optional[int] = None,
) -> RunOutcome:
    """Run the job (its selected entities) and read back what each step materialised.

    max_concurrent: steps at once, each in a process of its own; None: CONCURRENT_CONNECTIONS for a run on
    DAGSTER_HOME's instance (instance not given), one at a time in this process for an instance handed in (tests
    and benchmarks: cheaper, and what they patch in this process holds). 1 runs in this process; so does an
    ephemeral instance, which no other process can see.
    """
    from bc_pipeline.definitions import defs

    job = defs.resolve_job_def(job_name)
    keys = selection_for(job_name, select)
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if full_refresh:
        chosen = {find_entity(n).name for n in select} if select else {e.name for e in ENTITIES}
        run_config["ops"] = {f"bc__{name}": {"config": {"full_refresh": True}} for name in chosen}
    if max_concurrent is None:
        max_concurrent = default_max_concurrent() if instance is None else 1
    instance = instance or dg.DagsterInstance.get()
    executor = job.executor_def.name
    if max_concurrent > 1 and not instance.is_ephemeral and executor != dg.in_process_executor.name:
        execution = {"max_concurrent": max_concurrent, "start_method": _start_method()}
        if executor == dg.multiprocess_executor.name:
            run_config["execution"] = {"config": execution}
        elif executor == "multi_or_in_process_executor":
            run_config["execution"] = {"config": {"multiprocess": execution}}
        # any other executor (Celery, Kubernetes) runs the steps where its own configuration says
        result = dg.execute_job(reconstructable_job(job_name), instance=instance, run_config=run_config,
                                asset_selection=keys, raise_on_error=False)
    else:
        result = job.execute_in_process(instance=instance, asset_selection=keys, run_config=run_config,
                                        raise_on_error=False)

    outcome = RunOutcome(run_id=result.run_id, success=result.success)
    for event in result.all_events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        meta = {k: v.value for k, v in materialization.metadata.items()}
        prefix, name = materialization.asset_key.path[0], materialization.asset_key.path[-1]
        if prefix == "bc":
            outcome.extracts[name] = meta
        elif prefix in ("ipaas", "bc_out") and name != "run_report":
            outcome.loads[name] = meta
    if not result.success:
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        # The report step fails a run whose records failed; that alone is told as failed records, not as a crash.
        steps = [e for e in failures if not (e.step_key or "").endswith("run_report")]
        outcome.success = not steps and bool(failures)
        outcome.error = "; ".join(_failure_message(e) for e in steps) or (None if outcome.success else "the run failed")
    return outcome


def _failure_message(event: dg.DagsterEvent) -> str:
    err = getattr(event.event_specific_data, "error", None)
    message = err.message.strip() if err is not None else "failed"
    cause = getattr(err, "cause", None)
    while cause is not None:
        message = cause.message.strip()
        cause = getattr(cause, "cause", None)
    return f"{event.step_key}: {message}"


def summary_table(outcome: RunOutcome) -> str:
    order = {e.name: i for i, e in enumerate(ENTITIES)}
    rows = []
    for name in sorted(outcome.extracts, key=lambda n: order.get(n, 99)):
        meta = outcome.extracts[name]
        rows.append((name, meta.get("service", ""), meta.get("rows", 0), meta.get("requests", 0),
                     f"{float(meta.get('seconds', 0)):.2f}", meta.get("mode", "")))
    text = tabulate(rows, headers=["entity", "service", "records", "requests", "seconds", "mode"], tablefmt="github")
    if outcome.loads:
        load_rows = [
            (slug, *(meta.get(c, 0) for c in LOAD_COLUMNS[:-1]), f"{float(meta.get('seconds', 0)):.2f}")
            for slug, meta in outcome.loads.items()
        ]
        text += "\n\n" + tabulate(load_rows, headers=["collection", *LOAD_COLUMNS], tablefmt="github")
    return text

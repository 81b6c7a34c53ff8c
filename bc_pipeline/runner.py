"""Run a job through Dagster, recorded in DAGSTER_HOME, and summarise what it did.

Independent steps (the Business Central extracts above all) run side by side, each in a process of its own
(Dagster's multiprocess executor), up to CONCURRENT_CONNECTIONS at once: BC processes that many requests per
user at once, and the shared throttle keeps the requests in flight within it across the processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence, TextIO

import dagster as dg
from tabulate import tabulate

from bc_pipeline.catalog import ENTITIES, entity as find_entity

EXTRACT_COLUMNS = ("rows", "requests", "seconds", "mode")
DEFINITIONS_MODULE = "bc_pipeline.definitions"
CODE_LOCATION = "bc_pipeline"  # as pyproject.toml's [tool.dagster] and workspace.yaml name it
STARTED_BY_TAG = "bc_pipeline/started_by"
# Exit codes of `bc-pipeline run` (documented in the README).
EXIT_OK = 0
EXIT_RUN_FAILED = 1  # a step failed: settings, a service down, a bug; nothing after it ran
EXIT_RECORDS_FAILED = 3  # the run finished, but some records were not delivered (they are dead letters)
LOAD_COLUMNS = ("created", "updated", "linked", "unchanged", "echoes", "failed", "requests", "seconds")
HINT_MARK = ". What to do: "  # how the pipeline's errors append the guide's advice (clients/errors.py)
MAX_CAUSES_SHOWN = 3
# What differs between two answers to the same mistake: the trace and correlation ids and timestamp in Entra ID's and
# BC's texts, and the correlation id the pipeline's errors end with.
_PER_ANSWER = re.compile(r"\s*(Trace ID|Correlation ID|Request ID): [0-9a-fA-F-]+|\s*Timestamp: [0-9-]+[ T][0-9:.]+Z?"
                         r"|\s*CorrelationId:\s*[0-9a-fA-F-]+\.?")  # Entra ID's, then Business Central's
_CORRELATION_SUFFIX = re.compile(r"\s*\(correlation id [^)]*\)")
_REQUEST = re.compile(r" \[(GET|POST|PATCH|PUT|DELETE) [^\]]*\]")  # each step's own URL; the steps are named instead
DOCTOR_LINE = "  `bc-pipeline doctor` checks every setting, the token, the company and each service (the guide's " \
              "Troubleshooting)."
UI_URL = "http://127.0.0.1:3000"  # `bc-pipeline dev`'s default address


@dataclass
class RunOutcome:
    run_id: str
    success: bool  # every step ran; records may still have failed (see failed_records)
    extracts: dict[str, dict[str, Any]] = field(default_factory=dict)  # entity → metadata
    loads: dict[str, dict[str, Any]] = field(default_factory=dict)  # collection slug → metadata
    error: Optional[str] = None
    step_errors: dict[str, str] = field(default_factory=dict)  # failed step → its error, the deepest cause

    @property
    def failed_records(self) -> dict[str, int]:
        """Records not delivered, per collection slug (those with none left out)."""
        return {slug: int(meta.get("failed", 0)) for slug, meta in self.loads.items() if int(meta.get("failed", 0))}

    @property
    def exit_code(self) -> int:
        if not self.success:
            return EXIT_RUN_FAILED
        return EXIT_RECORDS_FAILED if self.failed_records else EXIT_OK

    def errors_by_cause(self) -> dict[str, list[str]]:
        """Each distinct error once (as the first step told it), with the steps it stopped: one bad secret stops
        every step alike, each with its own trace id, correlation id and timestamp."""
        grouped: dict[str, tuple[str, list[str]]] = {}
        for step, message in self.step_errors.items():
            tidy = _PER_ANSWER.sub("", message)
            grouped.setdefault(_REQUEST.sub("", _CORRELATION_SUFFIX.sub("", tidy)), (tidy, []))[1].append(step)
        return {message if len(steps) == 1 else _REQUEST.sub("", message): steps for message, steps in grouped.values()}

    def failure_lines(self) -> list[str]:
        """What failed, how many, where, what to do, and where the full log is."""
        lines = []
        if self.failed_records:
            total = sum(self.failed_records.values())
            where = ", ".join(f"{slug} ({n})" for slug, n in sorted(self.failed_records.items()))
            lines.append(f"{total} record{'s' if total != 1 else ''} failed in {where}.")
            lines.append("See each one with its error: bc-pipeline dead-letters"
                         + (f" --collection {next(iter(self.failed_records))}" if len(self.failed_records) == 1 else ""))
            lines.append("They are sent again on the next run.")
        if not self.success:
            causes = self.errors_by_cause()
            steps = len(self.step_errors)
            if not causes:
                lines.append(f"Run {self.run_id} failed: {self.error}")
            elif steps == 1:
                lines.append(f"Run {self.run_id} failed in step {next(iter(self.step_errors))}:")
            elif len(causes) == 1:
                lines.append(f"Run {self.run_id} failed: the same error stopped all {steps} steps "
                             f"({_names(next(iter(causes.values())))}):")
            else:
                lines.append(f"Run {self.run_id} failed in {steps} steps, on {len(causes)} different errors:")
            for message, where in list(causes.items())[:MAX_CAUSES_SHOWN]:
                problem, _, hint = message.partition(HINT_MARK)
                lines.append(f"  {_names(where) + ': ' if len(causes) > 1 else ''}{problem}")
                if hint:
                    lines.append(f"  What to do: {hint}")
            if len(causes) > MAX_CAUSES_SHOWN:
                lines.append(f"  … and {len(causes) - MAX_CAUSES_SHOWN} other errors (see the full log).")
            lines.append(DOCTOR_LINE)
            lines.append(f"Full log with stack traces: `bc-pipeline dev`, then {UI_URL}/runs/{self.run_id} "
                         "(or `bc-pipeline run --verbose` to print it here).")
        return lines


def _names(steps: list[str]) -> str:
    return ", ".join(sorted(steps)[:3]) + (f" and {len(steps) - 3} more" if len(steps) > 3 else "")


def refused_credentials() -> list[str]:
    """Lines telling why Entra ID refuses the app's credentials (one token asked for); none when it gives a token.

    Every step asks for a token of its own: with a wrong secret each would fail alike, so `bc-pipeline run` asks once
    before starting anything. Anything but a refusal (Entra ID unreachable) is left to the run, which retries.
    """
    from bc_pipeline.clients.auth import shared_token_provider
    from bc_pipeline.clients.errors import AuthenticationError, PipelineError
    from bc_pipeline.settings import load_settings

    settings = load_settings()
    if not settings.has_bc_credentials:
        return []
    try:
        shared_token_provider(settings).token()
    except AuthenticationError as refusal:
        problem, _, hint = str(refusal).partition(HINT_MARK)
        return ["Microsoft Entra ID refused the app's credentials, so no run was started:",
                f"  {_PER_ANSWER.sub('', problem)}", *([f"  What to do: {hint}"] if hint else []), DOCTOR_LINE]
    except PipelineError:
        pass
    return []


def selected_entities(select: Sequence[str]) -> set[str]:
    """The entities named, and those read only as their children (customers' ship-to addresses) with them."""
    from bc_pipeline.defs.to_ipaas import COLLECTIONS

    entities = {find_entity(name).name for name in select}
    main_sources = {c.source for c in COLLECTIONS.values()}
    return entities | {e.name for e in ENTITIES if e.name not in main_sources and e.parents and set(e.parents) <= entities}


def selection_for(job_name: str, select: Optional[Sequence[str]]) -> Optional[list[dg.AssetKey]]:
    """The selected entities' extracts, and the collections all of whose sources are selected."""
    if not select:
        return None
    from bc_pipeline.defs.extract import extract_asset_key
    from bc_pipeline.defs.run_report import report_key
    from bc_pipeline.defs.to_ipaas import COLLECTIONS, load_key, transform_key

    entities = selected_entities(select)
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

    repository = ReconstructableRepository.for_module(DEFINITIONS_MODULE, "defs", str(PROJECT_DIR))
    return repository.get_reconstructable_job(job_name)


def remote_job_origin(job_name: str):
    """The job as the UI knows it: in code location `bc_pipeline`, loaded as workspace.yaml loads it.

    A run carrying it (and so the tag `.dagster/repository`) is listed under its job, and the UI can re-execute it.
    """
    from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
    from dagster._core.remote_origin import RemoteRepositoryOrigin
    from dagster._core.workspace.load import location_origin_from_module_name

    from bc_pipeline.settings import PROJECT_DIR

    location = location_origin_from_module_name(DEFINITIONS_MODULE, None, str(PROJECT_DIR), CODE_LOCATION)
    return RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME).get_job_origin(job_name)


# What a step process needs imported before it forks: the code location, and the storage the instance opens.
FORKSERVER_PRELOAD = (DEFINITIONS_MODULE, "dagster._core.storage.base_storage")
# The environment a forkserver was started with: its children inherit it, not the caller's later changes.
_forkserver_env: Optional[dict[str, str]] = None


def _start_method() -> dict[str, Any]:
    """forkserver (a step forks from a process that has the code location imported: ~0.1 s instead of a
    new interpreter's ~2 s) while the environment is the one it started with; spawn once it changed.

    The modules are named: a `forkserver` start method configured without `preload_modules` preloads none of them
    (Dagster reads the missing key as an empty list), and every step would import the code location itself."""
    global _forkserver_env
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return {"spawn": {}}
    if _forkserver_env is None:
        _forkserver_env = dict(os.environ)
    if _forkserver_env != dict(os.environ):
        return {"spawn": {}}
    return {"forkserver": {"preload_modules": list(FORKSERVER_PRELOAD)}}


def run_job(
    job_name: str = "sync_to_ipaas",
    select: Optional[Sequence[str]] = None,
    *,
    full_refresh: bool = False,
    instance: Optional[dg.DagsterInstance] = None,
    log_level: str = "INFO",
    max_concurrent: Optional[int] = None,
    progress: Optional[TextIO] = None,
) -> RunOutcome:
    """Run the job (its selected entities) and read back what each step materialised.

    max_concurrent: steps at once, each in a process of its own; None: CONCURRENT_CONNECTIONS for a run on
    DAGSTER_HOME's instance (instance not given), one at a time in this process for an instance handed in (tests
    and benchmarks: cheaper, and what they patch in this process holds). 1 runs in this process; so does an
    ephemeral instance, which no other process can see.
    log_level: what Dagster's console logger prints (stack traces of failed steps are ERROR; "CRITICAL" keeps
    them in the run's event log only). progress: where the steps' progress lines go while the run goes.
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
    in_process_config = {dg.in_process_executor.name: {}, "multi_or_in_process_executor": {"in_process": {}}}
    if instance.is_ephemeral or (max_concurrent <= 1 and executor not in in_process_config):
        # No other process sees an ephemeral instance, so no UI lists its runs; Celery and Kubernetes executors
        # cannot run a step in this process: Dagster's in-process execution (a copy of the job) does.
        run_id = str(uuid.uuid4())
        with _following(instance, run_id, progress):
            result = job.execute_in_process(instance=instance, asset_selection=keys, run_config=run_config,
                                            raise_on_error=False, run_id=run_id)
    else:
        if max_concurrent <= 1:
            if in_process_config[executor]:
                run_config["execution"] = {"config": in_process_config[executor]}
        elif executor != dg.in_process_executor.name:
            execution = {"max_concurrent": max_concurrent, "start_method": _start_method()}
            if executor == dg.multiprocess_executor.name:
                run_config["execution"] = {"config": execution}
            elif executor == "multi_or_in_process_executor":
                run_config["execution"] = {"config": {"multiprocess": execution}}
            # any other executor (Celery, Kubernetes) runs the steps where its own configuration says
        result = _execute_from_code_location(job_name, keys, run_config, instance, progress)

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
        outcome.step_errors = {e.step_key or "run": _failure_message(e) for e in steps}
        outcome.error = "; ".join(
            f"{message} ({', '.join(keys_)})" for message, keys_ in outcome.errors_by_cause().items()
        ) or (None if outcome.success else "the run failed")
    return outcome


def _execute_from_code_location(job_name: str, keys: Optional[list[dg.AssetKey]], run_config: dict[str, Any],
                                instance: dg.DagsterInstance, progress: Optional[TextIO]):
    """Run the job as the code location `bc_pipeline` defines it, recorded with its origin and the job's tags: the UI
    lists the run under the job and its assets, as one launched there (Dagster's execute_job records neither)."""
    from dagster._core.execution.api import execute_run

    recon = reconstructable_job(job_name)
    job_def = recon.get_definition()
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags={**job_def.run_tags, STARTED_BY_TAG: "bc-pipeline run"},
        asset_selection=frozenset(keys) if keys else None,
        job_code_origin=recon.get_python_origin(),
        remote_job_origin=remote_job_origin(job_name),
    )
    with _following(instance, run.run_id, progress):
        return execute_run(recon, run, instance, raise_on_error=False)


@contextlib.contextmanager
def _following(instance: dg.DagsterInstance, run_id: str, stream: Optional[TextIO]) -> Iterator[None]:
    if stream is None:
        yield
        return
    from bc_pipeline.run_follower import RunFollower

    with RunFollower(instance, run_id, stream):
        yield


def _failure_message(event: dg.DagsterEvent) -> str:
    """The deepest cause's message, without the class path of the pipeline's own errors (their text says it all)."""
    err = getattr(event.event_specific_data, "error", None)
    if err is None:
        return "failed"
    while getattr(err, "cause", None) is not None:
        err = err.cause
    message = err.message.strip()
    if err.cls_name and message.startswith("bc_pipeline.") and f"{err.cls_name}: " in message:
        message = message.split(f"{err.cls_name}: ", 1)[1]
    return message


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

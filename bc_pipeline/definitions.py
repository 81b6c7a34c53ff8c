"""The Dagster code location: assets, checks, jobs and resources, all built from the catalog."""

from __future__ import annotations

import os

import dagster as dg

from bc_pipeline.defs.backfills import resync_assets
from bc_pipeline.defs.extract import extract_assets
from bc_pipeline.defs.from_ipaas import from_ipaas_report, sync_from_ipaas, write_assets
from bc_pipeline.defs.jobs import jobs
from bc_pipeline.defs.preview import preview_assets, preview_job
from bc_pipeline.defs.resources import ipaas_resource, subscription_resource
from bc_pipeline.defs.schedules import schedules
from bc_pipeline.defs.sensors import sync_requests_sensor
from bc_pipeline.defs.to_ipaas import load_assets, to_ipaas_report, transform_assets
from bc_pipeline.defs.webhook_subscriptions import bc_webhook_subscriptions_job, bc_webhook_subscriptions_schedule

EXECUTOR_VARIABLE = "BC_PIPELINE_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")
CELERY_BROKER_VARIABLE = "BC_PIPELINE_CELERY_BROKER_URL"


@dg.executor(
    name=dg.multi_or_in_process_executor.name,
    config_schema=dg.multi_or_in_process_executor.config_schema,
    requirements=dg.multi_or_in_process_executor.get_requirements,
)
def steps_side_by_side(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's default executor (a process per step, or `in_process: {}`), with CONCURRENT_CONNECTIONS steps at
    once unless the run says `max_concurrent`: Dagster's own default is the CPU count (2 here), which would leave
    3 of BC's 5 connections unused whenever a run is launched from the UI, a schedule or a sensor."""
    config = dict(init_context.executor_config)
    multiprocess = config.get("multiprocess")
    if isinstance(multiprocess, dict) and not multiprocess.get("max_concurrent"):
        from bc_pipeline.runner import default_max_concurrent

        config["multiprocess"] = {**multiprocess, "max_concurrent": default_max_concurrent()}
    creation = dg.multi_or_in_process_executor.executor_creation_fn
    return creation(init_context._replace(executor_config=config))


def executor_for(name: str | None = None) -> dg.ExecutorDefinition:
    """The code location's executor, named by BC_PIPELINE_EXECUTOR (default multiprocess); every job uses it.

    in_process: every step in the run's process (lowest latency, one core); multiprocess (Dagster's default, which
    a run's config may still switch to in_process): a process per step on the run's machine; celery: steps on
    Celery workers (`pip install bc_pipeline[celery]`; the broker, also the result backend, from
    BC_PIPELINE_CELERY_BROKER_URL, e.g. redis://host:6379/0); k8s: a Kubernetes Job per step
    (`pip install bc_pipeline[k8s]`, the Helm chart's run launcher: deploy/kubernetes/values.yaml).
    """
    name = (name if name is not None else os.environ.get(EXECUTOR_VARIABLE, "")).strip().lower() or "multiprocess"
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return steps_side_by_side
    if name == "celery":
        from dagster_celery import celery_executor

        broker = {"env": CELERY_BROKER_VARIABLE}  # read where the run starts; never shown in the UI
        return celery_executor.configured({"broker": broker, "backend": broker}, name="celery")
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"{EXECUTOR_VARIABLE}={name!r} is not an executor: use one of {', '.join(EXECUTORS)}")


def build_definitions(executor: str | None = None) -> dg.Definitions:
    """The code location with the executor named (default: BC_PIPELINE_EXECUTOR's)."""
    return dg.Definitions(
        assets=[*extract_assets, *transform_assets, *load_assets, to_ipaas_report, *write_assets, from_ipaas_report,
                *resync_assets, *preview_assets],
        jobs=[*jobs, sync_from_ipaas, preview_job, bc_webhook_subscriptions_job],
        schedules=[*schedules, bc_webhook_subscriptions_schedule],
        sensors=[sync_requests_sensor],
        resources={"subscription": subscription_resource(), "ipaas": ipaas_resource()},
        executor=executor_for(executor),
    )


defs = build_definitions()

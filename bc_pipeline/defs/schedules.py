"""Schedules: the incremental sync every 15 minutes, initialization loads nightly. All start stopped."""

from __future__ import annotations

import dagster as dg

from bc_pipeline.defs.jobs import initialization_jobs, sync_to_ipaas

incremental_sync_schedule = dg.ScheduleDefinition(
    name="incremental_sync_every_15_minutes",
    job=sync_to_ipaas,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Changes in Business Central reach iPaaS.com within 15 minutes once this is switched on.",
)

initialization_schedules = [
    dg.ScheduleDefinition(
        name=f"{job.name}_nightly",
        job=job,
        cron_schedule="0 2 * * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"{job.description} Nightly at 02:00.",
    )
    for job in initialization_jobs
]

schedules = [incremental_sync_schedule, *initialization_schedules]

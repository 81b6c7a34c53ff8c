"""The sync-request sensor as the Dagster daemon drives it: one tick, then every run it asked for, in process."""

from __future__ import annotations

import dagster as dg


def tick(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """One `sync_requests` evaluation, then each run it requested (each must succeed); returns the requests."""
    from bc_pipeline.definitions import defs

    sensor = defs.resolve_sensor_def("sync_requests")
    with dg.build_sensor_context(instance=instance, resources={"subscription": defs.resources["subscription"]},
                                 definitions=defs) as context:
        result = sensor.evaluate_tick(context)
    for request in result.run_requests:
        job = defs.resolve_job_def(request.job_name)
        dg.validate_run_config(job, request.run_config)  # as the daemon's run will take it, executor included
        # execute_in_process is in process already: it takes no executor config (the daemon's runs do).
        config = {k: v for k, v in request.run_config.items() if k != "execution"}
        run = job.execute_in_process(instance=instance, run_config=config,
                                     asset_selection=list(request.asset_selection), tags=request.tags,
                                     raise_on_error=False)
        assert run.success
    return result.run_requests

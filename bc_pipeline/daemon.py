"""`bc-pipeline daemon`: `dagster-daemon run` whose sensor loop turns every second, not every five."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

# Dagster's sensor daemon evaluates due sensors, then sleeps out the rest of a fixed 5 s loop (not configurable in
# dagster.yaml): a sync request waits 2.5 s on average, 5 s at worst, before the `sync_requests` sensor (minimum
# interval 1 s) sees it. At 1 s, an idle tick costs one sensor evaluation a second (a state-database query).
SENSOR_LOOP_SECONDS = 1.0


def quicken_sensor_loop(seconds: float = SENSOR_LOOP_SECONDS) -> Optional[str]:
    """Set the sensor daemon's loop time; a warning when this Dagster has no such setting (then it stays at 5 s)."""
    from dagster._daemon import sensor

    if not isinstance(getattr(sensor, "MIN_INTERVAL_LOOP_TIME", None), (int, float)):
        return ("bc-pipeline daemon: this Dagster's sensor daemon has no MIN_INTERVAL_LOOP_TIME; sensors are "
                "evaluated on Dagster's own loop (5 s)")
    sensor.MIN_INTERVAL_LOOP_TIME = seconds
    return None


def main(args: Sequence[str]) -> int:
    """Run `dagster-daemon run ARGS` in this process, its sensor loop quickened."""
    warning = quicken_sensor_loop()
    if warning:
        print(warning, file=sys.stderr)
    from dagster._daemon.cli import cli as dagster_daemon

    try:
        dagster_daemon.main(args=["run", *args], prog_name="bc-pipeline daemon", standalone_mode=False, obj={})
    except KeyboardInterrupt:
        return 0
    return 0

"""Progress of a long step (pages read, records loaded or written): done / total, rate, throttle waits, ETA, as a log line every few seconds."""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

# Every progress line starts with this, so `bc-pipeline run` can pick them out of the run's event log.
PREFIX = "Progress"
# At most one line per step this often: the Dagster UI shows them, the terminal follows them.
EVERY_SECONDS = 5.0


class Progress:
    """Counts what a step has done and logs where it stands at most every `every` seconds.

    `throttle_waited`: seconds this process has waited on the service's throttle so far (the waits since the
    step began are shown).
    """

    def __init__(self, what: str, log: Callable[[str], None], *, total: Optional[int] = None, unit: str = "records",
                 throttle_waited: Optional[Callable[[], float]] = None, every: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self._log = log
        self._throttle_waited = throttle_waited
        self._waited_before = throttle_waited() if throttle_waited else 0.0
        self._every = EVERY_SECONDS if every is None else every
        self._clock = clock
        self._started = self._last = clock()
        self._lock = threading.Lock()

    def add(self, count: int = 1) -> None:
        """`count` more done (thread-safe); logs a line when the last one is `every` seconds old."""
        with self._lock:
            self.done += count
            now = self._clock()
            if now - self._last < self._every:
                return
            self._last = now
            line = self.line(now)
        self._log(line)

    def line(self, now: Optional[float] = None) -> str:
        """`Progress customers: 1,200 / 5,000 records (24%), 310/s, throttle waits 2.1s, ETA 12s`."""
        elapsed = max((now if now is not None else self._clock()) - self._started, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.done:,} / {self.total:,} {self.unit} ({100 * self.done // max(self.total, 1)}%)"
                 if self.total is not None else f"{self.done:,} {self.unit} so far"]
        parts.append(f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s")
        if self._throttle_waited is not None:
            parts.append(f"throttle waits {self._throttle_waited() - self._waited_before:.1f}s")
        if self.total is not None and self.done:
            parts.append(f"ETA {format_seconds(max(self.total - self.done, 0) / rate) if rate else '?'}")
        return f"{PREFIX} {self.what}: " + ", ".join(parts)


def format_seconds(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"

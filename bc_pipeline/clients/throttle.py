"""One throttle per service and credentials: rate, concurrency, pauses.

`Throttle` keeps them in files under BC_PIPELINE_HOME, shared by every process on the machine (SQLite state
database); `throttle_for` picks the one in the state database (shared_throttle.PostgresThrottle) when it is
PostgreSQL, so that every machine sharing it shares the service's limit too.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from filelock import FileLock, Timeout
from pyrate_limiter import Duration, Limiter, Rate, SQLiteBucket

if TYPE_CHECKING:
    from bc_pipeline.settings import SubscriptionSettings

_SLOT_POLL_SECONDS = 0.005
# The longest a Retry-After may hold back every process sharing a throttle (and a pause file written by
# another process). BC's limits keep a request queued for at most 8 minutes and sliding windows free a place
# within seconds: a longer ask is a proxy's or a broken answer's. Asking again after 2 minutes costs one
# request; obeying Retry-After: 86400 stalls every run on the machine, silently, for a day.
MAX_RETRY_AFTER_SECONDS = 120.0


def capped(seconds: float) -> float:
    """A wait asked for by a service, within MAX_RETRY_AFTER_SECONDS."""
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


@dataclass
class ThrottleStats:
    """What a throttle cost the caller: requests let through and seconds spent waiting."""

    requests: int = 0
    waited_seconds: float = 0.0
    paused_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, waited: float, paused: float) -> None:
        with self._lock:
            self.requests += 1
            self.waited_seconds += waited
            self.paused_seconds += paused


def throttle_key(service: str, *identity: str) -> str:
    """A file-safe key for a service and the credentials that share its limit (never the secret)."""
    digest = hashlib.sha256("\x1f".join((service,) + identity).encode()).hexdigest()[:16]
    return f"{service}-{digest}"


def window_margin(seconds: float) -> float:
    """How much longer than the service's window requests are counted over.

    A request is counted when sent here but when it arrives there, a few ms later: a window a little longer
    than the service's keeps a request sent at the edge from landing in a full one (measured: 429s at every
    window boundary without it; 0 with it, at 98 % of the budget).
    """
    return min(1.0, 0.02 * seconds)


class ThrottleBase:
    """Waits for a pause to end, a concurrency slot and a place in the rate window, in that order.

    Subclasses say where those live: `_pause_remaining`, `_take_slot`/`_give_slot`, `_take_place`, `pause`.
    """

    def __init__(self, key: str, *, limit: int, seconds: float, concurrency: int):
        self.key = key
        self.limit = limit
        self.seconds = seconds
        self.concurrency = concurrency
        self.window_seconds = seconds + window_margin(seconds)
        self.stats = ThrottleStats()

    def pause(self, seconds: float) -> float:
        """Hold every process sharing the throttle back for `seconds`, at most MAX_RETRY_AFTER_SECONDS."""
        raise NotImplementedError

    def _pause_remaining(self) -> float:
        raise NotImplementedError

    def _take_slot(self) -> Any:
        raise NotImplementedError

    def _give_slot(self, slot: Any) -> None:
        raise NotImplementedError

    def _take_place(self) -> None:
        raise NotImplementedError

    def _wait_for_pause(self) -> float:
        waited = 0.0
        while True:
            remaining = self._pause_remaining()
            if remaining <= 0:
                return waited
            time.sleep(min(remaining, 1.0))
            waited += min(remaining, 1.0)

    @contextmanager
    def request(self) -> Iterator[float]:
        """Wait for a pause to end, a slot and a place in the window; yield the seconds waited."""
        started = time.monotonic()
        paused = self._wait_for_pause()
        slot = self._take_slot()
        try:
            self._take_place()
            waited = time.monotonic() - started
            self.stats.add(waited, paused)
            yield waited
        finally:
            self._give_slot(slot)

    def close(self) -> None:
        pass


def throttle_for(settings: "SubscriptionSettings", key: str, *, limit: int, seconds: float, concurrency: int) -> ThrottleBase:
    """The throttle for a key: in the state database when it is PostgreSQL (every machine), else in files."""
    if settings.state_database_url.startswith("postgresql"):
        from bc_pipeline.clients.shared_throttle import PostgresThrottle

        return PostgresThrottle(settings.state_database_url, key, limit=limit, seconds=seconds, concurrency=concurrency)
    return Throttle(settings.home / "throttle", key, limit=limit, seconds=seconds, concurrency=concurrency)


class Throttle(ThrottleBase):
    """Limits requests to `limit` per `seconds` and `concurrency` in flight, across processes of one machine.

    The rate window lives in a SQLite file guarded by a file lock (pyrate-limiter's SQLiteBucket),
    the concurrency slots are file locks, and a pause file lets a Retry-After seen by one process
    hold back all of them: Dagster runs each step in its own process, so an in-memory bucket
    would let N processes send N times the limit.
    """

    def __init__(self, directory: Path, key: str, *, limit: int, seconds: float, concurrency: int):
        super().__init__(key, limit=limit, seconds=seconds, concurrency=concurrency)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Tables are per limit so that a changed setting starts a fresh window instead of mixing.
        table = f"rate_{limit}_{int(seconds * 1000)}"
        db_path = str(self.directory / f"{key}.sqlite")
        self._bucket = SQLiteBucket.init_from_file(
            [Rate(limit, int(self.window_seconds * Duration.SECOND))], table=table, db_path=db_path, use_file_lock=True
        )
        self._limiter = Limiter(self._bucket, buffer_ms=50)
        self._slots = [FileLock(str(self.directory / f"{key}.slot{i}.lock"), thread_local=False) for i in range(concurrency)]
        self._slot_guard = threading.Lock()
        self._free_slots = list(range(concurrency))
        self._pause_file = self.directory / f"{key}.pause"

    # -- pauses ------------------------------------------------------------------------------

    def pause(self, seconds: float) -> float:
        """Hold every process back for `seconds`, at most MAX_RETRY_AFTER_SECONDS; the seconds used."""
        seconds = capped(seconds)
        until = time.time() + seconds
        tmp = self._pause_file.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(repr(until))
        if until > self._paused_until():
            os.replace(tmp, self._pause_file)
        else:
            tmp.unlink(missing_ok=True)
        return seconds

    def _paused_until(self) -> float:
        try:
            until = float(self._pause_file.read_text())
            written = self._pause_file.stat().st_mtime
        except (FileNotFoundError, ValueError):
            return 0.0
        if not math.isfinite(until):
            return 0.0
        # Another process (or an older version) may have written a longer pause: it ends at most the cap
        # after it was written, so it neither stalls every run nor restarts for each request.
        return min(until, written + MAX_RETRY_AFTER_SECONDS)

    def _pause_remaining(self) -> float:
        return self._paused_until() - time.time()

    # -- slots -------------------------------------------------------------------------------

    def _take_slot(self) -> FileLock:
        while True:
            with self._slot_guard:
                candidates = list(self._free_slots)
            for index in candidates:
                with self._slot_guard:
                    if index not in self._free_slots:
                        continue
                    self._free_slots.remove(index)
                try:
                    self._slots[index].acquire(timeout=0)
                    return self._slots[index]
                except Timeout:
                    with self._slot_guard:
                        self._free_slots.append(index)
            time.sleep(_SLOT_POLL_SECONDS)

    def _give_slot(self, slot: FileLock) -> None:
        slot.release()
        with self._slot_guard:
            self._free_slots.append(self._slots.index(slot))

    def _take_place(self) -> None:
        self._limiter.try_acquire(self.key, blocking=True)

    def close(self) -> None:
        self._limiter.close()

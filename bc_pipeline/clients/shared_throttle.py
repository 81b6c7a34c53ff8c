"""The throttle in a PostgreSQL state database: one rate window, one set of slots, one pause for every machine.

With the file throttle each machine counts its own requests: two machines sent twice the service's limit
(20 requests against 10 per 5 s: 0.02 s instead of 5.2 s), and a Retry-After seen by one paused only it.
Here the three live in the state database, under the same throttle key (service + a hash of the
credentials), and every time is the database's clock, so machines whose clocks differ still agree:

- the rate window: the requests sent in the last `window_seconds` (2 % longer than the service's, at most
  1 s: see throttle.window_margin), counted and added under a transaction-scoped advisory lock on the key;
- the concurrency slots: rows 0..N-1 per key, taken with SKIP LOCKED; a holder renews its slots while it
  holds them, so the slot of a process killed with -9 frees itself when it expires (at once when that
  process ran on this host and is gone);
- the pause: one row per key, `paused_until`, at most MAX_RETRY_AFTER_SECONDS after it was written.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
import zlib

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from bc_pipeline.clients import throttle as _throttle
from bc_pipeline.clients.throttle import ThrottleBase, capped
from bc_pipeline.state.database import engine_for
from bc_pipeline.state.leases import _holder_is_dead
from bc_pipeline.state.tables import throttle_pauses, throttle_sends, throttle_slots

log = logging.getLogger(__name__)

# A slot whose holder stopped renewing it is free again after this long: a request longer than that keeps
# its slot, because its holder renews every third of it.
SLOT_SECONDS = 30.0
# The first argument of pg_advisory_xact_lock(int, int): the rate windows' own namespace ('bcth').
_LOCK_NAMESPACE = 0x62637468
_SLOT_POLL_SECONDS = (0.005, 0.05)  # the first and the longest wait between two looks for a free slot
_DEAD_HOLDER_CHECK_SECONDS = 0.5

_TAKE_PLACE = text(f"""
WITH now AS MATERIALIZED (SELECT clock_timestamp() AS t),
gone AS (
  DELETE FROM {throttle_sends.name}
  WHERE window_key = :window_key AND sent_at <= (SELECT t FROM now) - make_interval(secs => :window)
),
full_at AS (
  SELECT sent_at FROM {throttle_sends.name}
  WHERE window_key = :window_key AND sent_at > (SELECT t FROM now) - make_interval(secs => :window)
  ORDER BY sent_at DESC OFFSET :limit - 1 LIMIT 1
),
sent AS (
  INSERT INTO {throttle_sends.name} (window_key, sent_at)
  SELECT :window_key, t FROM now WHERE NOT EXISTS (SELECT 1 FROM full_at)
  RETURNING 1
)
SELECT EXTRACT(EPOCH FROM (SELECT sent_at FROM full_at) + make_interval(secs => :window) - (SELECT t FROM now))
""")
_TAKE_SLOT = text(f"""
UPDATE {throttle_slots.name} SET holder = :holder, expires_at = clock_timestamp() + make_interval(secs => :ttl)
WHERE throttle_key = :key AND slot = (
  SELECT slot FROM {throttle_slots.name}
  WHERE throttle_key = :key AND slot < :slots AND (holder IS NULL OR expires_at < clock_timestamp())
  ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING slot
""")
_GIVE_SLOT = text(f"""
UPDATE {throttle_slots.name} SET holder = NULL, expires_at = NULL
WHERE throttle_key = :key AND slot = :slot AND holder = :holder
""")
_RENEW_SLOTS = text(f"""
UPDATE {throttle_slots.name} SET expires_at = clock_timestamp() + make_interval(secs => :ttl)
WHERE throttle_key = :key AND holder = :holder
""")
_PAUSE = text(f"""
INSERT INTO {throttle_pauses.name} AS p (throttle_key, paused_until, written_at)
VALUES (:key, clock_timestamp() + make_interval(secs => :seconds), clock_timestamp())
ON CONFLICT (throttle_key) DO UPDATE SET paused_until = excluded.paused_until, written_at = excluded.written_at
WHERE LEAST(p.paused_until, p.written_at + make_interval(secs => :cap)) < excluded.paused_until
""")
_PAUSE_REMAINING = text(f"""
SELECT EXTRACT(EPOCH FROM LEAST(paused_until, written_at + make_interval(secs => :cap)) - clock_timestamp())
FROM {throttle_pauses.name} WHERE throttle_key = :key
""")


def _lock_id(key: str) -> int:
    """The second argument of pg_advisory_xact_lock(int, int) for a key: the same in every process."""
    return zlib.crc32(key.encode()) - (1 << 31)


class PostgresThrottle(ThrottleBase):
    """Limits requests to `limit` per `seconds` and `concurrency` in flight, across every machine sharing `url`."""

    def __init__(self, url: str, key: str, *, limit: int, seconds: float, concurrency: int,
                 slot_seconds: float = SLOT_SECONDS):
        super().__init__(key, limit=limit, seconds=seconds, concurrency=concurrency)
        self.engine = engine_for(url)
        self.slot_seconds = slot_seconds
        # As a lease's holder is named: a slot of a process on this host that no longer runs is taken at once.
        self.holder = f"throttle on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"
        # Windows are per limit so that a changed setting starts a fresh window instead of mixing.
        self._window_key = f"{key}:{limit}/{int(self.window_seconds * 1000)}ms"
        self._lock_id = _lock_id(self._window_key)
        self._held = 0
        self._held_guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        with self.engine.begin() as conn:
            conn.execute(insert(throttle_slots).on_conflict_do_nothing(),
                         [{"throttle_key": key, "slot": i} for i in range(concurrency)])

    # -- pauses ------------------------------------------------------------------------------

    def pause(self, seconds: float) -> float:
        seconds = capped(seconds)
        with self.engine.begin() as conn:
            conn.execute(_PAUSE, {"key": self.key, "seconds": seconds, "cap": _throttle.MAX_RETRY_AFTER_SECONDS})
        return seconds

    def _pause_remaining(self) -> float:
        with self.engine.connect() as conn:
            remaining = conn.execute(
                _PAUSE_REMAINING, {"key": self.key, "cap": _throttle.MAX_RETRY_AFTER_SECONDS}
            ).scalar_one_or_none()
        return float(remaining or 0.0)

    # -- the rate window ---------------------------------------------------------------------

    def _take_place(self) -> None:
        while True:
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:namespace, :id)"),
                             {"namespace": _LOCK_NAMESPACE, "id": self._lock_id})
                wait = conn.execute(_TAKE_PLACE, {"window_key": self._window_key, "window": self.window_seconds,
                                                  "limit": self.limit}).scalar_one()
            if wait is None:
                return
            time.sleep(max(float(wait), 0.001))

    # -- slots -------------------------------------------------------------------------------

    def _take_slot(self) -> int:
        poll = _SLOT_POLL_SECONDS[0]
        next_check = time.monotonic() + _DEAD_HOLDER_CHECK_SECONDS
        while True:
            with self.engine.begin() as conn:
                slot = conn.execute(_TAKE_SLOT, {"key": self.key, "slots": self.concurrency, "holder": self.holder,
                                                 "ttl": self.slot_seconds}).scalar_one_or_none()
            if slot is not None:
                with self._held_guard:
                    self._held += 1
                self._keep_renewing()
                return slot
            if time.monotonic() >= next_check:
                self._free_slots_of_the_gone()
                next_check = time.monotonic() + _DEAD_HOLDER_CHECK_SECONDS
            time.sleep(poll * random.uniform(0.5, 1.0))
            poll = min(poll * 2, _SLOT_POLL_SECONDS[1])

    def _give_slot(self, slot: int) -> None:
        with self._held_guard:
            self._held -= 1
        with self.engine.begin() as conn:
            conn.execute(_GIVE_SLOT, {"key": self.key, "slot": slot, "holder": self.holder})

    def _free_slots_of_the_gone(self) -> None:
        """Free the slots of processes on this host that no longer run, without waiting for them to expire."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT slot, holder FROM {throttle_slots.name} WHERE throttle_key = :key AND holder IS NOT NULL"),
                {"key": self.key},
            ).all()
        for slot, holder in rows:
            if _holder_is_dead(holder):
                with self.engine.begin() as conn:
                    conn.execute(_GIVE_SLOT, {"key": self.key, "slot": slot, "holder": holder})

    def _keep_renewing(self) -> None:
        if self._renewer is not None:
            return
        with self._held_guard:
            if self._renewer is not None:
                return
            self._renewer = threading.Thread(target=self._renew, name=f"throttle:{self.key}", daemon=True)
            self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.slot_seconds / 3):
            if not self._held:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(_RENEW_SLOTS, {"key": self.key, "holder": self.holder, "ttl": self.slot_seconds})
            except Exception:  # retried at the next tick; a slot outlives two missed renewals
                log.warning("could not renew the concurrency slots of %s; retrying in %.0f s", self.key,
                            self.slot_seconds / 3)

    def close(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)

"""Leases in the state database: one holder at a time per name, across processes and machines."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import socket
import threading
import time
import uuid
from typing import Callable, Iterator, Optional

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bc_pipeline.state.tables import leases

log = logging.getLogger(__name__)

# Long enough that a busy holder renews it many times over; short enough that a killed run's
# lease frees itself before the next scheduled run (15 minutes) is due.
LEASE_SECONDS = 120.0
RENEW_EVERY_SECONDS = 20.0
POLL_SECONDS = 1.0
DEFAULT_WAIT_SECONDS = 3600.0


class LeaseTimeout(Exception):
    """Another run held the lease for longer than this run was willing to wait."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def holder_name(run_id: Optional[str] = None) -> str:
    """Who holds a lease, in words a user can act on: the run, the host and the process."""
    who = f"{socket.gethostname()} pid {os.getpid()}"
    return f"run {run_id} on {who}" if run_id else f"{who} ({uuid.uuid4().hex[:8]})"


def _holder_is_dead(holder: str) -> bool:
    """True when the holder was a process on this host that no longer runs (killed with -9, say)."""
    match = re.search(r" on (?P<host>\S+) pid (?P<pid>\d+)", holder)
    if match is None or match["host"] != socket.gethostname():
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _take_from_the_dead(engine: Engine, name: str, holder: str, expires: dt.datetime) -> bool:
    with engine.begin() as conn:
        current = conn.execute(select(leases.c.holder).where(leases.c.name == name)).scalar_one_or_none()
        if current is None or not _holder_is_dead(current):
            return False
        log.warning("the lease on %s was held by %s, which no longer runs; taking it over", name, current)
        return bool(conn.execute(update(leases).where(and_(leases.c.name == name, leases.c.holder == current))
                                 .values(holder=holder, expires_at=expires)).rowcount)


def try_acquire(engine: Engine, name: str, holder: str, seconds: float = LEASE_SECONDS) -> Optional[str]:
    """Take the lease if it is free, expired, or its holder's process is gone; None on success, else the holder."""
    now = _now()
    expires = now + dt.timedelta(seconds=seconds)
    try:
        with engine.begin() as conn:
            conn.execute(insert(leases).values(name=name, holder=holder, expires_at=expires))
        return None
    except IntegrityError:
        pass
    with engine.begin() as conn:
        taken = conn.execute(
            update(leases)
            .where(and_(leases.c.name == name, or_(leases.c.expires_at < now, leases.c.holder == holder)))
            .values(holder=holder, expires_at=expires)
        ).rowcount
        if taken:
            return None
    if _take_from_the_dead(engine, name, holder, expires):
        return None
    with engine.connect() as conn:
        return conn.execute(select(leases.c.holder).where(leases.c.name == name)).scalar_one_or_none() or "another run"


def release(engine: Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(leases).where(and_(leases.c.name == name, leases.c.holder == holder)))


def current_holder(engine: Engine, name: str) -> Optional[str]:
    with engine.connect() as conn:
        row = conn.execute(select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)).first()
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.timezone.utc)
    return row.holder if expires >= _now() else None


@contextlib.contextmanager
def held(engine: Engine, name: str, holder: str, *, wait_seconds: float = DEFAULT_WAIT_SECONDS,
         on_wait: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """Hold the lease for the block, renewed in the background; wait while another holder has it."""
    deadline = time.monotonic() + wait_seconds
    told = None
    while (other := try_acquire(engine, name, holder)) is not None:
        if other != told and on_wait is not None:
            on_wait(other)
            told = other
        if time.monotonic() >= deadline:
            raise LeaseTimeout(f"{name} is still being written by {other} after {wait_seconds:.0f}s of waiting; "
                               f"try again when that run has finished (see it in the Dagster UI's Runs page)")
        time.sleep(POLL_SECONDS)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_EVERY_SECONDS):
            try:
                try_acquire(engine, name, holder)
            except Exception:  # a renewal that fails is retried at the next tick; the lease is long
                log.warning("could not renew the lease on %s; retrying in %.0fs", name, RENEW_EVERY_SECONDS)

    renewer = threading.Thread(target=renew, name=f"lease:{name}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=5)
        release(engine, name, holder)

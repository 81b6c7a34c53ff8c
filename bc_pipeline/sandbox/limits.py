"""BC's per-client operational limits: a sliding-window request rate, 5 processed at once, a bounded queue."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Optional


class Throttled(Exception):
    """The request is refused: 429 (rate or queue) or 503 (waited too long in the queue)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ClientLimits:
    """One client's (service principal's) window, slots and queue; all numbers come from the config."""

    def __init__(self, rate_limit: int, window: float, max_concurrent: int, max_queue: int, queue_timeout: float):
        self.rate_limit = rate_limit
        self.window = window
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.times: deque[float] = deque()
        self.slots = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0  # processing + queued
        self.processing = 0
        self.peak_processing = 0
        self.peak_in_flight = 0
        self.accepted = 0
        self.throttled = 0

    def check_rate(self) -> None:
        now = time.monotonic()
        times = self.times
        edge = now - self.window
        while times and times[0] <= edge:
            times.popleft()
        if len(times) >= self.rate_limit:
            self.throttled += 1
            raise Throttled(429, f"Actual ({len(times) + 1}). Maximum ({self.rate_limit}) requests per "
                                 f"{self.window:g} seconds.")
        if self.in_flight >= self.max_concurrent + self.max_queue:
            self.throttled += 1
            raise Throttled(429, f"Actual ({self.in_flight + 1}). Maximum ({self.max_concurrent + self.max_queue}) "
                                 "concurrent and queued requests.")
        times.append(now)
        self.accepted += 1

    async def acquire(self) -> None:
        """Count the request in the window, then wait for one of the processing slots."""
        self.check_rate()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.wait_for(self.slots.acquire(), self.queue_timeout)
        except asyncio.TimeoutError:
            self.in_flight -= 1
            raise Throttled(503, "The request waited too long in the queue.") from None
        except BaseException:
            self.in_flight -= 1
            raise
        self.processing += 1
        self.peak_processing = max(self.peak_processing, self.processing)

    def release(self) -> None:
        self.processing -= 1
        self.in_flight -= 1
        self.slots.release()


class Limits:
    """Every client's limits, created on first use."""

    def __init__(self, rate_limit: int, window: float, max_concurrent: int, max_queue: int, queue_timeout: float):
        self.args = (rate_limit, window, max_concurrent, max_queue, queue_timeout)
        self.clients: dict[str, ClientLimits] = {}

    def for_client(self, client_id: str) -> ClientLimits:
        limits = self.clients.get(client_id)
        if limits is None:
            limits = self.clients[client_id] = ClientLimits(*self.args)
        return limits

    def stats(self) -> dict[str, dict[str, int]]:
        return {cid: {"peak_concurrency": c.peak_processing, "peak_in_flight": c.peak_in_flight,
                      "processing": c.processing, "in_flight": c.in_flight, "accepted": c.accepted,
                      "throttled": c.throttled, "in_window": len(c.times)}
                for cid, c in self.clients.items()}

    def reset_peaks(self, client_id: Optional[str] = None) -> None:
        for cid, c in self.clients.items():
            if client_id is None or cid == client_id:
                c.peak_processing = c.processing
                c.peak_in_flight = c.in_flight

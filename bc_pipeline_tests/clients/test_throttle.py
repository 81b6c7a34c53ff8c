"""One throttle holds across processes: together they stay under its limit and its concurrency."""

import multiprocessing
import time
from pathlib import Path

from bc_pipeline.clients import throttle
from bc_pipeline.clients.throttle import Throttle, throttle_key
from bc_pipeline_tests.clients.support import finishes_within

LIMIT, WINDOW, CONCURRENCY = 20, 1.0, 2


def _worker(directory: str, key: str, count: int, queue) -> None:
    throttle = Throttle(Path(directory), key, limit=LIMIT, seconds=WINDOW, concurrency=CONCURRENCY)
    stamps = []
    for _ in range(count):
        with throttle.request():
            start = time.time()
            time.sleep(0.002)
            stamps.append((start, time.time()))
    queue.put(stamps)


def _max_in_window(starts: list[float], window: float) -> int:
    starts = sorted(starts)
    best, left = 0, 0
    for right, value in enumerate(starts):
        while value - starts[left] >= window:
            left += 1
        best = max(best, right - left + 1)
    return best


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    current = best = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def test_two_processes_sharing_a_throttle_stay_under_its_limit_together(tmp_path):
    key = throttle_key("business-central", "https://example.test", "tenant", "client")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_worker, args=(str(tmp_path), key, 30, queue)) for _ in range(2)]
    started = time.time()
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=10)
    elapsed = time.time() - started
    intervals = [i for r in results for i in r]
    assert len(intervals) == 60
    # 60 requests at 20 per second cannot finish in under two windows.
    assert elapsed >= 2.0
    assert _max_in_window([s for s, _ in intervals], WINDOW) <= LIMIT
    assert _max_overlap(intervals) <= CONCURRENCY


def test_a_pause_seen_by_one_holder_holds_back_the_others(tmp_path):
    key = throttle_key("ipaas", "https://example.test")
    first = Throttle(tmp_path, key, limit=100, seconds=1, concurrency=1)
    second = Throttle(tmp_path, key, limit=100, seconds=1, concurrency=1)
    first.pause(0.5)
    started = time.monotonic()
    with second.request():
        pass
    assert time.monotonic() - started >= 0.45
    assert second.stats.paused_seconds >= 0.4


def test_a_pause_of_a_day_written_by_another_process_ends_at_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(throttle, "MAX_RETRY_AFTER_SECONDS", 0.5)
    key = throttle_key("ipaas", "https://example.test")
    held = Throttle(tmp_path, key, limit=100, seconds=1, concurrency=1)
    (tmp_path / f"{key}.pause").write_text(repr(time.time() + 86400))  # as a version without the cap wrote it

    def two_requests() -> None:
        for _ in range(2):
            with held.request():
                pass

    started = time.monotonic()
    finishes_within(10, two_requests)
    assert 0.4 <= time.monotonic() - started < 0.9  # once, not once per request
    assert held.pause(86400) == 0.5


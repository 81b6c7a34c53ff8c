"""A long step says where it stands every few seconds: done / total, rate, throttle waits, ETA."""

from bc_pipeline.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_line_every_few_seconds_with_done_total_rate_throttle_waits_and_eta():
    clock, lines, waited = Clock(), [], [3.0]
    progress = Progress("customer_to_ipaas", lines.append, total=1000, every=5, clock=clock,
                        throttle_waited=lambda: waited[0])
    progress.add(100)
    assert lines == []  # not yet 5 s since the start
    clock.now += 5
    waited[0] = 5.5
    progress.add(150)
    assert lines == ["Progress customer_to_ipaas: 250 / 1,000 records (25%), 50/s, throttle waits 2.5s, ETA 15s"]
    clock.now += 1
    progress.add(10)
    assert len(lines) == 1  # at most one line per 5 s


def test_without_a_total_the_count_so_far_and_no_eta():
    clock, lines = Clock(), []
    progress = Progress("CustomerCard", lines.append, every=0, clock=clock)
    clock.now += 2
    progress.add(7)
    assert lines == ["Progress CustomerCard: 7 records so far, 3.5/s"]


def test_seconds_read_as_minutes_and_hours():
    assert [format_seconds(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]

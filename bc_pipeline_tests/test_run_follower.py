"""While a run goes, `bc-pipeline run` prints its steps' progress: one line rewritten on a terminal, lines elsewhere."""

import io
import time
from types import SimpleNamespace

from bc_pipeline.run_follower import RunFollower


class FakeRunLog:
    """A run's event log as the follower reads it: records after a cursor."""

    def __init__(self, messages):
        self.entries = [SimpleNamespace(dagster_event=None, user_message=m, timestamp=time.time()) for m in messages]

    def get_run_by_id(self, run_id):
        return SimpleNamespace(step_keys_to_execute=["a", "b"])

    def get_records_for_run(self, run_id, cursor=None, limit=1000):
        start = int(cursor or 0)
        records = [SimpleNamespace(event_log_entry=e) for e in self.entries[start:start + limit]]
        return SimpleNamespace(records=records, cursor=str(start + len(records)), has_more=False)


MESSAGES = ["Progress customer_to_ipaas: 10 / 40 records (25%), 5.0/s, throttle waits 0.0s, ETA 6s",
            "customer_to_ipaas: 40 created", "Progress customer_to_ipaas: 20 / 40 records (50%), 5.0/s, ETA 4s"]


def _follow(tty: bool) -> str:
    stream = io.StringIO()
    with RunFollower(FakeRunLog(MESSAGES), "run-1", stream, tty=tty, every=60, poll_seconds=0.01):
        time.sleep(0.3)
    return stream.getvalue()


def test_off_a_terminal_each_progress_line_is_printed_and_nothing_else():
    lines = _follow(tty=False).splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "customer_to_ipaas: 10 / 40 records (25%), 5.0/s, throttle waits 0.0s, ETA 6s",
        "customer_to_ipaas: 20 / 40 records (50%), 5.0/s, ETA 4s"]


def test_on_a_terminal_one_line_is_rewritten_and_cleared_at_the_end():
    text = _follow(tty=True)
    assert "\n" not in text
    assert text.count("\r\033[K") == 3 and text.endswith("\r\033[K")
    assert "20 / 40 records (50%)" in text

"""What `bc-pipeline run` shows while a run goes: its steps' progress lines, and a line on the steps at least every few seconds."""

from __future__ import annotations

import shutil
import threading
import time
from typing import Optional, TextIO

import dagster as dg

from bc_pipeline.progress import EVERY_SECONDS, PREFIX, format_seconds

STARTED_STEP = {dg.DagsterEventType.STEP_WORKER_STARTING, dg.DagsterEventType.STEP_START}
FINISHED_STEP = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED}


class RunFollower:
    """Reads the run's event log (where every step process writes) and prints what is new.

    On a terminal one line is rewritten in place; elsewhere (a file, CI) each line is printed: at most one per step
    every EVERY_SECONDS, and a line on the steps (done, running for how long) when nothing was said for that long.
    """

    def __init__(self, instance: dg.DagsterInstance, run_id: str, stream: TextIO, *, tty: Optional[bool] = None,
                 every: float = EVERY_SECONDS, poll_seconds: float = 1.0):
        self.instance = instance
        self.run_id = run_id
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.every = every
        self.poll_seconds = poll_seconds
        self.lines_printed = 0
        self._cursor: Optional[str] = None
        self._running: dict[str, float] = {}  # step key → when it started
        self._finished = 0
        self._total: Optional[int] = None
        self._started = self._last_said = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"follow-{run_id[:8]}", daemon=True)

    def __enter__(self) -> "RunFollower":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if not self.tty:
            try:
                self._read_new()  # the last progress lines of steps that ended since the last look
            except Exception:
                pass
        if self.tty and self.lines_printed:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._read_new()
            except Exception:  # the run goes on without its follower; its log keeps everything
                return
            if time.monotonic() - self._last_said >= self.every:
                self._say(self._steps_line())

    def _read_new(self) -> None:
        if self._total is None:
            run = self.instance.get_run_by_id(self.run_id)
            if run is not None and run.step_keys_to_execute is not None:
                self._total = len(run.step_keys_to_execute)
        while True:
            result = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, limit=1000)
            for record in result.records:
                self._see(record.event_log_entry)
            self._cursor = result.cursor
            if not result.has_more:
                return

    def _see(self, entry) -> None:
        event = entry.dagster_event
        if event is None:
            if entry.user_message.startswith(PREFIX + " "):
                self._say(entry.user_message[len(PREFIX) + 1:])
            return
        if event.event_type in STARTED_STEP and event.step_key:
            self._running.setdefault(event.step_key, entry.timestamp)
        elif event.event_type in FINISHED_STEP:
            self._finished += 1
            self._running.pop(event.step_key or "", None)

    def _steps_line(self) -> str:
        now = time.time()
        done = f"{self._finished}/{self._total}" if self._total is not None else str(self._finished)
        running = sorted(self._running.items(), key=lambda item: item[1])
        names = ", ".join(f"{key} ({format_seconds(now - since)})" for key, since in running[:3])
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        return f"{done} steps done" + (f"; running {names}{more}" if running else "")

    def _say(self, text: str) -> None:
        self._last_said = time.monotonic()
        line = f"[{format_seconds(self._last_said - self._started)}] {text}"
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r\033[K" + line[: width - 1])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.lines_printed += 1

"""`bc-pipeline dev`: `dagster dev` for this project — fails fast on a busy port, without the idle noise."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, TextIO

HOST = "127.0.0.1"
# `dagster dev` is marked superseded by `dg dev`, which needs a `dg` project (pyproject [tool.dg], a defs folder):
# this project is a plain code location (workspace.yaml), so the warning says nothing a user can act on.
SUPERSEDED_WARNING = "ignore:Function `dev_command` is superseded"
# The daemon logs two INFO lines per sensor tick (every few seconds) even when the sensor has nothing to do.
IDLE_LINES = re.compile(r"Checking for new runs for sensor: |Sensor \S+ skipped: no pending |No run requests returned for ")
BUSY = re.compile(r"address already in use|\[Errno 98\]", re.IGNORECASE)
STOP_SECONDS = 20


class PortBusy(Exception):
    def __init__(self, port: int):
        super().__init__(f"port {port} is already in use (another Dagster UI or program listens there); choose "
                         f"another with `bc-pipeline dev --port {port + 1}` (make dev: "
                         f"`.venv/bin/bc-pipeline dev --port {port + 1}`)")
        self.port = port


def check_port(port: int, host: str = HOST) -> None:
    """Raises PortBusy when the port cannot be listened on (what the webserver would find out only later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not busy
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortBusy(port) from None
            raise


def command(port: int, workspace: Path) -> list[str]:
    return [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", HOST, "-p", str(port)]


def run(port: int, workspace: Path, dagster_home: Path, *, out: TextIO = sys.stdout,
        err: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Run dagster dev until it ends or is interrupted; its exit code, 1 when the port turned out busy.

    It runs in DAGSTER_HOME (the instance's own dagster.yaml is there: none in the working directory to be
    warned about), and its output passes through here, so a bind failure stops it instead of leaving a UI-less
    process beating its heart forever.
    """
    check_port(port)
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), SUPERSEDED_WARNING]))
    process = subprocess.Popen(command(port, workspace), cwd=dagster_home, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    busy: Optional[str] = None
    interrupted = False
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if BUSY.search(line):
                busy = line
                break
            if not IDLE_LINES.search(line):
                out.write(line)
                out.flush()
    except KeyboardInterrupt:  # the terminal sent SIGINT to dagster dev too: let it shut its services down
        interrupted = True
        try:
            for line in process.stdout:
                out.write(line)
        except KeyboardInterrupt:
            pass
    finally:
        if busy is not None or process.poll() is None:
            _stop(process)
    if busy is not None:
        err(f"bc-pipeline dev: {PortBusy(port)}")
        return 1
    code = process.wait()
    if interrupted:
        return 130
    if code != 0:
        err(f"bc-pipeline dev: dagster dev exited with code {code}; its output above says why")
        return code if code > 0 else 1
    return 0


def _stop(process: subprocess.Popen) -> None:
    """Ask dagster dev to shut its webserver and daemon down (as Ctrl+C does); kill it if it will not."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt:
            continue
    if process.poll() is None:
        process.kill()
        process.wait()

"""`bc-pipeline dev`: a busy port fails fast, naming the port and how to choose another; dagster dev's failures end it."""

import io
import os
import socket
import sys
import time

import pytest

from bc_pipeline import dev
from bc_pipeline.cli import main


@pytest.fixture
def busy_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_busy_port_fails_in_seconds_before_a_sandbox_starts(busy_port, tmp_path, monkeypatch, capsys):
    for key in [k for k in os.environ if k.startswith(("BC_", "IPAAS_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BC_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    started = time.monotonic()
    assert main(["dev", "--port", str(busy_port)]) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert f"port {busy_port} is already in use" in err and f"bc-pipeline dev --port {busy_port + 1}" in err
    assert not (tmp_path / "home" / "sandbox").exists()


def _fake_dagster_dev(monkeypatch, script):
    monkeypatch.setattr(dev, "command", lambda port, workspace: [sys.executable, "-c", script])
    monkeypatch.setattr(dev, "check_port", lambda port: None)  # the port was free when checked, taken since


def test_when_dagster_dev_cannot_bind_it_is_stopped_and_the_port_named(monkeypatch, tmp_path):
    # What dagster dev does on a busy port: the webserver's bind error, then the daemon's heartbeats forever.
    _fake_dagster_dev(monkeypatch, "import time\n"
                      "print('ERROR:    [Errno 98] error while attempting to bind on address (\"127.0.0.1\", 3000): "
                      "address already in use', flush=True)\n"
                      "while True: print('heartbeat', flush=True); time.sleep(0.2)")
    errors, started = [], time.monotonic()
    assert dev.run(3000, tmp_path / "workspace.yaml", tmp_path, out=io.StringIO(), err=errors.append) == 1
    assert time.monotonic() - started < dev.STOP_SECONDS + 30  # it ends (not heartbeats forever); no speed target
    assert errors == [f"bc-pipeline dev: {dev.PortBusy(3000)}"] and "--port 3001" in errors[0]


def test_dagster_devs_own_failure_is_its_exit_code_and_idle_sensor_lines_are_left_out(monkeypatch, tmp_path):
    _fake_dagster_dev(monkeypatch, "print('dagster.daemon.SensorDaemon - INFO - Checking for new runs for sensor: "
                      "sync_requests'); print('dagster.daemon.SensorDaemon - INFO - Sensor sync_requests skipped: "
                      "no pending sync requests'); print('Serving dagster-webserver'); raise SystemExit(4)")
    out, errors = io.StringIO(), []
    assert dev.run(3000, tmp_path / "workspace.yaml", tmp_path, out=out, err=errors.append) == 4
    assert out.getvalue() == "Serving dagster-webserver\n"
    assert errors == ["bc-pipeline dev: dagster dev exited with code 4; its output above says why"]


def test_dagster_dev_runs_in_dagster_home_without_the_superseded_warning(monkeypatch, tmp_path):
    _fake_dagster_dev(monkeypatch, "import os, warnings; print(os.getcwd()); "
                      "warnings.warn('Function `dev_command` is superseded and its usage is discouraged.')")
    out = io.StringIO()
    assert dev.run(3000, tmp_path / "workspace.yaml", tmp_path, out=out) == 0
    assert out.getvalue() == f"{tmp_path}\n"

"""The README's first command: `bc-pipeline run` on a machine with no credentials uses the sandbox, and keeps to
BC_PIPELINE_HOME and DAGSTER_HOME: nothing lands in the user's home directory."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

from bc_pipeline.cli import services
from bc_pipeline.defs.jobs import COLLECTION_TAG, EVERY_COLLECTION

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).parent / "bc-pipeline"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`bc-pipeline run` once, as a new user runs it: no credentials, the pipeline's own variables and XDG overrides
    gone (defaults would fall to HOME), HOME an empty folder; the tests below read what it printed and left."""
    folder = tmp_path_factory.mktemp("first_run")
    (folder / "user").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_", "DAGSTER_", "XDG_"))}
    env.update({"HOME": str(folder / "user"), "BC_PIPELINE_HOME": str(folder / "home"),
                "DAGSTER_HOME": str(folder / "dagster")})
    result = subprocess.run([str(CLI), "run", "--scale", "0.05"], env=env, cwd=folder, capture_output=True, text=True,
                            timeout=600)
    return folder, result


def test_run_without_credentials_extracts_from_the_sandbox_and_prints_the_summary(first_run):
    folder, result = first_run
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "starting the local sandbox" in out
    for service in ("CustomerCard", "Locations", "ItemCard", "ShippingAgents", "SalesOrders", "SalesOrderLines",
                    "Itemsbylocation", "CustomerPriceGroups"):
        assert service in out
    assert "| entity" in out and "records" in out and "requests" in out and "seconds" in out
    assert "product_to_ipaas" in out
    runs = list((folder / "dagster").glob("**/runs.db")) or list((folder / "dagster").glob("**/*.db"))
    assert runs, "the run is recorded in DAGSTER_HOME"
    assert "sandbox-secret-not-for-production" not in out + result.stderr


def test_a_run_with_home_set_to_an_empty_directory_leaves_it_empty(first_run):
    folder, result = first_run
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    written = sorted(str(p.relative_to(folder / "user")) for p in (folder / "user").rglob("*"))
    assert written == [], f"the run wrote into HOME: {written}"
    assert any((folder / "home").iterdir()) and any((folder / "dagster").iterdir())


def test_doctor_against_the_sandbox_passes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_", "DAGSTER_"))}
    env.update({"BC_PIPELINE_HOME": str(tmp_path / "home")})
    result = subprocess.run([sys.executable, "-m", "bc_pipeline.cli", "doctor", "--sandbox"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "checks ok" in result.stdout


def test_bad_settings_exit_with_the_fields_named(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_", "DAGSTER_"))}
    env.update({"BC_PIPELINE_HOME": str(tmp_path / "home"), "BC_GRANT_TYPE": "password"})
    result = subprocess.run([sys.executable, "-m", "bc_pipeline.cli", "doctor"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "[FAIL] settings: Grant Type (BC_GRANT_TYPE): only client_credentials is supported" in result.stdout
    run = subprocess.run([sys.executable, "-m", "bc_pipeline.cli", "run"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert "Grant Type (BC_GRANT_TYPE): only client_credentials is supported" in run.stderr


def _cli_env(sandbox, tmp_path, **overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_", "DAGSTER_"))}
    env.update(sandbox.env())
    env.update({"BC_PIPELINE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"), **overrides})
    return env


SOME_SERVICES = ["--select", "customer_price_groups", "locations", "shipping_agents"]


def test_a_wrong_secret_fails_at_once_saying_so_once_with_the_fix(sandbox, tmp_path):
    env = _cli_env(sandbox, tmp_path, BC_CLIENT_SECRET="the-secret-id-not-its-value")
    result = subprocess.run([sys.executable, "-m", "bc_pipeline.cli", "run", *SOME_SERVICES], env=env,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert len(output.splitlines()) <= 15, output
    assert output.count("copy the secret's Value (not its ID)") == 1, output
    assert "AADSTS7000215" in output and "no run was started" in output
    assert "Traceback" not in output and "the-secret-id-not-its-value" not in output


def test_an_error_that_stops_every_step_is_told_once_with_the_fix_and_where_the_full_log_is(world, tmp_path):
    world.handle.set_faults({"action": "deny_client", "client_id": world.handle.config.client_id})  # BC answers 403
    result = subprocess.run([sys.executable, "-m", "bc_pipeline.cli", "run", *SOME_SERVICES],
                            env=_cli_env(world.handle, tmp_path), capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    told = [line for line in output.splitlines() if not line.startswith("[")]  # "[5s] 0/16 steps done; …" aside
    assert len(told) <= 8, output
    assert "the same error stopped all 3 steps" in output and "HTTP 403" in output
    assert output.count("grant the app permission") == 1, output  # the guide's fix, once
    assert "Traceback" not in output and "Stack Trace" not in output and "STEP_FAILURE" not in output
    # The run is in DAGSTER_HOME under its job and code location, as if launched from the UI, stack traces and all.
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "dagster"))) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="sync_to_ipaas", tags={
            REPOSITORY_LABEL_TAG: "__repository__@bc_pipeline", COLLECTION_TAG: EVERY_COLLECTION}))
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.FAILURE
        assert runs[0].remote_job_origin.location_name == "bc_pipeline"
        assert f"http://127.0.0.1:3000/runs/{runs[0].run_id}" in output
        logs = "\n".join(e.dagster_event.event_specific_data.error.to_string()
                         for e in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_FAILURE))
        assert "HTTP 403" in logs and 'File "' in logs


def test_the_code_location_is_named_bc_pipeline_everywhere():
    import tomllib

    import yaml

    from bc_pipeline.runner import CODE_LOCATION
    from bc_pipeline.settings import PROJECT_DIR

    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    workspace = yaml.safe_load((PROJECT_DIR / "workspace.yaml").read_text())
    assert pyproject["tool"]["dagster"]["code_location_name"] == CODE_LOCATION == "bc_pipeline"
    assert [entry["python_module"]["location_name"] for entry in workspace["load_from"]] == [CODE_LOCATION]


FIRST_SANDBOX = """
import sqlite3, sys
from bc_pipeline.cli import services
with services(0.01, force_sandbox=True):
    import os
    path = os.environ["BC_PIPELINE_STATE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("create table links (external_id text)")
        db.execute("insert into links values ('C10000')")
    print("state:", path, flush=True)
    sys.stdin.read()
"""


def _sandbox_env(monkeypatch, home):
    for key in [k for k in os.environ if k.startswith(("BC_", "IPAAS_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BC_PIPELINE_HOME", str(home))
    return dict(os.environ)


def _links(path):
    with sqlite3.connect(path) as db:
        return db.execute("select external_id from links").fetchall()


def _state_file() -> Path:
    return Path(os.environ["BC_PIPELINE_STATE_URL"].removeprefix("sqlite:///"))


def test_a_sandbox_start_keeps_the_state_of_a_sandbox_still_running_and_removes_the_rest(tmp_path, monkeypatch):
    env = _sandbox_env(monkeypatch, tmp_path / "home")
    first = subprocess.Popen([sys.executable, "-c", FIRST_SANDBOX], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        first_state = Path(next(line for line in first.stdout if line.startswith("state:"))[6:].strip())
        assert first_state.name == "state.sqlite" and _links(first_state) == [("C10000",)]
        with services(0.01, force_sandbox=True):
            second_state = _state_file()
            assert second_state.parent != first_state.parent
            assert second_state.parent.parent == first_state.parent.parent == tmp_path / "home" / "sandbox" / "instances"
        assert _links(first_state) == [("C10000",)]  # the first one still runs
    finally:
        first.stdin.close()
        first.wait(timeout=60)
    assert first.returncode == 0
    with services(0.01, force_sandbox=True):
        third = _state_file().parent
        assert [p for p in third.parent.iterdir() if p.is_dir()] == [third]
        assert sorted(p.name for p in third.parent.iterdir()) == [third.name, f"{third.name}.lock"]


def test_a_state_url_of_the_users_own_wins_over_the_sandboxs(tmp_path, monkeypatch):
    _sandbox_env(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("BC_PIPELINE_STATE_URL", f"sqlite:///{tmp_path / 'mine.sqlite'}")
    with services(0.01, force_sandbox=True):
        assert os.environ["BC_PIPELINE_STATE_URL"] == f"sqlite:///{tmp_path / 'mine.sqlite'}"

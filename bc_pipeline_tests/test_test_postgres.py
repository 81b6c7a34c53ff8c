"""scripts/test-postgres.sh: each test run gets a PostgreSQL of its own, and never reuses or stops a neighbour's."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from bc_pipeline.settings import PROJECT_DIR

SCRIPT = PROJECT_DIR / "scripts" / "test-postgres.sh"
# What the command run by `run` reports: the URL it was given and the data folder of the server behind it.
REPORT = ("import os, psycopg; url = os.environ['BC_PIPELINE_TEST_POSTGRES_URL']; "
          "print(url); print(psycopg.connect(url.replace('+psycopg', '')).execute('show data_directory').fetchone()[0])")

pytestmark = pytest.mark.skipif(not (glob.glob("/usr/lib/postgresql/*/bin/pg_ctl") or shutil.which("pg_ctl")),
                                reason="PostgreSQL is not installed (`make test` installs it)")


def _script(*args, env=None, check=True):
    base = {k: v for k, v in os.environ.items() if not k.startswith("BC_PIPELINE_PG_")}
    result = subprocess.run(["bash", str(SCRIPT), *args], env={**base, **(env or {})}, capture_output=True,
                            text=True, timeout=180)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=5) as conn:
            return conn.execute("select 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="module")
def neighbour():
    """Another checkout's cluster, in a folder and on a port of its own."""
    folder = tempfile.mkdtemp(prefix="bc_pipeline_pg_neighbour.", dir="/tmp")
    env = {"BC_PIPELINE_PG_DIR": folder}
    url = _script("start", env=env).stdout.strip()
    try:
        yield folder, url
    finally:
        _script("stop", env=env)
        shutil.rmtree(folder, ignore_errors=True)


def test_run_starts_a_private_cluster_on_a_free_port_and_stops_and_removes_exactly_it(neighbour):
    neighbour_dir, neighbour_url = neighbour
    result = _script("run", sys.executable, "-c", REPORT + "; raise SystemExit(7)", check=False)
    assert result.returncode == 7, result.stderr  # the command's status
    url, data_dir = result.stdout.split()
    assert url != neighbour_url and Path(data_dir).resolve() != Path(neighbour_dir).resolve()
    assert not _answers(url) and not Path(data_dir).exists()  # stopped and removed after the command
    assert _answers(neighbour_url)  # the neighbour's still runs


def test_a_port_given_that_a_neighbour_uses_fails_and_leaves_the_neighbour_running(neighbour):
    _, neighbour_url = neighbour
    port = neighbour_url.rsplit(":", 1)[1].split("/")[0]
    result = _script("run", sys.executable, "-c", REPORT, env={"BC_PIPELINE_PG_PORT": port}, check=False)
    assert result.returncode != 0 and f"did not start on port {port}" in result.stderr
    assert _answers(neighbour_url)


def test_a_folder_given_with_a_running_cluster_is_reused_with_its_own_port_and_left_running(neighbour):
    neighbour_dir, neighbour_url = neighbour
    result = _script("run", sys.executable, "-c", REPORT,
                     env={"BC_PIPELINE_PG_DIR": neighbour_dir, "BC_PIPELINE_PG_PORT": "1"})
    assert result.stdout.split()[0] == neighbour_url
    assert _answers(neighbour_url) and Path(neighbour_dir).exists()

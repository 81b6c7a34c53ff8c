"""The README's first command: `bc-pipeline run` on a machine with no credentials uses the sandbox."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_run_without_credentials_extracts_from_the_sandbox_and_prints_the_summary(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_", "DAGSTER_"))}
    env.update({"BC_PIPELINE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")})
    result = subprocess.run(
        [sys.executable, "-m", "bc_pipeline.cli", "run", "--scale", "0.05"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "starting the local sandbox" in out
    for service in ("CustomerCard", "Locations", "ItemCard", "ShippingAgents", "SalesOrders", "SalesOrderLines",
                    "Itemsbylocation", "CustomerPriceGroups"):
        assert service in out
    assert "| entity" in out and "records" in out and "requests" in out and "seconds" in out
    assert "product_to_ipaas" in out
    runs = list((tmp_path / "dagster").glob("**/runs.db")) or list((tmp_path / "dagster").glob("**/*.db"))
    assert runs, "the run is recorded in DAGSTER_HOME"
    assert "sandbox-secret-not-for-production" not in out + result.stderr


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

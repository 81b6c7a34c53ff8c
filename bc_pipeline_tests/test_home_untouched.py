"""A run keeps to BC_PIPELINE_HOME and DAGSTER_HOME: nothing lands in the user's home directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).parent / "bc-pipeline"


def _environment(tmp_path: Path) -> dict[str, str]:
    """The caller's environment with the pipeline's own variables and XDG overrides gone: defaults fall to HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_", "DAGSTER_", "XDG_"))}
    env.update({"HOME": str(tmp_path / "user"), "BC_PIPELINE_HOME": str(tmp_path / "pipeline"),
                "DAGSTER_HOME": str(tmp_path / "dagster")})
    return env


def test_a_run_with_home_set_to_an_empty_directory_leaves_it_empty(tmp_path):
    user_home = tmp_path / "user"
    user_home.mkdir()
    result = subprocess.run([str(CLI), "run", "--sandbox", "--scale", "0.02"], env=_environment(tmp_path),
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    written = sorted(str(p.relative_to(user_home)) for p in user_home.rglob("*"))
    assert written == [], f"the run wrote into HOME: {written}"
    assert any((tmp_path / "pipeline").iterdir()) and any((tmp_path / "dagster").iterdir())

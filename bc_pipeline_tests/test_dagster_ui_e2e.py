"""The Dagster UI in a real browser: headless Chromium (Debian's) through Selenium against `dagster dev` on the
sandbox — every asset group on the graph, `initial_load` launched from the Launchpad with its records metadata on
the run page, a 3-day backfill of resync/customers as one run, the schedules and the sensor on the automation page."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from dagster import AssetKey, DagsterRunStatus, RunsFilter

from bc_pipeline_tests.dagster_ui import chromium, chromium_missing, dagster_dev

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

LOCATION = "__repository__@bc_pipeline"
RUN_SECONDS = 240


@pytest.fixture
def chromium_installed():
    """Debian's chromium and chromedriver: a failure under CI, which must test the UI; a skip elsewhere."""
    missing = chromium_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing: `scripts/test-chromium.sh install` (make test runs it)")
        pytest.skip(f"no {missing} (run the tests with `make test`, or `scripts/test-chromium.sh install`)")


@pytest.fixture
def ui(chromium_installed, world, tmp_path):
    # One process for a run's steps: a process per step would spend the test's time importing Dagster.
    env = {**os.environ, "BC_PIPELINE_EXECUTOR": "in_process"}
    with dagster_dev(tmp_path / "ui", env) as dagster_ui:
        with chromium(dagster_ui.url, tmp_path / "screenshots") as browser:
            yield dagster_ui, browser


def _wait_for_run(ui, run_id: str):
    instance = ui.instance()
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.status if run else 'missing'}"
        time.sleep(1)


def _three_days(world) -> tuple[str, str]:
    """Three days ending on the latest customer change (the dialog shows the last 90 days), as partition keys."""
    latest = max(dt.date.fromisoformat(c["Last_Date_Modified"][:10]) for c in world.handle.records("CustomerCard"))
    today = dt.datetime.now(dt.timezone.utc).date()  # the partitions' days are UTC's; the newest is today
    latest = min(max(latest, today - dt.timedelta(days=60)), today)
    return (latest - dt.timedelta(days=2)).isoformat(), latest.isoformat()


def _wait_for_backfill_run(ui):
    """The one backfill the UI launched and its runs, once the daemon's run for it finished (the daemon marks the
    backfill itself complete only on its next pass, up to 30 s later: nothing this test needs to wait for)."""

    instance = ui.instance()
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        backfills = instance.get_backfills()
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfills[0].backfill_id})) if backfills else []
        if runs and all(run.is_finished for run in runs):
            assert len(backfills) == 1
            return backfills[0], runs
        assert time.monotonic() < deadline, f"backfill {backfills[0].backfill_id if backfills else '(none)'}: {runs}"
        time.sleep(1)


def _run_id_from_url(url: str) -> str:
    assert "/runs/" in url, url
    return url.split("/runs/", 1)[1].split("?", 1)[0].split("/", 1)[0]


def test_the_ui_shows_the_groups_launches_runs_and_backfills_and_lists_the_automation(ui, world):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

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
    WebDriverWait(browser.driver, 60).until(lambda d: "/runs/" in d.current_url)
    run_id = _run_id_from_url(browser.driver.current_url)
    run = _wait_for_run(dagster_ui, run_id)
    browser.open(f"/runs/{run_id}")
    browser.wait_for_text("Success", "created")
    # `created` as a metadata entry's key (a cell of its own), not just a word of a log line.
    WebDriverWait(browser.driver, 60).until(lambda d: d.find_elements(By.XPATH, "//*[normalize-space(text())='created']"))
    browser.screenshot("initial-load-run")
    assert run.status == DagsterRunStatus.SUCCESS
    assert run.job_name == "initial_load"
    customers = dagster_ui.instance().get_latest_materialization_event(AssetKey(["ipaas", "customer_to_ipaas"]))
    assert customers.run_id == run_id
    created = customers.asset_materialization.metadata["created"].value
    assert created > 0 and world.ipaas_records("Customer"), "initial_load landed no customer in iPaaS.com"

    # A 3-day backfill of resync/customers from the asset's Materialize… dialog: one run for the range.
    first, last = _three_days(world)
    browser.open("/assets/resync/customers")
    browser.wait_for_text("Materialize")
    browser.click("//button[starts-with(normalize-space(), 'Materialize')]")
    browser.wait_for_text("Launch backfill", "Backfills all partitions in a single run.")
    field = browser.driver.find_element(By.XPATH, "//div[@role='dialog']//input[@type='text']")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(f"[{first}...{last}]", Keys.TAB)
    browser.wait_for_text("3 partitions")
    browser.screenshot("backfill-dialog")
    instance = dagster_ui.instance()
    assert not instance.get_backfills()
    browser.click(browser.button("Launch backfill"))
    backfill, runs = _wait_for_backfill_run(dagster_ui)
    assert backfill.asset_backfill_data.target_subset.num_partitions_and_non_partitioned_assets == 3
    assert len(runs) == 1, [r.run_id for r in runs]
    assert runs[0].status == DagsterRunStatus.SUCCESS
    tags = runs[0].tags
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (first, last)
    browser.open(f"/runs/b/{backfill.backfill_id}")
    browser.wait_for_text("resync / customers", f"{first}...{last}", "Partitions targeted")
    browser.screenshot("backfill")
    browser.click("//*[@role='tab' and normalize-space()='Runs'] | //a[normalize-space()='Runs' and contains(@href, '/runs/b/')]")
    browser.wait_for_text(runs[0].run_id[:8])
    browser.screenshot("backfill-runs")

    # The automation page: every schedule and the sensor.
    browser.open("/automation")
    browser.wait_for_text(*[s.name for s in defs.schedules], *[s.name for s in defs.sensors])
    browser.screenshot("automation")

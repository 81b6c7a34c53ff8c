"""A backfill of a date range re-syncs the records changed in it, in one run with one filtered query."""

import datetime as dt

import dagster as dg
import pytest

from bc_pipeline.defs.backfills import CHANGE_DATES, date_range_filter
from bc_pipeline.catalog import CUSTOMERS
from bc_pipeline.runner import run_job

pytestmark = pytest.mark.e2e


def test_a_range_is_one_filtered_query_and_lands_only_what_changed_in_it(world, instance):
    assert run_job("initial_load", ["customer_price_groups"], instance=instance).success
    dates = sorted(c["Last_Date_Modified"] for c in world.handle.records("CustomerCard"))
    start, end = dates[len(dates) // 3], dates[2 * len(dates) // 3]
    expected = {c["No"] for c in world.handle.records("CustomerCard") if start <= c["Last_Date_Modified"] <= end}

    from bc_pipeline.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    since = world.handle.last_seq()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(["resync", "customers"])],
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
        raise_on_error=False,
    )
    assert result.success
    reads = [r for r in world.handle.requests(since) if "CustomerCard" in r["path"]]
    assert len(reads) == 1
    assert "Last_Date_Modified" in reads[0]["path"]
    linked = {link["external_id"] for link in world.ipaas_links() if link["table_name"] == "customer"}
    assert linked == expected


def test_the_first_day_also_covers_everything_before_it():
    window = CHANGE_DATES.time_window_for_partition_key(CHANGE_DATES.get_first_partition_key())
    assert date_range_filter(CUSTOMERS, window) == "Last_Date_Modified lt 2020-01-02"
    window = dg.TimeWindow(dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 8))
    assert date_range_filter(CUSTOMERS, window) == "Last_Date_Modified ge 2026-11-01 and Last_Date_Modified lt 2026-11-08"

"""The Dagster code location: assets, checks, jobs and resources, all built from the catalog."""

from __future__ import annotations

import dagster as dg

from bc_pipeline.defs.backfills import resync_assets
from bc_pipeline.defs.extract import extract_assets, extract_checks
from bc_pipeline.defs.from_ipaas import from_ipaas_report, sync_from_ipaas, write_assets
from bc_pipeline.defs.jobs import jobs
from bc_pipeline.defs.resources import ipaas_resource, subscription_resource
from bc_pipeline.defs.schedules import schedules
from bc_pipeline.defs.sensors import sync_requests_sensor
from bc_pipeline.defs.to_ipaas import load_assets, load_checks, to_ipaas_report, transform_assets

defs = dg.Definitions(
    assets=[*extract_assets, *transform_assets, *load_assets, to_ipaas_report, *write_assets, from_ipaas_report,
            *resync_assets],
    asset_checks=[*extract_checks, *load_checks],
    jobs=[*jobs, sync_from_ipaas],
    schedules=schedules,
    sensors=[sync_requests_sensor],
    resources={"subscription": subscription_resource(), "ipaas": ipaas_resource()},
)

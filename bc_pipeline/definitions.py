"""The Dagster code location: assets, checks, jobs and resources, all built from the catalog."""

from __future__ import annotations

import dagster as dg

from bc_pipeline.defs.extract import extract_assets, extract_checks
from bc_pipeline.defs.jobs import jobs
from bc_pipeline.defs.resources import subscription_resource

defs = dg.Definitions(
    assets=extract_assets,
    asset_checks=extract_checks,
    jobs=jobs,
    resources={"subscription": subscription_resource()},
)

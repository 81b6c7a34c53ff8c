"""Jobs over the asset graph."""

from __future__ import annotations

import dagster as dg

from bc_pipeline.defs.extract import GROUP

extract_business_central = dg.define_asset_job(
    name="extract_business_central",
    selection=dg.AssetSelection.groups(GROUP),
    description="Extract every published Business Central web service of the integration guide into staging.",
)

jobs = [extract_business_central]

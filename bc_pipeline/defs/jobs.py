"""Jobs over the asset graph: extraction, the initial load, the incremental sync, initializations."""

from __future__ import annotations

import dagster as dg

from bc_pipeline.catalog import ENTITIES
from bc_pipeline.defs.extract import GROUP as EXTRACT_GROUP
from bc_pipeline.defs.run_report import report_key
from bc_pipeline.defs.to_ipaas import COLLECTIONS, GROUP as TO_IPAAS_GROUP, load_key

# The guide's "Initialization Support": the types that can be transferred in bulk.
INITIALIZATIONS = {
    "initialize_customer_categories": "Dynamics Customer Category Add/Update to iPaaS",
    "initialize_locations": "Dynamics Location Add/Update to iPaaS",
    "initialize_shipping_methods": "Dynamics Shipping Method Add/Update to iPaaS",
}

# Runs that load the same mapping collections wait in Dagster's run queue (dagster.yaml's
# tag_concurrency_limits); runs outside the queue (bc-pipeline run) wait on the collection's lease instead.
COLLECTION_TAG = "bc_pipeline/collection"
EVERY_COLLECTION = "every collection to iPaaS.com"

FULL_REFRESH_CONFIG = {"ops": {f"bc__{e.name}": {"config": {"full_refresh": True}} for e in ENTITIES}}

extract_business_central = dg.define_asset_job(
    name="extract_business_central",
    selection=dg.AssetSelection.groups(EXTRACT_GROUP),
    description="Extract every published Business Central web service of the integration guide into staging.",
)

sync_to_ipaas = dg.define_asset_job(
    name="sync_to_ipaas",
    selection=dg.AssetSelection.groups(EXTRACT_GROUP, TO_IPAAS_GROUP),
    tags={COLLECTION_TAG: EVERY_COLLECTION},
    description="Incremental sync: what changed in Business Central since the last delivered run, mapped and "
    "loaded into iPaaS.com in dependency order; unchanged payloads are not sent.",
)

initial_load = dg.define_asset_job(
    name="initial_load",
    selection=dg.AssetSelection.groups(EXTRACT_GROUP, TO_IPAAS_GROUP),
    config=FULL_REFRESH_CONFIG,
    tags={COLLECTION_TAG: EVERY_COLLECTION},
    description="Every record of every entity, read in full and loaded in dependency order (categories before "
    "customers, locations before inventory, products before orders, orders before tracking).",
)


def _initialization_job(job_name: str, collection_name: str) -> dg.UnresolvedAssetJobDefinition:
    collection = next(c for c in COLLECTIONS.values() if c.name == collection_name)
    return dg.define_asset_job(
        name=job_name,
        selection=dg.AssetSelection.assets(load_key(collection)).upstream() | dg.AssetSelection.assets(report_key("ipaas")),
        config={"ops": {f"bc__{collection.source}": {"config": {"full_refresh": True}}}},
        tags={COLLECTION_TAG: collection.name},
        description=f"Initialization: every {collection.entity.service} record to iPaaS.com ({collection.name}).",
    )


initialization_jobs = [_initialization_job(name, collection) for name, collection in INITIALIZATIONS.items()]

jobs = [extract_business_central, sync_to_ipaas, initial_load, *initialization_jobs]

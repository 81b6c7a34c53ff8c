"""Extraction assets: one per published Business Central web service, generated from the catalog."""


from typing import Optional

import dagster as dg
from pydantic import Field

from bc_pipeline.catalog import ENTITIES, Entity, with_change_field
from bc_pipeline.clients.transport import TrafficCounter
from bc_pipeline.defs.resources import BC_POOL, SubscriptionResource
from bc_pipeline.extraction import extract
from bc_pipeline.mapping.fields import tenant_fields_by_service, with_collection_fields
from bc_pipeline.mapping.registry import consumers_of, to_ipaas_collections
from bc_pipeline.service_fields import require_fields
from bc_pipeline.progress import Progress

GROUP = "business_central"


class ExtractConfig(dg.Config):
    """Run options for an extraction."""

    full_refresh: bool = Field(False, description="Read every record, ignoring the incremental watermark.")
    filter: Optional[str] = Field(None, description="An extra OData $filter, e.g. \"No eq 'C10000'\".")
    page_size: Optional[int] = Field(None, description="Records per page (Prefer: odata.maxpagesize), at most 20,000.")
    keys: list[str] = Field(default_factory=list, description="Only these records (their key values), e.g. for a sync request.")
    key_field: Optional[str] = Field(None, description="The field `keys` are values of (default: the entity's key).")


def entity_as_read(client, entity: Entity) -> Entity:
    """The entity with every field the TO iPaaS collections name; their tenant fields checked in $metadata first."""
    readers = to_ipaas_collections().values()
    require_fields(client, tenant_fields_by_service(readers, [entity.name]))
    return with_collection_fields(entity, readers)


def extract_asset_key(entity: Entity) -> dg.AssetKey:
    return dg.AssetKey(["bc", entity.name])


def build_extract_asset(entity: Entity) -> dg.AssetsDefinition:
    @dg.asset(
        key=extract_asset_key(entity),
        group_name=GROUP,
        kinds={"businesscentral"},
        description=f"{entity.description} Extracted from the published web service `{entity.service}` "
        f"({entity.object_type} {entity.object_id} {entity.object_name}).",
        metadata={
            "service": entity.service,
            "object": f"{entity.object_type} {entity.object_id} {entity.object_name}",
            "keys": ", ".join(entity.keys),
            "modified_at": entity.modified_at or "(none: always a full read)",
            "ipaas_model": entity.ipaas_model or "",
        },
        tags={"entity": entity.name},
        pool=BC_POOL,
    )
    def _extract(context: dg.AssetExecutionContext, config: ExtractConfig, subscription: SubscriptionResource) -> dg.MaterializeResult:
        counter = TrafficCounter()
        client = subscription.business_central(counter)
        try:
            result, _ = extract(
                client,
                with_change_field(entity_as_read(client, entity), client.settings.modified_at_fields),
                subscription.staging(),
                subscription.state_engine(),
                context.run.run_id,
                full_refresh=config.full_refresh,
                extra_filter=config.filter,
                page_size=config.page_size,
                consumers=consumers_of(entity.name),
                keys=config.keys or None,
                key_field=config.key_field,
                # BC does not say how many records a read will return: the count so far, without an ETA.
                progress=Progress(entity.service, context.log.info,
                                  throttle_waited=lambda: client.throttle.stats.waited_seconds),
            )
        finally:
            client.close()
        context.log.info(
            f"{entity.service}: {result.rows} rows in {result.pages} pages, {result.requests} requests, "
            f"{result.seconds:.1f}s ({result.mode})"
        )
        return dg.MaterializeResult(
            metadata={
                "service": dg.MetadataValue.text(entity.service),
                "rows": dg.MetadataValue.int(result.rows),
                "pages": dg.MetadataValue.int(result.pages),
                # every request of the step: the pages, and the $metadata read that checks its tenant fields
                "requests": dg.MetadataValue.int(counter.requests),
                "bytes": dg.MetadataValue.int(result.bytes),
                "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
                "throttle_wait_seconds": dg.MetadataValue.float(round(result.throttle_wait_seconds, 3)),
                "retries": dg.MetadataValue.int(counter.retries),
                "throttled_429": dg.MetadataValue.int(counter.throttled),
                "mode": dg.MetadataValue.text(result.mode),
                "filter": dg.MetadataValue.text(result.filter or ""),
                "newest_change": dg.MetadataValue.text(result.newest_change or ""),
                "sample_keys": dg.MetadataValue.text(", ".join(result.sample_keys)),
                "duplicate_keys": dg.MetadataValue.text(", ".join(result.duplicate_keys)),
                "records_without_key": dg.MetadataValue.int(result.records_without_key),
                "staged_at": dg.MetadataValue.path(result.location),
            }
        )

    return _extract


def materialization_to_check(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> Optional[tuple[dict, str]]:
    """(metadata, run id) of this run's materialization of `key`; a check run on its own checks the latest one."""
    records = context.instance.get_records_for_run(
        run_id=context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    for record in reversed(records):
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.asset_key == key:
            return {k: v.value for k, v in materialization.metadata.items()}, context.run.run_id
    selection = context.run.asset_selection
    if selection is None or key in selection:
        return None  # the run was to materialize it and did not: nothing of this run to check
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}, event.run_id


def build_unique_keys_check(entity: Entity) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=extract_asset_key(entity),
        name="keys_are_unique",
        description=f"Every extracted {entity.service} record has its key ({', '.join(entity.keys)}) and no key appears twice.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        found = materialization_to_check(context, extract_asset_key(entity))
        if found is None:
            return dg.AssetCheckResult(passed=False, metadata={"problem": "not extracted yet"})
        meta, run_id = found
        duplicates = str(meta.get("duplicate_keys") or "")
        missing = int(meta.get("records_without_key") or 0)
        return dg.AssetCheckResult(
            passed=not duplicates and not missing,
            metadata={"rows": int(meta.get("rows") or 0), "records_without_key": missing, "duplicate_keys": duplicates,
                      "run_id": run_id},
        )

    return _check


extract_assets = [build_extract_asset(e) for e in ENTITIES]
# A query (Items by Location) has no key in BC: duplicates there are legitimate rows, so no check.
extract_checks = [build_unique_keys_check(e) for e in ENTITIES if e.object_type == "Page"]

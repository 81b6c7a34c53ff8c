"""Extraction assets: one per published Business Central web service, generated from the catalog."""


from typing import Iterator, Optional

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
    # A multi_asset of one: its check runs inside the extraction step (no step of its own), and a run may still
    # leave the check out (can_subset).
    @dg.multi_asset(
        name=f"bc__{entity.name}",
        specs=[dg.AssetSpec(
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
        )],
        pool=BC_POOL,
        check_specs=unique_keys_check_specs(entity),
        can_subset=True,
    )
    def _extract(context: dg.AssetExecutionContext, config: ExtractConfig, subscription: SubscriptionResource) -> Iterator[dg.MaterializeResult]:
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
        yield dg.MaterializeResult(
            check_results=selected(context, [unique_keys_result(result)] if entity.object_type == "Page" else []),
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


def selected(context: dg.AssetExecutionContext, results: list[dg.AssetCheckResult]) -> list[dg.AssetCheckResult]:
    """The check results the run asked for (a run may leave an asset's checks out)."""
    keys = context.selected_asset_check_keys
    return [r for r in results if dg.AssetCheckKey(context.asset_key, r.check_name) in keys]


def unique_keys_check_specs(entity: Entity) -> list[dg.AssetCheckSpec]:
    # A query (Items by Location) has no key in BC: duplicates there are legitimate rows, so no check.
    if entity.object_type != "Page":
        return []
    return [dg.AssetCheckSpec(
        "keys_are_unique", asset=extract_asset_key(entity),
        description=f"Every extracted {entity.service} record has its key ({', '.join(entity.keys)}) and no key "
        "appears twice (evaluated by the extraction step itself).")]


def unique_keys_result(result) -> dg.AssetCheckResult:
    duplicates = ", ".join(result.duplicate_keys)
    return dg.AssetCheckResult(
        check_name="keys_are_unique",
        passed=not duplicates and not result.records_without_key,
        metadata={"rows": result.rows, "records_without_key": result.records_without_key, "duplicate_keys": duplicates},
    )


extract_assets = [build_extract_asset(e) for e in ENTITIES]

"""iPaaS.com → Business Central: one asset per FROM-iPaaS mapping collection, run for requested ids."""

from typing import Optional

import dagster as dg
from pydantic import Field

from bc_pipeline.clients.transport import TrafficCounter
from bc_pipeline.defs.resources import BC_POOL, IpaasResource, SubscriptionResource
from bc_pipeline.defs.run_report import build_run_report
from bc_pipeline.mapping.collection import MappingCollection
from bc_pipeline.mapping.fields import tenant_fields_by_service
from bc_pipeline.mapping.registry import from_ipaas_collections
from bc_pipeline.service_fields import require_fields
from bc_pipeline.writing import BcWriter

GROUP = "from_ipaas"

FROM_COLLECTIONS: dict[str, MappingCollection] = from_ipaas_collections()


class WriteConfig(dg.Config):
    """Which iPaaS.com records to write; none given means every record of the model (a poll)."""

    ipaas_ids: list[str] = Field(default_factory=list, description="iPaaS.com ids (Internal IDs) to sync.")
    inbox_batch: Optional[str] = Field(None, description="The sync-request batch this run serves (set by the sensor).")
    retry_dead_letters: bool = Field(True, description="Also write every earlier failure of the collection again "
                                     "(False: only ipaas_ids, as `bc-pipeline dead-letters retry --id` asks).")


def write_key(collection: MappingCollection) -> dg.AssetKey:
    return dg.AssetKey(["bc_out", collection.slug])


def build_write_asset(collection: MappingCollection) -> dg.AssetsDefinition:
    @dg.asset(
        key=write_key(collection),
        group_name=GROUP,
        kinds={"businesscentral"},
        pool=BC_POOL,
        description=f"{collection.name}: {collection.description} iPaaS.com {collection.source} → Business Central "
        f"{collection.entity.service}, linked by external id in table '{collection.table}'.",
        metadata={"collection": collection.name, "source_model": collection.source, "service": collection.entity.service},
    )
    def _write(context: dg.AssetExecutionContext, config: WriteConfig, subscription: SubscriptionResource,
               ipaas: IpaasResource) -> dg.MaterializeResult:
        from bc_pipeline.sync_requests import finish_batch

        bc_counter, ipaas_counter = TrafficCounter(), TrafficCounter()
        bc = subscription.business_central(bc_counter)
        client = ipaas.client(subscription, ipaas_counter)
        engine = subscription.state_engine()
        try:
            require_fields(bc, tenant_fields_by_service([collection]))
            writer = BcWriter(bc, client, engine, collection)
            ids = list(config.ipaas_ids) or writer.poll_ids()
            report = writer.sync(ids, retry_dead_letters=config.retry_dead_letters, progress_log=context.log.info)
        finally:
            bc.close()
            client.close()
        if config.inbox_batch:
            finish_batch(engine, config.inbox_batch, {o.ipaas_id: o.error for o in report.outcomes if o.kind == "failed"})
        failed = [o for o in report.outcomes if o.kind == "failed"]
        context.log.info(
            f"{collection.name}: {report.count('created')} created, {report.count('updated')} updated, "
            f"{report.count('unchanged')} unchanged, {report.count('echo')} echoes of the sync to iPaaS.com not written "
            f"back, {report.count('skipped')} skipped, {len(failed)} failed"
        )
        for outcome in failed[:20]:
            context.log.warning(f"iPaaS id {outcome.ipaas_id}: {outcome.error}")
        return dg.MaterializeResult(
            metadata={
                "requested": dg.MetadataValue.int(len(ids)),
                "created": dg.MetadataValue.int(report.count("created")),
                "updated": dg.MetadataValue.int(report.count("updated")),
                "unchanged": dg.MetadataValue.int(report.count("unchanged")),
                # Records whose iPaaS.com content is what the sync to iPaaS.com wrote from BC: not written back.
                "echoes": dg.MetadataValue.int(report.count("echo")),
                "skipped": dg.MetadataValue.int(report.count("skipped")),
                "failed": dg.MetadataValue.int(len(failed)),
                "bc_requests": dg.MetadataValue.int(report.bc_requests),
                "ipaas_requests": dg.MetadataValue.int(report.ipaas_requests),
                "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
                "results": dg.MetadataValue.json(
                    [{"ipaas_id": o.ipaas_id, "result": o.kind, "bc_key": o.bc_key, "error": o.error}
                     for o in report.outcomes[:200]]
                ),
            }
        )

    return _write


write_assets = [build_write_asset(c) for c in FROM_COLLECTIONS.values()]
from_ipaas_report = build_run_report("bc_out", GROUP, [write_key(c) for c in FROM_COLLECTIONS.values()], "iPaaS.com → BC")

sync_from_ipaas = dg.define_asset_job(
    name="sync_from_ipaas",
    selection=dg.AssetSelection.groups(GROUP),
    description="iPaaS.com → Business Central for the requested iPaaS ids (or, with none, every record: a poll).",
)

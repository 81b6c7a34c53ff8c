"""Business Central → iPaaS.com: a transform and a load asset per mapping collection, plus checks."""

from typing import Iterator, Optional

import dagster as dg

from bc_pipeline.catalog import BY_NAME
from bc_pipeline.clients.transport import TrafficCounter
from bc_pipeline.defs.extract import extract_asset_key, selected
from bc_pipeline.defs.lineage import run_lineage
from bc_pipeline.defs.resources import BC_POOL, IpaasResource, SubscriptionResource
from bc_pipeline.defs.run_report import build_run_report
from bc_pipeline.missing_references import load_collection
from bc_pipeline.mapping.collection import MappingCollection
from bc_pipeline.mapping.registry import parents_of, to_ipaas_collections
from bc_pipeline.state import watermarks
from bc_pipeline.transform import MissingExtract, payloads_of, transform

GROUP = "to_ipaas"

COLLECTIONS: dict[str, MappingCollection] = to_ipaas_collections()


def transform_key(collection: MappingCollection) -> dg.AssetKey:
    return dg.AssetKey(["mapped", collection.slug])


def load_key(collection: MappingCollection) -> dg.AssetKey:
    return dg.AssetKey(["ipaas", collection.slug])


def missing_in_run(context: dg.AssetExecutionContext, needed: list[dg.AssetKey], missing: MissingExtract,
                   what: str) -> Exception:
    """The error for a step whose run has no data of its own: says to run the step that makes it in the same run."""
    selection = context.run.asset_selection
    left_out = [key.to_user_string() for key in needed if selection is not None and key not in selection]
    if not left_out:
        return missing
    return dg.Failure(
        description=f"{what}, and this run does not materialize {', '.join(left_out)}: run "
        f"{'it' if len(left_out) == 1 else 'them'} in the same run (select {', '.join(left_out)} too, or run the job "
        f"sync_to_ipaas); another run's data is never used. {missing}",
        allow_retries=False,
    )


class TransformConfig(dg.Config):
    dead_letters: Optional[list[str]] = None  # only these dead letters are mapped again (default: every one)


def build_transform_asset(collection: MappingCollection) -> dg.AssetsDefinition:
    deps = [extract_asset_key(BY_NAME[s]) for s in collection.source_entities] + [load_key(p) for p in parents_of(collection)]

    @dg.asset(
        key=transform_key(collection),
        deps=deps,
        group_name=GROUP,
        kinds={"pandas"},
        pool=BC_POOL,
        description=f"{collection.name}: {collection.description} (mapping file {collection.source_file and collection.source_file.split('/')[-1]})",
        metadata={"collection": collection.name, "target_model": collection.target_model, "table": collection.table},
    )
    def _transform(context: dg.AssetExecutionContext, config: TransformConfig,
                   subscription: SubscriptionResource) -> dg.MaterializeResult:
        bc = subscription.business_central(TrafficCounter())
        try:
            result = transform(collection, subscription.staging(), subscription.state_engine(), context.run.run_id, bc,
                               lineage=run_lineage(context), dead_letters=config.dead_letters)
        except MissingExtract as missing:
            raise missing_in_run(context, [extract_asset_key(BY_NAME[s]) for s in collection.source_entities], missing,
                                 f"mapped/{collection.slug} maps only the extract of its own run") from missing
        finally:
            bc.close()
        context.log.info(f"{collection.name}: {result.mapped} payloads from {result.source_rows} rows "
                         f"({result.unmapped} not mappable yet) in {result.seconds:.2f}s")
        return dg.MaterializeResult(
            metadata={
                "source_rows": dg.MetadataValue.int(result.source_rows),
                "payloads": dg.MetadataValue.int(result.mapped + result.unmapped),
                "unmapped": dg.MetadataValue.int(result.unmapped),
                "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
                "sample_payload": dg.MetadataValue.json(result.sample or {}),
                "staged_at": dg.MetadataValue.path(result.location),
            }
        )

    return _transform


class LoadConfig(dg.Config):
    inbox_batch: Optional[str] = None  # the sync-request batch this run serves (set by the sensor)


def build_load_asset(collection: MappingCollection) -> dg.AssetsDefinition:
    # A multi_asset of one: its check runs inside the load step (no step of its own); a run may leave it out.
    @dg.multi_asset(
        name=f"ipaas__{collection.slug}",
        specs=[dg.AssetSpec(
            key=load_key(collection),
            deps=[transform_key(collection)],
            group_name=GROUP,
            kinds={"ipaas"},
            description=f"{collection.name}: records written to iPaaS.com as {collection.target_model}, "
            f"linked by external id in table '{collection.table}'.",
            metadata={"collection": collection.name, "target_model": collection.target_model,
                      "table": collection.table},
        )],
        check_specs=[dg.AssetCheckSpec(
            "every_record_delivered", asset=load_key(collection),
            description="No record failed, and created + updated + linked + unchanged + echoes + failed add up to "
            "the records mapped (evaluated by the load step itself).")],
        can_subset=True,
    )
    def _load(context: dg.AssetExecutionContext, config: LoadConfig, subscription: SubscriptionResource,
              ipaas: IpaasResource) -> Iterator[dg.MaterializeResult]:
        counter = TrafficCounter()
        staging = subscription.staging()
        lineage = run_lineage(context)
        try:  # before any request: nothing of this run's → nothing sent, no watermark moved
            staged, records = payloads_of(staging, collection, context.run.run_id, lineage)
        except MissingExtract as missing:
            raise missing_in_run(context, [transform_key(collection)], missing,
                                 f"ipaas/{collection.slug} loads only the payloads of its own run") from missing
        client = ipaas.client(subscription, counter)
        engine = subscription.state_engine()
        try:
            report = load_collection(client, engine, collection, records, run_id=context.run.run_id,
                                     bc_factory=lambda: subscription.business_central(counter),
                                     progress_log=context.log.info)
        finally:
            client.close()
        # A watermark moves only with the data it describes: this run's extract (or the one of the run it
        # re-executes), mapped in this lineage, just delivered; commit_for_consumer also checks that it is still
        # the extract the watermark was proposed by.
        mapped_from = staged.manifest().get("extracts") or {}
        for entity in collection.source_entities:
            if mapped_from.get(entity) in lineage:
                watermarks.commit_for_consumer(engine, entity, collection.slug, mapped_from[entity])
        if config.inbox_batch:
            from bc_pipeline.sync_requests import finish_to_ipaas_batch

            extract = staging.extract(collection.source, context.run.run_id)
            read = {collection.entity.external_id(r) for r in extract.records()} if extract.complete else set()
            finish_to_ipaas_batch(engine, config.inbox_batch, records, report, read=read)
        context.log.info(
            f"{collection.name}: {report.created} created, {report.updated} updated, {report.linked} linked, "
            f"{report.unchanged} unchanged, {report.echoes} echoes of the sync from iPaaS.com not sent back, "
            f"{report.failed} failed; {report.requests} requests in {report.seconds:.1f}s"
        )
        yield dg.MaterializeResult(
            check_results=selected(context, [delivered_result(report, len(records))]),
            metadata={
                "records": dg.MetadataValue.int(len(records)),
                "created": dg.MetadataValue.int(report.created),
                "updated": dg.MetadataValue.int(report.updated),
                "linked": dg.MetadataValue.int(report.linked),
                "unchanged": dg.MetadataValue.int(report.unchanged),
                # Records whose BC content is what the sync from iPaaS.com wrote: not sent back.
                "echoes": dg.MetadataValue.int(report.echoes),
                "failed": dg.MetadataValue.int(report.failed),
                "retried_dead_letters": dg.MetadataValue.int(report.retried_dead_letters),
                "requests": dg.MetadataValue.int(report.requests),
                **{f"requests_{kind}": dg.MetadataValue.int(report.requests_by_kind.get(kind, 0))
                   for kind in ("lookups", "creates", "updates", "links")},
                "throttled_429": dg.MetadataValue.int(counter.throttled),
                "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
                "failed_keys": dg.MetadataValue.text(", ".join(report.failed_keys)),
                "slowest_keys": dg.MetadataValue.text(", ".join(f"{k} ({s:.2f}s)" for s, k in report.slowest)),
            }
        )

    return _load


def delivered_result(report, records: int) -> dg.AssetCheckResult:
    counted = report.created + report.updated + report.linked + report.unchanged + report.echoes + report.failed
    return dg.AssetCheckResult(
        check_name="every_record_delivered",
        passed=report.failed == 0 and counted == records,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failed": report.failed, "counted": counted, "expected": records,
                  "failed_keys": ", ".join(report.failed_keys),
                  "what_to_do": "see the dead letters (bc-pipeline dead-letters) for each failed record's error"},
    )


transform_assets = [build_transform_asset(c) for c in COLLECTIONS.values()]
load_assets = [build_load_asset(c) for c in COLLECTIONS.values()]
to_ipaas_report = build_run_report("ipaas", GROUP, [load_key(c) for c in COLLECTIONS.values()], "BC → iPaaS.com")

"""Backfills: re-sync the records changed in a date range, from the Dagster UI's backfill dialog, in one run."""

import datetime as dt
import warnings

import dagster as dg
from pydantic import Field

from bc_pipeline.catalog import BY_NAME, ENTITIES, Entity
from bc_pipeline.clients import odata
from bc_pipeline.clients.transport import TrafficCounter
from bc_pipeline.defs.extract import entity_as_read
from bc_pipeline.defs.resources import BC_POOL, IpaasResource, SubscriptionResource
from bc_pipeline.extraction import extract
from bc_pipeline.loading import Loader
from bc_pipeline.mapping.registry import to_ipaas_collections
from bc_pipeline.state import echoes as expected_echoes
from bc_pipeline.state import records as state
from bc_pipeline.transform import read_payloads, transform

GROUP = "backfills"
CHANGE_DATES = dg.DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1)


class ResyncConfig(dg.Config):
    resend_unchanged: bool = Field(
        False, description="Send every record of the range again, even those whose payload did not change."
    )


def date_range_filter(entity: Entity, window: dg.TimeWindow) -> str:
    """One query for the whole range: `Last_Date_Modified ge <first day> and Last_Date_Modified lt <day after>`."""
    start, end = window.start.date(), window.end.date()
    lower = odata.compare(entity.modified_at, "ge", start)
    upper = odata.compare(entity.modified_at, "lt", end)
    if start <= CHANGE_DATES.start.date():
        return upper  # the first partition also holds everything changed before it
    return f"{lower} and {upper}"


def build_resync_asset(entity: Entity) -> dg.AssetsDefinition:
    # Those that only update (relationships) after those that create.
    collections = sorted((c for c in to_ipaas_collections().values() if c.source == entity.name),
                         key=lambda c: c.update_only)
    children = [BY_NAME[s] for s in dict.fromkeys(s for c in collections for s in c.source_entities) if s != entity.name]

    @dg.asset(
        key=dg.AssetKey(["resync", entity.name]),
        group_name=GROUP,
        partitions_def=CHANGE_DATES,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=BC_POOL,
        kinds={"businesscentral", "ipaas"},
        description=f"Re-sync the {entity.service} records whose {entity.modified_at} falls in the selected days: "
        f"one filtered read, then {', '.join(c.name for c in collections)}. Select a range in the backfill dialog.",
    )
    def _resync(context: dg.AssetExecutionContext, config: ResyncConfig, subscription: SubscriptionResource,
                ipaas: IpaasResource) -> dg.MaterializeResult:
        window = context.partition_time_window
        query = date_range_filter(entity, window)
        engine, staging = subscription.state_engine(), subscription.staging()
        bc = subscription.business_central(TrafficCounter())
        try:
            result, _ = extract(bc, entity_as_read(bc, entity), staging, engine, context.run.run_id,
                                extra_filter=query, partial=True)
            for child in children:  # ship-to addresses, contacts: read whole (they travel inside their parents)
                extract(bc, entity_as_read(bc, child), staging, engine, context.run.run_id, partial=True)
        finally:
            bc.close()
        counts: dict[str, int] = {"rows": result.rows, "bc_requests": result.requests}
        client = ipaas.client(subscription)
        try:
            for collection in collections:
                transform(collection, staging, engine, context.run.run_id)
                records = read_payloads(staging, collection, context.run.run_id)
                if config.resend_unchanged:
                    state.forget_hashes(engine, collection.slug, [r.external_id for r in records])
                    expected_echoes.forget(engine, collection.slug, [r.external_id for r in records])
                report = Loader(client, engine, collection).load(
                    records, run_id=context.run.run_id, progress_log=context.log.info)
                for kind in ("created", "updated", "linked", "unchanged", "echoes", "failed"):
                    counts[f"{collection.slug}.{kind}"] = getattr(report, kind)
        finally:
            client.close()
        context.log.info(f"{entity.service} changed {window.start.date()} – {window.end.date() - dt.timedelta(days=1)}: "
                         f"{result.rows} rows with one filtered query ({query})")
        return dg.MaterializeResult(
            metadata={**{k: dg.MetadataValue.int(v) for k, v in counts.items()},
                      "filter": dg.MetadataValue.text(query),
                      "days": dg.MetadataValue.int((window.end - window.start).days)}
        )

    return _resync


with warnings.catch_warnings():
    # BackfillPolicy is beta in Dagster 1.13; it is what makes a range one run.
    warnings.simplefilter("ignore", dg.BetaWarning)
    resync_assets = [build_resync_asset(e) for e in ENTITIES if e.modified_at]

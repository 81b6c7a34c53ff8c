"""The `preview` job: per mapping collection, what a run would write, compared with what is there now; reads only."""

from typing import Any, Iterator, Optional, Sequence

import dagster as dg
from pydantic import Field

from bc_pipeline.catalog import entity as find_entity
from bc_pipeline.clients.transport import TrafficCounter
from bc_pipeline.defs.from_ipaas import FROM_COLLECTIONS
from bc_pipeline.defs.resources import BC_POOL, IpaasResource, SubscriptionResource
from bc_pipeline.defs.run_report import _this_runs_deliveries
from bc_pipeline.defs.to_ipaas import COLLECTIONS
from bc_pipeline.mapping.collection import MappingCollection
from bc_pipeline.preview import (COLUMNS, KINDS, CollectionPreview, ToIpaasPreview, preview_from_ipaas,
                                 render_markdown, render_terminal, table)

GROUP = "preview"
JOB = "preview"
SUMMARY_KEY = dg.AssetKey([GROUP, "summary"])


class PreviewConfig(dg.Config):
    """What to preview; the preview itself never writes."""

    full_refresh: bool = Field(False, description="To iPaaS.com: read every BC record, not only the changes since "
                               "the last delivered run (as `bc-pipeline run --full-refresh`).")
    ipaas_ids: dict[str, list[str]] = Field(default_factory=dict, description="To Business Central: per collection "
                                            "(e.g. company_from_ipaas), only these iPaaS.com ids; a collection not "
                                            "named: every record of its model, as a poll of sync_from_ipaas would.")


def preview_key(collection: MappingCollection) -> dg.AssetKey:
    return dg.AssetKey([GROUP, collection.slug])


def _metadata(p: CollectionPreview) -> dict[str, Any]:
    return {
        **{k: dg.MetadataValue.int(p.counts[k]) for k in (*KINDS, "filtered_out")},
        "requests": dg.MetadataValue.int(p.requests),
        "seconds": dg.MetadataValue.float(p.seconds),
        "details": dg.MetadataValue.md(render_markdown(p)),
        "preview": dg.MetadataValue.json(p.to_json()),
    }


def _spec(c: MappingCollection, what: str) -> dg.AssetSpec:
    return dg.AssetSpec(preview_key(c), group_name=GROUP, kinds={"ipaas" if what == "iPaaS.com" else "businesscentral"},
                        description=f"{c.name}: what a run would create, update, leave unchanged or refuse in {what}, "
                        "field by field (old -> new); reads only, writes nothing.",
                        metadata={"collection": c.name})


@dg.multi_asset(name="preview_to_ipaas", specs=[_spec(c, "iPaaS.com") for c in COLLECTIONS.values()],
                can_subset=True, pool=BC_POOL)
def preview_to_ipaas(context: dg.AssetExecutionContext, config: PreviewConfig, subscription: SubscriptionResource,
                     ipaas: IpaasResource) -> Iterator[dg.MaterializeResult]:
    chosen = [c for c in COLLECTIONS.values() if preview_key(c) in context.selected_asset_keys]
    bc, client = subscription.business_central(TrafficCounter()), ipaas.client(subscription, TrafficCounter())
    try:
        for p in ToIpaasPreview(bc, client, subscription.state_engine(), full_refresh=config.full_refresh).run(chosen):
            context.log.info(p.headline())
            yield dg.MaterializeResult(asset_key=dg.AssetKey([GROUP, p.slug]), metadata=_metadata(p))
    finally:
        bc.close()
        client.close()


@dg.multi_asset(name="preview_from_ipaas", specs=[_spec(c, "Business Central") for c in FROM_COLLECTIONS.values()],
                can_subset=True, pool=BC_POOL)
def preview_from_ipaas_asset(context: dg.AssetExecutionContext, config: PreviewConfig,
                             subscription: SubscriptionResource, ipaas: IpaasResource) -> Iterator[dg.MaterializeResult]:
    bc, client = subscription.business_central(TrafficCounter()), ipaas.client(subscription, TrafficCounter())
    try:
        for c in FROM_COLLECTIONS.values():
            if preview_key(c) in context.selected_asset_keys:
                p = preview_from_ipaas(c, bc, client, subscription.state_engine(), config.ipaas_ids.get(c.slug))
                context.log.info(p.headline())
                yield dg.MaterializeResult(asset_key=preview_key(c), metadata=_metadata(p))
    finally:
        bc.close()
        client.close()


PREVIEW_KEYS = [preview_key(c) for c in [*COLLECTIONS.values(), *FROM_COLLECTIONS.values()]]


@dg.asset(key=SUMMARY_KEY, deps=PREVIEW_KEYS, group_name=GROUP,
          description="The preview's table: per collection, how many records a run would create, update, leave "
          "unchanged or refuse.")
def preview_summary(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    previews = previews_in(_this_runs_deliveries(context, PREVIEW_KEYS).values())
    return dg.MaterializeResult(metadata={
        "collections": dg.MetadataValue.md(table(previews) if previews else "Nothing previewed."),
        **{k: dg.MetadataValue.int(sum(p.counts[k] for p in previews)) for k in (*KINDS, "filtered_out")},
    })


def previews_in(metadata: Any) -> list[CollectionPreview]:
    """The previews carried by materializations' metadata (each a dict of metadata values)."""
    return [CollectionPreview.from_json(meta["preview"]) for meta in metadata if isinstance(meta.get("preview"), dict)]


preview_job = dg.define_asset_job(
    name=JOB,
    selection=dg.AssetSelection.groups(GROUP),
    description="A preview before writing: reads and maps as the syncs do (both ways), compares each payload with the "
    "record there now and shows what would be created, updated (old -> new), left unchanged or refused. Writes "
    "nothing: no record, link, hash, watermark or dead letter.",
)
preview_assets = [preview_to_ipaas, preview_from_ipaas_asset, preview_summary]


def selection(select: Optional[Sequence[str]]) -> list[dg.AssetKey]:
    """What `bc-pipeline run --dry-run` previews: the collections `bc-pipeline run` would load, and the table."""
    from bc_pipeline.runner import selected_entities

    entities = selected_entities(select) if select else None
    return [preview_key(c) for c in COLLECTIONS.values()
            if entities is None or set(c.source_entities) <= entities] + [SUMMARY_KEY]


def run_preview(select: Optional[Sequence[str]] = None, *, full_refresh: bool = False,
                instance: Optional[dg.DagsterInstance] = None) -> tuple[int, str, list[CollectionPreview]]:
    """`bc-pipeline run --dry-run`: the preview job run in this process and recorded like any run; prints the
    preview; (exit code, run id, previews)."""
    from bc_pipeline.definitions import defs

    result = defs.resolve_job_def(JOB).execute_in_process(
        instance=instance or dg.DagsterInstance.get(),
        asset_selection=selection(select),
        run_config={"ops": {"preview_to_ipaas": {"config": {"full_refresh": full_refresh}}},
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    found = [{k: v.value for k, v in e.event_specific_data.materialization.metadata.items()}
             for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    previews = previews_in(found)
    print(render_terminal(previews))
    if not result.success:
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        messages = [getattr(e.event_specific_data, "error", None) for e in failures]
        print(f"Preview run {result.run_id} failed: "
              + "; ".join(m.message.strip().splitlines()[0] for m in messages if m is not None), flush=True)
        return 1, result.run_id, previews
    return 0, result.run_id, previews


__all__ = ["COLUMNS", "preview_assets", "preview_job", "run_preview", "selection"]

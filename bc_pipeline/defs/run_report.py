"""The run's report: a table of every collection the run delivered, and a failed run when any record failed."""

from typing import Sequence

import dagster as dg
from tabulate import tabulate

COLUMNS = ("created", "updated", "linked", "unchanged", "echoes", "skipped", "failed", "requests", "seconds")


def report_key(prefix: str) -> dg.AssetKey:
    return dg.AssetKey([prefix, "run_report"])


def _this_runs_deliveries(context: dg.AssetExecutionContext, keys: Sequence[dg.AssetKey]) -> dict[str, dict]:
    """The metadata of each collection this run materialized, by collection slug."""
    wanted = set(keys)
    records = context.instance.get_records_for_run(
        run_id=context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    found: dict[str, dict] = {}
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.asset_key in wanted:
            found[materialization.asset_key.path[-1]] = {k: v.value for k, v in materialization.metadata.items()}
    return found


def build_run_report(prefix: str, group: str, keys: Sequence[dg.AssetKey], what: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=report_key(prefix),
        deps=list(keys),
        group_name=group,
        description=f"The run's report on {what}: one row per collection it delivered. The run fails here when "
        "any record failed, after every collection had its turn; `bc-pipeline dead-letters` shows each one.",
    )
    def _report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        deliveries = _this_runs_deliveries(context, keys)
        rows = [(slug, *(meta.get(c, "") for c in COLUMNS)) for slug, meta in sorted(deliveries.items())]
        table = tabulate(rows, headers=["collection", *COLUMNS], tablefmt="github") if rows else "Nothing delivered."
        failed = {slug: int(meta.get("failed", 0)) for slug, meta in deliveries.items() if int(meta.get("failed", 0))}
        if failed:
            total = sum(failed.values())
            where = ", ".join(f"{slug} ({n})" for slug, n in sorted(failed.items()))
            raise dg.Failure(
                description=f"{total} record(s) failed in {where}: see each one with `bc-pipeline dead-letters`; "
                "they are sent again on the next run.",
                metadata={"collections": dg.MetadataValue.md(table), "failed": dg.MetadataValue.int(total)},
                allow_retries=False,
            )
        return dg.MaterializeResult(metadata={"collections": dg.MetadataValue.md(table),
                                              "delivered_collections": dg.MetadataValue.int(len(rows))})

    return _report

"""The runs whose staged data a step may read: its own, then, for a re-execution, the runs it re-executes."""

import dagster as dg

MAX_ANCESTORS = 100  # a re-execution chain longer than this is not one a user made by hand


def run_lineage(context: dg.AssetExecutionContext) -> list[str]:
    """This run's id, then its parent's, up to the root: Dagster re-executes a failed load in a new run whose
    upstream steps did not run again, so their staged data is the parent run's (never any other run's)."""
    run = context.run
    lineage = [run.run_id]
    while run.parent_run_id and len(lineage) <= MAX_ANCESTORS:
        parent = context.instance.get_run_by_id(run.parent_run_id)
        if parent is None:
            break
        lineage.append(parent.run_id)
        run = parent
    return lineage

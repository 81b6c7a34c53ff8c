"""Sync requests (webhooks, manual sync) turned into runs: the bridge between the inbox and Dagster."""

from __future__ import annotations

from typing import Mapping, Optional

from sqlalchemy import Engine


def finish_batch(engine: Engine, batch_key: str, failures: Mapping[str, Optional[str]]) -> None:
    """Mark the batch's requests done, or failed with the record's error."""
    from bc_pipeline.state import inbox

    rows = inbox.status(engine, batch_key=batch_key)
    done = [r.id for r in rows if (r.external_id or r.ipaas_id) not in failures]
    if done:
        inbox.finish(engine, done, "done")
    for row in rows:
        key = row.external_id or row.ipaas_id
        if key in failures:
            inbox.finish(engine, [row.id], "failed", error=failures[key])

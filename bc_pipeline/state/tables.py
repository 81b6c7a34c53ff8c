"""The tables of the state database."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

metadata = MetaData()

# Per entity: how far incremental reads have safely got. `committed` moves only once what was
# read has been delivered; `pending` is the newest change date the last extraction saw.
watermarks = Table(
    "bc_pipeline_watermarks",
    metadata,
    Column("entity", String(100), primary_key=True),
    Column("field", String(128), nullable=False),
    Column("committed", String(40)),
    Column("pending", String(40)),
    Column("pending_run_id", String(64)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# What each extraction produced, so later steps (and people) find the staged files of a run.
extractions = Table(
    "bc_pipeline_extractions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entity", String(100), nullable=False, index=True),
    Column("run_id", String(64), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("filter", Text),
    Column("rows", Integer, nullable=False),
    Column("location", Text, nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
)

"""The tables of the state database."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text

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

# The external id ↔ iPaaS id link is iPaaS.com's; this is the pipeline's cache of it.
ipaas_external_id_links = Table(
    "ipaas_external_id_links",
    metadata,
    Column("table_name", String(64), primary_key=True),
    Column("external_id", String(255), primary_key=True),
    Column("internal_id", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The hash of the last payload each collection delivered for a record: unchanged payloads are not sent.
payload_hashes = Table(
    "ipaas_payload_hashes",
    metadata,
    Column("collection", String(100), primary_key=True),
    Column("external_id", String(255), primary_key=True),
    Column("payload_hash", String(64), nullable=False),
    Column("internal_id", String(64), nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
)

# What one direction just wrote, as the other direction will read it back: a record read there with exactly this
# fingerprint is that write coming back (an echo), not a change, and is not written back. `collection` is the
# collection that reads it back, `record_id` the record's id there, `counterpart_id` its id where it was written from.
echoes = Table(
    "bc_pipeline_echoes",
    metadata,
    Column("collection", String(100), primary_key=True),
    Column("record_id", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("counterpart_id", String(255), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
)

# Records a service refused: kept with their payload and the service's error until they land.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("collection", String(100), primary_key=True),
    Column("external_id", String(255), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("parent_id", String(64)),
    Column("error", Text, nullable=False),
    Column("status", Integer),
    Column("code", String(100)),
    Column("correlation_id", String(100)),
    Column("attempts", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

# Who is writing a mapping collection right now: two runs that load the same collection never overlap.
# A lease expires unless its holder renews it, so a run killed with -9 blocks others only briefly.
leases = Table(
    "bc_pipeline_leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# The throttle shared by every machine when the state database is PostgreSQL (clients/shared_throttle.py),
# keyed by the throttle key (service + a hash of the credentials, never a secret). Requests sent in the
# current rate window, per key and limit (`window_key`): rows older than the window are deleted as it slides.
throttle_sends = Table(
    "bc_pipeline_throttle_sends",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("window_key", String(200), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Index("ix_bc_pipeline_throttle_sends_window", "window_key", "sent_at"),
)

# Concurrency slots 0..N-1 per key: a holder renews `expires_at` while it holds one, so a slot of a process
# killed with -9 (or of a lost machine) is free again once it expires.
throttle_slots = Table(
    "bc_pipeline_throttle_slots",
    metadata,
    Column("throttle_key", String(100), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("holder", String(200)),
    Column("expires_at", DateTime(timezone=True)),
)

# A Retry-After or 429/503 seen by one process: every process sharing the key waits until `paused_until`
# (at most MAX_RETRY_AFTER_SECONDS after `written_at`).
throttle_pauses = Table(
    "bc_pipeline_throttle_pauses",
    metadata,
    Column("throttle_key", String(100), primary_key=True),
    Column("paused_until", DateTime(timezone=True), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
)

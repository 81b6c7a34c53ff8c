"""The mapping collections the project ships, loaded once, and who reads which entity."""

from __future__ import annotations

from functools import lru_cache

from bc_pipeline.mapping.collection import Direction, MappingCollection, load_collections, user_collections_dir


@lru_cache(maxsize=1)
def all_collections() -> dict[str, MappingCollection]:
    """Every collection by name (shipped, and the user's BC_PIPELINE_COLLECTIONS_DIR), read once per process
    (the sensor asks every second)."""
    return load_collections(overrides=user_collections_dir())


def to_ipaas_collections() -> dict[str, MappingCollection]:
    """TO_IPAAS collections by slug (asset name)."""
    return {c.slug: c for c in all_collections().values() if c.direction is Direction.TO_IPAAS}


def from_ipaas_collections() -> dict[str, MappingCollection]:
    """FROM_IPAAS collections by slug (asset name)."""
    return {c.slug: c for c in all_collections().values() if c.direction is Direction.FROM_IPAAS}


def consumers_of(entity: str) -> list[str]:
    """The collections that read an entity (as source or as children): each keeps its own watermark."""
    return [
        c.slug
        for c in to_ipaas_collections().values()
        if entity in c.source_entities
    ]


def parents_of(collection: MappingCollection) -> list[MappingCollection]:
    """Collections whose links this one refers to: they load first (categories before customers, …)."""
    tables = collection.referenced_tables()
    return [
        c
        for c in to_ipaas_collections().values()
        if (c.table in tables or c.name in collection.after) and c.slug != collection.slug
    ]

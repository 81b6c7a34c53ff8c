"""The mapping collections the project ships, loaded once, and who reads which entity."""

from __future__ import annotations

from functools import lru_cache

from bc_pipeline.mapping.collection import Direction, MappingCollection, load_collections


@lru_cache(maxsize=1)
def to_ipaas_collections() -> dict[str, MappingCollection]:
    """TO_IPAAS collections by slug (asset name)."""
    return {c.slug: c for c in load_collections().values() if c.direction is Direction.TO_IPAAS}


def consumers_of(entity: str) -> list[str]:
    """The collections that read an entity (as source or as children): each keeps its own watermark."""
    return [
        c.slug
        for c in to_ipaas_collections().values()
        if c.source == entity or any(child.source == entity for child in c.children)
    ]


def parents_of(collection: MappingCollection) -> list[MappingCollection]:
    """Collections whose links this one refers to: they load first (categories before customers, …)."""
    tables = collection.referenced_tables()
    return [
        c
        for c in to_ipaas_collections().values()
        if (c.table in tables or c.name in collection.after) and c.slug != collection.slug
    ]

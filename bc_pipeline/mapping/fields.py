"""The Business Central fields each entity is read with: the catalog's, plus every field a collection names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterable, Optional

from bc_pipeline.catalog import BY_NAME, Entity
from bc_pipeline.mapping.collection import PLACEHOLDER, Direction, MappingCollection


def _file(collection: MappingCollection) -> str:
    return Path(collection.source_file).name if collection.source_file else collection.name


def named_fields(collection: MappingCollection) -> dict[str, set[str]]:
    """BC fields the collection names, per catalog entity: what it reads (TO iPaaS) or writes (FROM iPaaS)."""
    named: dict[str, set[str]] = {}

    def add(entity: str, names: Iterable[str]) -> None:
        named.setdefault(entity, set()).update(n for n in names if n)

    if collection.direction is Direction.TO_IPAAS:
        rules = [*collection.fields.values(), *collection.custom_fields]
        add(collection.source, (f for r in rules for f in r.source_fields()))
        add(collection.source, (r.field for r in collection.filter))
        add(collection.source, PLACEHOLDER.findall(collection.external_id))
        if collection.aggregate:
            add(collection.source, [*collection.aggregate.by, *collection.aggregate.sum])
        for child in collection.children:
            rules = [*child.fields.values(), *child.custom_fields]
            add(child.source, (f for r in rules for f in r.source_fields()))
            add(child.source, (r.field for r in child.filter))
            add(child.source, PLACEHOLDER.findall(child.external_id))
    else:
        add(collection.target_model, [*collection.fields, *collection.add_only_fields])
        add(collection.target_model, PLACEHOLDER.findall(collection.external_id))
        if collection.match_on:
            add(collection.target_model, [collection.match_on])
        for child in collection.children:
            add(child.model, child.fields)
    return {entity: fields for entity, fields in named.items() if entity in BY_NAME}


def tenant_fields(entity: Entity, collections: Iterable[MappingCollection]) -> dict[str, list[str]]:
    """Fields collections name that the catalog does not know (tenant extension fields), each with the files.
    Every column of a query counts: the query is the tenant's own, the catalog's names only its defaults."""
    known = set(entity.select) if entity.object_type != "Query" else set()
    found: dict[str, list[str]] = {}
    for collection in collections:
        for name in sorted(named_fields(collection).get(entity.name, ())):
            if name not in known:
                found.setdefault(name, []).append(_file(collection))
    return found


def with_collection_fields(entity: Entity, collections: Optional[Iterable[MappingCollection]] = None,
                           direction: Optional[Direction] = Direction.TO_IPAAS) -> Entity:
    """The entity read with every field the collections of `direction` name ($select = catalog ∪ collections)."""
    if collections is None:
        from bc_pipeline.mapping.registry import all_collections

        collections = all_collections().values()
    chosen = [c for c in collections if direction is None or c.direction is direction]
    if entity.object_type == "Query":
        # A query's columns are the tenant's own (Items by Location is no standard object, and a tenant's copy
        # may name them differently): read exactly the columns the collections name, none the catalog assumes.
        named = set().union(*(named_fields(c).get(entity.name, set()) for c in chosen))
        if named:
            return replace(entity, keys=tuple(k for k in entity.keys if k in named), custom_fields=(),
                           fields=tuple(sorted(named - set(entity.keys))))
    extra = tuple(tenant_fields(entity, chosen))
    return replace(entity, custom_fields=entity.custom_fields + extra) if extra else entity


def tenant_fields_by_service(collections: Iterable[MappingCollection],
                             entities: Optional[Iterable[str]] = None) -> dict[str, dict[str, list[str]]]:
    """Service → its tenant fields the collections name (→ the files naming them), for the $metadata check."""
    collections = list(collections)
    names = set(entities) if entities is not None else {e for c in collections for e in named_fields(c)}
    return {BY_NAME[e].service: found for e in sorted(names) if (found := tenant_fields(BY_NAME[e], collections))}


def fields_by_service(collections: Iterable[MappingCollection]) -> dict[str, dict[str, list[str]]]:
    """Service → every BC field the collections name, catalog's or not (→ the files naming it), for `doctor`."""
    found: dict[str, dict[str, list[str]]] = {}
    for collection in collections:
        for entity, names in named_fields(collection).items():
            fields = found.setdefault(BY_NAME[entity].service, {})
            for name in sorted(names):
                fields.setdefault(name, []).append(_file(collection))
    return found

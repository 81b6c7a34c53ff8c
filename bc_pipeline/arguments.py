"""Names given on the command line (entities, mapping collections), checked before a command starts anything."""

from __future__ import annotations

import argparse
from typing import Iterable, Optional

from bc_pipeline.catalog import BY_NAME, BY_SERVICE, ENTITIES
from bc_pipeline.mapping.collection import MappingCollection


class UnknownName(ValueError):
    """A name the command does not know; the message names the valid choices (one line)."""


def entity_names(names: Iterable[str]) -> list[str]:
    """The catalog names of entities given by asset name (`customers`) or BC service name (`CustomerCard`)."""
    found = []
    for name in names:
        entity = BY_NAME.get(name) or BY_SERVICE.get(name)
        if entity is None:
            raise UnknownName(f"unknown entity {name!r}; choose from: {', '.join(e.name for e in ENTITIES)}")
        found.append(entity.name)
    return found


def collection(name: str) -> MappingCollection:
    """A mapping collection by its asset name (`product_to_ipaas`) or its name, in any case."""
    from bc_pipeline.mapping.registry import all_collections
    from bc_pipeline.webhooks.notifications import known_collections

    collections = all_collections()
    resolved = known_collections().resolve(name)
    if resolved is None or resolved not in collections:
        slugs = sorted(c.slug for c in collections.values())
        raise UnknownName(f"unknown mapping collection {name!r}; choose from: {', '.join(slugs)}")
    return collections[resolved]


def check(args: argparse.Namespace) -> None:
    """Every name the parsed command carries; raises UnknownName for the first unknown one."""
    select: Optional[list[str]] = getattr(args, "select", None)
    if select:
        entity_names(select)
    name: Optional[str] = getattr(args, "collection", None)
    if name and args.command != "sync":  # sync names its own choices (the collections' full names)
        collection(name)

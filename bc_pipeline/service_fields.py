"""The fields each published Business Central service has, read from its OData `$metadata`, against what collections name."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from bc_pipeline.clients.errors import PipelineError

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


FIX = ("publish the page extension that adds each field to its service, or correct or remove the field in the "
       "collection file named (`bc-pipeline doctor` lists them all)")


class MissingFieldsError(PipelineError):
    """Collections name fields the published service does not have (a typo, or a page extension not installed)."""


def parse_metadata(document: str) -> dict[str, set[str]]:
    """Entity set (the published service name) → its property names. The document is untrusted: no DTD allowed."""
    if "<!DOCTYPE" in document[:4096].upper():
        raise PipelineError("Business Central's $metadata carries a DTD, which is refused. What to do: check that "
                            "BC_API_URL points at Business Central")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise PipelineError(f"Business Central's $metadata is not valid XML ({exc}). What to do: check that "
                            "BC_API_URL points at Business Central's OData V4 endpoint") from None
    types: dict[str, set[str]] = {}
    for schema in root.iter(f"{EDM}Schema"):
        namespace = schema.get("Namespace", "")
        for entity_type in schema.iter(f"{EDM}EntityType"):
            names = {p.get("Name", "") for p in entity_type.iter(f"{EDM}Property")}
            types[f"{namespace}.{entity_type.get('Name')}"] = names
            types.setdefault(str(entity_type.get("Name")), names)
    services: dict[str, set[str]] = {}
    for entity_set in root.iter(f"{EDM}EntitySet"):
        type_name = entity_set.get("EntityType", "")
        services[entity_set.get("Name", "")] = types.get(type_name) or types.get(type_name.rsplit(".", 1)[-1], set())
    return services


def by_catalog_name(published: dict[str, set[str]], settings: Any) -> dict[str, set[str]]:
    """The $metadata's services keyed by the catalog's names: one published under another Service Name
    (BC_SERVICE_NAMES) under its catalog name, since that is the one the pipeline reads."""
    from bc_pipeline.catalog import ENTITIES

    named = dict(published)
    for entity in ENTITIES if settings is not None else ():
        name = settings.published_service(entity.service)
        if name != entity.service:
            named.pop(entity.service, None)
            if name in published:
                named[entity.service] = published[name]
    return named


def missing_fields(published: dict[str, set[str]], service: str, named: dict[str, list[str]]) -> dict[str, list[str]]:
    """The named fields (→ the collection files naming them) that the service does not have."""
    fields = published.get(service)
    if fields is None:
        return dict(named)
    return {name: files for name, files in named.items() if name not in fields}


def describe_missing(service: str, missing: dict[str, list[str]], published: bool = True) -> str:
    """`'LoyaltyTier' (customer_loyalty.yaml)` per field, and what to do."""
    shown = ", ".join(f"{name!r} (named in {', '.join(files)})" for name, files in sorted(missing.items()))
    if not published:
        return f"{service} is not in Business Central's $metadata, so none of its fields can be read: {shown}"
    return f"{service} has no field {shown} in Business Central's $metadata"


def require_fields(bc, wanted: dict[str, dict[str, list[str]]]) -> None:
    """Service → {tenant field → files naming it}: one $metadata read when there is any, and MissingFieldsError
    naming each field, the service and the collection file, before any data is read or written."""
    wanted = {service: named for service, named in wanted.items() if named}
    if not wanted:
        return
    settings = getattr(bc, "settings", None)
    published = by_catalog_name(parse_metadata(bc.metadata()), settings)
    problems = [describe_missing(settings.published_service(service) if settings else service, missing,
                                 service in published)
                for service, named in wanted.items() if (missing := missing_fields(published, service, named))]
    if problems:
        raise MissingFieldsError("; ".join(problems) + f". What to do: {FIX}")

"""OData V4 syntax built safely: every literal escaped, every field name checked."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Iterable, Mapping
from urllib.parse import quote

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ODataSyntaxError(ValueError):
    """A field name or value that cannot be put into an OData expression safely."""


def field_name(name: str) -> str:
    """A property name as OData exposes it; anything else is refused rather than spliced into a query."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ODataSyntaxError(f"{name!r} is not a valid OData property name")
    return name


def literal(value: Any) -> str:
    """An OData literal: strings single-quoted with quotes doubled, dates bare, numbers plain."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ODataSyntaxError(f"{value!r} cannot be used in a filter")
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        if "\x00" in value:
            raise ODataSyntaxError("a filter value may not contain a NUL character")
        return "'" + value.replace("'", "''") + "'"
    raise ODataSyntaxError(f"values of type {type(value).__name__} cannot be used in a filter")


def compare(name: str, operator: str, value: Any) -> str:
    if operator not in ("eq", "ne", "lt", "le", "gt", "ge"):
        raise ODataSyntaxError(f"unknown comparison {operator!r}")
    return f"{field_name(name)} {operator} {literal(value)}"


def any_of(name: str, values: Iterable[Any]) -> str:
    """`F eq 'a' or F eq 'b'`: `or` over one field is what BC supports (not across fields)."""
    parts = [compare(name, "eq", v) for v in values]
    if not parts:
        raise ODataSyntaxError("an empty list of values matches nothing")
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def all_of(*expressions: str | None) -> str | None:
    parts = [e for e in expressions if e]
    if not parts:
        return None
    return " and ".join(f"({p})" if " or " in p and not p.startswith("(") else p for p in parts)


def key_segment(keys: Mapping[str, Any]) -> str:
    """`('C10000')` for one key, `(Document_Type='Order',No='101005')` for several; URL-safe."""
    if len(keys) == 1:
        inner = literal(next(iter(keys.values())))
    else:
        inner = ",".join(f"{field_name(k)}={literal(v)}" for k, v in keys.items())
    return "(" + quote(inner, safe="=,'") + ")"


def company_segment(company_name: str) -> str:
    """`Company('CRONUS%20USA%2C%20Inc.')`: quote doubled (OData), then percent-encoded (URL)."""
    return "Company('" + quote(company_name.replace("'", "''"), safe="") + "')"

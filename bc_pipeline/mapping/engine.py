"""The mapping engine: a collection applied to a DataFrame, column by column, into iPaaS.com payloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np
import pandas as pd

from bc_pipeline.mapping.collection import PLACEHOLDER, Child, FieldRule, FilterRule, MappingCollection

LinkLookup = Callable[[str], Mapping[str, str]]  # table → {external id: iPaaS id}
EMPTY_DATES = ("0001-01-01", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00")


@dataclass
class MappedRecord:
    """One payload ready for iPaaS.com, or the reason it cannot be sent."""

    external_id: str
    payload: dict[str, Any]
    error: Optional[str] = None
    children: dict[str, list[str]] = field(default_factory=dict)  # child table → child external ids, in order
    # child table → per child, the index of the collection's child that mapped it (several may fill one list)
    child_rules: dict[str, list[int]] = field(default_factory=dict)
    parent_id: Optional[str] = None
    match_value: Optional[str] = None
    # References marked create_missing whose key is not linked yet: {field, table, key, error}.
    missing_references: list[dict[str, Any]] = field(default_factory=list)


def _is_empty(series: pd.Series) -> pd.Series:
    return series.isna() | series.astype(str).str.strip().isin(("",) + EMPTY_DATES)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _template(frame: pd.DataFrame, template: str) -> pd.Series:
    """`{No}|{Line_No}` over whole columns at once."""
    pieces = PLACEHOLDER.split(template)
    result = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            result = result + piece
        else:
            result = result + _column(frame, piece).map(_plain_text)
    return result


def _bc_upper(text: str) -> str:
    """Upper case as Business Central makes a Code field: letter by letter, so 'ß' stays 'ß' (not 'SS')."""
    return "".join(ch.upper() if len(ch.upper()) == 1 else ch for ch in text)


def _plain_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _apply_transform(series: pd.Series, transform: Any) -> pd.Series:
    if isinstance(transform, str):
        text = series.astype("string")
        if transform == "trim":
            return text.str.strip().astype(object)
        if transform == "upper":
            return text.map(_bc_upper, na_action="ignore").astype(object)
        if transform == "lower":
            return text.str.lower().astype(object)
        if transform == "title":
            return text.str.title().astype(object)
        if transform == "first_word":
            return text.str.strip().str.split(n=1).str[0].astype(object)
        if transform == "after_first_word":
            return text.str.strip().str.split(n=1).str[1].fillna("").astype(object)
        if transform == "empty_as_null":
            return series.where(~_is_empty(series), None)
        if transform == "not":
            return ~series.fillna(False).astype(bool)
    (name, arg), = transform.items()
    if name == "truncate":
        return series.astype("string").str.slice(0, arg).astype(object)
    if name == "round":
        return pd.to_numeric(series, errors="coerce").round(arg)
    if name == "date_format":
        empty = _is_empty(series)
        stamps = pd.to_datetime(series.where(~empty, None), errors="coerce", utc=True, format="mixed")
        return stamps.dt.strftime(arg).where(stamps.notna(), None).astype(object)
    raise ValueError(f"unknown transform {transform!r}")


def _cast(series: pd.Series, kind: str) -> pd.Series:
    if kind == "string":
        return series.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else _plain_text(v))
    if kind in ("number", "integer"):
        numbers = pd.to_numeric(series, errors="coerce")
        return numbers.round().astype("Int64") if kind == "integer" else numbers
    if kind == "boolean":
        return series.map(lambda v: v if isinstance(v, bool) else str(v).strip().lower() in ("true", "1", "yes"))
    return series


def evaluate(rule: FieldRule, frame: pd.DataFrame, links: LinkLookup) -> tuple[pd.Series, Optional[pd.Series]]:
    """A target column for every row, and (for required references) the rows' errors."""
    if rule.source is not None:
        series = _column(frame, rule.source).copy()
    elif rule.template is not None:
        series = _template(frame, rule.template)
    else:
        series = pd.Series([rule.value] * len(frame), index=frame.index, dtype=object)
    for transform in rule.transforms:
        series = _apply_transform(series, transform)
    if rule.lookup is not None:
        keys = series.map(lambda v: v.strip() if isinstance(v, str) else v)
        mapped = keys.map(lambda v: rule.lookup.get(v, _MISSING) if _hashable(v) else _MISSING)
        fallback = rule.lookup_default if "lookup_default" in rule.model_fields_set else None
        series = mapped.where(mapped.map(lambda v: v is not _MISSING), fallback if fallback is not None else series)
    errors = None
    if rule.reference is not None:
        table = links(rule.reference.table)
        keys = series.map(_plain_text)
        ids = keys.map(lambda k: table.get(k) if k else None)
        if rule.reference.required:
            label = rule.source or rule.template
            errors = pd.Series(
                [
                    f"{label} {k!r} is not linked in iPaaS.com table {rule.reference.table!r} yet (sync it first)"
                    if missing else None
                    for k, missing in zip(keys.tolist(), ids.isna().tolist())
                ],
                index=frame.index,
                dtype=object,
            )
        series = ids
    if rule.type:
        series = _cast(series, rule.type)
    if rule.default is not None:
        series = series.where(~_is_empty(series), rule.default)
    if rule.as_list_item:
        key = rule.as_list_item
        series = series.map(lambda v: [] if _plain_text(_to_python(v)) == "" else [{key: _to_python(v)}])
    return series, errors


class _Missing:
    pass


_MISSING = _Missing()


def _hashable(value: Any) -> bool:
    try:
        hash(value)
        return True
    except TypeError:
        return False


def filter_mask(rules: list[FilterRule], frame: pd.DataFrame) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for rule in rules:
        column = _column(frame, rule.field)
        if rule.equals is not None:
            mask &= column == rule.equals
        elif rule.not_equals is not None:
            mask &= column != rule.not_equals
        elif rule.in_ is not None:
            mask &= column.isin(rule.in_)
        elif rule.not_in is not None:
            mask &= ~column.isin(rule.not_in)
        elif rule.not_empty is not None:
            mask &= ~_is_empty(column) if rule.not_empty else _is_empty(column)
    return mask


def _to_python(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def map_rules(
    rules: Mapping[str, FieldRule], custom: list, frame: pd.DataFrame, links: LinkLookup
) -> tuple[list[dict[str, Any]], list[Optional[str]]]:
    """Payload dicts (with custom_fields) and a per-row error, for the rows of `frame` in order."""
    columns: dict[str, pd.Series] = {}
    error_columns: list[pd.Series] = []
    for target, rule in rules.items():
        columns[target], errors = evaluate(rule, frame, links)
        if errors is not None:
            error_columns.append(errors)
    custom_columns = {cf.custom_field_name: evaluate(cf, frame, links)[0] for cf in custom}
    payloads = pd.DataFrame(columns, index=frame.index).astype(object).to_dict("records") if columns else [{} for _ in range(len(frame))]
    payloads = [{k: _to_python(v) for k, v in p.items()} for p in payloads]
    if custom_columns:
        custom_rows = pd.DataFrame(custom_columns, index=frame.index).astype(object).to_dict("records")
        for payload, row in zip(payloads, custom_rows):
            # iPaaS.com refuses an empty custom field value: leave those out.
            payload["custom_fields"] = [
                {"custom_field_name": name, "value": _plain_text(_to_python(value))}
                for name, value in row.items()
                if _plain_text(_to_python(value)).strip()
            ]
    errors: list[Optional[str]] = [None] * len(frame)
    for error_column in error_columns:
        for i, message in enumerate(error_column.tolist()):
            if message and errors[i] is None:
                errors[i] = message
    return payloads, errors


def _map_children(child: Child, frame: pd.DataFrame, links: LinkLookup) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Child payloads grouped by the parent key value."""
    if frame.empty:
        return {}
    frame = frame[filter_mask(child.filter, frame)]
    payloads, errors = map_rules(child.fields, child.custom_fields, frame, links)
    external_ids = _template(frame, child.external_id).tolist()
    parent_keys = _column(frame, child.child_key).map(_plain_text).tolist()
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, external_id, payload, error in zip(parent_keys, external_ids, payloads, errors):
        if error is None:  # a child whose required reference is not linked yet goes on a later run, with its parent
            grouped.setdefault(key, []).append((external_id, payload))
    return grouped


def _note_missing(target: str, rule: FieldRule, frame: pd.DataFrame, links: LinkLookup,
                  records: list[MappedRecord]) -> None:
    """Remember the keys a create_missing reference could not resolve, so the load can create them first."""
    plain = rule.model_copy(update={"reference": None, "type": None, "default": None, "as_list_item": None})
    keys = evaluate(plain, frame, links)[0].map(_plain_text).tolist()
    table = links(rule.reference.table)
    label = rule.source or rule.template
    for record, key in zip(records, keys):
        if key and table.get(key) is None:
            error = (f"{label} {key!r} is not linked in iPaaS.com table {rule.reference.table!r} yet (sync it first)"
                     if rule.reference.required else None)
            record.missing_references.append({"field": target, "table": rule.reference.table, "key": key,
                                              "error": error})


def apply_collection(
    collection: MappingCollection,
    frame: pd.DataFrame,
    links: LinkLookup,
    child_frames: Optional[Mapping[str, pd.DataFrame]] = None,
) -> list[MappedRecord]:
    """Map the source rows of one collection; rows the filter drops are not returned."""
    if frame.empty:
        return []
    frame = frame[filter_mask(collection.filter, frame)]
    if collection.aggregate is not None and not frame.empty:
        agg = collection.aggregate
        sums = {c: "sum" for c in agg.sum}
        firsts = {c: "first" for c in frame.columns if c not in agg.by and c not in sums}
        frame = frame.groupby(agg.by, dropna=False, sort=False).agg({**sums, **firsts}).reset_index()
    if frame.empty:
        return []
    payloads, errors = map_rules(collection.fields, collection.custom_fields, frame, links)
    external_ids = _template(frame, collection.external_id).tolist()
    parent_ids: list[Optional[str]] = [None] * len(frame)
    if collection.parent is not None:
        table = links(collection.parent.table)
        keys = _column(frame, collection.parent.key).map(_plain_text).tolist()
        parent_ids = [table.get(k) for k in keys]
        for i, (k, pid) in enumerate(zip(keys, parent_ids)):
            if pid is None and errors[i] is None:
                errors[i] = f"parent {k!r} is not linked in iPaaS.com table {collection.parent.table!r} yet (sync it first)"

    records = [
        MappedRecord(external_id=e, payload=p, error=err, parent_id=pid)
        for e, p, err, pid in zip(external_ids, payloads, errors, parent_ids)
    ]
    for target, rule in collection.fields.items():
        if rule.reference is not None and rule.reference.create_missing:
            _note_missing(target, rule, frame, links, records)
    for index, child in enumerate(collection.children):
        child_frame = (child_frames or {}).get(child.source, pd.DataFrame())
        grouped = _map_children(child, child_frame, links)
        parent_keys = _column(frame, child.parent_key).map(_plain_text).tolist()
        for record, key in zip(records, parent_keys):
            items = grouped.get(key, [])
            # Several children may fill one list (a company's card address and its ship-to addresses).
            record.payload.setdefault(child.name, []).extend(payload for _, payload in items)
            if child.table:
                record.children.setdefault(child.table, []).extend(external_id for external_id, _ in items)
                record.child_rules.setdefault(child.table, []).extend([index] * len(items))
    for target, path in collection.sums_from_children.items():
        child_name, _, child_field = path.partition(".")
        for record in records:
            values = [c.get(child_field) or 0 for c in record.payload.get(child_name, [])]
            record.payload[target] = round(float(sum(values)), 5)
    if collection.match_field:
        for record in records:
            value = record.payload.get(collection.match_field)
            record.match_value = str(value) if value not in (None, "") else None
    return records

"""Counting records for the admin read-outs: how many, and which values of a field occur more than once."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Optional


def tally(records: Iterable[dict[str, Any]], by: Optional[str] = None,
          value_of: Optional[Callable[[dict[str, Any]], Any]] = None) -> dict[str, Any]:
    """{"count"}; with ``by`` also {"by", "distinct", "missing" (no value), "duplicates" {value: n > 1}}."""
    records = list(records)
    if by is None:
        return {"count": len(records)}
    values = [(value_of or (lambda r: r.get(by)))(r) for r in records]
    seen = Counter(str(v) for v in values if v is not None and v != "")
    return {"count": len(records), "by": by, "distinct": len(seen), "missing": len(records) - sum(seen.values()),
            "duplicates": {v: n for v, n in sorted(seen.items()) if n > 1}}

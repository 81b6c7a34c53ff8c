"""Business Central's records in memory: one key-ordered Table per service, with versions, ETags and JSON bytes."""

from __future__ import annotations

import base64
import bisect
import zlib
from typing import Any, Callable, Iterator, Optional

import orjson

from .schema import Service

SELECT_CACHE_SIZE = 8  # $select shapes remembered per table


class Row:
    """One record: its values (a list in field order), a version bumped on every write, its cached JSON."""

    __slots__ = ("values", "version", "body")

    def __init__(self, values: list, version: int = 1):
        self.values = values
        self.version = version
        self.body: Optional[bytes] = None


def etag_for(key: tuple, version: int) -> str:
    """A weak ETag shaped like BC's: W/"<base64 of '<len>;<digits>;00;'>"; it changes with the version."""
    digits = f"{zlib.crc32(repr(key).encode()) % 10**10:010d}{version:010d}"
    inner = f"'{len(digits)};{digits};00;'".encode()
    return 'W/"' + base64.b64encode(inner).decode() + '"'


class Table:
    """The records of one service, ordered by key (queries: by load order) for stable server-driven paging."""

    def __init__(self, service: Service, rows: list[list], *, precompute: bool = False):
        self.service = service
        self.key_index = service.key_index
        self.fields = service.fields
        self.has_etag = service.object_type == "Page"
        self.rows: dict[tuple, Row] = {}
        self.selects: dict[tuple, dict[tuple, bytes]] = {}
        self.seq = 0
        # Called with ("created" | "updated" | "deleted", key) on every write (API webhooks, webhooks.py).
        self.listener: Optional[Callable[[str, tuple], None]] = None
        for values in rows:
            self.rows[self.key_of(values)] = Row(values)
        self.order: list[tuple] = sorted(self.rows)
        if precompute:
            for key, row in self.rows.items():
                row.body = self._dump(key, row, None)

    def key_of(self, values: list) -> tuple:
        if self.key_index:
            return tuple(values[i] for i in self.key_index)
        self.seq += 1
        return (self.seq,)

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: tuple) -> Optional[Row]:
        return self.rows.get(key)

    def etag(self, key: tuple, row: Row) -> str:
        return etag_for(key, row.version)

    def record(self, key: tuple, row: Row, select: Optional[tuple[str, ...]] = None) -> dict[str, Any]:
        """The record as BC shows it: @odata.etag first, then the fields in page order."""
        out: dict[str, Any] = {"@odata.etag": self.etag(key, row)} if self.has_etag else {}
        if select is None:
            out.update(zip(self.fields, row.values))
        else:
            index = self.service.index
            for f in select:
                out[f] = row.values[index[f]]
        return out

    def _dump(self, key: tuple, row: Row, select: Optional[tuple[str, ...]]) -> bytes:
        # orjson's result keeps a large spare buffer; an exact-size copy keeps 190k cached records ~3x smaller
        return bytes(memoryview(orjson.dumps(self.record(key, row, select))))

    def body(self, key: tuple, row: Row, select: Optional[tuple[str, ...]] = None) -> bytes:
        """The record's JSON bytes, cached per $select shape."""
        if select is None:
            if row.body is None:
                row.body = self._dump(key, row, None)
            return row.body
        cache = self.selects.get(select)
        if cache is None:
            if len(self.selects) >= SELECT_CACHE_SIZE:
                self.selects.pop(next(iter(self.selects)))
            cache = self.selects[select] = {}
        data = cache.get(key)
        if data is None:
            data = cache[key] = self._dump(key, row, select)
        return data

    def _forget(self, key: tuple) -> None:
        for cache in self.selects.values():
            cache.pop(key, None)

    # --- reading in key order -------------------------------------------------------------------------

    def iter_from(self, after: Optional[tuple]) -> Iterator[tuple[tuple, Row]]:
        """(key, row) in key order, starting after `after` (a skiptoken's last key)."""
        start = 0 if after is None else bisect.bisect_right(self.order, after)
        order, rows = self.order, self.rows
        for i in range(start, len(order)):
            key = order[i]
            row = rows.get(key)
            if row is not None:
                yield key, row

    # --- writing -----------------------------------------------------------------------------------------

    def insert(self, values: list, version: int = 1) -> tuple[tuple, Row]:
        key = self.key_of(values)
        if key in self.rows:
            raise KeyError(key)
        row = Row(values, version)
        self.rows[key] = row
        bisect.insort(self.order, key)
        self._notify("created", key)
        return key, row

    def replace(self, key: tuple, values: list) -> Row:
        old = self.rows[key]
        row = Row(values, old.version + 1)
        self.rows[key] = row
        self._forget(key)
        self._notify("updated", key)
        return row

    def bump(self, key: tuple) -> Row:
        """Another user saved the record: same values, new version (so a held ETag is stale)."""
        return self.replace(key, list(self.rows[key].values))

    def delete(self, key: tuple) -> Row:
        row = self._remove(key)
        self._notify("deleted", key)
        return row

    def _notify(self, change: str, key: tuple) -> None:
        if self.listener is not None:
            self.listener(change, key)

    def _remove(self, key: tuple) -> Row:
        row = self.rows.pop(key)
        i = bisect.bisect_left(self.order, key)
        if i < len(self.order) and self.order[i] == key:
            del self.order[i]
        self._forget(key)
        return row

    def restore(self, key: tuple, row: Optional[Row]) -> None:
        """Put back a record's earlier state (None: it did not exist) - used to roll back a $batch."""
        if key in self.rows:
            self._remove(key)
        if row is not None:
            self.rows[key] = row
            bisect.insort(self.order, key)


class Store:
    """Every published-or-not service's Table for the one company the sandbox serves."""

    def __init__(self, services: dict[str, Service], data: dict[str, list[list]], *, precompute: bool = False):
        self.services = services
        self.tables = {name: Table(svc, data.get(name, []), precompute=precompute) for name, svc in services.items()}

    def counts(self) -> dict[str, int]:
        return {name: len(t) for name, t in self.tables.items()}

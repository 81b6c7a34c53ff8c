"""The iPaaS.com stand-in's external-id links (article 15302917, Template): which BC record is which iPaaS.com one."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from bc_pipeline.sandbox.ipaas_http import ApiError

SYSTEM_NAME = "MSD 365"
CUSTOMER_KINDS = ("Customer", "Company")


# External-id table names, spelt as ipaas.md and the Template spell them (matched case-insensitively):
# table -> (domain that serves it, record kinds an internal id must exist in; None = not checked).
# "customer" covers both Customer and Company (the Template has one CUSTOMER type), so the stand-in
# gives Customer and Company one id sequence: an internal id names exactly one of them (assumed).
TABLES: dict[str, tuple[str, Optional[tuple[str, ...]]]] = {
    "customer": ("customers", CUSTOMER_KINDS),
    "Address": ("customers", ("Address",)),
    "customer category": ("customers", ("Customer Category",)),
    "location": ("products", ("Location",)),
    "product": ("products", ("Product",)),
    "Product Variant": ("products", None),
    "Product Category": ("products", ("Product Category",)),
    "product inventory": ("products", ("Product Inventory",)),
    "shipping method": ("transactions", ("Shipping Method",)),
    "Payment Method": ("transactions", None),
    "transaction": ("transactions", ("Transaction",)),
    "Transaction Line": ("transactions", ("Transaction Line",)),
    "Transaction Address": ("transactions", ("Transaction Address",)),
    "transaction tracking": ("transactions", ("Transaction Tracking",)),
    "transaction payment": ("transactions", ("Transaction Payment",)),
    "transaction tax": ("transactions", ("Transaction Tax",)),
    "transaction comment": ("transactions", ("Transaction Note",)),
}


def norm_table(name: str) -> str:
    return " ".join(str(name).split()).lower()


TABLE_BY_NORM = {norm_table(t): t for t in TABLES}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LinkIndex:
    """The links; ``Store`` extends it with the records (``exists`` and ``lock`` come from there).

    One link per (system id, table, external id), and at most one per (system id, table, internal id): linking either
    side again re-links it. A deleted record's links stay and answer ``DELETED:<id>`` (lookups of an internal id
    ``DELETED:<external id>``), as the Template expects.
    """

    def __init__(self, system_id: str):
        self.system_id = str(system_id)
        self.links: dict[tuple[str, str, str], dict] = {}  # (system, table, external) -> link
        self.link_of: dict[tuple[str, str, str], tuple[str, str, str]] = {}  # (system, table, internal) -> key
        self.systems: set[str] = {self.system_id}  # system ids that have links

    # ---- external-id links --------------------------------------------------------------------
    def table(self, name: Any, domain: Optional[str] = None) -> str:
        canon = TABLE_BY_NORM.get(norm_table(name or ""))
        if canon is None:
            raise ApiError(400, f"unknown table name {name!r}; known: {', '.join(TABLES)}", "table_name")
        if domain is not None and TABLES[canon][0] != domain:
            raise ApiError(400, f"table {canon!r} is served by the {TABLES[canon][0]} domain, not {domain}", "table_name")
        return canon

    def external_ids_of(self, table: Optional[str], ident: int) -> list[dict]:
        if table is None:
            return []
        key = self.link_of.get((self.system_id, norm_table(table), str(ident)))
        link = self.links.get(key) if key else None
        if not link or link["deleted"]:
            return []
        return [{"id": link["id"], "system_id": link["system_id"], "system_name": SYSTEM_NAME,
                 "external_id": link["external_id"], "internal_id": link["internal_id"], "message": None}]

    def link(self, table: str, system_id: Any, external_id: Any, internal_id: Any) -> dict:
        """Link (or re-link) one external id to one internal id; each side has at most one link."""
        system, ext, internal = str(system_id), str(external_id), str(internal_id).strip()
        if not ext:
            raise ApiError(400, "external_id is required", "external_id")
        kinds = TABLES[table][1]
        if kinds is not None and not self.exists(kinds, internal):
            raise ApiError(404, f"no {' or '.join(kinds)} with id {internal} for table {table!r}", "internal_id")
        t = norm_table(table)
        with self.lock:
            for stale in (self.link_of.get((system, t, internal)), (system, t, ext)):
                old = self.links.pop(stale, None) if stale else None
                if old:
                    self.link_of.pop((system, t, old["internal_id"]), None)
            self.systems.add(system)
            link = {"id": self.next_id("link"), "table_name": table, "system_id": system, "external_id": ext,
                    "internal_id": internal, "deleted": False, "updated_datetime": now_iso()}
            self.links[(system, t, ext)] = link
            self.link_of[(system, t, internal)] = (system, t, ext)
            return link

    def unlink(self, table: str, external_id: str) -> int:
        t, gone = norm_table(table), 0
        with self.lock:
            for key in [k for k in self.links if k[1] == t and k[2] == external_id]:
                link = self.links.pop(key)
                self.link_of.pop((key[0], t, link["internal_id"]), None)
                gone += 1
        return gone

    def lookup_internal(self, table: str, system_id: Any, external_id: Any) -> Optional[str]:
        link = self.links.get((str(system_id), norm_table(table), str(external_id)))
        if link is None:
            return None
        return f"DELETED:{link['internal_id']}" if link["deleted"] else link["internal_id"]

    def lookup_external(self, table: str, system_id: Any, internal_id: Any) -> Optional[str]:
        key = self.link_of.get((str(system_id), norm_table(table), str(internal_id)))
        link = self.links.get(key) if key else None
        if link is None:
            return None
        return f"DELETED:{link['external_id']}" if link["deleted"] else link["external_id"]

    def _mark_deleted(self, table: Optional[str], ident: int) -> None:
        """A deleted record's links stay, answering ``DELETED:<id>`` to lookups."""
        if table is None:
            return
        for system in self.systems:
            key = self.link_of.get((system, norm_table(table), str(ident)))
            if key and key in self.links:
                self.links[key]["deleted"] = True
                self.links[key]["updated_datetime"] = now_iso()

    def _check_external_ids(self, body: dict) -> list:
        items = body.get("external_ids") or []
        if not isinstance(items, list):
            raise ApiError(400, "external_ids must be a list", "external_ids")
        for n, e in enumerate(items):
            if not isinstance(e, dict) or not str(e.get("external_id") or "").strip():
                raise ApiError(400, f"external_ids[{n}] needs an external_id", f"external_ids[{n}].external_id")
        return items

    def _link_from_body(self, m: Any, ident: int, body: dict) -> None:
        for e in self._check_external_ids(body):
            self.link(m.table, e.get("system_id") or self.system_id, e["external_id"], ident)

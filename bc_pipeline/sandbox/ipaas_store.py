"""The iPaaS.com stand-in's records: shapes, enumerations, validation, full-replace PUT (article 15504591), indexes."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from bc_pipeline.sandbox.ipaas_http import ApiError
from bc_pipeline.sandbox.ipaas_links import CUSTOMER_KINDS, TABLES, LinkIndex, now_iso


@dataclass(frozen=True)
class Model:
    name: str
    domain: str
    table: Optional[str]  # the external-id table its links live in
    fields: tuple[str, ...]
    required: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()  # fields that default to [] rather than null
    unique: tuple[tuple[str, bool], ...] = ()  # (field, case_sensitive)
    indexed: tuple[str, ...] = ()  # equality filters answered from an index
    refs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> models the id must exist in
    sequence: str = ""  # id counter; Customer and Company share one (see TABLES["customer"])
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)


# Enumerated fields, each checked the same way: case-insensitively (ASSUMED), refused naming the field and these values.
# Where each list comes from is in IPAAS_BEHAVIOUR.md; a tenant whose values differ edits the line.
PRODUCT_TYPES = ("Physical", "Virtual",  # article 9052445, which adds "others have been added for integration needs"
                 "Service Items")  # article 14114012: BC's Service items become "Service Items" by lookup translation
TRACKING_METHODS = ("Product", "Variant")  # article 9052445 "Tracking Method Options"
PRODUCT_STATUSES = ("Active", "Inactive")  # ASSUMED: article 14114012 sets products "active"; no list is published
TRANSACTION_TYPES = ("Order", "Shipment", "Invoice", "Hold", "Quote", "Ticket", "Return", "Validated Return", "Job")
TRANSACTION_STATUSES = ("Pending", "Complete", "Cancelled", "Shipped", "Backorder", "Partial Refunded", "Refunded")

_DATES = ("created_datetime", "updated_datetime")
_ADDRESS = (
    "first_name", "last_name", "company", "address_1", "address_2", "address_3", "city", "region",
    "country", "postal_code", "phone_number", "type", "is_primary_billing", "is_primary_shipping",
    "shipping_method", "customer_id",
)

MODELS: dict[str, Model] = {m.name: m for m in (
    Model("Customer", "customers", "customer",
          ("customer_number", "first_name", "last_name", "email_address", "company", "comment", "category_id") + _DATES,
          unique=(("email_address", False),), indexed=("email_address", "customer_number"),
          refs={"category_id": ("Customer Category",)}, sequence="customer"),
    # category_id on Company is assumed (the BC mapping sets a company's category from its price group)
    Model("Company", "customers", "customer",
          ("name", "department", "description", "email_address", "phone_number", "fax_number", "url",
           "account_number", "tax_id_number", "parent_company_id", "category_id", "relationships") + _DATES,
          required=("name",), lists=("relationships",), indexed=("name", "email_address", "account_number"),
          refs={"parent_company_id": ("Company",), "category_id": ("Customer Category",)}, sequence="customer"),
    Model("Customer Category", "customers", "customer category", ("name", "description") + _DATES,
          required=("name",), unique=(("name", True),), indexed=("name",)),
    Model("Address", "customers", "Address", _ADDRESS + _DATES, required=("customer_id",),
          refs={"customer_id": CUSTOMER_KINDS}),
    Model("Product", "products", "product",
          ("sku", "name", "type", "tracking_method", "status", "description", "default_price", "msrp",
           "sale_price", "tax_class", "barcode", "unit", "allow_discounts", "allow_backorders", "width",
           "height", "depth", "weight", "variants", "categories", "alternate_ids") + _DATES,
          required=("sku", "name", "type", "tracking_method", "status"),
          lists=("variants", "categories", "alternate_ids"), unique=(("sku", True),), indexed=("sku", "name"),
          enums={"type": PRODUCT_TYPES, "tracking_method": TRACKING_METHODS, "status": PRODUCT_STATUSES}),
    Model("Product Inventory", "products", "product inventory",
          ("parent_id", "location_id", "qty_on_hand", "qty_available", "cost") + _DATES,
          required=("parent_id", "location_id"), indexed=("parent_id",),
          refs={"parent_id": ("Product",), "location_id": ("Location",)}),
    # Template CatalogCategoryResponse: name, description, parent_id, category_sets
    Model("Product Category", "products", "Product Category", ("name", "description", "parent_id", "category_sets")
          + _DATES, required=("name",), lists=("category_sets",), indexed=("name",),
          refs={"parent_id": ("Product Category",)}),
    Model("Location", "products", "location", ("name", "description", "location_groups") + _DATES,
          required=("name",), lists=("location_groups",), unique=(("name", True),), indexed=("name",)),
    Model("Shipping Method", "transactions", "shipping method", ("name", "description") + _DATES,
          required=("name",), unique=(("name", True),), indexed=("name",)),
    Model("Transaction", "transactions", "transaction",
          ("system_id", "transaction_parent_id", "transaction_number", "customer_id", "email_address", "type", "status",
           "discount_amount", "tax_amount", "shipping_amount", "subtotal", "total", "total_qty",
           "lines", "taxes", "payments", "tracking", "addresses", "notes") + _DATES,
          required=("transaction_number", "type", "status"),
          lists=("lines", "taxes", "payments", "tracking", "addresses", "notes"),
          indexed=("transaction_number", "email_address"),
          refs={"customer_id": CUSTOMER_KINDS, "transaction_parent_id": ("Transaction",)},
          enums={"type": TRANSACTION_TYPES, "status": TRANSACTION_STATUSES}),
)}

# A transaction's children, kept inside its body; each gets an id of its own kind. None = any keys.
NESTED: dict[str, tuple[str, Optional[tuple[str, ...]]]] = {
    "lines": ("Transaction Line", (
        "parent_id", "sequence_number", "status", "sku", "description", "type", "qty", "qty_shipped",
        "unit_price", "extended_price", "original_unit_price", "discount_amount", "discount_percent",
        "tax_percent", "estimated_tax_amount", "weight", "address", "line_info", "options")),
    "addresses": ("Transaction Address", (
        "shipping_method", "shipping_method_description", "first_name", "last_name", "shipping_amount",
        "type", "ship_date", "phone_number", "company", "address_1", "address_2", "address_3", "city",
        "region", "country", "postal_code", "is_primary_billing", "is_primary_shipping", "customer_id")),
    "tracking": ("Transaction Tracking", ("shipping_method", "shipping_method_description", "tracking_number", "cost")),
    "payments": ("Transaction Payment", ("method", "amount", "status", "description", "method_info")),
    "taxes": ("Transaction Tax", None),
    "notes": ("Transaction Note", None),
}
NESTED_KIND_TO_KEY = {kind: key for key, (kind, _) in NESTED.items()}


def model_named(name: str) -> Model:
    for m in MODELS.values():
        if m.name.lower() == " ".join(str(name).split()).lower():
            return m
    raise ApiError(404, f"unknown model {name!r}; known: {', '.join(MODELS)}", "model")


def _key(v: Any) -> str:
    return str(v).lower()


def as_id(value: Any, fieldname: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise ApiError(400, f"{fieldname} must be an integer id, got {value!r}", fieldname) from None


def _int_or_none(value: Any) -> Optional[int]:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def check_enum(model: str, fieldname: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value is not None and str(value).lower() not in {a.lower() for a in allowed}:
        raise ApiError(400, f"{model} {fieldname} {value!r} is not one of: {', '.join(allowed)}", fieldname)


def check_custom_fields(values: Any, where: str) -> list:
    if values is None:
        return []
    if not isinstance(values, list):
        raise ApiError(400, f"{where}custom_fields must be a list", f"{where}custom_fields")
    for i, cf in enumerate(values):
        name = cf.get("custom_field_name") if isinstance(cf, dict) else None
        if not name:
            raise ApiError(400, f"{where}custom_fields[{i}] needs a custom_field_name", f"{where}custom_fields[{i}]")
        value = cf.get("value")
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ApiError(400, f"custom field '{name}' has an empty value; custom field values may not be empty",
                           f"{where}custom_fields[{i}].value")
    return [{"custom_field_name": cf["custom_field_name"], "value": cf["value"]} for cf in values]


class Store(LinkIndex):
    """All records, their indexes and the external-id links. Callers hold ``lock`` for writes."""

    def __init__(self, system_id: str):
        self.lock = threading.RLock()
        self.records: dict[str, dict[int, dict]] = {m: {} for m in MODELS}
        self.counters: dict[str, int] = {}
        self.index: dict[tuple[str, str], dict[str, set[int]]] = {
            (m.name, f): {} for m in MODELS.values() for f in m.indexed}
        self.addresses_of: dict[int, list[int]] = {}  # customer/company id -> address ids
        self.nested_owner: dict[str, dict[int, int]] = {kind: {} for kind, _ in NESTED.values()}
        LinkIndex.__init__(self, system_id)
        self.custom_field_defs: list[dict] = []

    # ---- ids, indexes -------------------------------------------------------------------------
    def next_id(self, sequence: str) -> int:
        self.counters[sequence] = self.counters.get(sequence, 0) + 1
        return self.counters[sequence]

    def _index(self, m: Model, rec: dict, add: bool) -> None:
        for f in m.indexed:
            v = rec.get(f)
            if v is None:
                continue
            bucket = self.index[(m.name, f)].setdefault(_key(v), set())
            (bucket.add if add else bucket.discard)(rec["id"])

    def find(self, m: Model, fieldname: str, value: Any) -> list[int]:
        """Ids whose field equals value, case-insensitively (SQL Server's default collation)."""
        if fieldname in m.indexed:
            return sorted(self.index[(m.name, fieldname)].get(_key(value), ()))
        return [i for i, r in self.records[m.name].items() if r.get(fieldname) is not None and _key(r[fieldname]) == _key(value)]

    def exists(self, kinds: Iterable[str], ident: Any) -> Optional[str]:
        try:
            i = int(str(ident))
        except (TypeError, ValueError):
            return None
        for kind in kinds:
            if kind in self.records and i in self.records[kind]:
                return kind
            if kind in self.nested_owner and i in self.nested_owner[kind]:
                return kind
        return None

    # ---- validation ---------------------------------------------------------------------------
    def _shape(self, m: Model, body: dict, own_id: Optional[int]) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, f"the {m.name} body must be a JSON object")
        rec: dict[str, Any] = {}
        for f in m.fields:
            v = body.get(f)
            rec[f] = [] if (v is None and f in m.lists) else v
        for f in m.required:
            if rec.get(f) is None or (isinstance(rec[f], str) and not rec[f].strip()):
                raise ApiError(400, f"{f} is required for {m.name}", f)
        for f, allowed in m.enums.items():
            check_enum(m.name, f, rec.get(f), allowed)
        for f, kinds in m.refs.items():
            if rec.get(f) is not None and not self.exists(kinds, as_id(rec[f], f)):
                raise ApiError(400, f"{f} {rec[f]} does not exist ({' or '.join(kinds)})", f)
        for f, case_sensitive in m.unique:
            v = rec.get(f)
            if v is None:
                continue
            clash = [i for i in self.find(m, f, v) if i != own_id
                     and (not case_sensitive or self.records[m.name][i][f] == v)]
            if clash:
                raise ApiError(400, f"a {m.name} with {f} {v!r} already exists (id {clash[0]})", f)
        if m.name == "Product":  # categories: [{category_id, category_name}] (Template CategoryAssignmentResponse)
            for n, assigned in enumerate(rec["categories"] or []):
                if not isinstance(assigned, dict) or not self.exists(("Product Category",), assigned.get("category_id")):
                    raise ApiError(400, f"categories[{n}].category_id does not name a Product Category",
                                   f"categories[{n}].category_id")
        if m.name == "Product Inventory":
            twins = [i for i in self.find(m, "parent_id", rec["parent_id"]) if i != own_id
                     and str(self.records[m.name][i]["location_id"]) == str(rec["location_id"])]
            if twins:  # assumed: one inventory record per product and location
                raise ApiError(400, f"product {rec['parent_id']} already has inventory at location "
                                    f"{rec['location_id']} (id {twins[0]})", "location_id")
        if m.name == "Company":
            rec["relationships"] = self._relationships(rec["relationships"], own_id)
        rec["custom_fields"] = check_custom_fields(body.get("custom_fields"), "")
        return rec

    def _relationships(self, items: Any, own_id: Optional[int]) -> list:
        """ASSUMED shape: a company's people, `[{"customer_id", "type"}]`, each an existing Customer, once."""
        if not isinstance(items, list):
            raise ApiError(400, "relationships must be a list", "relationships")
        out, seen = [], set()
        for n, item in enumerate(items):
            where = f"relationships[{n}].customer_id"
            if not isinstance(item, dict) or item.get("customer_id") is None:
                raise ApiError(400, f"{where} is required", where)
            cid = as_id(item["customer_id"], where)
            if cid not in self.records["Customer"]:
                raise ApiError(400, f"{where} {cid} does not exist (Customer)", where)
            if cid in seen:
                raise ApiError(400, f"{where} {cid} is related to this company twice", where)
            seen.add(cid)
            out.append({"customer_id": cid, "type": item.get("type")})
        return out

    def _nested(self, key: str, items: Any, previous: list) -> list:
        kind, fields = NESTED[key]
        if items is None:
            return []
        if not isinstance(items, list):
            raise ApiError(400, f"{key} must be a list", key)
        old = {c["id"]: c for c in previous}
        out = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise ApiError(400, f"{key}[{n}] must be an object", f"{key}[{n}]")
            child = dict(item) if fields is None else {f: item.get(f) for f in fields}
            child["custom_fields"] = check_custom_fields(item.get("custom_fields"), f"{key}[{n}].")
            keep = old.get(_int_or_none(item.get("id")))
            child["id"] = keep["id"] if keep else None
            child["tracking_guid"] = keep["tracking_guid"] if keep else None
            out.append(child)
        return out

    # ---- CRUD ---------------------------------------------------------------------------------
    def create(self, model: str, body: dict, parent_id: Optional[int] = None) -> dict:
        m = MODELS[model]
        with self.lock:
            if parent_id is not None:
                body = {**body, "customer_id": parent_id}
            rec = self._shape(m, body, None)
            addresses = self._check_addresses(m, body, [])
            self._check_external_ids(body)
            nested = self._shape_nested(rec, {}) if m.name == "Transaction" else None
            rec["id"] = self.next_id(m.sequence or m.name)
            rec["tracking_guid"] = str(uuid.uuid4())
            stamp = now_iso()
            rec["created_datetime"] = body.get("created_datetime") or stamp
            rec["updated_datetime"] = stamp
            if nested is not None:
                self._commit_nested(rec, nested, {})
            self.records[m.name][rec["id"]] = rec
            self._index(m, rec, True)
            if m.name == "Address":
                self.addresses_of.setdefault(as_id(rec["customer_id"], "customer_id"), []).append(rec["id"])
            if addresses is not None:
                self._replace_addresses(rec["id"], addresses)
            self._link_from_body(m, rec["id"], body)
            return self.render(m.name, rec["id"])

    def replace(self, model: str, ident: int, body: dict, parent_id: Optional[int] = None) -> dict:
        """PUT: the body replaces the whole record; fields it leaves out become null (or [])."""
        m = MODELS[model]
        with self.lock:
            old = self.get_raw(m.name, ident, parent_id)
            if parent_id is not None:
                body = {**body, "customer_id": parent_id}
            rec = self._shape(m, body, ident)
            addresses = self._check_addresses(m, body, self.addresses_of.get(ident, []))
            self._check_external_ids(body)
            nested = self._shape_nested(rec, old) if m.name == "Transaction" else None
            rec.update(id=ident, tracking_guid=old["tracking_guid"], updated_datetime=now_iso(),
                       created_datetime=body.get("created_datetime") or old["created_datetime"])
            if nested is not None:
                self._commit_nested(rec, nested, old)
            if m.name == "Address" and str(rec["customer_id"]) != str(old["customer_id"]):
                self.addresses_of[as_id(old["customer_id"], "customer_id")].remove(ident)
                self.addresses_of.setdefault(as_id(rec["customer_id"], "customer_id"), []).append(ident)
            self._index(m, old, False)
            self.records[m.name][ident] = rec
            self._index(m, rec, True)
            if addresses is not None:
                self._replace_addresses(ident, addresses)
            self._link_from_body(m, ident, body)
            return self.render(m.name, ident)

    def delete(self, model: str, ident: int, parent_id: Optional[int] = None) -> None:
        m = MODELS[model]
        with self.lock:
            rec = self.get_raw(m.name, ident, parent_id)
            self._index(m, rec, False)
            del self.records[m.name][ident]
            self._mark_deleted(m.table, ident)
            if m.name in CUSTOMER_KINDS:
                for aid in list(self.addresses_of.pop(ident, [])):
                    self.delete("Address", aid)
            elif m.name == "Address":
                siblings = self.addresses_of.get(as_id(rec["customer_id"], "customer_id"), [])
                if ident in siblings:
                    siblings.remove(ident)
            elif m.name == "Product":
                for iid in self.find(MODELS["Product Inventory"], "parent_id", ident):
                    self.delete("Product Inventory", iid)
            elif m.name == "Transaction":
                for key, (kind, _) in NESTED.items():
                    for child in rec[key]:
                        self.nested_owner[kind].pop(child["id"], None)
                        self._mark_deleted(TABLE_FOR_KIND.get(kind), child["id"])

    def get_raw(self, model: str, ident: int, parent_id: Optional[int] = None) -> dict:
        rec = self.records[model].get(ident)
        if rec is None or (parent_id is not None and str(rec.get("customer_id")) != str(parent_id)):
            raise ApiError(404, f"{model} {ident} not found", "id")
        return rec

    def _check_addresses(self, m: Model, body: dict, current: list[int]) -> Optional[list]:
        """Validate a Customer/Company body's ``addresses`` before anything is written."""
        if m.name not in CUSTOMER_KINDS:
            return None
        items = body.get("addresses") or []
        if not isinstance(items, list):
            raise ApiError(400, "addresses must be a list", "addresses")
        checked = []
        for n, a in enumerate(items):
            if not isinstance(a, dict):
                raise ApiError(400, f"addresses[{n}] must be an object", f"addresses[{n}]")
            check_custom_fields(a.get("custom_fields"), f"addresses[{n}].")
            self._check_external_ids(a)
            keep = _int_or_none(a.get("id"))
            checked.append((keep if keep in current else None, a))
        return checked

    def _replace_addresses(self, owner: int, checked: list) -> None:
        kept = {keep for keep, _ in checked if keep is not None}
        for aid in [a for a in self.addresses_of.get(owner, []) if a not in kept]:
            self.delete("Address", aid)
        for keep, a in checked:
            if keep is None:
                self.create("Address", a, parent_id=owner)
            else:
                self.replace("Address", keep, a, parent_id=owner)

    def _shape_nested(self, rec: dict, old: dict) -> dict:
        """Validate a transaction's children (nothing is written yet)."""
        return {key: self._nested(key, rec.get(key), old.get(key) or []) for key in NESTED}

    def _commit_nested(self, rec: dict, shaped: dict, old: dict) -> None:
        """Give new children ids; children left out are gone (their links answer DELETED:)."""
        for key, (kind, _) in NESTED.items():
            rec[key] = shaped[key]
            kept = {c["id"] for c in rec[key] if c["id"] is not None}
            for gone in (c for c in (old.get(key) or []) if c["id"] not in kept):
                self.nested_owner[kind].pop(gone["id"], None)
                self._mark_deleted(TABLE_FOR_KIND.get(kind), gone["id"])
            for child in rec[key]:
                if child["id"] is None:
                    child["id"] = self.next_id(kind)
                    child["tracking_guid"] = str(uuid.uuid4())
                if key == "lines":
                    child["parent_id"] = rec["id"]
                self.nested_owner[kind][child["id"]] = rec["id"]

    def set_nested(self, owner: int, key: str, items: list) -> dict:
        """Replace one child list of a transaction (the Tracking endpoints use this)."""
        with self.lock:
            old = self.get_raw("Transaction", owner)
            rec = dict(old)
            rec[key] = items
            shaped = self._shape_nested(rec, old)
            rec["updated_datetime"] = now_iso()
            self._commit_nested(rec, shaped, old)
            self.records["Transaction"][owner] = rec
            return rec

    def render(self, model: str, ident: int) -> dict:
        m = MODELS[model]
        stored = self.records[model][ident]
        out = {"id": stored["id"], "tracking_guid": stored["tracking_guid"], **stored}
        out["external_ids"] = self.external_ids_of(m.table, ident)
        if model in CUSTOMER_KINDS:
            out["addresses"] = [self.render("Address", a) for a in self.addresses_of.get(ident, [])]
        elif model == "Product":  # a read-only view of its Product Inventory records
            inv = MODELS["Product Inventory"]
            out["inventory"] = [self.render(inv.name, i) for i in self.find(inv, "parent_id", ident)]
        elif model == "Transaction":
            for key, (kind, _) in NESTED.items():
                table = TABLE_FOR_KIND.get(kind)
                out[key] = [{**c, "external_ids": self.external_ids_of(table, c["id"])} for c in out[key]]
        return out

    def all(self, model: str) -> list[dict]:
        return [self.render(model, i) for i in list(self.records[model])]


TABLE_FOR_KIND: dict[str, str] = {}
for _table, (_domain, _kinds) in TABLES.items():
    for _kind in _kinds or ():
        if _kind in NESTED_KIND_TO_KEY:
            TABLE_FOR_KIND[_kind] = _table

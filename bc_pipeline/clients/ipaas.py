"""iPaaS.com API: Bearer auth, X-Pagination lists, full-record writes, external-id links."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional
from urllib.parse import quote

import orjson
import requests

from bc_pipeline.clients.errors import IpaasError, ipaas_error_from_response
from bc_pipeline.clients.throttle import throttle_for, throttle_key
from bc_pipeline.clients.transport import ThrottledTransport, TrafficCounter, new_session
from bc_pipeline.settings import SubscriptionSettings

# Every path in one table (ipaas.md: where a fact is assumed, keep it in one place).
# model: (domain, create, item "{id}", list); "assumed" marks paths no public source confirmed.
ENDPOINTS: dict[str, tuple[str, str, str, str]] = {
    "Customer": ("customers", "Customer", "Customer/{id}", "Customers"),  # create assumed
    "Company": ("customers", "Customer/Company", "Customer/Company/{id}", "Customer/Companies"),  # create assumed
    "Customer Category": ("customers", "Customer/Category", "Customer/Category/{id}", "Customer/Categories"),  # assumed
    "Product": ("products", "Catalog/Product", "Catalog/Product/{id}", "Catalog/Products"),
    "Product Inventory": ("products", "Catalog/Product/Inventory", "Catalog/Product/Inventory/{id}", "Catalog/Product/Inventories"),
    # Template: GET v2/Catalog/Category/{id} (CatalogCategoryResponse); create and list assumed
    "Product Category": ("products", "Catalog/Category", "Catalog/Category/{id}", "Catalog/Categories"),
    "Location": ("products", "Catalog/Location", "Catalog/Location/{id}", "Catalog/Locations"),
    "Shipping Method": ("transactions", "ShippingMethod", "ShippingMethod/{id}", "ShippingMethods"),  # create/item assumed
    "Transaction": ("transactions", "Transaction", "Transaction/{id}", "Transactions"),
    # assumed: article 9294440 says tracking has its own endpoint, under the transaction
    "Transaction Tracking": ("transactions", "Transaction/{parent}/Tracking", "Transaction/{parent}/Tracking/{id}",
                             "Transaction/{parent}/Trackings"),
}
# A child model listed inside its parent's records: (parent model, the parent's field holding them). Assumed:
# the Transaction shape lists `tracking`; that each item there carries its external_ids is not documented.
NESTED_IN_PARENT: dict[str, tuple[str, str]] = {
    "Transaction Tracking": ("Transaction", "tracking"),
}
TABLE_DOMAINS: dict[str, str] = {
    "customer": "customers",
    "address": "customers",
    "customer category": "customers",
    "location": "products",
    "product": "products",
    "product variant": "products",
    "product inventory": "products",
    "product category": "products",
    "shipping method": "transactions",
    "transaction": "transactions",
    "transaction line": "transactions",
    "transaction address": "transactions",
    "transaction tracking": "transactions",
    "transaction payment": "transactions",
}
SAFE_EXTERNAL_ID = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


class IpaasClient:
    """A thin, typed client for the iPaaS.com models the integration moves."""

    def __init__(self, settings: SubscriptionSettings, *, counter: Optional[TrafficCounter] = None):
        settings.require_ipaas()
        self.settings = settings
        self.system_id = settings.ipaas_system_id
        self.session = new_session(settings.verify, pool_size=max(settings.concurrent_connections, 2))
        self.throttle = throttle_for(
            settings,
            throttle_key("ipaas", settings.ipaas_api_url, settings.ipaas_system_id or ""),
            limit=settings.ipaas_throttle_limit,
            seconds=settings.ipaas_throttle_seconds,
            concurrency=settings.concurrent_connections,
        )
        self.transport = ThrottledTransport("iPaaS.com", self.session, self.throttle, counter=counter)

    @property
    def counter(self) -> TrafficCounter:
        return self.transport.counter

    def _headers(self) -> dict[str, str]:
        return {
            "Accept": "application/json",
            "Authorization": f"Bearer {self.settings.ipaas_api_token.get_secret_value()}",
        }

    def _url(self, domain: str, path: str) -> str:
        return f"{self.settings.ipaas_api_url}/{domain}/v2/{path}"

    def _send(self, method: str, url: str, *, ok_404: bool = False, kind: str = "lookups",
              **kwargs: Any) -> Optional[requests.Response]:
        """One request (its retries included); `kind` is what it is for, counted apart: lookups (every read),
        creates, updates, links."""
        if "json" in kwargs:
            kwargs["data"] = orjson.dumps(kwargs.pop("json"))
            kwargs.setdefault("headers", {})["Content-Type"] = "application/json"
        response = self.transport.send(method, url, headers_factory=self._headers, kind=kind, **kwargs)
        if ok_404 and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ipaas_error_from_response(response)
        return response

    # -- records -----------------------------------------------------------------------------

    def _endpoint(self, model: str) -> tuple[str, str, str, str]:
        try:
            return ENDPOINTS[model]
        except KeyError:
            raise ValueError(f"unknown iPaaS.com model {model!r}; known: {', '.join(ENDPOINTS)}") from None

    def _path(self, template: str, record_id: Any = None, parent_id: Any = None) -> str:
        if "{parent}" in template and parent_id is None:
            raise ValueError(f"{template} needs the parent's iPaaS id")
        return template.format(id=quote(str(record_id), safe=""), parent=quote(str(parent_id), safe=""))

    def create(self, model: str, record: Mapping[str, Any], *, parent_id: Any = None) -> dict[str, Any]:
        """POST a new record, never re-sent once it may have arrived: see errors.outcome_unclear."""
        domain, create, _, _ = self._endpoint(model)
        return self._send("POST", self._url(domain, self._path(create, parent_id=parent_id)), json=dict(record),
                          kind="creates").json()

    def get(self, model: str, record_id: Any, *, parent_id: Any = None) -> Optional[dict[str, Any]]:
        domain, _, item, _ = self._endpoint(model)
        response = self._send("GET", self._url(domain, self._path(item, record_id, parent_id)), ok_404=True)
        return response.json() if response is not None else None

    def replace(self, model: str, record_id: Any, record: Mapping[str, Any], *, parent_id: Any = None) -> dict[str, Any]:
        """PUT replaces the whole record: callers send complete records (merged with the current one)."""
        domain, _, item, _ = self._endpoint(model)
        response = self._send("PUT", self._url(domain, self._path(item, record_id, parent_id)), json=dict(record),
                              kind="updates")
        return response.json() if response.content else dict(record)

    def iter_pages(
        self, model: str, *, page_size: int = 100, filters: Optional[Mapping[str, str]] = None, parent_id: Any = None
    ) -> Iterator[list[dict]]:
        domain, _, _, listing = self._endpoint(model)
        listing = self._path(listing, parent_id=parent_id)
        page = 1
        while True:
            params: dict[str, Any] = {"pageNumber": page, "pageSize": page_size}
            if filters:
                params.update({"action": "equals", **filters})
            response = self._send("GET", self._url(domain, listing), params=params)
            records = response.json() or []
            yield records
            paging = _pagination(response)
            # Page by the counts: what next_Page holds ("Yes", a number, a URL) is not documented.
            if not records or page >= int(paging.get("total_Pages") or page):
                return
            page += 1

    def count(self, model: str) -> Optional[int]:
        """How many records the model holds (one request: a page of one, and its X-Pagination total_Count);
        None when the answer does not say."""
        domain, _, _, listing = self._endpoint(model)
        response = self._send("GET", self._url(domain, listing), params={"pageNumber": 1, "pageSize": 1})
        total = _pagination(response).get("total_Count")
        try:
            return int(total)
        except (TypeError, ValueError):
            return None

    # -- external ids ------------------------------------------------------------------------

    def lookup_internal_id(self, table: str, external_id: str) -> Optional[str]:
        """The iPaaS id linked to an external id, or None when not linked (a 404 means "not linked")."""
        domain = _domain_for(table)
        if set(external_id) <= SAFE_EXTERNAL_ID:
            path = f"External/LookupSpaceport/{quote(self.system_id)}/{quote(table)}/{quote(external_id)}"
            response = self._send("GET", self._url(domain, path), ok_404=True)
        else:
            body = {"table_name": table, "system_id": self.system_id, "external_id": external_id}
            # A read sent as POST (the external id does not fit in a path): re-sending it is harmless.
            response = self._send(
                "POST", self._url(domain, "External/LookupSpecial"), json=body, ok_404=True, idempotent=True
            )
        if response is None:
            return None
        value = _lookup_value(response)
        if not value or value.upper().startswith("DELETED:"):
            return None
        return value

    def lookup_external_id(self, table: str, internal_id: Any) -> Optional[str]:
        """The external id (BC key) linked to an iPaaS id, or None when not linked or deleted."""
        path = f"External/LookupExternal/{quote(str(internal_id), safe='')}/{quote(self.system_id)}/{quote(table)}"
        response = self._send("GET", self._url(_domain_for(table), path), ok_404=True)
        if response is None:
            return None
        value = _lookup_value(response)
        if not value or value.upper().startswith("DELETED:"):
            return None
        return value

    def link(self, table: str, external_id: str, internal_id: Any) -> None:
        body = {"table_name": table, "system_id": self.system_id, "external_id": external_id, "internal_id": str(internal_id)}
        # Sets the link to this value: sending it twice leaves the same link.
        self._send("POST", self._url(_domain_for(table), "External/UpdateExternalId"), json=body, idempotent=True,
                   kind="links")

    def close(self) -> None:
        self.session.close()
        self.throttle.close()


def _domain_for(table: str) -> str:
    try:
        return TABLE_DOMAINS[table.lower()]
    except KeyError:
        raise ValueError(f"unknown iPaaS.com external-id table {table!r}; known: {', '.join(TABLE_DOMAINS)}") from None


def _pagination(response: requests.Response) -> dict[str, Any]:
    try:
        value = orjson.loads(response.headers.get("X-Pagination", "{}"))
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _lookup_value(response: requests.Response) -> Optional[str]:
    text = response.text.strip()
    try:
        value = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        value = text
    if isinstance(value, dict):
        value = value.get("id") or value.get("internal_id") or value.get("external_id")
    return None if value is None else str(value)


__all__ = ["IpaasClient", "IpaasError", "ENDPOINTS"]

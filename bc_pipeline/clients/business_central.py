"""Business Central OData V4 web services: streamed page reads, ETag-guarded writes, $batch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence
from urllib.parse import urlsplit

import orjson
import requests

from bc_pipeline.clients import odata
from bc_pipeline.clients.auth import shared_token_provider
from bc_pipeline.clients.errors import BusinessCentralError, UntrustedNextLinkError, bc_error_from_response
from bc_pipeline.clients.throttle import throttle_for, throttle_key
from bc_pipeline.clients.transport import ThrottledTransport, TrafficCounter, new_session
from bc_pipeline.settings import SubscriptionSettings

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 20_000  # BC online's fixed server page size; asking for more is a 413
MAX_BATCH_OPERATIONS = 100


@dataclass(frozen=True)
class Page:
    """One server-driven page: its records, its size on the wire, and where the next one is."""

    records: list[dict[str, Any]]
    bytes: int
    next_link: Optional[str]


class BusinessCentralClient:
    """A thin, typed client for the published web services of one company."""

    def __init__(
        self,
        settings: SubscriptionSettings,
        *,
        counter: Optional[TrafficCounter] = None,
        page_size: int = 5_000,
    ):
        settings.require_bc()
        self.settings = settings
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self.session = new_session(settings.verify, pool_size=max(settings.concurrent_connections, 2))
        self.tokens = shared_token_provider(settings)
        self.throttle = throttle_for(
            settings,
            throttle_key("business-central", settings.api_url, settings.tenant_id or "", settings.client_id or ""),
            limit=settings.bc_throttle_limit,
            seconds=settings.bc_throttle_seconds,
            concurrency=settings.concurrent_connections,
        )
        self.transport = ThrottledTransport("Business Central", self.session, self.throttle, counter=counter)

    # -- URLs --------------------------------------------------------------------------------

    @property
    def odata_root(self) -> str:
        s = self.settings
        return f"{s.api_url}/v2.0/{s.tenant_id}/{s.environment}/ODataV4"

    @property
    def company_root(self) -> str:
        return f"{self.odata_root}/{odata.company_segment(self.settings.company_name)}"

    def published(self, service: str) -> str:
        """The Service Name the user published a catalog service under (BC_SERVICE_NAMES, else the guide's)."""
        return self.settings.published_service(service)

    def service_url(self, service: str) -> str:
        return f"{self.company_root}/{odata.field_name(self.published(service))}"

    @property
    def counter(self) -> TrafficCounter:
        return self.transport.counter

    # -- plumbing ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", **self.tokens.authorization_header()}

    def _send(
        self, method: str, url: str, *, service: Optional[str] = None, record: bool = False, **kwargs: Any
    ) -> requests.Response:
        response = self.transport.send(
            method, url, headers_factory=self._headers, on_unauthorized=self.tokens.invalidate, **kwargs
        )
        if response.status_code >= 400:
            raise bc_error_from_response(response, service, record=record,
                                         published=self.published(service) if service else None)
        return response

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request to any BC URL of this tenant (the API v2.0 client's), throttled, retried, errors typed."""
        return self._send(method, url, **kwargs)

    # -- reading -----------------------------------------------------------------------------

    def iter_pages(
        self,
        service: str,
        *,
        select: Optional[Sequence[str]] = None,
        filter: Optional[str] = None,
        page_size: Optional[int] = None,
        read_only: bool = True,
    ) -> Iterator[Page]:
        """Every page of a service, one at a time: memory holds one page, never the table."""
        params: dict[str, str] = {}
        if select:
            params["$select"] = ",".join(odata.field_name(f) for f in select)
        if filter:
            params["$filter"] = filter
        size = min(page_size or self.page_size, MAX_PAGE_SIZE)
        headers = {"Prefer": f"odata.maxpagesize={size}"}
        if read_only:
            headers["Data-Access-Intent"] = "ReadOnly"
        url: Optional[str] = self.service_url(service)
        first = True
        while url:
            response = self._send("GET", url, service=service, params=params if first else None, headers=headers)
            first = False
            body = orjson.loads(response.content)
            # The next link is followed verbatim: it carries $skiptoken (and maybe aid) the server expects back.
            url = self._next_link(service, body.get("@odata.nextLink"))
            yield Page(records=body.get("value", []), bytes=len(response.content), next_link=url)

    def _next_link(self, service: str, link: Optional[str]) -> Optional[str]:
        """The next link, if it points at the API URL: the access token is sent nowhere else."""
        if link is None or _origin(link) == _origin(self.settings.api_url):
            return link
        raise UntrustedNextLinkError(service, link, self.settings.api_url)

    def read(self, service: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self.iter_pages(service, **kwargs):
            yield from page.records

    def get(self, service: str, keys: Mapping[str, Any], *, select: Optional[Sequence[str]] = None) -> dict[str, Any]:
        params = {"$select": ",".join(odata.field_name(f) for f in select)} if select else None
        response = self._send(
            "GET", self.service_url(service) + odata.key_segment(keys), service=service, record=True, params=params
        )
        return orjson.loads(response.content)

    def companies(self) -> list[dict[str, Any]]:
        response = self._send("GET", f"{self.odata_root}/Company")
        return orjson.loads(response.content).get("value", [])

    def metadata(self) -> str:
        response = self._send("GET", f"{self.odata_root}/$metadata", headers={"Accept": "application/xml"})
        return response.text

    # -- writing -----------------------------------------------------------------------------

    def create(self, service: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new record, never re-sent once it may have arrived: see errors.outcome_unclear."""
        response = self._send(
            "POST", self.service_url(service), service=service, data=orjson.dumps(dict(body)),
            headers={"Content-Type": "application/json"},
        )
        return orjson.loads(response.content)

    def update(self, service: str, keys: Mapping[str, Any], changes: Mapping[str, Any], *, etag: str) -> dict[str, Any]:
        """PATCH with the record's ETag: a stale one raises EntityChangedError (409 Request_EntityChanged)."""
        if not etag:
            raise ValueError("an update needs the record's ETag; read the record first (a blind '*' is never sent implicitly)")
        response = self._send(
            "PATCH", self.service_url(service) + odata.key_segment(keys), service=service, record=True,
            data=orjson.dumps(dict(changes)), headers={"Content-Type": "application/json", "If-Match": etag},
            # Re-sending is harmless: once applied, the ETag is stale and the re-send gets 409, never a second write.
            idempotent=True,
        )
        return orjson.loads(response.content)

    def delete(self, service: str, keys: Mapping[str, Any], *, etag: str) -> None:
        if not etag:
            raise ValueError("a delete needs the record's ETag")
        self._send(
            "DELETE", self.service_url(service) + odata.key_segment(keys), service=service, record=True,
            headers={"If-Match": etag},
        )

    def batch(self, operations: Sequence[Mapping[str, Any]], *, atomic: bool = False) -> list[dict[str, Any]]:
        """Send up to 100 operations in one `$batch`; answers in the order given (BC's JSON batch format)."""
        if len(operations) > MAX_BATCH_OPERATIONS:
            raise ValueError(f"a $batch holds at most {MAX_BATCH_OPERATIONS} operations, got {len(operations)}")
        requests_ = []
        for index, op in enumerate(operations):
            item = {"id": str(op.get("id", index + 1)), "method": op["method"], "url": op["url"],
                    "headers": {"Content-Type": "application/json", **op.get("headers", {})}}
            if op.get("body") is not None:
                item["body"] = op["body"]
            requests_.append(item)
        headers = {"Content-Type": "application/json"}
        if atomic:
            headers["Isolation"] = "snapshot"
        reads_only = all(str(op["method"]).upper() == "GET" for op in operations)
        response = self._send(
            "POST", f"{self.odata_root}/$batch", data=orjson.dumps({"requests": requests_}), headers=headers,
            idempotent=reads_only,
        )
        answers = orjson.loads(response.content).get("responses", [])
        order = {r["id"]: i for i, r in enumerate(requests_)}
        return sorted(answers, key=lambda a: order.get(str(a.get("id")), len(order)))

    def close(self) -> None:
        self.session.close()
        self.throttle.close()


def _origin(url: str) -> tuple[str, Optional[str], Optional[int]]:
    """(scheme, host, port), the port filled in from the scheme; a malformed port matches nothing."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        port = -1
    return parts.scheme, parts.hostname, port


__all__ = ["BusinessCentralClient", "BusinessCentralError", "Page"]

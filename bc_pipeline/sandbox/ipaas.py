"""The iPaaS.com API stand-in of the local sandbox: ``build_ipaas_app(config)`` -> a Starlette app.

It answers ``{domain}/v2/{endpoint}`` the way /work/shared/reference/ipaas.md describes iPaaS.com:
Bearer auth, ``X-Pagination`` paging, full-replace PUT, external-id links (``DELETED:`` after a
delete), duplicate-name and empty-custom-field rejections, a sliding-window rate limit with 429 +
``Retry-After``. Every path it serves is in ENDPOINTS below; a row marked ASSUMED is a path no
public source confirmed, so a tenant that differs edits that one row (and the client's copy).
Test hooks live under ``/_sandbox/ipaas/`` (see ``ipaas_admin.py``); records are in memory
(``ipaas_store.py``).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote, unquote

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bc_pipeline.sandbox.ipaas_admin import handle_admin, populate
from bc_pipeline.sandbox.ipaas_handlers import Handlers, json_response
from bc_pipeline.sandbox.ipaas_store import ApiError, Store, model_named


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {id}/{parent_id}: integers; {domain}: customers|products|transactions; {rest}: anything
    action: str
    model: Optional[str] = None
    parent: Optional[str] = None  # the record kind {parent_id} must name
    assumed: bool = False
    public: bool = False  # no Bearer API token needed


ASSUMED = True
E = Endpoint
# fmt: off
ENDPOINTS: tuple[Endpoint, ...] = (
    # --- customers ---------------------------------------------------------------------------------------
    E("POST",   "customers/v2/Customer",                                "create", "Customer", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/{id}",                           "read",   "Customer"),
    E("PUT",    "customers/v2/Customer/{id}",                           "update", "Customer"),
    E("DELETE", "customers/v2/Customer/{id}",                           "delete", "Customer", assumed=ASSUMED),
    E("GET",    "customers/v2/Customers",                               "list",   "Customer"),
    E("POST",   "customers/v2/Customer/Company",                        "create", "Company", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/Company/{id}",                   "read",   "Company"),
    E("PUT",    "customers/v2/Customer/Company/{id}",                   "update", "Company"),
    E("DELETE", "customers/v2/Customer/Company/{id}",                   "delete", "Company", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/Companies",                      "list",   "Company"),
    E("POST",   "customers/v2/Customer/Category",                       "create", "Customer Category", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/Category/{id}",                  "read",   "Customer Category"),
    E("PUT",    "customers/v2/Customer/Category/{id}",                  "update", "Customer Category"),
    E("DELETE", "customers/v2/Customer/Category/{id}",                  "delete", "Customer Category", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/Categories",                     "list",   "Customer Category", assumed=ASSUMED),
    E("POST",   "customers/v2/Customer/{parent_id}/Address",            "create", "Address", "Customer", ASSUMED),
    E("GET",    "customers/v2/Customer/{parent_id}/Address/{id}",       "read",   "Address", "Customer", ASSUMED),
    E("PUT",    "customers/v2/Customer/{parent_id}/Address/{id}",       "update", "Address", "Customer", ASSUMED),
    E("DELETE", "customers/v2/Customer/{parent_id}/Address/{id}",       "delete", "Address", "Customer", ASSUMED),
    E("GET",    "customers/v2/Customer/{parent_id}/Addresses",          "list",   "Address", "Customer", ASSUMED),
    E("POST",   "customers/v2/Customer/Company/{parent_id}/Address",    "create", "Address", "Company", ASSUMED),
    E("GET",    "customers/v2/Customer/Company/{parent_id}/Address/{id}", "read", "Address", "Company", ASSUMED),
    E("PUT",    "customers/v2/Customer/Company/{parent_id}/Address/{id}", "update", "Address", "Company", ASSUMED),
    E("DELETE", "customers/v2/Customer/Company/{parent_id}/Address/{id}", "delete", "Address", "Company", ASSUMED),
    E("GET",    "customers/v2/Customer/Company/{parent_id}/Addresses",  "list",   "Address", "Company", ASSUMED),
    # --- products ----------------------------------------------------------------------------------------
    E("POST",   "products/v2/Catalog/Product",                          "create", "Product"),
    E("GET",    "products/v2/Catalog/Product/{id}",                     "read",   "Product"),
    E("PUT",    "products/v2/Catalog/Product/{id}",                     "update", "Product"),
    E("DELETE", "products/v2/Catalog/Product/{id}",                     "delete", "Product", assumed=ASSUMED),
    E("GET",    "products/v2/Catalog/Products",                         "list",   "Product"),
    E("POST",   "products/v2/Catalog/Product/Inventory",                "create", "Product Inventory"),
    E("GET",    "products/v2/Catalog/Product/Inventory/{id}",           "read",   "Product Inventory"),
    E("PUT",    "products/v2/Catalog/Product/Inventory/{id}",           "update", "Product Inventory"),
    E("DELETE", "products/v2/Catalog/Product/Inventory/{id}",           "delete", "Product Inventory", assumed=ASSUMED),
    E("GET",    "products/v2/Catalog/Product/Inventories",              "list",   "Product Inventory"),
    E("POST",   "products/v2/Catalog/Location",                         "create", "Location"),
    E("GET",    "products/v2/Catalog/Location/{id}",                    "read",   "Location"),
    E("PUT",    "products/v2/Catalog/Location/{id}",                    "update", "Location"),
    E("DELETE", "products/v2/Catalog/Location/{id}",                    "delete", "Location", assumed=ASSUMED),
    E("GET",    "products/v2/Catalog/Locations",                        "list",   "Location"),
    # --- transactions ------------------------------------------------------------------------------------
    E("POST",   "transactions/v2/ShippingMethod",                       "create", "Shipping Method", assumed=ASSUMED),
    E("GET",    "transactions/v2/ShippingMethod/{id}",                  "read",   "Shipping Method", assumed=ASSUMED),
    E("PUT",    "transactions/v2/ShippingMethod/{id}",                  "update", "Shipping Method", assumed=ASSUMED),
    E("DELETE", "transactions/v2/ShippingMethod/{id}",                  "delete", "Shipping Method", assumed=ASSUMED),
    E("GET",    "transactions/v2/ShippingMethods",                      "list",   "Shipping Method"),
    E("POST",   "transactions/v2/Transaction",                          "create", "Transaction"),
    E("GET",    "transactions/v2/Transaction/{id}",                     "read",   "Transaction"),
    E("PUT",    "transactions/v2/Transaction/{id}",                     "update", "Transaction"),
    E("DELETE", "transactions/v2/Transaction/{id}",                     "delete", "Transaction", assumed=ASSUMED),
    E("GET",    "transactions/v2/Transactions",                         "list",   "Transaction"),
    E("POST",   "transactions/v2/Transaction/{parent_id}/Tracking",     "child_create", "Transaction Tracking", "Transaction", ASSUMED),
    E("GET",    "transactions/v2/Transaction/{parent_id}/Tracking/{id}", "child_read", "Transaction Tracking", "Transaction", ASSUMED),
    E("PUT",    "transactions/v2/Transaction/{parent_id}/Tracking/{id}", "child_update", "Transaction Tracking", "Transaction", ASSUMED),
    E("DELETE", "transactions/v2/Transaction/{parent_id}/Tracking/{id}", "child_delete", "Transaction Tracking", "Transaction", ASSUMED),
    E("GET",    "transactions/v2/Transaction/{parent_id}/Trackings",    "child_list", "Transaction Tracking", "Transaction", ASSUMED),
    # --- external ids and custom fields, on every data domain -------------------------------------------
    E("GET",    "{domain}/v2/External/LookupSpaceport/{system_id}/{table}/{external_id}", "lookup_spaceport", "External"),
    E("GET",    "{domain}/v2/External/LookupExternal/{internal_id}/{system_id}/{table}",  "lookup_external", "External"),
    E("POST",   "{domain}/v2/External/LookupSpecial",                   "lookup_special", "External"),
    E("POST",   "{domain}/v2/External/UpdateExternalId",                "update_external_id", "External"),
    E("POST",   "{domain}/v2/CustomField/{api_name}",                   "custom_field", "Custom Field"),
    # --- sign-in and the inbound-webhook intake ---------------------------------------------------------
    E("POST",   "sso/v2/Auth/Login",                                    "login", "Auth", public=True),
    E("POST",   "sso/v2/Auth/Refresh",                                  "login", "Auth", public=True),
    E("POST",   "hookapi/{rest}",                                       "hook", "Hook", assumed=ASSUMED, public=True),
)
# fmt: on

DEFAULTS: dict[str, Any] = {
    "api_token": "sandbox-ipaas-token", "system_id": "1001", "webhook_api_key": "sandbox-ipaas-webhook-key",
    "rate_limit": 500, "rate_window_seconds": 60.0, "default_page_size": 100, "max_page_size": 1000,
    "seed": 0, "scale": 1.0, "preseed": 0, "preload": None,
}  # other keys (the launcher passes state_dir) are ignored
_PARAM = {"id": r"\d+", "parent_id": r"\d+", "internal_id": r"[^/]+", "domain": "customers|products|transactions",
          "rest": r".+"}


def _compile(template: str) -> re.Pattern:
    out = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m[1]}>{_PARAM.get(m[1], '[^/]+')})",
                 re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
    return re.compile(f"^{out}$", re.IGNORECASE)


ROUTES: list[tuple[re.Pattern, dict[str, Endpoint]]] = []
for _ep in ENDPOINTS:
    for _pattern, _methods in ROUTES:
        if _pattern.pattern == _compile(_ep.path).pattern:
            _methods[_ep.method] = _ep
            break
    else:
        ROUTES.append((_compile(_ep.path), {_ep.method: _ep}))


def error_body(e: ApiError, correlation_id: str) -> dict:
    return {"errors": [{"message": e.message, "field": e.field}], "status": e.status, "correlation_id": correlation_id}


class IpaasSandbox(Handlers):
    """The stand-in's state: the store plus the HTTP-level behaviour (auth, limits, faults, log)."""

    def __init__(self, config: Optional[dict] = None):
        self.config = {**DEFAULTS, **{k: v for k, v in (config or {}).items() if v is not None}}
        self.reset()

    def reset(self) -> None:
        c = self.config
        self.store = Store(str(c["system_id"]))
        self.window: deque[float] = deque()
        self.peak = 0
        self.faults: list[dict] = []
        self.rejects: list[dict] = []
        self.log: list[dict] = []
        self.hooks: list[dict] = []
        self.counts: dict[str, dict[str, int]] = {}
        self.by_status: dict[str, int] = {}
        self.rate_limited = 0
        self.faults_sent = 0
        populate(self.store, c)

    # ---- the request pipeline -----------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        correlation = request.headers.get("x-correlation-id") or uuid.uuid4().hex
        raw = request.scope.get("raw_path")
        path = (raw.decode("latin-1").split("?", 1)[0] if raw else quote(request.url.path)).lstrip("/")
        if path.lower().startswith("_sandbox/ipaas/") or path.lower() == "_sandbox/ipaas":
            try:
                response = await handle_admin(self, request, path[len("_sandbox/ipaas"):].strip("/"))
            except ApiError as e:
                response = json_response(error_body(e, correlation), e.status, e.headers)
            response.headers["X-Correlation-Id"] = correlation
            return response
        started, ep = time.time(), None
        try:
            ep, params = self._route(request.method, path)
            response = await self._api(request, ep, params)
        except ApiError as e:
            response = json_response(error_body(e, correlation), e.status, e.headers)
        except Exception as e:  # a bug in the stand-in: answer 500 JSON like the real service would
            failure = ApiError(500, f"sandbox internal error: {type(e).__name__}: {e}")
            response = json_response(error_body(failure, correlation), 500)
        response.headers["X-Correlation-Id"] = correlation
        self._record(request, path, ep, response.status_code, started, correlation)
        return response

    def _route(self, method: str, path: str) -> tuple[Optional[Endpoint], dict]:
        for pattern, methods in ROUTES:
            m = pattern.match(path)
            if m:
                if method not in methods:
                    raise ApiError(405, f"{method} is not allowed on /{path}; allowed: {', '.join(methods)}")
                return methods[method], {k: unquote(v) for k, v in m.groupdict().items()}
        return None, {}

    async def _api(self, request: Request, ep: Optional[Endpoint], params: dict) -> Response:
        self._fault(request)
        if ep is None or not ep.public:
            self._authenticate(request, self.config["api_token"])
        self._admit()
        if ep is None:
            raise ApiError(404, f"no iPaaS.com endpoint at {request.url.path}")
        body = None
        if request.method in ("POST", "PUT"):
            raw = await request.body()
            try:
                body = orjson.loads(raw) if raw.strip() else {}
            except orjson.JSONDecodeError:
                raise ApiError(400, "the request body is not valid JSON") from None
        return getattr(self, "do_" + ep.action)(request, ep, params, body)

    def _authenticate(self, request: Request, expected: str) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != str(expected):
            raise ApiError(401, "missing or invalid Bearer token", "Authorization",
                           {"WWW-Authenticate": 'Bearer realm="iPaaS.com"'})

    def _admit(self) -> None:
        """Sliding-window limit: at most rate_limit calls in any rate_window_seconds."""
        limit, span = int(self.config["rate_limit"] or 0), float(self.config["rate_window_seconds"])
        if limit <= 0:
            return
        now, w = time.monotonic(), self.window
        while w and w[0] <= now - span:
            w.popleft()
        if len(w) >= limit:
            self.rate_limited += 1
            retry = max(1, math.ceil(w[0] + span - now))
            raise ApiError(429, f"rate limit exceeded: {limit} calls per {span:g} seconds; retry after {retry} s",
                           None, {"Retry-After": str(retry)})
        w.append(now)
        self.peak = max(self.peak, len(w))

    def _fault(self, request: Request) -> None:
        path = "/" + request.url.path.lstrip("/")
        for f in self.faults:
            if f["remaining"] == 0 or not path.lower().startswith(f["path_prefix"].lower()):
                continue
            if f["method"] and f["method"] != request.method:
                continue
            if f["remaining"] > 0:
                f["remaining"] -= 1
            self.faults_sent += 1
            headers = {"Retry-After": str(f["retry_after"])} if f["retry_after"] is not None else None
            raise ApiError(f["status"], f["message"], None, headers)

    def _record(self, request: Request, path: str, ep: Optional[Endpoint], status: int, started: float, cid: str) -> None:
        label = ep.model if ep and ep.model else "unknown"
        per = self.counts.setdefault(label, {})
        per[request.method] = per.get(request.method, 0) + 1
        self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1
        self.log.append({"seq": len(self.log) + 1, "method": request.method, "path": "/" + unquote(path),
                         "query": request.url.query, "status": status, "model": label, "time": started,
                         "duration_ms": round((time.time() - started) * 1000, 3), "correlation_id": cid})

    def _reject(self, model: str, body: Any) -> None:
        for rule in self.rejects:
            if rule["model"].lower() == model.lower() and _matches(body, rule["field"].split("."), rule["equals"]):
                raise ApiError(400, rule["message"], rule["field"])


def _matches(value: Any, parts: list[str], expected: Any) -> bool:
    if isinstance(value, list):
        return any(_matches(v, parts, expected) for v in value)
    if not parts:
        return value is not None and str(value) == str(expected)
    return isinstance(value, dict) and _matches(value.get(parts[0]), parts[1:], expected)


def build_ipaas_app(config: Optional[dict] = None) -> Starlette:
    """The iPaaS.com stand-in as an ASGI app; ``app.state.ipaas`` is its IpaasSandbox."""
    sandbox = IpaasSandbox(config)

    async def endpoint(request: Request) -> Response:
        return await sandbox.handle(request)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])])
    app.state.ipaas = sandbox
    return app


__all__ = ["ENDPOINTS", "Endpoint", "IpaasSandbox", "build_ipaas_app", "model_named"]

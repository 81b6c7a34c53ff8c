"""Admin endpoints under /_sandbox/ (no auth, loopback clients only): health, request log, records, faults, stats.

  GET    /_sandbox/health                      {"status": "ok", "records": {...}, "services": [...], ...}
  GET    /_sandbox/requests?since=N            {"requests": [{seq, time, method, path, status, client_id,
                                                service, target, correlation_id, duration_ms}], "last_seq"}
  GET    /_sandbox/bc/records/{Service}        {"value": [records]}; optional ?$filter=... and ?key=...
  POST   /_sandbox/bc/records/{Service}        edit as another user: {"key": ..., "changes": {...}};
                                               {"key": ..., "delete": true}; {"record": {...}} inserts
  GET    /_sandbox/bc/counts/{Service}?by=Field  {"count"} of the records (optional ?$filter=...); with by:
                                               "distinct", "missing" and "duplicates" {value: n} of that field
  GET    /_sandbox/faults                      {"faults": [...], "published": [...], "denied_clients": [...]}
  POST   /_sandbox/faults                      {"faults": [rule or action, ...]} or one rule/action (faults.py)
  DELETE /_sandbox/faults                      clear rules, republish the configured services, undeny clients
  GET    /_sandbox/stats                       counts per service/status, peak concurrency per client, 429s
  GET    /_sandbox/bc/webhooks                 API webhook subscriptions, pending changes, deliveries (webhooks.py)
  POST   /_sandbox/bc/webhooks/expire          {"subscriptionId": ...}: its 3 days are over now
  POST   /_sandbox/reset                       reseed the data and clear faults, log and counters
"""

from __future__ import annotations

import os
from typing import Any, Optional
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import odata
from .bc_errors import BCError
from .counts import tally
from .faults import ACTIONS, FaultSpecError

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def handle(app, scope, receive, send, path: str) -> None:
    client = (scope.get("client") or ("", 0))[0]
    if client not in LOOPBACK:
        await _error(403, "the sandbox's admin endpoints answer loopback clients only")(scope, receive, send)
        return
    request = Request(scope, receive)
    try:
        response = await _route(app, request, path.split("?")[0])
    except BCError as exc:
        response = JSONResponse({"error": exc.message, "code": exc.code}, status_code=exc.status)
    except (FaultSpecError, ValueError, KeyError, TypeError) as exc:
        response = _error(400, f"{type(exc).__name__}: {exc}")
    await response(scope, receive, send)


async def _route(app, request: Request, path: str) -> Response:
    state = app.state
    method = request.method
    parts = [p for p in path.split("/") if p][1:]  # drop "_sandbox"
    if parts == ["health"] and method == "GET":
        return OrjsonResponse({"status": "ok", "pid": os.getpid(), "records": state.store.counts(),
                               "services": sorted(state.published), "company": state.config.company_name,
                               "environment": state.config.environment, "tenant_id": state.config.tenant_id,
                               "ipaas": app.ipaas_app is not None, "seed_seconds": round(state.seed_seconds, 3)})
    if parts == ["requests"] and method == "GET":
        since = int(request.query_params.get("since", "0"))
        return OrjsonResponse({"requests": state.requests_since(since), "last_seq": state.seq})
    if parts == ["stats"] and method == "GET":
        return OrjsonResponse(state.stats())
    if parts == ["reset"] and method == "POST":
        state.reset()
        return OrjsonResponse({"status": "ok", "records": state.store.counts()})
    if parts == ["faults"]:
        if method == "GET":
            return OrjsonResponse(_faults_view(state))
        if method == "DELETE":
            state.faults.clear()
            state.published = set(state.config.published_services)
            state.denied_clients = {r.client_id for r in state.config.clients().values() if not r.bc_permission}
            return OrjsonResponse(_faults_view(state))
        if method == "POST":
            body = orjson.loads(await request.body() or b"{}")
            specs = body.get("faults", [body]) if isinstance(body, dict) else body
            if not isinstance(specs, list):
                raise ValueError("expected {'faults': [...]} or a fault object")
            for spec in specs:
                _apply(state, spec)
            return OrjsonResponse(_faults_view(state))
    if parts == ["bc", "webhooks"] and method == "GET":
        return OrjsonResponse(state.webhooks.view())
    if parts == ["bc", "webhooks", "expire"] and method == "POST":
        # Time passing: the subscription's 3 days are over (BC then stops notifying and forgets it).
        body = orjson.loads(await request.body() or b"{}")
        sub = state.webhooks.subscriptions.get(str(body.get("subscriptionId")))
        if sub is None:
            return _error(404, f"no subscription {body.get('subscriptionId')!r}")
        sub.expires = 0
        state.webhooks.purge_expired()
        return OrjsonResponse(state.webhooks.view())
    if len(parts) == 3 and parts[:2] in (["bc", "records"], ["bc", "counts"]):
        service = state.services.get(parts[2])
        if service is None:
            return _error(404, f"unknown service {parts[2]!r}; known: {', '.join(state.services)}")
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if method == "GET" and parts[1] == "counts":
            return _counts(state, service, params)
        if method == "GET":
            return _records(state, service, params)
        if method == "POST":
            body = orjson.loads(await request.body() or b"{}")
            return _edit(state, service, body)
    return _error(404, f"no admin endpoint {method} {path}")


def _faults_view(state) -> dict[str, Any]:
    return {"faults": state.faults.describe(), "published": sorted(state.published),
            "denied_clients": sorted(state.denied_clients)}


def _apply(state, spec: dict[str, Any]) -> None:
    if not isinstance(spec, dict):
        raise FaultSpecError(f"a fault must be an object, got {spec!r}")
    action = spec.get("action")
    if action is None:
        state.faults.add(spec)
        return
    if action not in ACTIONS:
        raise FaultSpecError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if action == "expire_tokens":
        state.tokens.expire_all()
    elif action in ("unpublish", "publish"):
        service = spec.get("service")
        if service not in state.services:
            raise FaultSpecError(f"unknown service {service!r}")
        (state.published.discard if action == "unpublish" else state.published.add)(service)
    elif action in ("deny_client", "allow_client"):
        client_id = spec.get("client_id") or state.config.client_id
        (state.denied_clients.add if action == "deny_client" else state.denied_clients.discard)(client_id)


def _parse_key(service, key: Any) -> tuple:
    if isinstance(key, dict):
        return tuple(key[k] for k in service.keys)
    if isinstance(key, (list, tuple)):
        key = tuple(key)
        if service.name == "SalesOrders" and len(key) == 1:
            return ("Order",) + key
        if service.name == "SalesOrderLines" and len(key) == 2:
            return ("Order",) + key
        return key
    if isinstance(key, str):
        if "=" in key:  # Document_Type='Order',No='101005'
            return odata.parse_key_segment(key.strip("()"), service)
        if service.name == "SalesOrders":
            return ("Order", key)
        if len(service.keys) == 1:
            return (key,)
    raise ValueError(f"cannot read key {key!r} for {service.name} (keys: {', '.join(service.keys)})")


def _selected(state, service, params: dict[str, str]) -> list[dict[str, Any]]:
    """The records ?key= names, or those ?$filter= keeps (all without either)."""
    table = state.store.tables[service.name]
    predicate = odata.compile_filter(params.get("$filter"), service) if params.get("$filter") else None
    if "key" in params:
        key = _parse_key(service, params["key"])
        row = table.get(key)
        rows = [(key, row)] if row is not None else []
    else:
        rows = [(k, r) for k, r in table.iter_from(None) if predicate is None or predicate(r.values)]
    return [table.record(k, r) for k, r in rows]


def _records(state, service, params: dict[str, str]) -> Response:
    records = _selected(state, service, params)
    return OrjsonResponse({"service": service.name, "count": len(records), "value": records})


def _counts(state, service, params: dict[str, str]) -> Response:
    by = params.get("by") or None
    if by is not None and by not in service.index:
        raise ValueError(f"unknown field {by!r} on {service.name}")
    return OrjsonResponse({"service": service.name, **tally(_selected(state, service, params), by)})


def _edit(state, service, body: dict[str, Any]) -> Response:
    from .bc_writes import admin_edit, coerce

    table = state.store.tables[service.name]
    if "record" in body:
        values = list(service.defaults)
        for name, value in body["record"].items():
            if name.startswith("@"):
                continue
            if name not in service.index:
                raise ValueError(f"unknown field {name!r} on {service.name}")
            values[service.index[name]] = coerce(service, name, value)
        key, row = table.insert(values)
        return OrjsonResponse({"status": "inserted", "record": table.record(key, row)})
    key = _parse_key(service, body.get("key"))
    if table.get(key) is None:
        return _error(404, f"no {service.name} record with key {list(key)}")
    if body.get("delete"):
        table.delete(key)
        return OrjsonResponse({"status": "deleted", "key": list(key)})
    changes: Optional[dict] = body.get("changes")
    if changes is None:
        changes = {}
    admin_edit(state, service, key, changes)
    return OrjsonResponse({"status": "edited", "record": table.record(key, table.get(key))})

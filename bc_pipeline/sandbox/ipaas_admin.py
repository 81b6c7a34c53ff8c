"""The iPaaS.com stand-in's test hooks under ``/_sandbox/ipaas/`` (no auth, not rate-limited, not logged).

| method | path | what |
|---|---|---|
| GET    | records/{model}               | every record of a model, as the API renders it (with its external_ids) |
| GET    | counts/{model}?by=field       | ``count``; with ``by`` (a field or ``external_id``) ``distinct``, ``missing``, ``duplicates`` |
| POST   | records/{model}               | create a record directly, as a user in the iPaaS.com UI would (201) |
| GET    | links                         | every external-id link (deleted ones too, with ``deleted: true``) |
| DELETE | links/{table}/{external_id}   | remove a link, as if unlinked on the iPaaS.com side |
| GET    | requests?since=N              | the API request log after sequence number N |
| GET    | stats                         | calls per model and method, statuses, 429s, peak calls in any rate window |
| GET    | faults                        | the active fault and reject rules |
| POST   | faults                        | ``{"status", "count"?, "retry_after"?, "path_prefix"?, "method"?, "message"?}`` or ``{"reject": {...}}`` |
| DELETE | faults                        | lift every rule (``?kind=fault`` or ``?kind=reject`` lifts one kind) |
| GET    | hooks                         | bodies POSTed to the hookapi intake |
| POST   | reset                         | forget everything and re-apply the preload |
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Optional
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bc_pipeline.sandbox.counts import tally
from bc_pipeline.sandbox.ipaas_store import MODELS, TABLES, ApiError, Store, model_named

if TYPE_CHECKING:
    from bc_pipeline.sandbox.ipaas import IpaasSandbox

PRELOAD_ORDER = ("Customer Category", "Location", "Shipping Method", "Company", "Customer", "Address",
                 "Product", "Product Inventory", "Transaction")


def populate(store: Store, config: dict) -> None:
    """Pre-existing iPaaS.com records: ``preload`` ({model: [record, ...]}, records may carry
    ``external_ids``), then round(``preseed`` x ``scale``) unlinked companies, customers and products
    each, named from ``seed``. ``preseed`` defaults to 0: the pipeline loads into an empty iPaaS.com."""
    preload = config.get("preload") or {}
    unknown = [k for k in preload if k.lower() not in {m.lower() for m in PRELOAD_ORDER}]
    if unknown:
        raise ValueError(f"preload names unknown models {unknown}; known: {', '.join(PRELOAD_ORDER)}")
    for name in PRELOAD_ORDER:
        for rec in next((v for k, v in preload.items() if k.lower() == name.lower()), None) or []:
            try:
                store.create(name, rec)
            except ApiError as e:
                raise ValueError(f"preload {name} {rec!r}: {e.message}") from None
    rng = random.Random(config.get("seed") or 0)
    words = ("Alpine", "Harbor", "Cedar", "Summit", "Prairie", "Coastal", "Granite", "Willow", "Beacon", "Juniper")
    count = round(float(config.get("preseed") or 0) * float(config.get("scale") or 1))
    for i in range(1, count + 1):
        word = rng.choice(words)
        store.create("Company", {"name": f"{word} Trading {i:05d} (iPaaS only)", "email_address": f"sales{i:05d}@{word.lower()}.example"})
        store.create("Customer", {"first_name": word, "last_name": f"Shopper {i:05d}",
                                  "email_address": f"{word.lower()}.shopper{i:05d}@example.org"})
        store.create("Product", {"sku": f"IPAAS-{i:05d}", "name": f"{word} web-only item {i}", "type": "Physical",
                                 "tracking_method": "Tracked", "status": "Active", "default_price": rng.randint(1, 500)})


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def _body(request: Request):
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "the request body is not valid JSON") from None


def _fault_rule(body: dict) -> dict:
    status = body.get("status")
    if status not in (429, 500, 502, 503, 504):
        raise ApiError(400, "status must be one of 429, 500, 502, 503, 504", "status")
    count = int(body.get("count", 1))  # a negative count lasts until the rules are lifted
    prefix = "/" + str(body.get("path_prefix") or "").lstrip("/")
    default = {429: "Too many requests (sandbox fault)", 500: "Internal server error (sandbox fault)"}
    return {"status": status, "remaining": count, "retry_after": body.get("retry_after"), "path_prefix": prefix,
            "method": (body.get("method") or "").upper() or None,
            "message": body.get("message") or default.get(status, "Service unavailable (sandbox fault)")}


def _reject_rule(body: dict) -> dict:
    rule = body.get("reject")
    if not isinstance(rule, dict) or not all(rule.get(k) is not None for k in ("model", "field", "equals")):
        raise ApiError(400, 'reject needs {"model", "field", "equals", "message"?}', "reject")
    name = rule["model"]
    if name.lower() != "transaction tracking":
        name = model_named(name).name
    return {"model": name, "field": str(rule["field"]), "equals": rule["equals"],
            "message": rule.get("message") or f"{name} rejected by a sandbox rule: {rule['field']} = {rule['equals']}"}


def _counts(store: Store, name: str, by: Optional[str]) -> dict:
    if by is not None and by not in ("id", "external_id") + MODELS[name].fields:
        raise ApiError(400, f"unknown field {by!r} on {name}; count by a field or by external_id", "by")

    def external_id(record: dict) -> Optional[str]:
        return next((e["external_id"] for e in record["external_ids"]), None)

    return {"model": name, **tally(store.all(name), by, external_id if by == "external_id" else None)}


async def handle_admin(sandbox: "IpaasSandbox", request: Request, rest: str) -> Response:
    parts = [unquote(p) for p in rest.split("/")] if rest else []
    method, store = request.method, sandbox.store
    head = parts[0].lower() if parts else ""
    if head == "records" and len(parts) == 2:
        name = "Custom Field" if parts[1].lower() == "custom field" else model_named(parts[1]).name
        if method == "GET":
            return _json(store.custom_field_defs if name == "Custom Field" else store.all(name))
        if method == "POST" and name != "Custom Field":
            body = await _body(request)
            parent = body.get("customer_id") if name == "Address" else None
            return _json(store.create(name, body, int(parent) if parent is not None else None), 201)
    elif head == "counts" and method == "GET" and len(parts) == 2:
        return _json(_counts(store, model_named(parts[1]).name, request.query_params.get("by") or None))
    elif head == "links" and method == "GET" and len(parts) == 1:
        return _json(list(store.links.values()))
    elif head == "links" and method == "DELETE" and len(parts) >= 3:
        table = store.table(parts[1])
        gone = store.unlink(table, "/".join(parts[2:]))
        if not gone:
            raise ApiError(404, f"{table} {'/'.join(parts[2:])!r} is not linked")
        return _json({"deleted": gone})
    elif head == "requests" and method == "GET":
        since = int(request.query_params.get("since", 0))
        return _json(sandbox.log[since:] if since >= 0 else sandbox.log)
    elif head == "stats" and method == "GET":
        return _json({"total_requests": len(sandbox.log), "by_model": sandbox.counts, "by_status": sandbox.by_status,
                      "rate_limited": sandbox.rate_limited, "responses_429": sandbox.by_status.get("429", 0),
                      "faults_sent": sandbox.faults_sent, "peak_in_window": sandbox.peak,
                      "rate_limit": sandbox.config["rate_limit"],
                      "rate_window_seconds": sandbox.config["rate_window_seconds"],
                      "records": {m: len(store.records[m]) for m in MODELS}, "links": len(store.links)})
    elif head == "faults" and len(parts) == 1:
        if method == "GET":
            return _json({"faults": sandbox.faults, "rejects": sandbox.rejects})
        if method == "POST":
            body = await _body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be a JSON object")
            if "reject" in body:
                sandbox.rejects.append(_reject_rule(body))
            else:
                sandbox.faults.append(_fault_rule(body))
            return _json({"faults": sandbox.faults, "rejects": sandbox.rejects}, 201)
        if method == "DELETE":
            kind = request.query_params.get("kind", "all").lower()
            if kind in ("all", "fault", "faults"):
                sandbox.faults.clear()
            if kind in ("all", "reject", "rejects"):
                sandbox.rejects.clear()
            return _json({"faults": sandbox.faults, "rejects": sandbox.rejects})
    elif head == "hooks" and method == "GET":
        return _json(sandbox.hooks)
    elif head == "reset" and method == "POST":
        sandbox.reset()
        return _json({"reset": True})
    elif head == "tables" and method == "GET":
        return _json({t: {"domain": d, "kinds": k} for t, (d, k) in TABLES.items()})
    raise ApiError(404, f"no sandbox admin endpoint {method} /_sandbox/ipaas/{rest}")

"""The iPaaS.com stand-in's test hooks under ``/_sandbox/ipaas/``: no auth, no rate limit, not logged."""

from __future__ import annotations

from typing import Optional
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from bc_pipeline.sandbox.counts import tally
from bc_pipeline.sandbox.ipaas_http import ApiError, json_response, parse_json
from bc_pipeline.sandbox.ipaas_state import IpaasState
from bc_pipeline.sandbox.ipaas_store import MODELS, TABLES, Store, model_named


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


async def handle_admin(sandbox: IpaasState, request: Request, rest: str) -> Response:
    parts = [unquote(p) for p in rest.split("/")] if rest else []
    method, store = request.method, sandbox.store
    head = parts[0].lower() if parts else ""
    if head == "records" and len(parts) == 2:
        name = "Custom Field" if parts[1].lower() == "custom field" else model_named(parts[1]).name
        if method == "GET":
            return json_response(store.custom_field_defs if name == "Custom Field" else store.all(name))
        if method == "POST" and name != "Custom Field":
            body = parse_json(await request.body())
            parent = body.get("customer_id") if name == "Address" else None
            return json_response(store.create(name, body, int(parent) if parent is not None else None), 201)
    elif head == "counts" and method == "GET" and len(parts) == 2:
        return json_response(_counts(store, model_named(parts[1]).name, request.query_params.get("by") or None))
    elif head == "links" and method == "GET" and len(parts) == 1:
        return json_response(list(store.links.values()))
    elif head == "links" and method == "DELETE" and len(parts) >= 3:
        table = store.table(parts[1])
        gone = store.unlink(table, "/".join(parts[2:]))
        if not gone:
            raise ApiError(404, f"{table} {'/'.join(parts[2:])!r} is not linked")
        return json_response({"deleted": gone})
    elif head == "requests" and method == "GET":
        since = int(request.query_params.get("since", 0))
        return json_response(sandbox.log[since:] if since >= 0 else sandbox.log)
    elif head == "stats" and method == "GET":
        return json_response({
            "total_requests": len(sandbox.log), "by_model": sandbox.counts, "by_status": sandbox.by_status,
            "rate_limited": sandbox.rate_limited, "responses_429": sandbox.by_status.get("429", 0),
            "faults_sent": sandbox.faults_sent, "peak_in_window": sandbox.peak,
            "rate_limit": sandbox.config["rate_limit"], "rate_window_seconds": sandbox.config["rate_window_seconds"],
            "records": {m: len(store.records[m]) for m in MODELS}, "links": len(store.links)})
    elif head == "faults" and len(parts) == 1:
        if method == "GET":
            return json_response({"faults": sandbox.faults, "rejects": sandbox.rejects})
        if method == "POST":
            body = parse_json(await request.body())
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be a JSON object")
            if "reject" in body:
                sandbox.rejects.append(_reject_rule(body))
            else:
                sandbox.faults.append(_fault_rule(body))
            return json_response({"faults": sandbox.faults, "rejects": sandbox.rejects}, 201)
        if method == "DELETE":
            kind = request.query_params.get("kind", "all").lower()
            if kind in ("all", "fault", "faults"):
                sandbox.faults.clear()
            if kind in ("all", "reject", "rejects"):
                sandbox.rejects.clear()
            return json_response({"faults": sandbox.faults, "rejects": sandbox.rejects})
    elif head == "hooks" and method == "GET":
        return json_response(sandbox.hooks)
    elif head == "reset" and method == "POST":
        sandbox.reset()
        return json_response({"reset": True})
    elif head == "tables" and method == "GET":
        return json_response({t: {"domain": d, "kinds": k} for t, (d, k) in TABLES.items()})
    raise ApiError(404, f"no sandbox admin endpoint {method} /_sandbox/ipaas/{rest}")

"""The iPaaS.com stand-in's handlers, one per endpoint action (ASSUMED: X-Pagination Yes/No, LookupSpaceport's 400)."""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Any, Callable, Optional

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bc_pipeline.sandbox.ipaas_endpoints import Endpoint
from bc_pipeline.sandbox.ipaas_http import ApiError, authenticate, json_response
from bc_pipeline.sandbox.ipaas_state import IpaasState
from bc_pipeline.sandbox.ipaas_store import MODELS, NESTED_KIND_TO_KEY

LOGIN_TTL_SECONDS = 3600
# Characters that make iPaaS.com's GET lookups unreliable; ids holding one must use LookupSpecial.
# ipaas.md names "/", "'" and spaces; the rest are IIS's default invalid path characters plus "|"
# (a child's external id, "<parent>|<child>"). Rejecting them (400) rather than answering 404 is assumed.
SPECIAL_ID_CHARS = frozenset("/'\" |\\?#%&:*<>+")
# Query parameters that never filter a list: paging, the filter action, and trackingGuid (the Template appends its
# per-call tracking id to every URL it calls).
NOT_FILTERS = frozenset({"pagenumber", "pagesize", "action", "trackingguid", "tracking_guid"})

Handler = Callable[[IpaasState, Request, Endpoint, dict, Any], Response]


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


# ---- records ----------------------------------------------------------------------------------------------

def _parent(sb: IpaasState, ep: Endpoint, params: dict) -> Optional[int]:
    if "parent_id" not in params:
        return None
    pid = int(params["parent_id"])
    if pid not in sb.store.records[ep.parent]:
        raise ApiError(404, f"{ep.parent} {pid} not found", "parent_id")
    return pid


def do_create(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    parent = _parent(sb, ep, params)
    sb.reject(ep.model, body)
    return json_response(sb.store.create(ep.model, body, parent), 201)


def do_read(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    ident = int(params["id"])
    sb.store.get_raw(ep.model, ident, _parent(sb, ep, params))
    return json_response(sb.store.render(ep.model, ident))


def do_update(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    parent = _parent(sb, ep, params)
    sb.store.get_raw(ep.model, int(params["id"]), parent)
    sb.reject(ep.model, body)
    return json_response(sb.store.replace(ep.model, int(params["id"]), body, parent))


def do_delete(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    sb.store.delete(ep.model, int(params["id"]), _parent(sb, ep, params))
    return json_response(None, 204)


def do_list(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    parent, m, store = _parent(sb, ep, params), MODELS[ep.model], sb.store
    query = {k: v for k, v in request.query_params.items() if k.lower() not in NOT_FILTERS}
    action = (request.query_params.get("action") or "equals").lower()
    if action not in ("equals", "contains"):
        raise ApiError(400, f"unsupported filter action {action!r}; supported: equals, contains", "action")
    ids: Any = store.addresses_of.get(parent, []) if parent is not None else store.records[m.name].keys()
    for key, value in query.items():
        f = snake(key)
        if f not in m.fields and f != "id":
            raise ApiError(400, f"{m.name} has no field {key!r} to filter on", key)
        if action == "equals" and f in m.indexed:
            hits = set(store.find(m, f, value))
            ids = [i for i in ids if i in hits]
        else:
            recs, v = store.records[m.name], value.lower()
            ids = [i for i in ids if recs[i].get(f) is not None and (
                str(recs[i][f]).lower() == v if action == "equals" else v in str(recs[i][f]).lower())]
    ids = list(ids)
    page, header = _page(sb, request, len(ids))
    return json_response([store.render(m.name, i) for i in ids[page]], headers=header)


def _page(sb: IpaasState, request: Request, total: int) -> tuple[slice, dict]:
    q = {k.lower(): v for k, v in request.query_params.items()}
    try:
        number = int(q.get("pagenumber", 1))
        size = int(q.get("pagesize", sb.config["default_page_size"]))
    except ValueError:
        raise ApiError(400, "pageNumber and pageSize must be integers", "pageNumber") from None
    if number < 1 or size < 1:
        raise ApiError(400, "pageNumber and pageSize start at 1", "pageNumber" if number < 1 else "pageSize")
    size = min(size, int(sb.config["max_page_size"]))
    pages = math.ceil(total / size)
    meta = {"total_Count": total, "page_Size": size, "current_Page": number, "total_Pages": pages,
            # ASSUMED: "Yes"/"No", as in the common ASP.NET paging pattern; page by total_Pages
            "previous_Page": "Yes" if number > 1 else "No", "next_Page": "Yes" if number < pages else "No"}
    return slice((number - 1) * size, number * size), {"X-Pagination": orjson.dumps(meta).decode()}


# ---- a transaction's tracking numbers (ASSUMED paths: article 9294440 only says tracking has its own endpoint) -----

def _children(sb: IpaasState, ep: Endpoint, params: dict) -> tuple[int, str, list]:
    owner, key = _parent(sb, ep, params), NESTED_KIND_TO_KEY[ep.model]
    return owner, key, sb.store.render("Transaction", owner)[key]


def _child(items: list, ident: int, model: str) -> dict:
    for c in items:
        if c["id"] == ident:
            return c
    raise ApiError(404, f"{model} {ident} not found", "id")


def _child_body(ep: Endpoint, body: Any) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, f"the {ep.model} body must be a JSON object")
    return body


def do_child_create(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    owner, key, items = _children(sb, ep, params)
    sb.reject(ep.model, body)
    rec = sb.store.set_nested(owner, key, items + [{**_child_body(ep, body), "id": None}])
    new = rec[key][-1]["id"]
    return json_response(_child(sb.store.render("Transaction", owner)[key], new, ep.model), 201)


def do_child_read(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    return json_response(_child(_children(sb, ep, params)[2], int(params["id"]), ep.model))


def do_child_update(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    owner, key, items = _children(sb, ep, params)
    ident = int(params["id"])
    _child(items, ident, ep.model)
    sb.reject(ep.model, body)
    body = _child_body(ep, body)
    sb.store.set_nested(owner, key, [{**body, "id": ident} if c["id"] == ident else c for c in items])
    return json_response(_child(sb.store.render("Transaction", owner)[key], ident, ep.model))


def do_child_delete(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    owner, key, items = _children(sb, ep, params)
    ident = int(params["id"])
    _child(items, ident, ep.model)
    sb.store.set_nested(owner, key, [c for c in items if c["id"] != ident])
    return json_response(None, 204)


def do_child_list(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    items = _children(sb, ep, params)[2]
    page, header = _page(sb, request, len(items))
    return json_response(items[page], headers=header)


# ---- external ids -----------------------------------------------------------------------------------------

def _answer(value: Optional[str], what: str) -> Response:
    if value is None:
        raise ApiError(404, f"{what} is not linked")
    return json_response(value)


def do_lookup_spaceport(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    table = sb.store.table(params["table"], params["domain"].lower())
    ext = params["external_id"]
    bad = sorted(SPECIAL_ID_CHARS & set(ext))
    if bad:
        raise ApiError(400, f"external id {ext!r} holds {''.join(bad)!r}; look it up with POST "
                            "v2/External/LookupSpecial", "externalId")
    return _answer(sb.store.lookup_internal(table, params["system_id"], ext), f"{table} {ext!r}")


def do_lookup_external(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    table = sb.store.table(params["table"], params["domain"].lower())
    internal = params["internal_id"]
    return _answer(sb.store.lookup_external(table, params["system_id"], internal), f"{table} id {internal}")


def _fields(body: Any, *names: str) -> list:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    for n in names:
        if body.get(n) is None or str(body[n]).strip() == "":
            raise ApiError(400, f"{n} is required", n)
    return [body[n] for n in names]


def do_lookup_special(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    table, system, ext = _fields(body, "table_name", "system_id", "external_id")
    table = sb.store.table(table, params["domain"].lower())
    return _answer(sb.store.lookup_internal(table, system, ext), f"{table} {ext!r}")


def do_update_external_id(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    table, system, ext, internal = _fields(body, "table_name", "system_id", "external_id", "internal_id")
    table = sb.store.table(table, params["domain"].lower())
    if str(system) != sb.store.system_id:
        raise ApiError(400, f"system_id {system} is not a subscription of this company "
                            f"(the MSD 365 subscription is {sb.store.system_id})", "system_id")
    link = sb.store.link(table, system, ext, internal)
    return json_response({"id": link["id"], "table_name": table, "system_id": link["system_id"],
                          "external_id": link["external_id"], "internal_id": link["internal_id"],
                          "tracking_guid": body.get("tracking_guid")})


def do_custom_field(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    (name,) = _fields(body, "name")
    api_name, domain = params["api_name"], params["domain"].lower()
    defs = sb.store.custom_field_defs
    if any(d["api_name"].lower() == api_name.lower() and d["name"] == name for d in defs):
        raise ApiError(400, f"custom field {name!r} already exists on {api_name}", "name")
    record = {**body, "id": len(defs) + 1, "domain": domain, "api_name": api_name, "name": name}
    defs.append(record)
    return json_response(record, 201)


# ---- sign-in and webhook intake ---------------------------------------------------------------------------

def do_login(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    return json_response({"access_token": sb.config["api_token"], "token_type": "Bearer",
                          "expires_in": LOGIN_TTL_SECONDS, "refresh_token": uuid.uuid4().hex})


def do_hook(sb: IpaasState, request: Request, ep: Endpoint, params: dict, body: Any) -> Response:
    authenticate(request, sb.config["webhook_api_key"])
    sb.hooks.append({"path": "/" + request.url.path.lstrip("/"), "body": body, "time": time.time()})
    return json_response({"accepted": len((body or {}).get("notifications") or [])}, 202)


HANDLERS: dict[str, Handler] = {name[len("do_"):]: fn for name, fn in list(globals().items()) if name.startswith("do_")}

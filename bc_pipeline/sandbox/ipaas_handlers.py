"""The iPaaS.com stand-in's endpoint handlers: ``do_<action>`` for each action in ENDPOINTS (ipaas.py).

``Handlers`` is mixed into ``IpaasSandbox``; each handler gets (request, endpoint, path params,
parsed JSON body) and answers a Response or raises ApiError.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, Optional

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bc_pipeline.sandbox.ipaas_store import MODELS, NESTED_KIND_TO_KEY, ApiError

if TYPE_CHECKING:
    from bc_pipeline.sandbox.ipaas import Endpoint

LOGIN_TTL_SECONDS = 3600
# Characters that make iPaaS.com's GET lookups unreliable; ids holding one must use LookupSpecial.
# ipaas.md names "/", "'" and spaces; the rest are IIS's default invalid path characters plus "|"
# (a child's external id, "<parent>|<child>"). Rejecting them (400) rather than answering 404 is assumed.
SPECIAL_ID_CHARS = frozenset("/'\" |\\?#%&:*<>+")


def json_response(data: Any, status: int = 200, headers: Optional[dict] = None) -> Response:
    body = b"" if status == 204 else orjson.dumps(data)
    return Response(body, status_code=status, headers=headers, media_type=None if status == 204 else "application/json")


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class Handlers:
    """Needs from its host: store, config, _reject(model, body)."""

    # ---- records ------------------------------------------------------------------------------
    def _parent(self, ep: Endpoint, params: dict) -> Optional[int]:
        if "parent_id" not in params:
            return None
        pid = int(params["parent_id"])
        if pid not in self.store.records[ep.parent]:
            raise ApiError(404, f"{ep.parent} {pid} not found", "parent_id")
        return pid

    def do_create(self, request, ep, params, body):
        parent = self._parent(ep, params)
        self._reject(ep.model, body)
        return json_response(self.store.create(ep.model, body, parent), 201)

    def do_read(self, request, ep, params, body):
        ident = int(params["id"])
        self.store.get_raw(ep.model, ident, self._parent(ep, params))
        return json_response(self.store.render(ep.model, ident))

    def do_update(self, request, ep, params, body):
        parent = self._parent(ep, params)
        self.store.get_raw(ep.model, int(params["id"]), parent)
        self._reject(ep.model, body)
        return json_response(self.store.replace(ep.model, int(params["id"]), body, parent))

    def do_delete(self, request, ep, params, body):
        self.store.delete(ep.model, int(params["id"]), self._parent(ep, params))
        return json_response(None, 204)

    def do_list(self, request, ep, params, body):
        parent, m, store = self._parent(ep, params), MODELS[ep.model], self.store
        query = {k: v for k, v in request.query_params.items()
                 if k.lower() not in ("pagenumber", "pagesize", "action", "trackingguid")}
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
        page, header = self._page(request, len(ids))
        return json_response([store.render(m.name, i) for i in ids[page]], headers=header)

    def _page(self, request: Request, total: int) -> tuple[slice, dict]:
        q = {k.lower(): v for k, v in request.query_params.items()}
        try:
            number = int(q.get("pagenumber", 1))
            size = int(q.get("pagesize", self.config["default_page_size"]))
        except ValueError:
            raise ApiError(400, "pageNumber and pageSize must be integers", "pageNumber") from None
        if number < 1 or size < 1:
            raise ApiError(400, "pageNumber and pageSize start at 1", "pageNumber" if number < 1 else "pageSize")
        size = min(size, int(self.config["max_page_size"]))
        pages = math.ceil(total / size)
        meta = {"total_Count": total, "page_Size": size, "current_Page": number, "total_Pages": pages,
                # assumed: "Yes"/"No", as in the common ASP.NET paging pattern; page by total_Pages
                "previous_Page": "Yes" if number > 1 else "No", "next_Page": "Yes" if number < pages else "No"}
        return slice((number - 1) * size, number * size), {"X-Pagination": orjson.dumps(meta).decode()}

    # ---- a transaction's tracking numbers -------------------------------------------------------
    def _children(self, ep, params) -> tuple[int, str, list]:
        owner, key = self._parent(ep, params), NESTED_KIND_TO_KEY[ep.model]
        return owner, key, self.store.render("Transaction", owner)[key]

    def _child(self, items: list, ident: int, model: str) -> dict:
        for c in items:
            if c["id"] == ident:
                return c
        raise ApiError(404, f"{model} {ident} not found", "id")

    def do_child_create(self, request, ep, params, body):
        owner, key, items = self._children(ep, params)
        self._reject(ep.model, body)
        if not isinstance(body, dict):
            raise ApiError(400, f"the {ep.model} body must be a JSON object")
        rec = self.store.set_nested(owner, key, items + [{**body, "id": None}])
        new = rec[key][-1]["id"]
        return json_response(self._child(self.store.render("Transaction", owner)[key], new, ep.model), 201)

    def do_child_read(self, request, ep, params, body):
        return json_response(self._child(self._children(ep, params)[2], int(params["id"]), ep.model))

    def do_child_update(self, request, ep, params, body):
        owner, key, items = self._children(ep, params)
        ident = int(params["id"])
        self._child(items, ident, ep.model)
        self._reject(ep.model, body)
        if not isinstance(body, dict):
            raise ApiError(400, f"the {ep.model} body must be a JSON object")
        self.store.set_nested(owner, key, [{**body, "id": ident} if c["id"] == ident else c for c in items])
        return json_response(self._child(self.store.render("Transaction", owner)[key], ident, ep.model))

    def do_child_delete(self, request, ep, params, body):
        owner, key, items = self._children(ep, params)
        ident = int(params["id"])
        self._child(items, ident, ep.model)
        self.store.set_nested(owner, key, [c for c in items if c["id"] != ident])
        return json_response(None, 204)

    def do_child_list(self, request, ep, params, body):
        items = self._children(ep, params)[2]
        page, header = self._page(request, len(items))
        return json_response(items[page], headers=header)

    # ---- external ids ---------------------------------------------------------------------------
    def _answer(self, value: Optional[str], what: str) -> Response:
        if value is None:
            raise ApiError(404, f"{what} is not linked")
        return json_response(value)

    def do_lookup_spaceport(self, request, ep, params, body):
        table = self.store.table(params["table"], params["domain"].lower())
        ext = params["external_id"]
        bad = sorted(SPECIAL_ID_CHARS & set(ext))
        if bad:
            raise ApiError(400, f"external id {ext!r} holds {''.join(bad)!r}; look it up with POST "
                                "v2/External/LookupSpecial", "externalId")
        return self._answer(self.store.lookup_internal(table, params["system_id"], ext), f"{table} {ext!r}")

    def do_lookup_external(self, request, ep, params, body):
        table = self.store.table(params["table"], params["domain"].lower())
        internal = params["internal_id"]
        return self._answer(self.store.lookup_external(table, params["system_id"], internal), f"{table} id {internal}")

    def _fields(self, body: Any, *names: str) -> list:
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        for n in names:
            if body.get(n) is None or str(body[n]).strip() == "":
                raise ApiError(400, f"{n} is required", n)
        return [body[n] for n in names]

    def do_lookup_special(self, request, ep, params, body):
        table, system, ext = self._fields(body, "table_name", "system_id", "external_id")
        table = self.store.table(table, params["domain"].lower())
        return self._answer(self.store.lookup_internal(table, system, ext), f"{table} {ext!r}")

    def do_update_external_id(self, request, ep, params, body):
        table, system, ext, internal = self._fields(body, "table_name", "system_id", "external_id", "internal_id")
        table = self.store.table(table, params["domain"].lower())
        if str(system) != self.store.system_id:
            raise ApiError(400, f"system_id {system} is not a subscription of this company "
                                f"(the MSD 365 subscription is {self.store.system_id})", "system_id")
        link = self.store.link(table, system, ext, internal)
        return json_response({"id": link["id"], "table_name": table, "system_id": link["system_id"],
                              "external_id": link["external_id"], "internal_id": link["internal_id"],
                              "tracking_guid": body.get("tracking_guid")})

    def do_custom_field(self, request, ep, params, body):
        (name,) = self._fields(body, "name")
        api_name, domain = params["api_name"], params["domain"].lower()
        defs = self.store.custom_field_defs
        if any(d["api_name"].lower() == api_name.lower() and d["name"] == name for d in defs):
            raise ApiError(400, f"custom field {name!r} already exists on {api_name}", "name")
        record = {**body, "id": len(defs) + 1, "domain": domain, "api_name": api_name, "name": name}
        defs.append(record)
        return json_response(record, 201)

    # ---- sign-in and webhook intake ------------------------------------------------------------
    def do_login(self, request, ep, params, body):
        return json_response({"access_token": self.config["api_token"], "token_type": "Bearer",
                              "expires_in": LOGIN_TTL_SECONDS, "refresh_token": uuid.uuid4().hex})

    def do_hook(self, request, ep, params, body):
        self._authenticate(request, self.config["webhook_api_key"])
        self.hooks.append({"path": "/" + request.url.path.lstrip("/"), "body": body, "time": time.time()})
        return json_response({"accepted": len((body or {}).get("notifications") or [])}, 202)

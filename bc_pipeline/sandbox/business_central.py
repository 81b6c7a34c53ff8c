"""Business Central OData V4 web services: each call to its read or write; the company list, $metadata and reads.

A collection read pages server-side, with or without a ``Prefer``: at most the server's Max Page Size
(config.max_page_size; 20,000 and fixed online) or fewer when the client sends ``Prefer: odata.maxpagesize=N``
(answered with ``Preference-Applied``). An N above the Max Page Size is capped to it, an N above 20,000 is
refused with 413 (BC online's operational limit). Every page but the last ends with ``@odata.nextLink``:
the request's own absolute URL and query, verbatim, plus ``$skiptoken=<base64url of the last key>``, so
following it needs nothing else and records inserted meanwhile do not shift the pages. A FlowFilter in
``$filter`` has ItemCard's FlowFields summed for the request (flowfields.py). ``handle`` sends a write to
bc_writes.py; what a path names and one record's answer live in bc_routes.py (both modules use it), $batch in
batch.py.
"""

from __future__ import annotations

import base64
import re
from typing import Optional
from urllib.parse import unquote

import orjson

from . import bc_writes, flowfields, odata
from .bc_errors import Answer, BCError, JSON_TYPE, not_found_resource, syntax_error
from .bc_routes import (ODataRequest, Route, check_company, company_record, company_segment, entity_answer,
                        find_record, json_answer, method_not_allowed, parse_route, service_name_of, service_of)
from .bc_store import Row
from .metadata import build_metadata
from .schema import Service
from .state import SandboxState

ALLOWED_OPTIONS = {"$filter", "$select", "$top", "$skip", "$skiptoken", "$count", "$orderby", "$format",
                   "$expand", "$schemaversion", "$search", "$apply"}
_MAXPAGESIZE = re.compile(r"(?:^|[,;\s])odata\.maxpagesize\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
ONLINE_PAGE_SIZE = 20_000  # BC online's page size; asking for more is a 413 (operational limits)


def single_options(params: list[tuple[str, str]], service: Service) -> Optional[tuple[str, ...]]:
    select = None
    for k, v in params:
        if k == "$select":
            select = _select(v, service)
        elif k.startswith("$") and k not in ALLOWED_OPTIONS:
            raise BCError(400, "BadRequest", f"The query parameter '{k}' is not supported.")
    return select


def _select(text: str, service: Service) -> Optional[tuple[str, ...]]:
    try:
        return odata.parse_select(text, service)
    except odata.ODataSyntaxError:
        raise syntax_error() from None
    except odata.ODataQueryError as exc:
        raise BCError(400, exc.code, str(exc)) from None


def read_entity(state: SandboxState, req: ODataRequest, route: Route, service: Service) -> Answer:
    table, key, row = find_record(state, service, route.key_text or "")
    return entity_answer(state, req, service, key, row, select=single_options(route.params, service))


def page_size(state: SandboxState, headers: dict[str, str]) -> tuple[int, Optional[int]]:
    """(the page size to use, the maxpagesize the client asked for)."""
    limit = state.config.max_page_size
    m = _MAXPAGESIZE.search(headers.get("prefer", ""))
    if not m:
        return limit, None
    asked = int(m.group(1))
    if asked > max(limit, ONLINE_PAGE_SIZE):
        raise BCError(413, "BadRequest", f"The page size asked for (odata.maxpagesize={asked}) is larger than the "
                      f"maximum page size of {max(limit, ONLINE_PAGE_SIZE)}.")
    return (min(asked, limit) if asked > 0 else limit), asked


def encode_token(values: list) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_token(token: str) -> list:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = orjson.loads(raw)
        if not isinstance(value, list):
            raise ValueError
        return value
    except Exception:
        raise BCError(400, "BadRequest", f"The skip token value '{token}' is not valid.") from None


def read_collection(state: SandboxState, req: ODataRequest, route: Route, service: Service) -> Answer:
    seen: dict[str, str] = {}
    for k, v in route.params:
        if k.startswith("$"):
            if k not in ALLOWED_OPTIONS:
                raise BCError(400, "BadRequest", f"The query parameter '{k}' is not supported.")
            if k in seen:
                raise BCError(400, "BadRequest", f"Query option '{k}' was specified more than once, but it must be "
                              "specified at most once.")
            seen[k] = v
    for unsupported in ("$expand", "$search", "$apply"):
        if unsupported in seen:
            raise BCError(400, "BadRequest_MethodNotImplemented", f"The query option '{unsupported}' is not supported "
                          "by the sandbox.")
    try:
        predicate, flow = odata.compile_query(seen.get("$filter"), service)
        select = odata.parse_select(seen.get("$select"), service)
        orderby = odata.parse_orderby(seen.get("$orderby"), service)
    except odata.ODataSyntaxError:
        raise syntax_error() from None
    except odata.ODataQueryError as exc:
        raise BCError(400, exc.code, str(exc)) from None
    adjust = flowfields.adjuster(state.store, service, flow)
    if adjust is not None and predicate is not None:  # a filter on Inventory sees the filtered Inventory
        predicate = (lambda values, p=predicate, a=adjust: p(a(values)))
    top = _int_option(seen, "$top")
    skip = _int_option(seen, "$skip") or 0
    count = seen.get("$count", "false").lower()
    if count not in ("true", "false"):
        raise syntax_error()
    size, asked = page_size(state, req.headers)
    table = state.store.tables[service.name]
    if orderby and [i for i, _ in orderby] == list(service.key_index) and not any(d for _, d in orderby):
        orderby = []  # the key order is the natural order
    token = seen.get("$skiptoken")

    limit = size if top is None else min(size, top)
    results: list = []
    more = False
    if orderby:
        offset = 0
        if token is not None:
            t = decode_token(token)
            offset = int(t[1]) if len(t) == 2 and t[0] == "o" else 0
        matched = [(k, r) for k, r in table.iter_from(None) if predicate is None or predicate(r.values)]
        if adjust is not None:
            matched = [(k, Row(adjust(r.values), r.version)) for k, r in matched]
        for idx, desc in reversed(orderby):
            matched.sort(key=lambda kr, i=idx: kr[1].values[i], reverse=desc)
        window = matched[offset + skip:]
        results = window[:limit]
        more = len(window) > limit and (top is None or top > limit)
        next_token = encode_token(["o", offset + skip + len(results)]) if more else None
    else:
        after = _token_key(decode_token(token), service) if token is not None else None
        to_skip = skip
        for key, row in table.iter_from(after):
            if predicate is not None and not predicate(row.values):
                continue
            if to_skip:
                to_skip -= 1
                continue
            if len(results) >= limit:
                more = top is None or top > limit
                break
            results.append((key, row))
        next_token = encode_token(list(results[-1][0])) if more and results else None

    context = f"{req.service_root}$metadata#{company_segment(state)}/{service.name}"
    if select:
        context += "(" + ",".join(select) + ")"
    parts = [b'{"@odata.context":', orjson.dumps(context)]
    if count == "true":
        total = sum(1 for _, r in table.iter_from(None) if predicate is None or predicate(r.values))
        parts += [b',"@odata.count":', str(total).encode()]
    parts.append(b',"value":[')
    if adjust is None:
        bodies = [table.body(k, r, select) for k, r in results]
    else:  # summed for this request, so never the cached JSON; $orderby's rows were summed before sorting
        bodies = [orjson.dumps(table.record(k, r if orderby else Row(adjust(r.values), r.version), select))
                  for k, r in results]
    parts.append(b",".join(bodies))
    parts.append(b"]")
    if next_token:
        link = next_link(req, next_token, None if top is None else top - len(results))
        parts += [b',"@odata.nextLink":', orjson.dumps(link)]
    parts.append(b"}")
    headers = {"OData-Version": "4.0"}
    if asked is not None:
        headers["Preference-Applied"] = f"odata.maxpagesize={size}"
    return Answer(200, b"".join(parts), headers)


def _token_key(values: list, service: Service) -> tuple:
    """A skiptoken's last key, checked against the key's shape so a forged one cannot break the ordering."""
    types = [service.types[k] for k in service.keys] or ["int"]
    if len(values) != len(types) or not all(
            isinstance(v, int) and not isinstance(v, bool) if t == "int" else isinstance(v, str)
            for v, t in zip(values, types)):
        raise BCError(400, "BadRequest", "The skip token value is not valid for this service.")
    return tuple(values)


def _int_option(seen: dict[str, str], name: str) -> Optional[int]:
    if name not in seen:
        return None
    if not re.fullmatch(r"\d+", seen[name].strip()):
        raise syntax_error()
    return int(seen[name])


def next_link(req: ODataRequest, token: str, top_left: Optional[int]) -> str:
    """The request's absolute URL with its query kept verbatim, minus $skip/$skiptoken, plus the new token."""
    kept = []
    for piece in req.query.split("&") if req.query else []:
        name = unquote(piece.split("=", 1)[0])
        if name in ("$skiptoken", "$skip"):
            continue
        if name == "$top" and top_left is not None:
            kept.append(f"$top={top_left}")
            continue
        if piece:
            kept.append(piece)
    kept.append(f"$skiptoken={token}")
    return f"{req.service_root}{req.path}?{'&'.join(kept)}"


def handle(state: SandboxState, req: ODataRequest) -> Answer:
    """Answer one OData call (auth, limits and faults are the HTTP layer's job)."""
    route = parse_route(req.path, req.query)
    url = f"{req.service_root}{req.path}" + (f"?{req.query}" if req.query else "")
    method = req.method.upper()
    if route.kind == "root":
        return json_answer({"@odata.context": f"{req.service_root}$metadata",
                            "value": [{"name": "Company", "kind": "EntitySet", "url": "Company"}]})
    if route.kind == "metadata":
        return Answer(200, build_metadata(state.services, state.published, state.config.service_names), {"OData-Version": "4.0"},
                      "application/xml; charset=utf-8")
    if route.kind == "batch":
        raise BCError(400, "BadRequest", "A $batch request cannot be nested.")
    if route.kind == "companies":
        if method != "GET":
            raise method_not_allowed(method)
        return json_answer({"@odata.context": f"{req.service_root}$metadata#Company",
                            "value": [company_record(state)]})
    check_company(state, route)
    if route.kind == "company":
        if method != "GET":
            raise method_not_allowed(method)
        return json_answer({"@odata.context": f"{req.service_root}$metadata#Company/$entity", **company_record(state)})
    service = service_of(state, route, url)
    if route.kind == "collection":
        if method == "GET":
            return read_collection(state, req, route, service)
        if method == "POST":
            return bc_writes.create(state, req, route, service)
        raise method_not_allowed(method)
    if method == "GET":
        return read_entity(state, req, route, service)
    if method in ("PATCH", "PUT", "MERGE"):
        return bc_writes.update(state, req, route, service)
    if method == "DELETE":
        return bc_writes.delete(state, req, route, service)
    raise method_not_allowed(method)


__all__ = ["ODataRequest", "Route", "handle", "parse_route", "service_name_of", "JSON_TYPE", "not_found_resource"]

"""Business Central OData calls: the request, where its path points (company, service, key) and one record's answer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qsl, quote as urlquote, unquote

import orjson

from . import odata
from .bc_errors import Answer, BCError, record_not_found, resource_not_found, syntax_error
from .schema import Service, code_upper
from .state import SandboxState

_SEGMENT = re.compile(r"^([A-Za-z_][\w]*)(?:\((.*)\))?$", re.DOTALL)


@dataclass
class ODataRequest:
    """One OData call, from HTTP or from inside a $batch."""

    method: str
    path: str  # after .../ODataV4/, still percent-encoded
    query: str  # the raw query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    service_root: str  # absolute https://host/v2.0/{tenant}/{environment}/ODataV4/
    client_id: str = ""
    journal: Optional[list] = None  # a snapshot $batch's undo log
    in_batch: bool = False


@dataclass
class Route:
    """Where a path under ODataV4/ points."""

    kind: str  # root, metadata, batch, companies, company, collection, entity
    company: Optional[str] = None
    company_id: Optional[str] = None
    service: Optional[str] = None
    key_text: Optional[str] = None
    params: list[tuple[str, str]] = field(default_factory=list)


def parse_route(path: str, query: str) -> Route:
    """Split the path into company, service and key; raises BCError for a malformed path."""
    params = parse_qsl(query, keep_blank_values=True)
    segments = [unquote(s) for s in path.split("/")]
    while segments and segments[-1] == "":
        segments.pop()
    if not segments:
        return Route("root", params=params)
    if segments == ["$metadata"]:
        return Route("metadata", params=params)
    if segments == ["$batch"]:
        return Route("batch", params=params)
    company: Optional[str] = None
    company_id: Optional[str] = None
    m = _SEGMENT.match(segments[0])
    if m and m.group(1) == "Company":
        if m.group(2) is None:
            if len(segments) > 1:
                raise syntax_error()
            return Route("companies", params=params)
        inner = m.group(2).strip()
        id_match = re.fullmatch(r"Id\s*=\s*'?([0-9a-fA-F-]{36})'?", inner)
        if id_match:
            company_id = id_match.group(1).lower()
        else:
            name_match = re.fullmatch(r"(?:Name\s*=\s*)?('(?:[^']|'')*')", inner)
            if not name_match:
                raise syntax_error()
            company = odata.unquote(name_match.group(1))
        segments = segments[1:]
        if not segments:
            return Route("company", company, company_id, params=params)
    else:
        named = [v for k, v in params if k == "company"]
        company = named[0] if named else None
    if len(segments) != 1:
        raise BCError(404, "BadRequest_NotFound", "The sandbox serves collections and single records; navigation "
                      f"below '{segments[0]}' is not supported.")
    m = _SEGMENT.match(segments[0])
    if not m:
        raise syntax_error()
    service, key_text = m.group(1), m.group(2)
    return Route("entity" if key_text is not None else "collection", company, company_id, service, key_text, params)


def company_record(state: SandboxState) -> dict[str, Any]:
    c = state.config
    return {"Name": c.company_name, "Evaluating_Company": False, "Display_Name": c.company_name, "Id": c.company_id,
            "Business_Profile_Id": ""}


def company_segment(state: SandboxState) -> str:
    return "Company(" + urlquote(odata.quote(state.config.company_name), safe="'") + ")"


def json_answer(obj: Any, status: int = 200, headers: Optional[dict[str, str]] = None) -> Answer:
    return Answer(status, orjson.dumps(obj), {"OData-Version": "4.0", **(headers or {})})


def check_company(state: SandboxState, route: Route) -> None:
    c = state.config
    if route.company_id is not None:
        if route.company_id != c.company_id.lower():
            raise BCError(404, "Internal_CompanyNotFound", f"The company with Id '{route.company_id}' does not exist.")
        return
    if route.company is None:
        raise BCError(400, "Internal_CompanyNotFound", "Cannot process the request because the default company "
                      "cannot be found. You can specify the company in the request: Company('<name>') or "
                      "?company=<name>.")
    if route.company != c.company_name:  # case-sensitive, like BC; 404 is our choice of status
        raise BCError(404, "Internal_CompanyNotFound", f"The company '{route.company}' does not exist.")


def service_of(state: SandboxState, route: Route, url: str) -> Service:
    """The published service a route names, or BC's 404."""
    name = state.standard_service(route.service)
    if name not in state.services or not state.is_published(name):
        raise resource_not_found(route.service or "", url)
    return state.services[name]


def key_description(service: Service, key: tuple) -> str:
    parts = []
    for k, v in zip(service.keys, key):
        caption = service.field_captions.get(k, k)
        parts.append(f"{caption}={odata.quote(v) if isinstance(v, str) else v}")
    return ",".join(parts)


def find_record(state: SandboxState, service: Service, key_text: str):
    try:
        key = odata.parse_key_segment(key_text, service)
    except odata.ODataSyntaxError:
        raise syntax_error() from None
    except odata.ODataQueryError as exc:
        raise BCError(400, exc.code, str(exc)) from None
    # a key literal is evaluated into its field's type: a Code key finds the record whatever the case asked
    key = tuple(code_upper(v) if k in service.code_fields and isinstance(v, str) else v
                for k, v in zip(service.keys, key))
    table = state.store.tables[service.name]
    row = table.get(key)
    if row is None:
        raise record_not_found(service.table, key_description(service, key))
    return table, key, row


def entity_answer(state: SandboxState, req: ODataRequest, service: Service, key: tuple, row, status: int = 200,
                  select: Optional[tuple[str, ...]] = None, headers: Optional[dict[str, str]] = None) -> Answer:
    table = state.store.tables[service.name]
    context = f"{req.service_root}$metadata#{company_segment(state)}/{service.name}"
    if select:
        context += "(" + ",".join(select) + ")"
    context += "/$entity"
    record = table.body(key, row, select)
    body = b'{"@odata.context":' + orjson.dumps(context) + (b"," + record[1:] if len(record) > 2 else b"}")
    out = {"OData-Version": "4.0", **(headers or {})}
    if table.has_etag:
        out["ETag"] = table.etag(key, row)
    return Answer(status, body, out)


def method_not_allowed(method: str) -> BCError:
    return BCError(405, "BadRequest_MethodNotAllowed", f"The HTTP method '{method}' is not allowed here.")


def service_name_of(path: str, query: str) -> Optional[str]:
    """The service a path names, for logging, faults and stats (None when it names none or is malformed)."""
    try:
        route = parse_route(path, query)
    except BCError:
        return None
    if route.kind == "batch":
        return "$batch"
    if route.kind == "metadata":
        return "$metadata"
    if route.kind in ("companies", "company"):
        return "Company"
    return route.service

"""OData JSON $batch (webservices/use-odata-batch): at most 100 operations; `Isolation: snapshot` makes one transaction."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote, urlsplit

import orjson

from . import odata
from .bc_errors import Answer, BCError
from .fault_answers import bc_error_for
from .business_central import ODataRequest, handle, parse_route, service_name_of
from .state import SandboxState

# Not in Microsoft's doc, whose failing example operation is the last: an operation after the failing one of a snapshot
# batch is not run and is answered 424 Failed Dependency, OData 4.01's status for a request whose prerequisite failed.
NOT_RUN_STATUS = 424


def run_batch(state: SandboxState, req: ODataRequest, correlation_id: str) -> Answer:
    """Every operation answered in request order, ``{"responses": [{"id", "status", "headers", "body"?}]}``."""
    requests = _requests(state, req)
    snapshot = req.headers.get("isolation", "").strip().lower() == "snapshot"
    journal: Optional[list] = [] if snapshot else None
    responses: list[dict[str, Any]] = []
    failed: Optional[str] = None
    try:
        for item in requests:
            answer = _one(state, req, item, journal, correlation_id)
            responses.append(_response(item, answer))
            if snapshot and answer.status >= 400:
                failed = str(responses[-1]["id"] or len(responses))
                break
    except BaseException:
        _roll_back(journal)
        raise
    if failed is not None:
        # Microsoft's example answers the operations before the failure as they ran (200, 204) although their changes
        # are gone: a client must read any failure in a snapshot batch as "nothing was applied".
        _roll_back(journal)
        for item in requests[len(responses):]:
            skipped = BCError(NOT_RUN_STATUS, "BadRequest", f"Not run: operation '{failed}' of this Isolation: snapshot "
                              "batch failed, so the batch was rolled back.")
            responses.append(_response(item, skipped.answer(correlation_id)))
    return Answer(200, orjson.dumps({"responses": responses}), {"OData-Version": "4.0"})


def operations_of(req: ODataRequest) -> list[tuple[str, str, str]]:
    """(service, method, path from the host) of each operation a $batch holds, for faults: a drop rule on an
    operation drops the whole batch, a lost_answer rule takes the batch's one answer (the batch was processed)."""
    try:
        payload = orjson.loads(req.body or b"{}")
        found = []
        for item in payload.get("requests") or []:
            path, query = _relative(str(item["url"]), req.service_root)
            service = service_name_of(path, query)
            if service:
                found.append((service, str(item.get("method") or "").upper(), _from_host(req, path)))
        return found
    except Exception:  # noqa: BLE001 - a malformed batch is answered as such when it runs; no fault to match
        return []


def _requests(state: SandboxState, req: ODataRequest) -> list:
    if "json" not in req.headers.get("content-type", "").lower():
        raise BCError(400, "BadRequest", "The sandbox accepts JSON $batch requests only "
                      "(Content-Type: application/json).")
    try:
        payload = orjson.loads(req.body or b"{}")
    except orjson.JSONDecodeError:
        raise BCError(400, "BadRequest", "The $batch body is not valid JSON.") from None
    requests = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(requests, list) or not requests:
        raise BCError(400, "BadRequest", "The $batch body must have a non-empty 'requests' array.")
    limit = state.config.bc_batch_max
    if len(requests) > limit:
        raise BCError(400, "BadRequest", f"The batch request contains {len(requests)} operations; the maximum is "
                      f"{limit}.")
    return requests


def _roll_back(journal: Optional[list]) -> None:
    for table, key, old in reversed(journal or []):
        table.restore(key, old)
    if journal:
        journal.clear()


def _response(item: Any, answer: Answer) -> dict[str, Any]:
    # The request's own id, null when it has none (Microsoft's example sends none and gets "id": null).
    rid = item.get("id") if isinstance(item, dict) else None
    response: dict[str, Any] = {"id": None if rid is None else str(rid), "status": answer.status,
                                "headers": {k.lower(): v for k, v in answer.headers.items()}}
    if answer.content_type:
        response["headers"]["content-type"] = answer.content_type
    body = answer.json()
    if body is not None:
        response["body"] = body
    return response


def _one(state: SandboxState, outer: ODataRequest, item: Any, journal: Optional[list], correlation_id: str) -> Answer:
    try:
        if not isinstance(item, dict) or not item.get("method") or not item.get("url"):
            raise BCError(400, "BadRequest", "Each batch request needs 'method' and 'url'.")
        path, query = _relative(str(item["url"]), outer.service_root)
        if path.rstrip("/") == "$batch":
            raise BCError(400, "BadRequest", "A $batch request cannot be nested.")
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        path = _with_company(path, query, headers.get("company"))
        body = item.get("body")
        raw = b"" if body is None else (body.encode() if isinstance(body, str) else orjson.dumps(body))
        inner = ODataRequest(method=str(item["method"]).upper(), path=path, query=query, headers=headers, body=raw,
                             service_root=outer.service_root, client_id=outer.client_id, journal=journal, in_batch=True)
        service = service_name_of(path, query)
        if service:
            state.count_service(service, inner.method)
        fault = state.faults.take_status("bc", service, _from_host(outer, path), inner.method)
        if fault is not None:  # answered in the operation's stead, not processed
            state.counters["fault_answers"] += 1
            return bc_error_for(fault.status, fault.retry_after).answer(correlation_id)
        return handle(state, inner)
    except BCError as exc:
        return exc.answer(correlation_id)


def _relative(url: str, root: str) -> tuple[str, str]:
    """(path after ODataV4/, query) of an absolute URL, a path from the host, or a URL relative to ODataV4/."""
    root_path = urlsplit(root).path
    if url.startswith("http://") or url.startswith("https://"):
        parts = urlsplit(url)
        if not parts.path.startswith(root_path):
            raise BCError(400, "BadRequest", f"The batch request URL '{url}' is not under {root}.")
        return parts.path[len(root_path):], parts.query
    if url.startswith("/"):
        url = url[len(root_path):] if url.startswith(root_path) else url.lstrip("/")
    path, _, query = url.partition("?")
    return path, query


def _from_host(outer: ODataRequest, path: str) -> str:
    """An operation's path as a request of its own would have it (what a fault's path_prefix is matched on)."""
    return urlsplit(outer.service_root).path + path


def _with_company(path: str, query: str, company: Optional[str]) -> str:
    """A ``Company`` header (set on each operation in Microsoft's example) names the company of a URL without one."""
    # Assumed: Company('…') in the URL, or ?company=, wins over the header (the doc shows the header alone).
    if not company:
        return path
    try:
        route = parse_route(path, query)
    except BCError:
        return path  # answered as malformed when the operation runs
    if route.kind not in ("collection", "entity") or route.company is not None or route.company_id is not None:
        return path
    return "Company(" + quote(odata.quote(company), safe="'") + ")/" + path

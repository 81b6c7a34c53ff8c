"""OData JSON $batch: up to 100 operations in one call; ``Isolation: snapshot`` makes them all-or-nothing.

Request: ``{"requests": [{"id", "method", "url", "headers": {...}, "body": {...}}]}``; ``url`` is relative to
``ODataV4/`` or absolute. Answer: ``{"responses": [{"id", "status", "headers", "body"}]}`` in request order.
Without snapshot isolation every operation stands alone. With it, the first failing operation (status >= 400)
undoes every change made before it and the answer holds that one failure only (the OData JSON batch rule
for a failed atomicity group; BC's docs say only that the changes are reverted).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from .bc_errors import Answer, BCError
from .business_central import ODataRequest, handle
from .state import SandboxState


def run_batch(state: SandboxState, req: ODataRequest, correlation_id: str) -> Answer:
    content_type = req.headers.get("content-type", "")
    if "json" not in content_type.lower():
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
    snapshot = req.headers.get("isolation", "").strip().lower() == "snapshot"
    journal: list = []
    responses: list[dict[str, Any]] = []
    for i, item in enumerate(requests):
        rid = str(item.get("id", i + 1)) if isinstance(item, dict) else str(i + 1)
        answer = _one(state, req, item, journal if snapshot else None, correlation_id)
        response: dict[str, Any] = {"id": rid, "status": answer.status,
                                    "headers": {k.lower(): v for k, v in answer.headers.items()}}
        if answer.content_type:
            response["headers"]["content-type"] = answer.content_type
        body = answer.json()
        if body is not None:
            response["body"] = body
        if snapshot and answer.status >= 400:
            for table, key, old in reversed(journal):
                table.restore(key, old)
            return Answer(200, orjson.dumps({"responses": [response]}), {"OData-Version": "4.0"})
        responses.append(response)
    return Answer(200, orjson.dumps({"responses": responses}), {"OData-Version": "4.0"})


def _one(state: SandboxState, outer: ODataRequest, item: Any, journal, correlation_id: str) -> Answer:
    try:
        if not isinstance(item, dict) or not item.get("method") or not item.get("url"):
            raise BCError(400, "BadRequest", "Each batch request needs 'id', 'method' and 'url'.")
        url = str(item["url"])
        root = outer.service_root
        if url.startswith("http://") or url.startswith("https://"):
            parts = urlsplit(url)
            root_path = urlsplit(root).path
            if not parts.path.startswith(root_path):
                raise BCError(400, "BadRequest", f"The batch request URL '{url}' is not under {root}.")
            path, query = parts.path[len(root_path):], parts.query
        else:
            if url.startswith("/"):
                root_path = urlsplit(root).path
                url = url[len(root_path):] if url.startswith(root_path) else url.lstrip("/")
            path, _, query = url.partition("?")
        if path == "$batch":
            raise BCError(400, "BadRequest", "A $batch request cannot be nested.")
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        body = item.get("body")
        raw = b"" if body is None else (body.encode() if isinstance(body, str) else orjson.dumps(body))
        inner = ODataRequest(method=str(item["method"]).upper(), path=path, query=query, headers=headers, body=raw,
                             service_root=root, client_id=outer.client_id, journal=journal, in_batch=True)
        from .business_central import service_name_of
        service = service_name_of(path, query)
        if service:
            state.count_service(service, inner.method)
        return handle(state, inner)
    except BCError as exc:
        return exc.answer(correlation_id)

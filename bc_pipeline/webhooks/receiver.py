"""The webhook receiver: authenticate, validate, record durably in the inbox, answer at once (Starlette).

Nothing here syncs: a request is answered 202 only after the inbox transaction committed, and the
pipeline processes the inbox later. Secrets (bearer key, clientState) are compared in constant time
and never logged.

Business Central deletes a subscription on any non-2xx answer other than 408, 429 and 5xx, so the BC
endpoint answers 4xx only to what must not be a valid subscription of ours (wrong clientState → 401,
malformed body → 400), and 503 (retried by BC for 36 hours) when the inbox cannot record. A body that
does not arrive within `body_timeout` seconds is 408; serving (`server.serve`) bounds the headers' time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Optional

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bc_pipeline.state import inbox
from bc_pipeline.webhooks.auth import bearer_matches, secret_matches
from bc_pipeline.webhooks.resolution import ResolutionError, Resolver, resolve
from bc_pipeline.webhooks.notifications import (
    KnownCollections,
    NotificationError,
    bc_notifications,
    bc_requests,
    ipaas_requests,
    known_collections,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_BODY_TIMEOUT = 10.0
_NO_SNIFF = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class _Reject(Exception):
    """An answer other than success, raised from deep in a handler."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        headers = self.extra.pop("headers", None)
        return _error(self.status, self.message, headers=headers, **self.extra)


def _error(status: int, message: str, *, headers: Optional[dict[str, str]] = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers={**_NO_SNIFF, **(headers or {})})


def _secret(value: Any) -> Optional[str]:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value or None


def _media_type(request: Request) -> Optional[str]:
    value = request.headers.get("content-type")
    return value.split(";", 1)[0].strip().lower() if value else None


def _is_json_type(media: Optional[str]) -> bool:
    return media == "application/json" or bool(media and media.startswith("application/") and media.endswith("+json"))


async def _read_json(request: Request, limit: int, timeout: float, *, content_type_required: bool) -> Any:
    """The body as JSON; 415 for a non-JSON content type, 413 past `limit` bytes, 408 when not all there
    within `timeout` seconds, 400 when not JSON.

    The limit is checked against Content-Length and again while reading, so a missing or lying
    Content-Length cannot let a larger body through.
    """
    media = _media_type(request)
    if not _is_json_type(media) and (content_type_required or media is not None):
        raise _Reject(415, f"Content-Type must be application/json, got {media or 'none'}")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise _Reject(400, "Content-Length is not a number") from None
        if size > limit:
            raise _Reject(413, f"the body is {size:,} bytes; at most {limit:,} are accepted")
    try:
        async with asyncio.timeout(timeout):
            raw = await _read_body(request, limit)
    except TimeoutError:
        # Closing the connection too: the rest of the body must not be read as the next request.
        raise _Reject(408, f"the body did not arrive within {timeout:g} s",
                      headers={"Connection": "close"}) from None
    except ClientDisconnect:
        # nginx's "client closed request": logged, never sent.
        raise _Reject(499, "the client hung up before its body was complete") from None
    if not raw.strip():
        raise _Reject(400, "the body is empty; a JSON object is expected")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, absurd numbers, deep nesting
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise _Reject(400, f"the body is not valid JSON: {reason}") from None


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _Reject(413, f"the body is over {limit:,} bytes; at most {limit:,} are accepted")
        chunks.append(chunk)
    return b"".join(chunks)


def _invalid(exc: NotificationError) -> JSONResponse:
    problems = exc.problems
    message = "; ".join(str(p) for p in problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")
    return _error(400, f"not valid, nothing was recorded: {message}",
                  problems=[p.as_dict() for p in problems[:50]], problem_count=len(problems))


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def build_receiver(settings: Any, engine: Engine, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                   body_timeout: float = DEFAULT_BODY_TIMEOUT, collections: Optional[KnownCollections] = None,
                   bc_client_state: Optional[str] = None, resolver: Optional[Resolver] = None) -> Starlette:
    """The ASGI app: POST /webhooks/ipaas, POST /webhooks/bc (+ GET for the handshake), GET /healthz.

    The iPaaS.com-style hook authenticates with `settings.ipaas_webhook_api_key` as bearer key. BC
    notifications must carry `bc_client_state` as clientState; by default a `bc_webhook_client_state`
    setting when there is one, else the webhook API key. With a `resolver`, each BC change's SystemId is
    read back to its key (one API GET) and a targeted request recorded; without, the entity is polled.
    """
    api_key = _secret(getattr(settings, "ipaas_webhook_api_key", None))
    client_state = _secret(bc_client_state) or _secret(getattr(settings, "bc_webhook_client_state", None)) or api_key
    known = collections or known_collections()
    inbox.ensure_table(engine)
    if api_key is None:
        log.warning("IPAAS_WEBHOOK_API_KEY is not set: every iPaaS webhook will be answered 503")

    workers = int(getattr(settings, "concurrent_connections", 5) or 5)

    async def record(requests: list[inbox.NewRequest], what: str,
                     ended: Optional[list[tuple[inbox.NewRequest, str]]] = None, **extra: Any) -> Response:
        try:
            ids = await run_in_threadpool(inbox.enqueue, engine, requests) if requests else []
            if ended:
                await run_in_threadpool(inbox.record_failed, engine, ended)
                for request, why in ended:
                    log.warning("%s: %s: %s", what, request.collection, why)
        except SQLAlchemyError:
            log.exception("%s: the inbox could not record %d request(s); answered 503", what, len(requests))
            return _error(503, "the inbox is unavailable; nothing was recorded, retry later",
                          headers={"Retry-After": "30"})
        log.info("%s: recorded %d request(s)", what, len(requests))
        return JSONResponse({"accepted": len(ids), "ids": ids, **extra}, status_code=202, headers=_NO_SNIFF)

    async def ipaas_webhook(request: Request) -> Response:
        if api_key is None:
            return _error(503, "no webhook API key is configured (IPAAS_WEBHOOK_API_KEY): "
                               "unauthenticated webhooks are never accepted")
        if not bearer_matches(request.headers.get("authorization"), api_key):
            log.warning("iPaaS webhook from %s refused: missing or wrong bearer key", _client(request))
            return _error(401, "missing or wrong Authorization: Bearer <webhook API key>",
                          headers={"WWW-Authenticate": 'Bearer realm="bc_pipeline"'})
        try:
            body = await _read_json(request, max_body_bytes, body_timeout, content_type_required=True)
            requests = ipaas_requests(body, known)
        except _Reject as reject:
            log.warning("iPaaS webhook from %s refused (%d): %s", _client(request), reject.status, reject.message)
            return reject.response()
        except NotificationError as exc:
            log.warning("iPaaS webhook from %s refused (400): %d bad notification(s)", _client(request), len(exc.problems))
            return _invalid(exc)
        return await record(requests, "iPaaS webhook")

    async def bc_webhook(request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:  # the subscription handshake: echo the token, record nothing
            return PlainTextResponse(token, headers=_NO_SNIFF)
        if request.method != "POST":
            return _error(405, "POST notifications here; GET only answers ?validationToken=", headers={"Allow": "POST"})
        if client_state is None:
            return _error(503, "no clientState secret is configured: Business Central notifications cannot be "
                               "authenticated (set the webhook secret)")
        try:
            body = await _read_json(request, max_body_bytes, body_timeout, content_type_required=False)
            items = bc_notifications(body)
        except _Reject as reject:
            log.warning("BC webhook from %s refused (%d): %s", _client(request), reject.status, reject.message)
            return reject.response()
        except NotificationError as exc:
            return _invalid(exc)
        if not all(secret_matches(item.get("clientState"), client_state) for item in items):
            # 401 makes Business Central delete a subscription that does not carry our secret: wanted.
            log.warning("BC webhook from %s refused: missing or wrong clientState", _client(request))
            return _error(401, "missing or wrong clientState")
        try:
            requests, ignored = bc_requests(items, known)
        except NotificationError as exc:
            return _invalid(exc)
        for problem in ignored:
            log.warning("BC webhook: notification %s ignored: %s", problem.index, problem.message)
        try:
            requests, ended = await run_in_threadpool(resolve, requests, resolver, workers=workers)
        except ResolutionError as exc:
            # 503: BC delivers the notification again later (408/429/5xx are retried for 36 hours).
            log.warning("BC webhook: %s; answered 503", exc)
            return _error(503, "the changed records could not be read from Business Central; nothing was "
                               "recorded, retry later", headers={"Retry-After": "30"})
        extra: dict[str, Any] = {"ignored": [p.as_dict() for p in ignored]} if ignored else {}
        if ended:
            extra["failed"] = [{"collection": r.collection, "error": why} for r, why in ended]
        return await record(requests, "BC webhook", ended, **extra)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=_NO_SNIFF)

    return Starlette(routes=[
        Route("/webhooks/ipaas", ipaas_webhook, methods=["POST"]),
        Route("/webhooks/bc", bc_webhook, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


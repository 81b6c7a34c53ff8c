"""Serving the receiver with uvicorn, safe against slow clients (slowloris).

uvicorn has no header-read timeout and counts every open connection against `limit_concurrency`, so a
few hundred sockets sending partial headers would hold their connections forever and make every other
request 503. Here a connection that has not sent a request's headers within `header_timeout` seconds
(of opening, or of its previous answer) is closed, the body's deadline is the receiver's
(`body_timeout`, answered 408), and only requests being handled count against the limit.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from typing import Any, Optional

import uvicorn
from starlette.responses import JSONResponse
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from bc_pipeline.webhooks.receiver import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, build_receiver

log = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT = 5.0
MAX_IN_FLIGHT = 200


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol (headers capped at 16 KiB) that closes connections whose headers are overdue."""

    def __init__(self, *args: Any, header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._deadline: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_headers()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._cancel_deadline()
        if not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.header_timeout, self._headers_overdue, self.cycle)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_overdue(self, cycle: Any) -> None:
        # A new cycle means new headers arrived; a pipelined request still being answered is not overdue.
        if self.cycle is cycle and (cycle is None or cycle.response_complete):
            log.debug("closed %s: no complete request headers within %gs", self.client, self.header_timeout)
            self.timeout_keep_alive_handler()


class InFlightLimit:
    """ASGI middleware: at most `limit` requests handled at once, others 503; idle connections cost nothing."""

    def __init__(self, app: Any, limit: int = MAX_IN_FLIGHT):
        self.app = app
        self.limit = limit
        self.active = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif self.active >= self.limit:
            log.warning("%d requests in flight: answered 503", self.active)
            busy = JSONResponse({"error": "too many requests at once; retry later"}, 503, headers={"Retry-After": "5"})
            await busy(scope, receive, send)
        else:
            self.active += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.active -= 1


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with the receiver's own lines (recorded, refused) on the same handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["bc_pipeline"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(settings: Any, host: str = "127.0.0.1", port: int = 8090, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          ssl_certfile: Optional[str] = None, ssl_keyfile: Optional[str] = None,
          header_timeout: float = DEFAULT_HEADER_TIMEOUT, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
    """Run the receiver with uvicorn until stopped. Business Central and iPaaS.com call HTTPS URLs only:
    give a certificate here or put the receiver behind a TLS-terminating proxy."""
    from bc_pipeline.state.database import engine_for

    engine = engine_for(settings.state_database_url)
    resolver = None
    if settings.has_bc_credentials:
        from bc_pipeline.webhooks.resolution import api_resolver

        resolver = api_resolver(settings)
    else:
        log.warning("no Business Central credentials: a BC notification makes its entity be polled, not its record synced")
    app = build_receiver(settings, engine, max_body_bytes=max_body_bytes, body_timeout=body_timeout, resolver=resolver)
    uvicorn.run(InFlightLimit(app), host=host, port=port, server_header=False, timeout_keep_alive=5,
                http=functools.partial(DeadlineProtocol, header_timeout=header_timeout),  # type: ignore[arg-type]
                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, log_config=_log_config(), log_level="info")

"""What the sandbox answers in a service's stead when a fault fires: the service's error for a status, or nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Optional

from starlette.responses import JSONResponse, Response

from . import entra
from .bc_errors import BCError, retry_after_header, server_error, too_many_requests
from .ipaas_http import ApiError, error_body

IPAAS_MESSAGES = {429: "Too many requests", 500: "Internal server error", 502: "Bad gateway",
                  503: "Service unavailable", 504: "Gateway timeout"}


def bc_error_for(status: int, retry_after: Optional[float]) -> BCError:
    if status == 429:
        return too_many_requests("The sandbox's fault switch answered 429.", retry_after)
    return server_error(status, retry_after)


def entra_error_for(scope, status: int, retry_after: Optional[float]) -> Response:
    response = entra.entra_error(status, "temporarily_unavailable", 90033,
                                 "A transient error has occurred. Please try again.")
    response.headers.update(retry_after_header(retry_after))
    return response


def ipaas_error_for(scope, status: int, retry_after: Optional[float]) -> Response:
    """iPaaS.com's error body (ipaas_http.error_body) and X-Correlation-Id, the client's own id when it sent one."""
    sent = dict(scope["headers"]).get(b"x-correlation-id", b"").decode("latin-1")
    correlation_id = sent or uuid.uuid4().hex
    error = ApiError(status, f"{IPAAS_MESSAGES.get(status, f'HTTP {status}')} (sandbox fault)")
    return JSONResponse(error_body(error, correlation_id), status_code=status,
                        headers={"X-Correlation-Id": correlation_id, **retry_after_header(retry_after)})


async def drop_connection(scope, send) -> None:
    """Close the socket without answering (the custom protocol in server.py puts the transport in the scope)."""
    transport = scope.get("sandbox.transport")
    if transport is not None:
        transport.abort()
        for _ in range(50):  # let connection_lost reach uvicorn, so it does not try to answer 500
            await asyncio.sleep(0.001)
            if scope.get("sandbox.lost"):
                break
        return
    # fallback: promise a body, then break the connection
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    raise ConnectionAbortedError("sandbox fault: drop")


class HeldAnswer:
    """An ASGI answer held back until it is known whether a lost_answer rule takes it."""

    def __init__(self) -> None:
        self.status = 0
        self.messages: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        self.messages.append(message)

    async def replay(self, send) -> None:
        for message in self.messages:
            await send(message)

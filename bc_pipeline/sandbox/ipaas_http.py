"""The iPaaS.com stand-in's shared HTTP pieces: ApiError, its JSON error body (ASSUMED shape), JSON in and out, Bearer."""

from __future__ import annotations

from typing import Any, Optional

import orjson
from starlette.requests import Request
from starlette.responses import Response


class ApiError(Exception):
    """An error the stand-in answers as ``error_body``; ``field`` names what was wrong (a field, header or parameter)."""

    def __init__(self, status: int, message: str, field: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers or {}


def error_body(e: ApiError, correlation_id: str) -> dict:
    # ASSUMED: no public source shows iPaaS.com's error body; the Template's client just logs whatever JSON comes back.
    return {"errors": [{"message": e.message, "field": e.field}], "status": e.status, "correlation_id": correlation_id}


def json_response(data: Any, status: int = 200, headers: Optional[dict] = None) -> Response:
    body = b"" if status == 204 else orjson.dumps(data)
    return Response(body, status_code=status, headers=headers, media_type=None if status == 204 else "application/json")


def error_response(e: ApiError, correlation_id: str) -> Response:
    return json_response(error_body(e, correlation_id), e.status, e.headers)


def parse_json(raw: bytes) -> Any:
    """A request body ({} when empty); 400 when it is not JSON."""
    try:
        return orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "the request body is not valid JSON") from None


def authenticate(request: Request, expected: str) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token.strip() != str(expected):
        raise ApiError(401, "missing or invalid Bearer token", "Authorization",
                       {"WWW-Authenticate": 'Bearer realm="iPaaS.com"'})

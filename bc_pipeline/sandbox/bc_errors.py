"""Business Central's error answers and the Answer type every OData handler returns.

Every BC error body is ``{"error": {"code": "...", "message": "<text>  CorrelationId:  <guid>."}}``
(two spaces before and after ``CorrelationId:``, as BC writes it), and the same GUID is sent in the
``request-id`` response header, so a client can log it from either place.

Codes and statuses used (dynamics-error-codes, http status table in business-central.md):
  400 BadRequest_NotFound            malformed $filter ("Bad Request - Error in query syntax.")
  400 BadRequest / BadRequest_*      unknown property, incompatible types, bad body, batch too large
  400 BadRequest_InvalidToken        PATCH/DELETE without If-Match
  400 Internal_EntityWithSameKeyExists  POST of an existing key
  400 BadRequest_InvalidOperation, Application_EvaluateException, Internal_InvalidTableRelation,
      Application_DialogException, Application_FieldValidationException  writes BC refuses (bc_rules.py)
  400 Application_StringExceededLength  a value longer than its Code[n]/Text[n]
  401 Authentication_InvalidCredentials  token missing, unknown or expired (+ WWW-Authenticate)
  403 Authorization_InsufficientPermissions  the app is not permitted in BC (configurable per client id)
  404 BadRequest_ResourceNotFound    service not published ("Resource not found for the segment 'X'")
  404 BadRequest_NotFound            record missing, no such URL
  404 Internal_CompanyNotFound       unknown company (status 404 chosen; BC's docs give no status for it)
  409 Request_EntityChanged          stale ETag
  429 Application_TooManyRequests    rate limit / queue full / fault switch (Retry-After only when configured)
  500 Internal_ServerError, 502 Application_BadGateway, 503 Application_ServiceUnavailable,
  504 Application_GatewayTimeout     fault switches; 502 and 503 always carry Retry-After, as BC's docs say
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import orjson

JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"


@dataclass
class Answer:
    """An HTTP answer in a form both the HTTP layer and $batch can use."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: Optional[str] = JSON_TYPE

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return self.body.decode("utf-8", "replace")


class BCError(Exception):
    """An error Business Central answers with its JSON error body."""

    def __init__(self, status: int, code: str, message: str, headers: Optional[dict[str, str]] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def answer(self, correlation_id: str) -> Answer:
        text = self.message.rstrip()
        body = orjson.dumps({"error": {"code": self.code, "message": f"{text}  CorrelationId:  {correlation_id}."}})
        return Answer(self.status, body, dict(self.headers))


def syntax_error() -> BCError:
    return BCError(400, "BadRequest_NotFound", "Bad Request - Error in query syntax.")


def resource_not_found(segment: str, url: str) -> BCError:
    return BCError(404, "BadRequest_ResourceNotFound", f"Resource not found for the segment '{segment}'. No web "
                   f"service named '{segment}' is published (request URI '{url}').")


def not_found_resource(url: str) -> BCError:
    return BCError(404, "BadRequest_NotFound", f"No HTTP resource was found that matches the request URI '{url}'.")


def record_not_found(table: str, key_desc: str) -> BCError:
    return BCError(404, "BadRequest_NotFound",
                   f"The {table} does not exist. Identification fields and values: {key_desc}")


def unauthorized(description: str) -> BCError:
    return BCError(401, "Authentication_InvalidCredentials", "The server has rejected the client credentials.",
                   {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                                        f'authorize", error="invalid_token", error_description="{description}"'})


def forbidden(client_id: str) -> BCError:
    return BCError(403, "Authorization_InsufficientPermissions",
                   f"The user does not have permission to access Business Central. The application '{client_id}' "
                   "is not registered on the Microsoft Entra Applications page or has no permission sets.")


# BC's docs say 502/503 carry Retry-After but give no value; 1 s keeps runs against faults short.
SERVICE_RETRY_AFTER_SECONDS = 1.0


def retry_after_header(seconds: Optional[float]) -> dict[str, str]:
    """{"Retry-After": "2"} (whole seconds without ".0"), or {} for None."""
    if seconds is None:
        return {}
    return {"Retry-After": str(int(seconds) if float(seconds).is_integer() else seconds)}


def too_many_requests(detail: str, retry_after: Optional[float] = None) -> BCError:
    return BCError(429, "Application_TooManyRequests", f"Too many requests reached. {detail}",
                   retry_after_header(retry_after))


def server_error(status: int, retry_after: Optional[float] = None) -> BCError:
    code, message = {
        500: ("Internal_ServerError", "An unexpected error occurred on the server."),
        502: ("Application_BadGateway", "Bad gateway."),
        503: ("Application_ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
        504: ("Application_GatewayTimeout", "The request took too long to process."),
        408: ("Application_RequestTimeout", "The operation has timed out."),
    }.get(status, ("Internal_ServerError", f"HTTP {status}."))
    if retry_after is None and status in (502, 503):
        retry_after = SERVICE_RETRY_AFTER_SECONDS
    return BCError(status, code, message, retry_after_header(retry_after))

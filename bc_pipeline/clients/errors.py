"""Typed errors for Business Central, Entra ID and iPaaS.com, each carrying what the user needs to act."""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

import requests

_CORRELATION_IN_MESSAGE = re.compile(r"CorrelationId:\s*([0-9a-fA-F-]{8,})")


class PipelineError(Exception):
    """Base of every error bc_pipeline raises on purpose."""


class ServiceError(PipelineError):
    """An error answer from a service: status, the service's code and message, correlation id, and a fix."""

    service = "service"

    def __init__(
        self,
        *,
        status: Optional[int],
        code: Optional[str],
        message: str,
        correlation_id: Optional[str] = None,
        method: Optional[str] = None,
        url: Optional[str] = None,
        hint: Optional[str] = None,
    ):
        self.status = status
        self.code = code
        self.message = message
        self.correlation_id = correlation_id
        self.method = method
        self.url = url
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.service} answered"
        if self.status is not None:
            head += f" HTTP {self.status}"
        if self.code:
            head += f" {self.code}"
        text = f"{head}: {self.message}"
        if self.method and self.url:
            text += f" [{self.method} {self.url}]"
        if self.correlation_id:
            text += f" (correlation id {self.correlation_id})"
        if self.hint:
            text += f". What to do: {self.hint}"
        return text

    @property
    def retryable(self) -> bool:
        return self.status in (408, 429, 500, 502, 503, 504)


class BusinessCentralError(ServiceError):
    service = "Business Central"


class EntityChangedError(BusinessCentralError):
    """HTTP 409 Request_EntityChanged: the ETag is stale, another user changed the record."""


class NotPublishedError(BusinessCentralError):
    """HTTP 404 on a web service: the page or query is not published under that service name."""


class AuthenticationError(ServiceError):
    """Entra ID refused to issue a token."""

    service = "Microsoft Entra ID"


class IpaasError(ServiceError):
    service = "iPaaS.com"


# The setting that says where each service is: what to check when it cannot be reached.
UNREACHABLE_SETTING = {
    "Microsoft Entra ID": "the Entra login host (BC_AUTHORITY_HOST, normally https://login.microsoftonline.com)",
    "Business Central": "the API URL (BC_API_URL, normally https://api.businesscentral.dynamics.com)",
    "iPaaS.com": "the iPaaS.com API host (IPAAS_API_URL, normally https://api.ipaas.com)",
}


class TransportError(PipelineError):
    """No answer from the service (DNS, TLS, connection, timeout).

    `maybe_sent`: the request may have reached the service before the connection failed, so a write may
    have been applied; False when connecting failed (nothing was sent).
    """

    def __init__(self, service: str, method: str, url: str, cause: BaseException, *, maybe_sent: bool = False):
        self.service = service
        self.method = method
        self.url = url
        self.cause = cause
        self.maybe_sent = maybe_sent
        reason = type(cause).__name__
        detail = str(cause)
        hint = f"check {UNREACHABLE_SETTING.get(service, 'the URL setting')} and the network"
        if isinstance(cause, requests.exceptions.SSLError):
            hint = (
                "the server's TLS certificate is not trusted; if it is signed by a private CA, "
                "point REQUESTS_CA_BUNDLE at that CA's PEM file (verification is never switched off)"
            )
        elif maybe_sent:
            hint = f"the request may have reached {service}: check whether it was applied before sending it again"
        verb = "lost the connection to" if maybe_sent else "could not reach"
        super().__init__(f"{verb} {service} [{method} {url}]: {reason}: {detail}. What to do: {hint}")


class UntrustedNextLinkError(PipelineError):
    """Business Central's @odata.nextLink points away from the API URL: not followed, the read is incomplete."""

    def __init__(self, service: str, link: str, api_url: str):
        self.service = service
        self.link = _without_query(link)
        self.api_url = api_url
        super().__init__(
            f"Business Central's @odata.nextLink for {service} points to {self.link}, not to the API URL {api_url} "
            f"(scheme, host and port must match): it was not followed, so the access token was not sent there, "
            f"and the read of {service} is incomplete. What to do: check BC_API_URL; if a proxy or gateway "
            "between here and Business Central rewrites links, have it keep the API URL's scheme, host and port"
        )


def status_unclear(status: int) -> bool:
    """An answer after which the service may have done the work (or will on a retry): 408, 429, 5xx."""
    return status in (408, 429) or status >= 500


def outcome_unclear(exc: BaseException) -> bool:
    """Whether the service may have done the work although no success answer came back: look before re-sending."""
    if isinstance(exc, TransportError):
        return exc.maybe_sent
    # A token refusal comes before the request it was for: that request was never sent.
    if isinstance(exc, ServiceError) and not isinstance(exc, AuthenticationError) and exc.status is not None:
        return status_unclear(exc.status)
    return False


def bc_hint(status: Optional[int], code: Optional[str], service: Optional[str] = None,
            published: Optional[str] = None) -> Optional[str]:
    """The guide's Troubleshooting advice for a Business Central answer (`published`: the Service Name asked for)."""
    code = code or ""
    if status == 401:
        return (
            "the access token was refused: check Tenant ID, Client ID and Client Secret; for expired or "
            "invalid tokens, reauthorize the application in the Microsoft Entra Admin Center"
        )
    if status == 403:
        return (
            "grant the app permission in Business Central: add it on the 'Microsoft Entra Applications' page "
            "with permission sets, and give it the API permission Dynamics 365 Business Central "
            "API.ReadWrite.All (Application) in the Entra Admin Center"
        )
    if status == 404 and "Company" in code:
        return "check Company Name: it must match the company in Business Central exactly, including case"
    if status == 404 and service:
        from bc_pipeline.catalog import BY_SERVICE

        entity = BY_SERVICE.get(service)
        if entity is not None:
            name = published or entity.service
            where = (f"; if you published it under another Service Name, set BC_SERVICE_NAMES={entity.name}=<that name>"
                     if name == entity.service else f" (BC_SERVICE_NAMES names it {name}), or correct "
                     f"{entity.name}={name} in BC_SERVICE_NAMES")
            return (
                f"in Business Central search for 'Web Services', choose New, Object Type {entity.object_type}, "
                f"Object ID {entity.object_id} ({entity.object_name}), Service Name {name}, and tick Publish{where}"
            )
        return "publish the page as a web service in Business Central (search 'Web Services')"
    if status == 409 and code == "Request_EntityChanged":
        return "the record changed in Business Central since it was read; re-read it and apply the change again"
    if status == 429:
        return "Business Central is throttling: lower API Throttle Limit or raise API Throttle Seconds"
    if status in (502, 503, 504):
        return "Business Central is busy or unavailable; the request is retried, try again later if it persists"
    if status == 400 and "InvalidToken" in code:
        return "the request lacked a usable If-Match ETag; re-read the record before changing it"
    return None


def entra_hint(error: Optional[str], description: str) -> str:
    """The guide's advice for a token error from Entra ID."""
    if "AADSTS7000222" in description:
        return "the client secret has expired: create a new one under Certificates & Secrets and update Client Secret"
    if error == "invalid_client" or "AADSTS7000215" in description:
        return "the Client Secret is wrong: copy the secret's Value (not its ID) from Certificates & Secrets"
    if error == "unauthorized_client" or "AADSTS700016" in description:
        return "the Client ID is not an application in this tenant: check Client ID and Tenant ID in App Registrations"
    if "AADSTS90002" in description or "AADSTS900023" in description or error == "invalid_request":
        return "the Tenant ID is wrong: copy Directory (tenant) ID from the app's Overview in the Entra Admin Center"
    if error == "invalid_scope" or "AADSTS70011" in description:
        return "Scope must be https://api.businesscentral.dynamics.com/.default"
    return "check Tenant ID, Client ID, Client Secret and Scope in the subscription settings"


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _correlation(response: requests.Response, message: str) -> Optional[str]:
    for header in ("request-id", "x-ms-correlation-id", "ms-correlation-x", "x-correlation-id", "client-request-id"):
        if response.headers.get(header):
            return response.headers[header]
    found = _CORRELATION_IN_MESSAGE.search(message or "")
    return found.group(1) if found else None


def bc_error_from_response(
    response: requests.Response, service: Optional[str] = None, *, record: bool = False,
    published: Optional[str] = None,
) -> BusinessCentralError:
    """Turn a Business Central error answer into a typed error (BC's `{"error":{"code","message"}}`).

    `record`: the request named one record, so a 404 means that record does not exist, not that the
    service is unpublished.
    """
    error = _json(response).get("error") or {}
    code = error.get("code") if isinstance(error, dict) else None
    message = (error.get("message") if isinstance(error, dict) else None) or response.reason or "no message"
    status = response.status_code
    if status == 409 and code == "Request_EntityChanged":
        cls = EntityChangedError
    elif status == 404 and service and not record and "Company" not in (code or ""):
        cls = NotPublishedError
    else:
        cls = BusinessCentralError
    hint = bc_hint(status, code, None if record else service, published)
    if record and status == 404:
        hint = "the record does not exist (any more) in Business Central"
    return cls(
        status=status,
        code=code,
        message=message,
        correlation_id=_correlation(response, message),
        method=response.request.method if response.request is not None else None,
        url=_safe_url(response.url),
        hint=hint,
    )


def ipaas_error_from_response(response: requests.Response) -> IpaasError:
    body = _json(response)
    code = None
    message = None
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, dict):
            message = "; ".join(
                f"{e.get('field') + ': ' if e.get('field') else ''}{e.get('message')}" for e in errors if isinstance(e, dict)
            )
            code = first.get("code")
    message = message or body.get("message") or body.get("title") or response.reason or "no message"
    hint = None
    if response.status_code == 401:
        hint = "check IPAAS_API_TOKEN: create or renew an API key under User/Role Management > API Keys"
    elif response.status_code == 429:
        hint = "iPaaS.com is throttling: lower API Throttle Limit (to iPaaS) or raise API Throttle Seconds (to iPaaS)"
    return IpaasError(
        status=response.status_code,
        code=code,
        message=message,
        correlation_id=_correlation(response, message) or body.get("correlation_id"),
        method=response.request.method if response.request is not None else None,
        url=_safe_url(response.url),
        hint=hint,
    )


def _without_query(url: str) -> str:
    """scheme://host:port/path: no user info, query or fragment, which could carry secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _safe_url(url: Optional[str]) -> Optional[str]:
    """URLs never carry secrets here, but cut query strings that could be long."""
    if not url:
        return url
    return url if len(url) <= 300 else url[:300] + "…"

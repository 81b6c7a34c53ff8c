"""Microsoft Entra ID stand-in: OpenID discovery and the client-credentials token endpoint MSAL talks to.

Paths (on the sandbox's one port, as on login.microsoftonline.com):
  GET  /{tenant}/v2.0/.well-known/openid-configuration   (and /{tenant}/.well-known/openid-configuration)
  POST /{tenant}/oauth2/v2.0/token                       form: grant_type, client_id, client_secret, scope
Errors are Entra's JSON: {"error", "error_description" ("AADSTSnnnn: ..."), "error_codes", "timestamp",
"trace_id", "correlation_id"}. Tokens are opaque random strings, remembered with their expiry.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .config import BC_SCOPE, SandboxConfig

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass
class Token:
    client_id: str
    tenant_id: str
    expires_at: float  # time.time()


class TokenStore:
    """Issued access tokens; the 'expire all now' switch and the BC side's lookup."""

    def __init__(self) -> None:
        self.tokens: dict[str, Token] = {}
        self.issued = 0

    def issue(self, client_id: str, tenant_id: str, lifetime: int) -> str:
        token = "sbx." + secrets.token_urlsafe(48)
        self.tokens[token] = Token(client_id, tenant_id, time.time() + lifetime)
        self.issued += 1
        if len(self.tokens) > 10000:  # forget long-expired ones
            now = time.time()
            self.tokens = {k: v for k, v in self.tokens.items() if v.expires_at > now - 3600}
        return token

    def lookup(self, token: str) -> tuple[Optional[Token], str]:
        """(token, '') when valid, else (None or the expired token, why)."""
        found = self.tokens.get(token)
        if found is None:
            return None, "invalid"
        if found.expires_at <= time.time():
            return found, "expired"
        return found, ""

    def expire_all(self) -> int:
        now = time.time()
        for t in self.tokens.values():
            t.expires_at = min(t.expires_at, now - 1)
        return len(self.tokens)


def tenant_matches(config: SandboxConfig, tenant: str) -> bool:
    return tenant.lower() in (config.tenant_id.lower(), config.tenant_domain.lower())


def entra_error(status: int, error: str, code: int, description: str, correlation_id: Optional[str] = None) -> Response:
    now = datetime.now(timezone.utc)
    trace_id = str(uuid.uuid4())
    correlation_id = correlation_id or str(uuid.uuid4())
    text = (f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}")
    return JSONResponse({
        "error": error, "error_description": text, "error_codes": [code],
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"), "trace_id": trace_id, "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }, status_code=status, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def _tenant_problem(tenant: str, correlation_id: Optional[str], error: str = "invalid_request") -> Response:
    if _GUID.match(tenant) or _DOMAIN.match(tenant):
        return entra_error(400, error, 90002, f"Tenant '{tenant}' not found. Check to make sure you have the "
                           "correct tenant ID and are signing into the correct cloud. Check with your subscription "
                           "administrator, this may happen if there are no active subscriptions for the tenant.",
                           correlation_id)
    return entra_error(400, error, 900023, f"Specified tenant identifier '{tenant}' is neither a valid DNS name, "
                       "nor a valid external domain.", correlation_id)


def openid_configuration(config: SandboxConfig, base_url: str, tenant: str) -> Response:
    if not tenant_matches(config, tenant):
        return _tenant_problem(tenant, None, error="invalid_tenant")
    tid = config.tenant_id
    root = f"{base_url}/{tenant}"
    return JSONResponse({
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base_url}/{tid}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base_url}/{tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base_url}/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "ver"],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    })


async def token_endpoint(config: SandboxConfig, tokens: TokenStore, request: Request, tenant: str) -> Response:
    correlation_id = request.headers.get("client-request-id")
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    if not tenant_matches(config, tenant):
        return _tenant_problem(tenant, correlation_id)
    grant = form.get("grant_type")
    if not grant:
        return entra_error(400, "invalid_request", 900144, "The request body must contain the following parameter: "
                           "'grant_type'.", correlation_id)
    if grant != "client_credentials":
        return entra_error(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type "
                           f"'{grant}'.", correlation_id)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):  # client_secret_basic
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            return entra_error(401, "invalid_client", 7000218, "The request body must contain the following "
                               "parameter: 'client_assertion' or 'client_secret'.", correlation_id)
    if not client_id:
        return entra_error(400, "invalid_request", 900144, "The request body must contain the following parameter: "
                           "'client_id'.", correlation_id)
    reg = config.clients().get(client_id)
    if reg is None:
        return entra_error(400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' was not "
                           f"found in the directory '{config.tenant_domain}'. This can happen if the application has "
                           "not been installed by the administrator of the tenant or consented to by any user in the "
                           "tenant. You may have sent your authentication request to the wrong tenant.",
                           correlation_id)
    if not secret:
        return entra_error(401, "invalid_client", 7000218, "The request body must contain the following parameter: "
                           "'client_assertion' or 'client_secret'.", correlation_id)
    if not secrets.compare_digest(secret, reg.client_secret):
        return entra_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                           "sent in the request is the client secret value, not the client secret ID, for a secret "
                           f"added to app '{client_id}'.", correlation_id)
    scopes = form.get("scope", "").split()
    if scopes != [BC_SCOPE]:
        shown = form.get("scope", "")
        return entra_error(400, "invalid_scope", 70011, "The provided request must include a 'scope' input "
                           "parameter. The provided value for the input parameter 'scope' is not valid. The scope "
                           f"{shown} is not valid.", correlation_id)
    lifetime = int(config.token_lifetime_seconds)
    access = tokens.issue(client_id, config.tenant_id, lifetime)
    return JSONResponse({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                         "access_token": access},
                        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

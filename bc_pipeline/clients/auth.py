"""Access tokens for Business Central: OAuth 2.0 client credentials through MSAL, cached and renewed."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Optional
from urllib.parse import urlsplit

import msal
import requests

from bc_pipeline.clients.errors import AuthenticationError, TransportError, entra_hint
from bc_pipeline.settings import SubscriptionSettings

log = logging.getLogger(__name__)

MICROSOFT_HOSTS = ("login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.microsoftonline.de")
# Renew a little before expiry so that a long page read never starts with a token about to lapse.
RENEW_BEFORE_SECONDS = 300


class TokenProvider:
    """Gets and caches a client-credentials token; `invalidate()` forces a new one after a 401."""

    def __init__(self, settings: SubscriptionSettings, session: Optional[requests.Session] = None):
        settings.require_bc()
        self._settings = settings
        self._lock = threading.Lock()
        self._token: Optional[str] = None
        self._expires_at = 0.0
        self._forced = False
        self._session = session
        self._app: Optional[msal.ConfidentialClientApplication] = None
        self.tokens_issued = 0

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            settings = self._settings
            host = urlsplit(settings.authority_host).hostname or ""
            try:
                self._app = msal.ConfidentialClientApplication(
                    settings.client_id,
                    client_credential=settings.client_secret.get_secret_value(),
                    authority=settings.authority,
                    # Instance discovery asks Microsoft whether the host is a known cloud: only for Microsoft's own.
                    instance_discovery=host in MICROSOFT_HOSTS,
                    verify=settings.verify,
                    http_client=self._session,
                    token_cache=msal.TokenCache(),
                )
            except ValueError as exc:
                # MSAL raises ValueError when tenant discovery fails (wrong tenant or host).
                raise AuthenticationError(
                    status=None,
                    code="tenant_discovery_failed",
                    message=_without_secret(str(exc), settings),
                    hint=entra_hint("invalid_request", "AADSTS90002"),
                ) from None
            except requests.exceptions.RequestException as exc:
                raise TransportError("Microsoft Entra ID", "GET", settings.authority, exc) from None
        return self._app

    def invalidate(self) -> bool:
        """Forget the cached token so the next call gets a new one; True (a new token is worth a retry)."""
        with self._lock:
            self._token = None
            self._expires_at = 0.0
            self._forced = True
        return True

    def token(self) -> str:
        with self._lock:
            if self._token and time.time() < self._expires_at - RENEW_BEFORE_SECONDS:
                return self._token
            app = self._application()
            scopes = [self._settings.scope]
            try:
                if self._forced:
                    # MSAL's own cache would hand back the token the service just refused.
                    cache = app.token_cache
                    for access_token in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                        cache.remove_at(access_token)
                    self._forced = False
                result = app.acquire_token_for_client(scopes=scopes)
            except requests.exceptions.RequestException as exc:
                raise TransportError("Microsoft Entra ID", "POST", self._settings.authority, exc) from None
            if not result or "access_token" not in result:
                result = result or {}
                description = _without_secret(str(result.get("error_description", "no token in the answer")), self._settings)
                raise AuthenticationError(
                    status=None,
                    code=result.get("error"),
                    message=description.splitlines()[0] if description else "no token",
                    correlation_id=result.get("correlation_id"),
                    hint=entra_hint(result.get("error"), description),
                )
            if result.get("token_source") != "cache":
                self.tokens_issued += 1
            self._token = result["access_token"]
            self._expires_at = time.time() + float(result.get("expires_in", 3600))
            return self._token

    def authorization_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}


_shared: dict[str, TokenProvider] = {}
_shared_lock = threading.Lock()


def shared_token_provider(settings: SubscriptionSettings) -> TokenProvider:
    """One provider (one MSAL app, one cached token) per app registration in this process: the assets of
    an in-process run would otherwise each do tenant discovery and get a token of their own."""
    settings.require_bc()
    secret = settings.client_secret.get_secret_value()
    key = "\x1f".join((settings.authority, settings.client_id, settings.scope, str(settings.verify),
                       hashlib.sha256(secret.encode()).hexdigest()))
    with _shared_lock:
        provider = _shared.get(key)
        if provider is None:
            from bc_pipeline.clients.transport import new_session

            provider = _shared[key] = TokenProvider(settings, session=new_session(settings.verify, pool_size=2))
        return provider


def forget_shared_token_providers() -> None:
    """Drop every shared provider (for a process that wants fresh tokens, e.g. between tests)."""
    with _shared_lock:
        _shared.clear()


def _without_secret(text: str, settings: SubscriptionSettings) -> str:
    secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
    return text.replace(secret, "***") if secret else text

"""Constant-time checks of the webhook secrets (bearer key, BC clientState); never log what they compare."""

from __future__ import annotations

import hmac
from typing import Any, Optional


def _bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def secret_matches(given: Any, secret: Optional[str]) -> bool:
    """True only when a secret is configured and `given` is exactly it (compared in constant time)."""
    if not secret or not isinstance(given, str):
        return False
    return hmac.compare_digest(_bytes(given), _bytes(secret))


def bearer_matches(authorization: Optional[str], secret: Optional[str]) -> bool:
    """True when an `Authorization: Bearer <key>` header carries the configured key."""
    if not secret or not authorization:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Starlette decodes header bytes as latin-1; turn them back into the bytes the client sent.
    given = token.strip().encode("latin-1", "replace")
    return hmac.compare_digest(given, _bytes(secret))

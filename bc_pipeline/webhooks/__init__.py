"""Inbound webhooks (iPaaS.com-style hooks and Business Central API notifications) recorded in the inbox."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"build_receiver": "receiver", "serve": "server"}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    # Lazy, so Manual Sync can use the shared validation without importing Starlette.
    if name in _HOMES:
        return getattr(importlib.import_module(f"bc_pipeline.webhooks.{_HOMES[name]}"), name)
    raise AttributeError(name)

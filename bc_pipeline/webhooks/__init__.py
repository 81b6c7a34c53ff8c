"""Inbound webhooks (iPaaS.com-style hooks and Business Central API notifications) recorded in the inbox."""

from __future__ import annotations

from typing import Any

__all__ = ["build_receiver", "serve"]


def __getattr__(name: str) -> Any:
    # Lazy, so Manual Sync can use the shared validation without importing Starlette.
    if name in __all__:
        from bc_pipeline.webhooks import receiver

        return getattr(receiver, name)
    raise AttributeError(name)

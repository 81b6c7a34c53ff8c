"""This pipeline's Business Central webhook subscriptions: which it wants, their state, create, renew, delete.

One subscription per catalog entity with an API v2.0 entity set that a TO-iPaaS collection reads, all to
BC_WEBHOOK_NOTIFICATION_URL. BC lets a subscription lapse after 3 days; the `bc_webhook_subscriptions` schedule
renews each one a day before (`RENEW_WITHIN`), so a missed hour or two costs nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Optional

from bc_pipeline.catalog import ENTITIES, Entity
from bc_pipeline.clients.bc_api import BusinessCentralApi
from bc_pipeline.clients.errors import PipelineError
from bc_pipeline.mapping.registry import to_ipaas_collections
from bc_pipeline.settings import SubscriptionSettings

RENEW_WITHIN = dt.timedelta(days=1)
ACTIVE, EXPIRING, MISSING = "active", "expiring", "missing"


class WebhooksNotConfigured(PipelineError):
    def __init__(self, what: str):
        super().__init__(f"{what} is not set. What to do: set BC_WEBHOOK_NOTIFICATION_URL to the public https URL of "
                         "`bc-pipeline webhooks serve`'s /webhooks/bc and BC_WEBHOOK_CLIENT_STATE (or "
                         "IPAAS_WEBHOOK_API_KEY) to the secret notifications must carry")


@dataclass
class SubscriptionState:
    """One wanted subscription as Business Central shows it."""

    entity: Entity
    resource: str
    state: str  # active | expiring | missing
    subscription: Optional[dict[str, Any]] = None
    action: str = ""  # what was just done: created, renewed, deleted

    @property
    def expires(self) -> Optional[str]:
        return self.subscription.get("expirationDateTime") if self.subscription else None

    def row(self) -> dict[str, Any]:
        return {"entity": self.entity.name, "resource": self.resource.rsplit("/", 1)[-1], "state": self.state,
                "expires": self.expires or "", "id": (self.subscription or {}).get("subscriptionId", ""),
                "action": self.action}


def subscribed_entities() -> list[Entity]:
    """Catalog entities with an API entity set whose records some TO-iPaaS collection reads."""
    sources = {c.source for c in to_ipaas_collections().values()}
    return [e for e in ENTITIES if e.api_entity and e.name in sources]


def _settings_ready(settings: SubscriptionSettings) -> tuple[str, str]:
    if not settings.bc_webhook_notification_url:
        raise WebhooksNotConfigured("BC_WEBHOOK_NOTIFICATION_URL")
    if not settings.webhook_client_state:
        raise WebhooksNotConfigured("BC_WEBHOOK_CLIENT_STATE")
    return settings.bc_webhook_notification_url, settings.webhook_client_state


def _expires(subscription: dict[str, Any]) -> Optional[dt.datetime]:
    text = str(subscription.get("expirationDateTime") or "")
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def states(api: BusinessCentralApi, settings: SubscriptionSettings, *,
           now: Optional[dt.datetime] = None) -> list[SubscriptionState]:
    """Each wanted subscription: active, expiring (within RENEW_WITHIN) or missing."""
    url = settings.bc_webhook_notification_url
    if not url:
        raise WebhooksNotConfigured("BC_WEBHOOK_NOTIFICATION_URL")
    now = now or dt.datetime.now(dt.timezone.utc)
    existing = api.subscriptions()
    out = []
    for entity in subscribed_entities():
        resource = api.resource(entity.api_entity or "")
        found = next((s for s in existing if s.get("notificationUrl") == url
                      and str(s.get("resource", "")).strip("/").lower() == resource.strip("/").lower()), None)
        if found is None:
            out.append(SubscriptionState(entity, resource, MISSING))
            continue
        expires = _expires(found)
        state = EXPIRING if expires is None or expires - now <= RENEW_WITHIN else ACTIVE
        out.append(SubscriptionState(entity, resource, state, found))
    return out


def ensure(api: BusinessCentralApi, settings: SubscriptionSettings, *, renew_all: bool = False,
           now: Optional[dt.datetime] = None) -> list[SubscriptionState]:
    """Create the missing subscriptions and renew those expiring (all of them with renew_all)."""
    url, client_state = _settings_ready(settings)
    out = []
    for item in states(api, settings, now=now):
        if item.state == MISSING:
            item.subscription = api.subscribe(item.entity.api_entity or "", url, client_state)
            item.state, item.action = ACTIVE, "created"
        elif item.state == EXPIRING or renew_all:
            item.subscription = api.renew(item.subscription or {}, client_state)
            item.state, item.action = ACTIVE, "renewed"
        out.append(item)
    return out


def delete(api: BusinessCentralApi, settings: SubscriptionSettings) -> list[SubscriptionState]:
    """Delete this pipeline's subscriptions (BC then sends nothing more; the incremental schedule is the way)."""
    out = []
    for item in states(api, settings):
        if item.subscription is not None:
            api.unsubscribe(item.subscription)
            item.action = "deleted"
        item.state = MISSING
        out.append(item)
    return out


def in_force(found: list[SubscriptionState]) -> str:
    """Which way BC's changes reach iPaaS.com: a sentence for doctor and the CLI."""
    missing = [s.entity.name for s in found if s.state == MISSING]
    if not found:
        return "no entity has an API webhook: the 15-minute incremental schedule is the way changes travel"
    if not missing:
        return ("webhook subscriptions are in force for " + ", ".join(s.entity.name for s in found)
                + ": a change reaches iPaaS.com ~30 s after it is saved in BC")
    return (f"no webhook subscription for {', '.join(missing)}: their changes travel only by the "
            "15-minute incremental schedule (switch incremental_sync_every_15_minutes on, or "
            "`bc-pipeline webhooks subscriptions create`)")


__all__ = ["ACTIVE", "EXPIRING", "MISSING", "RENEW_WITHIN", "SubscriptionState", "WebhooksNotConfigured", "delete",
           "ensure", "in_force", "states", "subscribed_entities"]


def run_subscriptions_command(action: str, settings: SubscriptionSettings) -> int:
    """`bc-pipeline webhooks subscriptions [list|create|renew|delete]`: a table of the subscriptions and what is in
    force; exit 1 when one is missing (list) or Business Central refused (create, renew, delete)."""
    from tabulate import tabulate

    from bc_pipeline.clients.business_central import BusinessCentralClient

    client = BusinessCentralClient(settings)
    api = BusinessCentralApi(client)
    try:
        if action == "list":
            found = states(api, settings)
        elif action == "delete":
            found = delete(api, settings)
        else:
            found = ensure(api, settings, renew_all=action == "renew")
    except PipelineError as exc:
        print(str(exc))
        return 1
    finally:
        client.close()
    print(tabulate([s.row() for s in found], headers="keys", tablefmt="github") if found else "No entity to subscribe.")
    print(in_force(found))
    return 1 if action == "list" and any(s.state == MISSING for s in found) else 0

"""Business Central API webhooks: subscriptions, the validationToken handshake, and delayed, batched notifications.

As BC documents (api-reference/v2.0/dynamics-subscriptions; ../shared/reference/business-central.md, Webhooks):
- a subscription names a notificationUrl, an API resource (`/api/v2.0/companies(<id>)/customers`) and an optional
  clientState; creating and renewing it (PATCH with If-Match) first calls `notificationUrl?validationToken=…`,
  which must answer 200 with the token as its body within 5 s; it expires 3 days after (re)newal;
- a record's change is notified after a delay (~30 s, `webhook_delay_seconds`), batched per subscription; over
  1,000 changes in one window (`webhook_collection_threshold`) become one `collection` notification whose resource
  is the entity set filtered on `lastModifiedDateTime gt <the window's start>`;
- a delivery answered 408, 429 or 5xx (or not answered) is retried for 36 hours; any other non-2xx answer deletes
  the subscription.
Everything runs on the server's event loop; only the HTTP calls go to a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import quote

import requests

log = logging.getLogger("bc_pipeline.sandbox")

MAX_SUBSCRIPTIONS = 200  # per environment (BC's operational limits)
DELIVERY_TIMEOUT_SECONDS = 10.0
RETRY_STATUSES = (408, 429)
DELIVERY_LOG_SIZE = 1000


def iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Subscription:
    id: str
    notification_url: str
    resource: str  # normalised: /api/v2.0/companies(<id>)/<entity>
    entity: str
    client_state: str
    user_id: str
    expires: float
    created: float
    modified: float
    version: int = 1

    def etag(self) -> str:
        return f'W/"{self.id}-{self.version}"'

    def as_json(self) -> dict[str, Any]:
        return {
            "@odata.etag": self.etag(), "subscriptionId": self.id, "notificationUrl": self.notification_url,
            "resource": self.resource, "userId": self.user_id, "lastModifiedDateTime": iso(self.modified),
            "clientState": self.client_state, "expirationDateTime": iso(self.expires),
            "systemCreatedAt": iso(self.created), "systemModifiedAt": iso(self.modified),
        }


@dataclass
class Change:
    resource: str
    change_type: str
    at: float


@dataclass
class Delivery:
    subscription: str
    items: list[dict[str, Any]]
    first_attempt: float
    attempts: int = 0
    due: float = 0.0


@dataclass
class WebhookHub:
    """The subscriptions of one sandbox and the changes waiting to be notified."""

    state: Any
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    pending: dict[str, list[Change]] = field(default_factory=dict)
    retries: list[Delivery] = field(default_factory=list)
    busy: set[str] = field(default_factory=set)
    log: list[dict[str, Any]] = field(default_factory=list)
    task: Optional[asyncio.Task] = None

    @property
    def config(self):
        return self.state.config

    # --- subscriptions -----------------------------------------------------------------------------------

    def active(self) -> list[Subscription]:
        self.purge_expired()
        return list(self.subscriptions.values())

    def purge_expired(self) -> None:
        now = time.time()
        for sub in [s for s in self.subscriptions.values() if s.expires <= now]:
            self.remove(sub.id, "expired")

    def remove(self, sub_id: str, why: str) -> None:
        if self.subscriptions.pop(sub_id, None) is not None:
            self.pending.pop(sub_id, None)
            self.retries = [d for d in self.retries if d.subscription != sub_id]
            self._record(sub_id, why, 0, None)

    def add(self, sub: Subscription) -> None:
        self.subscriptions[sub.id] = sub
        self.ensure_running()

    def new_id(self) -> str:
        return uuid.uuid4().hex

    # --- changes -----------------------------------------------------------------------------------------

    def changed(self, entity: str, record_resource: str, change_type: str) -> None:
        """A record of `entity` changed: queue a notification for each of its subscriptions."""
        if not self.subscriptions:
            return
        now = time.time()
        for sub in self.subscriptions.values():
            if sub.entity == entity and sub.expires > now:
                self.pending.setdefault(sub.id, []).append(Change(record_resource, change_type, now))
        self.ensure_running()

    def ensure_running(self) -> None:
        if self.task is not None and not self.task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the server's loop (a unit test): nothing is delivered
            return
        self.task = loop.create_task(self._run())

    async def _run(self) -> None:
        tick = max(0.05, min(0.25, self.config.webhook_delay_seconds / 4))
        while self.state.webhooks is self:
            await asyncio.sleep(tick)
            try:
                self._due()
            except Exception:  # pragma: no cover - keep delivering whatever one bad entry does
                log.exception("webhook dispatcher")

    def _due(self) -> None:
        now = time.time()
        self.purge_expired()
        for sub_id, changes in list(self.pending.items()):
            if not changes or sub_id in self.busy:
                continue
            if now - changes[0].at < self.config.webhook_delay_seconds:
                continue
            sub = self.subscriptions[sub_id]
            del self.pending[sub_id]
            delivery = Delivery(sub_id, self._items(sub, changes), now)
            self._start(delivery)
        for delivery in [d for d in self.retries if d.due <= now and d.subscription not in self.busy]:
            self.retries.remove(delivery)
            self._start(delivery)

    def _items(self, sub: Subscription, changes: list[Change]) -> list[dict[str, Any]]:
        common = {"subscriptionId": sub.id, "clientState": sub.client_state, "expirationDateTime": iso(sub.expires)}
        if len(changes) > self.config.webhook_collection_threshold:
            since = iso(changes[0].at - 0.001)
            resource = f"{sub.resource.lstrip('/')}?$filter=" + quote(f"lastModifiedDateTime gt {since}", safe="")
            return [{**common, "resource": resource, "changeType": "collection",
                     "lastModifiedDateTime": iso(changes[-1].at)}]
        return [{**common, "resource": c.resource.lstrip("/"), "changeType": c.change_type,
                 "lastModifiedDateTime": iso(c.at)} for c in changes]

    def _start(self, delivery: Delivery) -> None:
        self.busy.add(delivery.subscription)
        asyncio.get_running_loop().create_task(self._deliver(delivery))

    async def _deliver(self, delivery: Delivery) -> None:
        sub = self.subscriptions.get(delivery.subscription)
        try:
            if sub is None:
                return
            delivery.attempts += 1
            status = await asyncio.to_thread(self._post, sub.notification_url, {"value": delivery.items})
            self._record(sub.id, "delivered", len(delivery.items), status, delivery.items)
            if status is not None and 200 <= status < 300:
                return
            if status is None or status in RETRY_STATUSES or status >= 500:
                if time.time() - delivery.first_attempt < self.config.webhook_retry_hours * 3600:
                    delivery.due = time.time() + self.config.webhook_retry_seconds
                    self.retries.append(delivery)
                return
            self.remove(sub.id, f"deleted: the notification URL answered {status}")
        finally:
            self.busy.discard(delivery.subscription)

    def _post(self, url: str, body: dict[str, Any]) -> Optional[int]:
        try:
            response = requests.post(url, json=body, timeout=DELIVERY_TIMEOUT_SECONDS, verify=self.ca_file())
            return response.status_code
        except requests.RequestException as exc:
            log.info("webhook delivery to %s failed: %s", url, type(exc).__name__)
            return None

    def ca_file(self) -> str | bool:
        ca = self.state.config.state_dir / "ca.pem"
        return str(ca) if ca.is_file() else True

    async def handshake(self, url: str) -> Optional[str]:
        """None when `url` echoed a fresh validationToken in time, else why not."""
        token = uuid.uuid4().hex
        target = f"{url}{'&' if '?' in url else '?'}validationToken={token}"
        timeout = self.config.webhook_handshake_timeout_seconds

        def call() -> str | None:
            try:
                response = requests.post(target, timeout=timeout, verify=self.ca_file())
            except requests.RequestException as exc:
                return f"the notification URL could not be reached ({type(exc).__name__})"
            if response.status_code != 200:
                return f"the notification URL answered {response.status_code} to the validation request"
            if response.text.strip().strip('"') != token:
                return "the notification URL did not return the validationToken"
            return None

        return await asyncio.to_thread(call)

    def _record(self, sub_id: str, event: str, count: int, status: Optional[int],
                items: Optional[list[dict[str, Any]]] = None) -> None:
        self.log.append({"time": time.time(), "subscriptionId": sub_id, "event": event, "count": count,
                         "status": status, "changeTypes": sorted({i["changeType"] for i in items or []}),
                         "resources": [i["resource"] for i in items or []]})
        del self.log[:-DELIVERY_LOG_SIZE]

    def view(self) -> dict[str, Any]:
        return {"subscriptions": [s.as_json() for s in self.active()],
                "pending": {k: len(v) for k, v in self.pending.items() if v},
                "retrying": len(self.retries), "log": list(self.log)}


__all__ = ["MAX_SUBSCRIPTIONS", "Subscription", "WebhookHub", "iso"]

"""Business Central's standard API v2.0: a record by its SystemId, and webhook subscriptions (create, renew, delete).

The guide's page services have no webhooks; the API pages over the same tables do. Every request goes through
the OData client's session, token, throttle and typed errors (one BC budget for both).
"""

from __future__ import annotations

import re
from typing import Any, Optional

import orjson

from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.clients.errors import BusinessCentralError, PipelineError, outcome_unclear

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SUBSCRIPTION_ID = re.compile(r"^[0-9A-Za-z{}-]{1,64}$")
_JSON = {"Content-Type": "application/json"}


class CompanyNotInApiError(PipelineError):
    def __init__(self, wanted: str, names: list[str]):
        shown = ", ".join(repr(n) for n in names[:10])
        super().__init__(f"Business Central's API v2.0 lists no company named {wanted!r} (it lists {shown}). What to "
                         "do: set BC_COMPANY_NAME to the name exactly as Business Central shows it")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value or ""))


class BusinessCentralApi:
    """API v2.0 of the configured company, over a BusinessCentralClient's transport."""

    def __init__(self, client: BusinessCentralClient):
        self.client = client
        self.settings = client.settings
        self._company_id: Optional[str] = None

    @property
    def root(self) -> str:
        s = self.settings
        return f"{s.api_url}/v2.0/{s.tenant_id}/{s.environment}/api/v2.0"

    def company_id(self) -> str:
        """The company's id (its SystemId), read once per client."""
        if self._company_id is None:
            response = self.client.send("GET", f"{self.root}/companies")
            companies = orjson.loads(response.content).get("value", [])
            found = [c for c in companies if c.get("name") == self.settings.company_name]
            if not found:
                raise CompanyNotInApiError(self.settings.company_name or "", [str(c.get("name")) for c in companies])
            self._company_id = str(found[0]["id"]).lower()
        return self._company_id

    def resource(self, entity_set: str) -> str:
        """The subscription resource of an entity set: /api/v2.0/companies(<id>)/customers."""
        return f"/api/v2.0/companies({self.company_id()})/{entity_set}"

    def record(self, entity_set: str, system_id: str, *, company_id: Optional[str] = None) -> Optional[dict[str, Any]]:
        """The record with this SystemId, or None when Business Central has no such record (any more)."""
        company = company_id or self.company_id()
        if not (is_guid(company) and is_guid(system_id)):
            raise ValueError("a company id and a SystemId are GUIDs")
        url = f"{self.root}/companies({company})/{entity_set}({system_id})"
        try:
            response = self.client.send("GET", url, service=f"api/{entity_set}", record=True)
        except BusinessCentralError as exc:
            if exc.status == 404:
                return None
            raise
        return orjson.loads(response.content)

    # -- webhook subscriptions ----------------------------------------------------------------

    def subscriptions(self) -> list[dict[str, Any]]:
        response = self.client.send("GET", f"{self.root}/subscriptions", service="api/subscriptions")
        return orjson.loads(response.content).get("value", [])

    def subscribe(self, entity_set: str, notification_url: str, client_state: str) -> dict[str, Any]:
        """Create a subscription (BC first calls notification_url?validationToken=…). A create whose outcome is
        unclear is never re-sent blind: the subscription is looked for first."""
        resource = self.resource(entity_set)
        body = {"notificationUrl": notification_url, "resource": resource, "clientState": client_state}
        try:
            response = self.client.send("POST", f"{self.root}/subscriptions", service="api/subscriptions",
                                        data=orjson.dumps(body), headers=_JSON)
        except Exception as exc:
            if not outcome_unclear(exc):
                raise
            found = self.find(resource, notification_url)
            if found is None:
                raise
            return found
        return orjson.loads(response.content)

    def find(self, resource: str, notification_url: str) -> Optional[dict[str, Any]]:
        for sub in self.subscriptions():
            if _same_resource(sub.get("resource"), resource) and sub.get("notificationUrl") == notification_url:
                return sub
        return None

    def renew(self, subscription: dict[str, Any], client_state: str) -> dict[str, Any]:
        """PATCH with the subscription's ETag: BC repeats the handshake and moves the expiry 3 days on."""
        body = {"notificationUrl": subscription["notificationUrl"], "resource": subscription["resource"],
                "clientState": client_state}
        response = self.client.send(
            "PATCH", self._url(subscription), service="api/subscriptions", record=True, data=orjson.dumps(body),
            headers={**_JSON, "If-Match": subscription["@odata.etag"]}, idempotent=True)
        return orjson.loads(response.content)

    def unsubscribe(self, subscription: dict[str, Any]) -> None:
        try:
            self.client.send("DELETE", self._url(subscription), service="api/subscriptions", record=True,
                             headers={"If-Match": subscription["@odata.etag"]})
        except BusinessCentralError as exc:
            if exc.status != 404:  # gone already: what was asked
                raise

    def _url(self, subscription: dict[str, Any]) -> str:
        sub_id = str(subscription.get("subscriptionId", ""))
        if not _SUBSCRIPTION_ID.match(sub_id):
            raise ValueError(f"not a subscription id: {sub_id[:80]!r}")
        return f"{self.root}/subscriptions('{sub_id}')"


def _same_resource(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.strip("/").lower() == b.strip("/").lower()


__all__ = ["BusinessCentralApi", "CompanyNotInApiError", "is_guid"]

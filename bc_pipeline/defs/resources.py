"""Dagster resources: thin wrappers that hand the subscription settings to the plain clients."""


from typing import Optional

import dagster as dg
from pydantic import SecretStr
from sqlalchemy import Engine

from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.clients.transport import TrafficCounter
from bc_pipeline.settings import SubscriptionSettings, load_settings
from bc_pipeline.state.database import engine_for
from bc_pipeline.state.staging import StagingArea


# Dagster pool of every step that talks to Business Central: the instance's limit for it (dagster.yaml's
# `concurrency: pools: default_limit`, or `dagster instance concurrency set business_central N`) keeps such
# steps at or below CONCURRENT_CONNECTIONS across every run and machine.
BC_POOL = "business_central"


class SubscriptionResource(dg.ConfigurableResource):
    """The subscription settings; unset fields come from the environment (see README)."""

    tenant_id: Optional[str] = None
    client_id: Optional[str] = None
    client_secret: Optional[str] = None
    company_name: Optional[str] = None
    environment: Optional[str] = None
    api_url: Optional[str] = None
    ipaas_api_token: Optional[str] = None
    ipaas_system_id: Optional[str] = None
    state_url: Optional[str] = None
    page_size: int = 5_000

    def settings(self) -> SubscriptionSettings:
        return load_settings(
            {
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "company_name": self.company_name,
                "environment": self.environment,
                "api_url": self.api_url,
                "ipaas_api_token": self.ipaas_api_token,
                "ipaas_system_id": self.ipaas_system_id,
                "state_url": self.state_url,
            }
        )

    def business_central(self, counter: Optional[TrafficCounter] = None) -> BusinessCentralClient:
        return BusinessCentralClient(self.settings(), counter=counter, page_size=self.page_size)

    def ipaas(self, counter: Optional[TrafficCounter] = None) -> IpaasClient:
        return IpaasClient(self.settings(), counter=counter)

    def state_engine(self) -> Engine:
        return engine_for(self.settings().state_database_url)

    def staging(self) -> StagingArea:
        return StagingArea(self.settings().staging_location)


class IpaasResource(dg.ConfigurableResource):
    """iPaaS.com access for the load assets; the token comes from IPAAS_API_TOKEN through EnvVar."""

    api_token: str
    system_id: str
    api_url: Optional[str] = None

    def client(self, subscription: SubscriptionResource, counter: Optional[TrafficCounter] = None) -> IpaasClient:
        settings = subscription.settings().model_copy(
            update={"ipaas_api_token": SecretStr(self.api_token), "ipaas_system_id": self.system_id,
                    **({"ipaas_api_url": self.api_url} if self.api_url else {})}
        )
        return IpaasClient(settings, counter=counter)


def ipaas_resource() -> IpaasResource:
    return IpaasResource(api_token=dg.EnvVar("IPAAS_API_TOKEN"), system_id=dg.EnvVar("IPAAS_SYSTEM_ID"))


def subscription_resource() -> SubscriptionResource:
    """Secrets reach Dagster only through EnvVar: resolved at launch, hidden in the UI."""
    return SubscriptionResource(
        tenant_id=dg.EnvVar("BC_TENANT_ID"),
        client_id=dg.EnvVar("BC_CLIENT_ID"),
        client_secret=dg.EnvVar("BC_CLIENT_SECRET"),
        company_name=dg.EnvVar("BC_COMPANY_NAME"),
        environment=dg.EnvVar("BC_ENVIRONMENT"),
    )

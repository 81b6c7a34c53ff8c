"""The sandbox's settings (SandboxConfig): credentials, seed size, limits, published services."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

REPO_DIR = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_DIR / ".bc_pipeline" / "sandbox"

# Fixed, obviously fake identities, so a sandbox started twice is addressed the same way.
DEFAULT_TENANT_ID = "5a1d7c2e-0b6f-4c3a-9e8d-3f2b1a0c9d8e"
DEFAULT_TENANT_DOMAIN = "cronus-sandbox.onmicrosoft.com"
DEFAULT_CLIENT_ID = "0f3c9b1a-7d2e-4e5f-8a6b-1c2d3e4f5a6b"
DEFAULT_CLIENT_SECRET = "sandbox-secret-not-for-production"
DEFAULT_COMPANY_ID = "8c7a1f0e-2d3b-4a5c-9e6f-7b8c9d0e1f2a"
DEFAULT_IPAAS_API_TOKEN = "sandbox-ipaas-token-not-for-production"
DEFAULT_IPAAS_SYSTEM_ID = "1001"

BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"

ALL_SERVICES = (
    "CustomerCard",
    "Locations",
    "ItemCard",
    "ShippingAgents",
    "SalesOrders",
    "SalesOrderLines",
    "Itemsbylocation",
    "CustomerPriceGroups",
    "PostedSalesInvoices",
    "PostedSalesInvoiceLines",
    "ItemCategoryCard",
    "PaymentTerms",
    "GenBusinessPostingGroups",
    "CustomerPostingGroups",
    "TaxAreas",
    "ShipToAddresses",
    "Contacts",
)

ITEMS_BY_LOCATION_COLUMNS = (
    "ItemNo", "VariantCode", "LotNo", "SerialNo", "PackageNo", "ExpirationDate", "UnitOfMeasureCode",
    "QtyPerUnitOfMeasure", "Quantity", "RemainingQuantity", "ReservedQuantity", "CountryRegionCode",
    "LocationCode", "LocationName", "LocationCity", "LocationCounty", "LocationCountryRegionCode",
)


class ClientRegistration(BaseModel):
    """An app registered in the sandbox's Entra ID; bc_permission=False makes BC answer 403."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: str
    bc_permission: bool = True


class SandboxConfig(BaseModel):
    """Everything a test or benchmark may change about the sandbox; JSON-serialisable."""

    model_config = ConfigDict(extra="forbid")

    # where and how it listens
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port chosen at start
    state_dir: Path = DEFAULT_STATE_DIR  # ca.pem, server.pem, server.key, logs
    log_level: str = "warning"
    startup_timeout_seconds: float = 120.0

    # seed data
    seed: int = 42
    scale: float = 1.0  # multiplies the profile's counts (locations, agents, price groups stay fixed)
    seed_profile: Literal["default", "benchmark"] = "default"  # benchmark: ~190,000 rows at scale 1
    seed_counts: dict[str, Any] = Field(default_factory=dict)  # explicit overrides, see seed.PROFILES
    work_date: Optional[date] = None  # "today" for seeding and for Last_Date_Modified on writes
    precompute_json: bool = True  # serialise every record once at start (fast full-record pages)

    # Entra ID
    tenant_id: str = DEFAULT_TENANT_ID
    tenant_domain: str = DEFAULT_TENANT_DOMAIN  # also accepted as the tenant in URLs
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    extra_clients: list[ClientRegistration] = Field(default_factory=list)
    token_lifetime_seconds: int = 3600

    # Business Central
    environment: str = "Sandbox"
    company_name: str = "CRONUS Müller & O'Brien, Inc."  # Text[30], with what a URL must encode
    company_id: str = DEFAULT_COMPANY_ID
    published_services: list[str] = Field(default_factory=lambda: list(ALL_SERVICES))
    # A tenant may publish a page under a Service Name of its own: standard name -> published name (the
    # standard name then answers 404, as an unpublished service does).
    service_names: dict[str, str] = Field(default_factory=dict)
    itemsbylocation_columns: list[str] = Field(default_factory=lambda: list(ITEMS_BY_LOCATION_COLUMNS))
    # A tenant's own Items by Location query may name its columns differently: standard name -> served name.
    itemsbylocation_names: dict[str, str] = Field(default_factory=dict)
    system_modified_at: bool = False  # add SystemModifiedAt (as a page extension would) to customers, items, orders, lines
    max_page_size: int = Field(20000, ge=1)  # the server's "Max Page Size": a page without Prefer holds at most this
    bc_rate_limit: int = 6000  # OData requests per sliding window, per client (service principal)
    bc_rate_window_seconds: float = 300.0
    bc_max_concurrent: int = 5  # processed at once per client
    bc_max_queue: int = 95  # waiting beyond those; more -> 429
    bc_queue_timeout_seconds: float = 480.0  # time in queue before 503
    bc_retry_after_seconds: Optional[float] = None  # Retry-After on the limits' 429 (BC does not document one)
    bc_latency_seconds: float = 0.0  # added to every OData answer, inside the concurrency slot
    bc_batch_max: int = 100

    # Business Central API webhooks (webhooks.py): BC delays notifications ~30 s and batches them; over
    # `webhook_collection_threshold` changes in one window become one `collection` notification.
    webhook_delay_seconds: float = Field(30.0, ge=0)
    webhook_collection_threshold: int = Field(1000, ge=1)
    webhook_subscription_seconds: float = Field(3 * 86400, gt=0)  # a subscription expires 3 days after (re)newal
    webhook_handshake_timeout_seconds: float = Field(5.0, gt=0)
    webhook_retry_seconds: float = Field(60.0, gt=0)  # between deliveries answered 408/429/5xx (ASSUMED interval)
    webhook_retry_hours: float = Field(36.0, gt=0)  # BC gives up on a delivery after 36 hours

    # iPaaS.com stand-in (bc_pipeline.sandbox.ipaas), passed through to build_ipaas_app
    ipaas_api_token: str = DEFAULT_IPAAS_API_TOKEN
    ipaas_system_id: str = DEFAULT_IPAAS_SYSTEM_ID
    ipaas_rate_limit: int = 500
    ipaas_rate_window_seconds: float = 60.0
    ipaas_options: dict[str, Any] = Field(default_factory=dict)

    def ipaas_config(self) -> dict[str, Any]:
        """The dict handed to build_ipaas_app."""
        return {
            "api_token": self.ipaas_api_token,
            "system_id": self.ipaas_system_id,
            "seed": self.seed,
            "scale": self.scale,
            "rate_limit": self.ipaas_rate_limit,
            "rate_window_seconds": self.ipaas_rate_window_seconds,
            "state_dir": str(self.state_dir),
            **self.ipaas_options,
        }

    def clients(self) -> dict[str, ClientRegistration]:
        regs = {self.client_id: ClientRegistration(client_id=self.client_id, client_secret=self.client_secret)}
        for reg in self.extra_clients:
            regs[reg.client_id] = reg
        return regs

"""The subscription settings of the integration guide, validated before any request is made."""

from __future__ import annotations

import math
import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bc_pipeline.catalog import BY_NAME, BY_SERVICE

PROJECT_DIR = Path(__file__).resolve().parent.parent
# A checkout keeps its state beside the code; an installed package keeps it in the working directory.
DEFAULT_HOME = (PROJECT_DIR if (PROJECT_DIR / "pyproject.toml").exists() else Path.cwd()) / ".bc_pipeline"

# Business Central online, per user or service principal (operational-limits-online):
# 6,000 OData requests per 5-minute sliding window, 5 processed at once.
BC_DOCUMENTED_REQUESTS_PER_WINDOW = 6000
BC_DOCUMENTED_WINDOW_SECONDS = 300
BC_DOCUMENTED_CONCURRENT_REQUESTS = 5

# Where the integration guide tells the user to find each value; shown with every error.
WHERE_TO_FIND: dict[str, str] = {
    "name": "a unique name you choose for this subscription, e.g. Dynamics365_Integration",
    "version": "the integration version, e.g. v1.0",
    "company_name": "Business Central: the company name exactly as BC shows it (case-sensitive), e.g. 'CRONUS USA, Inc.'",
    "tenant_id": "Microsoft Entra Admin Center → App Registrations → your app → Directory (tenant) ID",
    "client_id": "Microsoft Entra Admin Center → App Registrations → your app → Application (client) ID",
    "client_secret": "Microsoft Entra Admin Center → your app → Certificates & Secrets → New Client Secret (copy the value once)",
    "scope": "must be https://api.businesscentral.dynamics.com/.default",
    "grant_type": "must be client_credentials",
    "environment": "Business Central → Settings → Admin Center → Operations: the environment name (e.g. Production, Sandbox)",
    "api_url": "the base API URL, https://api.businesscentral.dynamics.com",
    "authority_host": "the Microsoft Entra login host, https://login.microsoftonline.com",
    "ipaas_api_url": "iPaaS.com API host: https://api.ipaas.com (production) or https://stagingapi.ipaas.com (staging)",
    "ipaas_api_token": "iPaaS.com → User/Role Management → API Keys",
    "ipaas_system_id": "iPaaS.com → Subscription Management: the id of this MSD 365 subscription",
    "ipaas_webhook_api_key": "iPaaS.com → the subscription's webhook API key",
    "bc_webhook_notification_url": "the public https URL of `bc-pipeline webhooks serve`'s /webhooks/bc, as Business "
    "Central reaches it (e.g. https://hooks.example.com/webhooks/bc)",
    "bc_throttle_limit": "Throttling: API Throttle Limit (calls to Business Central per window)",
    "bc_throttle_seconds": "Throttling: API Throttle Seconds (the window for the limit)",
    "ipaas_throttle_limit": "Throttling: API Throttle Limit (to iPaaS)",
    "ipaas_throttle_seconds": "Throttling: API Throttle Seconds (to iPaaS)",
    "concurrent_connections": "Throttling: Concurrent Connections (Business Central processes at most 5 at once)",
    "modified_at_fields": "a page extension's timestamp field per entity, e.g. customers=SystemModifiedAt",
    "service_names": "Business Central → Web Services: the Service Name you published a page under, per entity whose "
    "name differs from the guide's, e.g. customers=MyCustomerCard",
    "state_url": "a SQLAlchemy URL such as postgresql+psycopg://user@host/db; default a SQLite file",
    "ca_bundle": "a PEM file of the CA that signs your services' certificates (REQUESTS_CA_BUNDLE)",
    "staging_url": "a folder or an fsspec URL every machine of the pipeline reaches, e.g. abfs://<container>/<prefix> "
    "(credentials from AZURE_STORAGE_CONNECTION_STRING, never in the URL); default BC_PIPELINE_HOME/staging",
}

ENV_NAMES: dict[str, str] = {
    "name": "BC_SUBSCRIPTION_NAME",
    "version": "BC_SUBSCRIPTION_VERSION",
    "company_name": "BC_COMPANY_NAME",
    "tenant_id": "BC_TENANT_ID",
    "client_id": "BC_CLIENT_ID",
    "client_secret": "BC_CLIENT_SECRET",
    "scope": "BC_SCOPE",
    "grant_type": "BC_GRANT_TYPE",
    "environment": "BC_ENVIRONMENT",
    "api_url": "BC_API_URL",
    "authority_host": "BC_AUTHORITY_HOST",
    "ipaas_api_url": "IPAAS_API_URL",
    "ipaas_api_token": "IPAAS_API_TOKEN",
    "ipaas_system_id": "IPAAS_SYSTEM_ID",
    "ipaas_webhook_api_key": "IPAAS_WEBHOOK_API_KEY",
    "bc_webhook_client_state": "BC_WEBHOOK_CLIENT_STATE",
    "bc_webhook_notification_url": "BC_WEBHOOK_NOTIFICATION_URL",
    "bc_throttle_limit": "BC_THROTTLE_LIMIT",
    "bc_throttle_seconds": "BC_THROTTLE_SECONDS",
    "ipaas_throttle_limit": "IPAAS_THROTTLE_LIMIT",
    "ipaas_throttle_seconds": "IPAAS_THROTTLE_SECONDS",
    "concurrent_connections": "CONCURRENT_CONNECTIONS",
    "modified_at_fields": "BC_MODIFIED_AT_FIELDS",
    "service_names": "BC_SERVICE_NAMES",
    "state_url": "BC_PIPELINE_STATE_URL",
    "staging_url": "BC_PIPELINE_STAGING_URL",
    "ca_bundle": "REQUESTS_CA_BUNDLE",
    "home": "BC_PIPELINE_HOME",
}

LABELS: dict[str, str] = {
    "name": "Name",
    "version": "Version",
    "company_name": "Company Name",
    "tenant_id": "Tenant ID",
    "client_id": "Client ID",
    "client_secret": "Client Secret",
    "scope": "Scope",
    "grant_type": "Grant Type",
    "environment": "Environment",
    "api_url": "API URL",
    "authority_host": "Authority host",
    "ipaas_api_url": "iPaaS.com API URL",
    "ipaas_api_token": "iPaaS.com API token",
    "ipaas_system_id": "iPaaS.com system id",
    "ipaas_webhook_api_key": "iPaaS.com webhook API key",
    "bc_webhook_client_state": "Business Central webhook clientState",
    "bc_webhook_notification_url": "Business Central webhook notification URL",
    "bc_throttle_limit": "API Throttle Limit",
    "bc_throttle_seconds": "API Throttle Seconds",
    "ipaas_throttle_limit": "API Throttle Limit (to iPaaS)",
    "ipaas_throttle_seconds": "API Throttle Seconds (to iPaaS)",
    "concurrent_connections": "Concurrent Connections",
    "modified_at_fields": "Change-date fields",
    "service_names": "Service names",
    "state_url": "State database URL",
    "staging_url": "Staging URL",
    "ca_bundle": "CA bundle",
    "home": "Pipeline home",
}

BC_REQUIRED = ("company_name", "tenant_id", "client_id", "client_secret", "environment")
_ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,29}$")
_ODATA_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# What bc_pipeline.state.database drives: SQLite (the default) and PostgreSQL through psycopg 3.
SUPPORTED_STATE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


class SettingsError(ValueError):
    """One or more settings are missing or malformed; each problem names its field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Subscription settings are not valid:\n" + "\n".join(f"  - {p}" for p in problems))


def describe_problem(field: str, problem: str) -> str:
    label = LABELS.get(field, field)
    env = ENV_NAMES.get(field)
    where = WHERE_TO_FIND.get(field)
    text = f"{label}" + (f" ({env})" if env else "") + f": {problem}"
    if where:
        text += f". Where to find it: {where}"
    return text


def _https_url(value: str) -> str:
    """A base URL without credentials; the value is echoed only when it holds none."""
    if "@" in value:
        raise ValueError("must not carry credentials (user:password@); give the URL without them")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"must be an https:// URL, got {value!r}")
    return value.rstrip("/")


class SubscriptionSettings(BaseSettings):
    """The guide's subscription fields plus the pipeline's own (state database, CA bundle)."""

    # Only the documented variables (the aliases) are read: by field name, HOME would become `home`.
    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    name: str = Field("Dynamics365_Integration", validation_alias="BC_SUBSCRIPTION_NAME")
    version: str = Field("v1.0", validation_alias="BC_SUBSCRIPTION_VERSION")
    company_name: Optional[str] = Field(None, validation_alias="BC_COMPANY_NAME")
    tenant_id: Optional[str] = Field(None, validation_alias="BC_TENANT_ID")
    client_id: Optional[str] = Field(None, validation_alias="BC_CLIENT_ID")
    client_secret: Optional[SecretStr] = Field(None, validation_alias="BC_CLIENT_SECRET")
    scope: str = Field("https://api.businesscentral.dynamics.com/.default", validation_alias="BC_SCOPE")
    grant_type: str = Field("client_credentials", validation_alias="BC_GRANT_TYPE")
    environment: Optional[str] = Field(None, validation_alias="BC_ENVIRONMENT")
    api_url: str = Field("https://api.businesscentral.dynamics.com", validation_alias="BC_API_URL")
    authority_host: str = Field("https://login.microsoftonline.com", validation_alias="BC_AUTHORITY_HOST")
    ipaas_api_url: str = Field("https://api.ipaas.com", validation_alias="IPAAS_API_URL")
    ipaas_api_token: Optional[SecretStr] = Field(None, validation_alias="IPAAS_API_TOKEN")
    ipaas_system_id: Optional[str] = Field(None, validation_alias="IPAAS_SYSTEM_ID")
    ipaas_webhook_api_key: Optional[SecretStr] = Field(None, validation_alias="IPAAS_WEBHOOK_API_KEY")
    bc_webhook_client_state: Optional[SecretStr] = Field(None, validation_alias="BC_WEBHOOK_CLIENT_STATE")
    bc_webhook_notification_url: Optional[str] = Field(None, validation_alias="BC_WEBHOOK_NOTIFICATION_URL")
    bc_throttle_limit: int = Field(BC_DOCUMENTED_REQUESTS_PER_WINDOW, validation_alias="BC_THROTTLE_LIMIT")
    bc_throttle_seconds: float = Field(BC_DOCUMENTED_WINDOW_SECONDS, validation_alias="BC_THROTTLE_SECONDS")
    ipaas_throttle_limit: int = Field(500, validation_alias="IPAAS_THROTTLE_LIMIT")
    ipaas_throttle_seconds: float = Field(60, validation_alias="IPAAS_THROTTLE_SECONDS")
    concurrent_connections: int = Field(BC_DOCUMENTED_CONCURRENT_REQUESTS, validation_alias="CONCURRENT_CONNECTIONS")
    modified_at_fields: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, validation_alias="BC_MODIFIED_AT_FIELDS")
    service_names: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, validation_alias="BC_SERVICE_NAMES")
    state_url: Optional[str] = Field(None, validation_alias="BC_PIPELINE_STATE_URL")
    staging_url: Optional[str] = Field(None, validation_alias="BC_PIPELINE_STAGING_URL")
    ca_bundle: Optional[str] = Field(None, validation_alias="REQUESTS_CA_BUNDLE")
    home: Path = Field(DEFAULT_HOME, validation_alias="BC_PIPELINE_HOME")

    def __init__(self, **values: Any) -> None:
        """Code may give fields by name; the environment only ever by their documented variables."""
        super().__init__(**_by_alias(values))

    @field_validator("company_name", "tenant_id", "client_id", "environment", "ipaas_system_id", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("client_secret", "ipaas_api_token", "ipaas_webhook_api_key", "bc_webhook_client_state", mode="before")
    @classmethod
    def _blank_secret_is_missing(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("tenant_id")
    @classmethod
    def _tenant_is_guid_or_domain(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        try:
            uuid.UUID(value)
            return value
        except ValueError:
            pass
        if re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value):
            return value  # a verified domain such as contoso.onmicrosoft.com is also a tenant id
        raise ValueError(f"must be a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47 or a domain, got {value!r}")

    @field_validator("client_id")
    @classmethod
    def _client_is_guid(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError(f"must be a GUID (the Application (client) ID), got {value!r}") from None
        return value

    @field_validator("grant_type")
    @classmethod
    def _only_client_credentials(cls, value: str) -> str:
        if value.strip() != "client_credentials":
            raise ValueError(f"only client_credentials is supported, got {value!r}")
        return "client_credentials"

    @field_validator("scope")
    @classmethod
    def _scope_is_default(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith("https://") or not value.endswith("/.default"):
            raise ValueError(f"must be a resource URI ending in /.default, got {value!r}")
        return value

    @field_validator("environment")
    @classmethod
    def _environment_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _ENVIRONMENT_NAME.fullmatch(value):
            raise ValueError(
                f"must be a Business Central environment name (letters, digits, - and _, at most 30), got {value!r}"
            )
        return value

    @field_validator("api_url", "authority_host", "ipaas_api_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _https_url(value.strip())

    @field_validator("bc_webhook_notification_url")
    @classmethod
    def _notification_url(cls, value: Optional[str]) -> Optional[str]:
        if value is None or not value.strip():
            return None
        return _https_url(value.strip())

    @field_validator("bc_throttle_limit", "ipaas_throttle_limit")
    @classmethod
    def _positive_limit(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("bc_throttle_seconds", "ipaas_throttle_seconds")
    @classmethod
    def _positive_window(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number of seconds, got {value}")
        if value <= 0:
            raise ValueError(f"must be more than 0 seconds, got {value}")
        return value

    @field_validator("concurrent_connections")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError(f"must be between 1 and 100, got {value}")
        return value

    @field_validator("modified_at_fields", "service_names", mode="before")
    @classmethod
    def _entity_pairs(cls, value: Any, info: ValidationInfo) -> Any:
        """`customers=SystemModifiedAt,items=SystemModifiedAt`: one value per entity."""
        example = ("entity=Field pairs such as customers=SystemModifiedAt" if info.field_name == "modified_at_fields"
                   else "entity=Name pairs such as customers=MyCustomerCard")
        if isinstance(value, str):
            pairs = {}
            for part in filter(None, (p.strip() for p in value.split(","))):
                entity, sep, field = part.partition("=")
                if not sep:
                    raise ValueError(f"expected {example}, got {part!r}")
                pairs[entity.strip()] = field.strip()
            return pairs
        return value

    @field_validator("service_names")
    @classmethod
    def _service_names_known(cls, value: dict[str, str]) -> dict[str, str]:
        for entity, service in value.items():
            if entity not in BY_NAME:
                raise ValueError(f"unknown entity {entity!r}; known: {', '.join(BY_NAME)}")
            if not _ODATA_IDENTIFIER.fullmatch(service):
                raise ValueError(f"{service!r} for {entity} is not a web service name (a letter or _, then letters, "
                                 "digits or _)")
        published = list(value.values())
        twice = sorted({s for s in published if published.count(s) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} is given for more than one entity: each publishes a page of its own")
        return value

    @field_validator("modified_at_fields")
    @classmethod
    def _modified_at_known(cls, value: dict[str, str]) -> dict[str, str]:
        for entity, field in value.items():
            if entity not in BY_NAME:
                raise ValueError(f"unknown entity {entity!r}; known: {', '.join(BY_NAME)}")
            if not _ODATA_IDENTIFIER.fullmatch(field):
                raise ValueError(
                    f"{field!r} for {entity} is not an OData field name (a letter or _, then letters, digits or _)"
                )
        from bc_pipeline.mapping.registry import to_ipaas_collections

        # A line changes without its header: a document read by its header's changes alone would miss those.
        # Not asked of a record's own fields (a card's address), nor of the children of an entity read by change
        # anyway (customers' ship-to addresses and contacts, read in full every run): the setting only renames
        # the parent's change field there, and such a child's change alone already waits for its parent's.
        for collection in to_ipaas_collections().values():
            for child in collection.children:
                if child.source == collection.source or BY_NAME[collection.source].modified_at:
                    continue
                if collection.source in value and child.source not in value:
                    raise ValueError(f"{collection.source} is read with its {child.source} ({collection.name}): "
                                     f"give {child.source}=<field> too, e.g. {child.source}=SystemModifiedAt")
        return value

    @field_validator("state_url")
    @classmethod
    def _state_url_supported(cls, value: Optional[str]) -> Optional[str]:
        """Parsed up front so a bad URL fails before any step; its password is never echoed."""
        if value is None or not value.strip():
            return None
        try:
            driver = make_url(value.strip()).drivername
        except (ArgumentError, ValueError):
            raise ValueError(
                "not a SQLAlchemy URL (e.g. sqlite:////path/state.sqlite or postgresql+psycopg://user@host/db)"
            ) from None
        if driver not in SUPPORTED_STATE_DRIVERS:
            raise ValueError(f"unsupported database {driver!r}; supported: {', '.join(SUPPORTED_STATE_DRIVERS)}")
        return value.strip()

    @field_validator("staging_url")
    @classmethod
    def _staging_url_supported(cls, value: Optional[str]) -> Optional[str]:
        """A local folder or an fsspec URL whose filesystem is installed; never echoed with a secret in it."""
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if not parts.scheme or len(parts.scheme) == 1:
            return str(Path(value).expanduser().resolve())  # a local folder (a drive letter is no scheme)
        if parts.query or parts.fragment or (parts.password is not None):
            raise ValueError(
                "must not carry credentials (user:password@, ?sig=… SAS tokens); give them through the store's "
                "environment variables, e.g. AZURE_STORAGE_CONNECTION_STRING"
            )
        import fsspec

        scheme = parts.scheme.lower()
        if scheme not in fsspec.available_protocols():
            raise ValueError(f"unknown storage {scheme!r}: use a folder, abfs://<container>/<prefix>, s3://, gs:// or memory://")
        try:
            fsspec.get_filesystem_class(scheme)
        except ImportError:
            raise ValueError(f"storage {scheme!r} needs a package that is not installed (abfs: adlfs, s3: s3fs, gs: gcsfs)") from None
        if scheme in ("abfs", "abfss", "az") and not (parts.netloc and parts.netloc.split("@")[0]):
            raise ValueError(f"must name a container: {scheme}://<container>/<prefix>, got {safe_display(value)!r}")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_exists(cls, value: Optional[str]) -> Optional[str]:
        if value and not Path(value).is_file():
            raise ValueError(f"file {value!r} does not exist")
        return value or None

    @model_validator(mode="after")
    def _ratio_within_documented_limit(self) -> "SubscriptionSettings":
        per_second = self.bc_throttle_limit / self.bc_throttle_seconds
        documented = BC_DOCUMENTED_REQUESTS_PER_WINDOW / BC_DOCUMENTED_WINDOW_SECONDS
        if per_second > documented * 10:
            raise ValueError(
                "bc_throttle_limit: API Throttle Limit / API Throttle Seconds allows "
                f"{per_second:.1f} requests per second, far above Business Central's documented "
                f"{documented:.0f}; lower it or Business Central will answer 429"
            )
        return self

    # --- derived values -------------------------------------------------------------------

    @property
    def webhook_client_state(self) -> Optional[str]:
        """The clientState BC notifications carry: BC_WEBHOOK_CLIENT_STATE, else the webhook API key."""
        secret = self.bc_webhook_client_state or self.ipaas_webhook_api_key
        return secret.get_secret_value() if secret is not None else None

    def published_service(self, service: str) -> str:
        """The Service Name a catalog service (`CustomerCard`) is published under: BC_SERVICE_NAMES, else its own."""
        entity = BY_SERVICE.get(service)
        return self.service_names.get(entity.name, service) if entity is not None else service

    @property
    def has_bc_credentials(self) -> bool:
        return all(getattr(self, f) is not None for f in BC_REQUIRED)

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def state_database_url(self) -> str:
        return self.state_url or f"sqlite:///{self.home / 'state.sqlite'}"

    @property
    def staging_location(self) -> str:
        """Where extracts and payloads are staged: BC_PIPELINE_STAGING_URL, else BC_PIPELINE_HOME/staging."""
        return self.staging_url or str(self.home / "staging")

    @property
    def verify(self) -> str | bool:
        """What requests and MSAL verify TLS with: the private CA when one is given, else the system's."""
        return self.ca_bundle or True

    def require_bc(self) -> "SubscriptionSettings":
        missing = [f for f in BC_REQUIRED if getattr(self, f) is None]
        if missing:
            raise SettingsError([describe_problem(f, "is required and not set") for f in missing])
        return self

    def require_ipaas(self) -> "SubscriptionSettings":
        missing = [f for f in ("ipaas_api_token", "ipaas_system_id") if getattr(self, f) is None]
        if missing:
            raise SettingsError([describe_problem(f, "is required and not set") for f in missing])
        return self


def load_settings(overrides: Optional[Mapping[str, Any]] = None, *, from_environment: bool = True) -> SubscriptionSettings:
    """Build the settings from the environment (and explicit overrides), naming every bad field."""
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        if from_environment:
            return SubscriptionSettings(**values)
        return SubscriptionSettings.model_validate(_by_alias(values))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error.get("loc") or ("",)
            field = _field_for(str(loc[0]))
            message = error.get("msg", "is not valid").removeprefix("Value error, ")
            if not loc[0] and ":" in message:  # model-level errors carry their field first
                field, message = message.split(":", 1)
                message = message.strip()
            problems.append(describe_problem(field, message))
        raise SettingsError(problems) from None


def safe_display(url: str) -> str:
    """A URL without password or query (what may be shown of a staging URL)."""
    from bc_pipeline.state.staging import safe_url

    return safe_url(url)


def _by_alias(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values keyed by field name (`home`) re-keyed by their documented variable (`BC_PIPELINE_HOME`)."""
    fields = SubscriptionSettings.model_fields
    return {(fields[k].validation_alias if k in fields else k): v for k, v in values.items()}


def _field_for(location: str) -> str:
    for field, env in ENV_NAMES.items():
        if location in (field, env):
            return field
    return location

"""Subscription settings are validated before any request, and every error names its field."""

import pytest

from bc_pipeline.settings import DEFAULT_HOME, SettingsError, load_settings

GOOD = {
    "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "client_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "client_secret": "s3cr3t-value",
    "company_name": "CRONUS USA, Inc.",
    "environment": "Production",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("BC_TENANT_ID", "BC_CLIENT_ID", "BC_CLIENT_SECRET", "BC_COMPANY_NAME", "BC_ENVIRONMENT", "BC_GRANT_TYPE",
                 "BC_SCOPE", "BC_API_URL", "BC_THROTTLE_LIMIT", "CONCURRENT_CONNECTIONS", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def _refusal(**changes) -> str:
    """The error the GOOD settings with `changes` are refused with."""
    with pytest.raises(SettingsError) as error:
        load_settings({**GOOD, **changes})
    return str(error.value)


def test_defaults_follow_the_guide_and_business_centrals_documented_limits():
    settings = load_settings(GOOD).require_bc()
    assert settings.scope == "https://api.businesscentral.dynamics.com/.default"
    assert settings.api_url == "https://api.businesscentral.dynamics.com"
    assert settings.grant_type == "client_credentials"
    assert settings.authority == "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert (settings.bc_throttle_limit, settings.bc_throttle_seconds, settings.concurrent_connections) == (6000, 300, 5)


def test_settings_come_from_the_documented_environment_variables(monkeypatch):
    monkeypatch.setenv("BC_TENANT_ID", GOOD["tenant_id"])
    monkeypatch.setenv("BC_CLIENT_ID", GOOD["client_id"])
    monkeypatch.setenv("BC_CLIENT_SECRET", "from-env")
    monkeypatch.setenv("BC_COMPANY_NAME", "CRONUS USA, Inc.")
    monkeypatch.setenv("BC_ENVIRONMENT", "Sandbox")
    monkeypatch.setenv("BC_THROTTLE_LIMIT", "1200")
    settings = load_settings().require_bc()
    assert settings.client_secret.get_secret_value() == "from-env"
    assert settings.bc_throttle_limit == 1200
    assert settings.environment == "Sandbox"


def test_a_grant_type_other_than_client_credentials_is_refused_by_name():
    with pytest.raises(SettingsError) as error:
        load_settings({**GOOD, "grant_type": "authorization_code"})
    text = str(error.value)
    assert "Grant Type (BC_GRANT_TYPE)" in text
    assert "only client_credentials is supported" in text


def test_missing_required_fields_are_all_named_with_where_to_find_them():
    with pytest.raises(SettingsError) as error:
        load_settings({"company_name": "CRONUS USA, Inc."}).require_bc()
    problems = error.value.problems
    assert len(problems) == 4
    assert any(p.startswith("Tenant ID (BC_TENANT_ID): is required") and "Directory (tenant) ID" in p for p in problems)
    assert any(p.startswith("Client Secret (BC_CLIENT_SECRET)") and "Certificates & Secrets" in p for p in problems)


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("tenant_id", "not a tenant", "Tenant ID (BC_TENANT_ID): must be a GUID"),
        ("client_id", "12345", "Client ID (BC_CLIENT_ID): must be a GUID"),
        ("api_url", "http://api.businesscentral.dynamics.com", "API URL (BC_API_URL): must be an https:// URL"),
        ("scope", "https://api.businesscentral.dynamics.com/user_impersonation", "Scope (BC_SCOPE): must be a resource URI ending in /.default"),
        ("environment", "Prod env!", "Environment (BC_ENVIRONMENT): must be a Business Central environment name"),
        ("concurrent_connections", 0, "Concurrent Connections (CONCURRENT_CONNECTIONS): must be between 1 and 100"),
        ("bc_throttle_seconds", 0, "API Throttle Seconds (BC_THROTTLE_SECONDS): must be more than 0"),
        ("bc_throttle_limit", "lots", "API Throttle Limit (BC_THROTTLE_LIMIT)"),
        ("ca_bundle", "/nonexistent/ca.pem", "CA bundle (REQUESTS_CA_BUNDLE): file '/nonexistent/ca.pem' does not exist"),
        ("bc_webhook_notification_url", "http://hooks.example.com/webhooks/bc",
         "Business Central webhook notification URL (BC_WEBHOOK_NOTIFICATION_URL): must be an https:// URL"),
    ],
)
def test_a_malformed_setting_names_the_field_and_what_is_wrong(field, value, fragment):
    with pytest.raises(SettingsError) as error:
        load_settings({**GOOD, field: value})
    assert fragment in str(error.value)


def test_a_throttle_far_above_the_documented_limit_is_refused():
    with pytest.raises(SettingsError) as error:
        load_settings({**GOOD, "bc_throttle_limit": 600000, "bc_throttle_seconds": 60})
    assert "API Throttle Limit" in str(error.value)


def test_the_secret_never_appears_in_the_settings_repr_or_errors():
    settings = load_settings(GOOD)
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.model_dump())
    with pytest.raises(SettingsError) as error:
        load_settings({**GOOD, "grant_type": "password"})
    assert "s3cr3t-value" not in str(error.value)


@pytest.mark.parametrize("name", ["HOME", "NAME", "VERSION", "ENVIRONMENT", "SCOPE", "STATE_URL", "API_URL", "TENANT_ID"])
def test_a_variable_named_like_a_field_is_not_a_setting(monkeypatch, name):
    default = load_settings()
    monkeypatch.setenv(name, "evil")
    assert load_settings() == default


def test_home_name_version_environment_and_scope_from_the_environment_leave_the_defaults(monkeypatch):
    monkeypatch.delenv("BC_PIPELINE_HOME", raising=False)
    for name, value in {"HOME": "/tmp/x", "NAME": "evil", "ENVIRONMENT": "evil", "SCOPE": "evil", "VERSION": "evil"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.home == DEFAULT_HOME
    assert (settings.name, settings.version, settings.environment) == ("Dynamics365_Integration", "v1.0", None)
    assert settings.scope == "https://api.businesscentral.dynamics.com/.default"


def test_overrides_by_field_name_still_apply(tmp_path):
    settings = load_settings({**GOOD, "home": tmp_path, "state_url": f"sqlite:///{tmp_path}/s.sqlite"})
    assert (settings.home, settings.environment) == (tmp_path, "Production")
    assert load_settings({"home": tmp_path}, from_environment=False).home == tmp_path


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("bc_throttle_seconds", "nan", "API Throttle Seconds (BC_THROTTLE_SECONDS): must be a finite number"),
        ("bc_throttle_seconds", "inf", "API Throttle Seconds (BC_THROTTLE_SECONDS): must be a finite number"),
        ("ipaas_throttle_seconds", "nan", "API Throttle Seconds (to iPaaS) (IPAAS_THROTTLE_SECONDS): must be a finite"),
        ("ipaas_throttle_seconds", "-infinity", "(IPAAS_THROTTLE_SECONDS): must be a finite number"),
        ("ipaas_throttle_seconds", -1, "(IPAAS_THROTTLE_SECONDS): must be more than 0"),
        ("bc_throttle_limit", "inf", "API Throttle Limit (BC_THROTTLE_LIMIT)"),
        ("ipaas_throttle_limit", 0, "API Throttle Limit (to iPaaS) (IPAAS_THROTTLE_LIMIT): must be at least 1"),
        ("ipaas_throttle_limit", "nan", "(IPAAS_THROTTLE_LIMIT)"),
    ],
)
def test_non_finite_and_non_positive_throttles_are_refused_by_name(field, value, fragment):
    assert fragment in _refusal(**{field: value})


@pytest.mark.parametrize("name", ["BC_THROTTLE_SECONDS", "IPAAS_THROTTLE_SECONDS", "BC_THROTTLE_LIMIT", "IPAAS_THROTTLE_LIMIT"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-5"])
def test_non_finite_and_non_positive_throttles_from_the_environment_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert f"({name}):" in _refusal()


@pytest.mark.parametrize(
    "field, env, url",
    [
        ("api_url", "BC_API_URL", "https://user:hunter2@api.businesscentral.dynamics.com"),
        ("ipaas_api_url", "IPAAS_API_URL", "https://token:hunter2@api.ipaas.com/"),
        ("authority_host", "BC_AUTHORITY_HOST", "https://hunter2@login.microsoftonline.com"),
    ],
)
def test_credentials_inside_a_url_are_refused_without_echoing_them(field, env, url):
    text = _refusal(**{field: url})
    assert f"({env}): must not carry credentials" in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("nosuch=X", "unknown entity 'nosuch'; known: customer_price_groups, locations"),
        ("customers=SystemModifiedAt,itmes=SystemModifiedAt", "unknown entity 'itmes'; known:"),
        ("customers=System ModifiedAt", "'System ModifiedAt' for customers is not an OData field name"),
        ("customers=1st", "'1st' for customers is not an OData field name"),
        ("customers", "expected entity=Field pairs such as customers=SystemModifiedAt"),
    ],
)
def test_modified_at_fields_name_known_entities_and_odata_fields(value, fragment):
    text = _refusal(modified_at_fields=value)
    assert "Change-date fields (BC_MODIFIED_AT_FIELDS)" in text
    assert fragment in text


def test_modified_at_fields_for_known_entities_are_kept():
    settings = load_settings({**GOOD, "modified_at_fields": "customers=SystemModifiedAt, items=SystemModifiedAt"})
    assert settings.modified_at_fields == {"customers": "SystemModifiedAt", "items": "SystemModifiedAt"}


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("notaurl", "State database URL (BC_PIPELINE_STATE_URL): not a SQLAlchemy URL"),
        ("mysql://x", "unsupported database 'mysql'; supported: sqlite, sqlite+pysqlite, postgresql+psycopg"),
        ("postgresql://u:hunter2@db/state", "unsupported database 'postgresql'"),
        ("mysql+pymysql://u:hunter2@db/state", "unsupported database 'mysql+pymysql'"),
        ("://u:hunter2@db/x", "not a SQLAlchemy URL"),
    ],
)
def test_a_state_url_is_checked_up_front_without_echoing_its_password(url, fragment):
    text = _refusal(state_url=url)
    assert fragment in text
    assert "hunter2" not in text


@pytest.mark.parametrize("url", ["sqlite:////tmp/state.sqlite", "sqlite://", "postgresql+psycopg://u:pw@db:5432/state"])
def test_supported_state_urls_are_kept(url):
    assert load_settings({**GOOD, "state_url": url}).state_database_url == url


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("customer=MyCustomerCard", "unknown entity 'customer'; known: customer_price_groups, locations"),
        ("customers=My Customer Card", "'My Customer Card' for customers is not a web service name"),
        ("customers", "expected entity=Name pairs such as customers=MyCustomerCard"),
        ("customers=MyCards,items=MyCards", "MyCards is given for more than one entity"),
    ],
)
def test_service_names_name_known_entities_and_web_service_names(value, fragment):
    text = _refusal(service_names=value)
    assert "Service names (BC_SERVICE_NAMES)" in text
    assert fragment in text


def test_a_service_published_under_another_name_is_asked_for_by_that_name():
    settings = load_settings({**GOOD, "service_names": "customers=MyCustomerCard, sales_orders=WebOrders"})
    assert settings.service_names == {"customers": "MyCustomerCard", "sales_orders": "WebOrders"}
    assert [settings.published_service(s) for s in ("CustomerCard", "SalesOrders", "ItemCard", "PaymentTerms")] == [
        "MyCustomerCard", "WebOrders", "ItemCard", "PaymentTerms"]


def test_the_readme_lists_every_service_names_default():
    from bc_pipeline.catalog import ENTITIES
    from bc_pipeline.settings import PROJECT_DIR

    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `BC_SERVICE_NAMES` |"))
    assert [e.name for e in ENTITIES if f"`{e.name}={e.service}`" not in row] == []

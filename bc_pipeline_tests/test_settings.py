"""Subscription settings are validated before any request, and every error names its field."""

import pytest

from bc_pipeline.settings import SettingsError, load_settings

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

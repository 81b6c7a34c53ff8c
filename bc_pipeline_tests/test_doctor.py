"""`bc-pipeline doctor`: the guide's Troubleshooting, against the sandbox."""

import pytest

from bc_pipeline.catalog import ENTITIES
from bc_pipeline.doctor import diagnose, render
from bc_pipeline.settings import load_settings

pytestmark = pytest.mark.e2e


def test_a_healthy_setup_passes_every_check(world):
    findings = diagnose(load_settings())
    assert [f.check for f in findings][:4] == ["settings", "token", "environment", "company"]
    assert len([f for f in findings if f.check.startswith("service ")]) == len(ENTITIES)
    assert {f.check for f in findings} >= {"add defaults of company_from_ipaas", "add defaults of customer_from_ipaas"}
    assert all(f.ok for f in findings), render(findings)
    assert render(findings).endswith(f"all {len(findings)} checks ok")


def test_an_unpublished_item_card_says_to_publish_page_30(world):
    world.handle.set_faults({"action": "unpublish", "service": "ItemCard"})
    findings = diagnose(load_settings())
    failed = [f for f in findings if not f.ok]
    assert [f.check for f in failed] == ["service ItemCard"]
    assert "Object ID 30" in failed[0].fix and "Service Name ItemCard" in failed[0].fix
    assert "1 of" in render(findings)


def test_a_wrong_company_name_lists_the_companies_there_are(world, monkeypatch):
    monkeypatch.setenv("BC_COMPANY_NAME", "CRONUS USA Inc")
    findings = diagnose(load_settings())
    company = next(f for f in findings if f.check == "company")
    assert not company.ok
    assert repr(world.handle.config.company_name) in company.detail  # the name the sandbox has, quoted
    assert "exactly as Business Central shows it" in company.fix


def test_an_app_without_permission_is_told_to_grant_it(world):
    world.handle.set_faults({"action": "deny_client", "client_id": world.handle.config.client_id})
    findings = diagnose(load_settings())
    company = next(f for f in findings if f.check == "company")
    assert not company.ok and "403" in company.detail
    assert "Microsoft Entra Applications" in company.fix


def test_missing_settings_are_named_before_any_request(monkeypatch, tmp_path):
    for name in ("BC_TENANT_ID", "BC_CLIENT_ID", "BC_CLIENT_SECRET", "BC_COMPANY_NAME", "BC_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BC_PIPELINE_HOME", str(tmp_path))
    findings = diagnose()
    assert {f.check for f in findings} == {"settings"}
    assert any("Tenant ID (BC_TENANT_ID): is required" in f.detail for f in findings)


def test_a_wrong_environment_is_reported_under_the_environment_with_its_fix(world, monkeypatch):
    monkeypatch.setenv("BC_ENVIRONMENT", "Sandbox2")
    findings = diagnose(load_settings())
    assert [(f.check, f.ok) for f in findings] == [("settings", True), ("token", True), ("environment", False)]
    assert "no environment 'Sandbox2'" in findings[-1].detail
    assert "set Environment (BC_ENVIRONMENT)" in findings[-1].fix and "Admin Center" in findings[-1].fix


def test_an_unreachable_entra_host_is_blamed_on_the_entra_login_host(world, monkeypatch):
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("BC_AUTHORITY_HOST", f"https://127.0.0.1:{closed.getsockname()[1]}")
        findings = diagnose(load_settings())
    assert [(f.check, f.ok) for f in findings] == [("settings", True), ("token", False)]
    assert "could not reach Microsoft Entra ID" in findings[-1].detail
    assert "BC_AUTHORITY_HOST" in findings[-1].fix and "API URL" not in findings[-1].fix


def test_an_unreachable_api_url_is_blamed_on_the_api_url(world, monkeypatch):
    import socket

    from bc_pipeline.clients import transport

    original = transport.retry_policy
    monkeypatch.setattr(transport, "retry_policy", lambda attempts: original(0))  # no backoff: fail at once
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("BC_API_URL", f"https://127.0.0.1:{closed.getsockname()[1]}")
        findings = diagnose(load_settings())
    assert (findings[-1].check, findings[-1].ok) == ("Business Central", False)
    assert "BC_API_URL" in findings[-1].fix and "BC_AUTHORITY_HOST" not in findings[-1].fix


def test_an_add_default_the_company_lacks_is_named_with_its_file_and_setup_page(world, tmp_path, monkeypatch):
    from bc_pipeline.mapping import registry
    from bc_pipeline.mapping.collection import COLLECTIONS_DIR, load_collections

    folder = tmp_path / "collections"
    folder.mkdir()
    for path in COLLECTIONS_DIR.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if path.name == "customer_from_ipaas.yaml":
            text = text.replace("tax_area_code: IL-1", "tax_area_code: ATLANTIS")
        (folder / path.name).write_text(text, encoding="utf-8")
    monkeypatch.setattr(registry, "all_collections", lambda: load_collections(folder))
    world.handle.set_faults({"action": "unpublish", "service": "PaymentTerms"})

    failed = [f for f in diagnose(load_settings()) if not f.ok]
    assert [f.check for f in failed] == ["add defaults of company_from_ipaas", "add defaults of customer_from_ipaas"]
    company, customer = failed
    assert "payment_terms_code '30 DAYS' cannot be checked" in company.detail
    assert "publish Page 4 Payment Terms as web service PaymentTerms" in company.fix
    assert "add_defaults.tax_area_code 'ATLANTIS' is not a Tax Area of the company" in customer.detail
    assert "customer_from_ipaas.yaml" in customer.fix and "Tax Area List (page 469)" in customer.fix

"""Custom fields by YAML alone: a tenant extension field the catalog never heard of moves both ways."""

import json
import os
import subprocess
import sys

import pytest

from bc_pipeline.mapping.collection import COLLECTIONS_DIR

pytestmark = pytest.mark.e2e

# Runs in a process of its own, so the Dagster definitions are built from the user's collection folder.
SCRIPT = """
import json, sys
import dagster as dg
from bc_pipeline.runner import run_job
from bc_pipeline.definitions import defs

with dg.instance_for_test() as instance:
    out = run_job("initial_load", ["customer_price_groups", "customers"], instance=instance)
    assert out.success, out.error
    job = defs.resolve_job_def("sync_from_ipaas")
    result = job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["bc_out", "customer_from_ipaas"])],
        run_config={"ops": {"bc_out__customer_from_ipaas": {"config": {"ipaas_ids": sys.argv[1:]}}}},
        raise_on_error=False)
    errors = [e.message for e in result.all_events if e.is_failure]
    print(json.dumps({"success": result.success, "errors": errors}))
"""


def _user_collections(tmp_path, *, to_field="LoyaltyTier", from_field="LoyaltyTier"):
    """The shipped customer collections, each with a custom field added: YAML only."""
    folder = tmp_path / "collections"
    folder.mkdir()
    for name in ("customer_to_ipaas.yaml", "company_to_ipaas.yaml"):
        to_text = (COLLECTIONS_DIR / name).read_text(encoding="utf-8")
        assert "custom_fields:" not in to_text
        (folder / name).write_text(
            to_text + f"custom_fields:\n  - {{custom_field_name: LoyaltyTier, source: {to_field}}}\n", encoding="utf-8")
    from_text = (COLLECTIONS_DIR / "customer_from_ipaas.yaml").read_text(encoding="utf-8")
    marker = "  Partner_Type: {value: Person}\n"
    assert marker in from_text
    (folder / "customer_from_ipaas.yaml").write_text(
        from_text.replace(marker, marker + f"  {from_field}: {{source: custom_fields.LoyaltyTier}}\n"),
        encoding="utf-8")
    return folder


def _run(folder, ids):
    env = {**os.environ, "BC_PIPELINE_COLLECTIONS_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, ids)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _custom(record, name):
    return next((c.get("value") for c in record.get("custom_fields") or [] if c["custom_field_name"] == name), None)


def test_a_tenant_field_named_only_in_yaml_moves_to_ipaas_and_back(world, tmp_path):
    """LoyaltyTier: on companies and customers TO iPaaS.com, on a customer FROM iPaaS.com; YAML only."""
    folder = _user_collections(tmp_path)
    new = world.ipaas("POST", "records/Customer", json={
        "first_name": "Zoë", "last_name": "O'Hara", "email_address": "zoe.ohara@example.com",
        "custom_fields": [{"custom_field_name": "LoyaltyTier", "value": "DIAMOND"}],
    })

    outcome = _run(folder, [new["id"]])
    assert outcome == {"success": True, "errors": []}

    people = {c["No"]: c for c in world.handle.records("CustomerCard")
              if c.get("Partner_Type") == "Person" and c.get("E_Mail") != "zoe.ohara@example.com"}
    sent = {c["customer_number"]: _custom(c, "LoyaltyTier") for c in world.ipaas_records("Customer")
            if c.get("customer_number") in people}
    assert sent == {no: c["LoyaltyTier"] or None for no, c in people.items()}
    assert len(set(sent.values()) - {None}) >= 2  # the seeded tiers, not one constant
    companies = {c["No"]: c["LoyaltyTier"] or None for c in world.handle.records("CustomerCard")
                 if c.get("Partner_Type") != "Person"}
    links = {str(link["internal_id"]): link["external_id"] for link in world.ipaas_links()
             if link["table_name"].lower() == "customer" and not link.get("deleted")}
    landed = {links[str(c["id"])]: _custom(c, "LoyaltyTier") for c in world.ipaas_records("Company")}
    assert landed == {no: tier for no, tier in companies.items() if no in landed} and len(landed) >= 3
    [created] = [c for c in world.handle.records("CustomerCard") if c.get("E_Mail") == "zoe.ohara@example.com"]
    assert created["LoyaltyTier"] == "DIAMOND"


@pytest.fixture
def user_collections(monkeypatch):
    """Point BC_PIPELINE_COLLECTIONS_DIR at a folder for this process; the shipped collections again afterwards."""
    from bc_pipeline.mapping.registry import all_collections

    def use(folder):
        monkeypatch.setenv("BC_PIPELINE_COLLECTIONS_DIR", str(folder))
        all_collections.cache_clear()

    yield use
    monkeypatch.delenv("BC_PIPELINE_COLLECTIONS_DIR", raising=False)
    all_collections.cache_clear()


def test_a_field_the_service_lacks_is_named_with_the_service_and_the_file(world, instance, tmp_path,
                                                                           user_collections):
    from bc_pipeline.runner import run_job

    user_collections(_user_collections(tmp_path, to_field="Loyalty_Tier"))
    outcome = run_job("extract_business_central", ["customers"], instance=instance)
    assert not outcome.success
    assert ("CustomerCard has no field 'Loyalty_Tier' (named in company_to_ipaas.yaml, customer_to_ipaas.yaml) in "
            "Business Central's $metadata") in outcome.error
    assert "customers" not in outcome.extracts  # nothing was read


def test_doctor_lists_every_field_a_collection_names_that_the_service_lacks(world, tmp_path, user_collections):
    from bc_pipeline.doctor import diagnose
    from bc_pipeline.settings import load_settings

    findings = {f.check: f for f in diagnose(load_settings(), check_ipaas=False)}
    assert findings["collection fields"].ok, findings["collection fields"].detail  # the shipped collections

    user_collections(_user_collections(tmp_path, to_field="Loyalty_Tier", from_field="LoyaltyTeir"))
    fields = {f.check: f for f in diagnose(load_settings(), check_ipaas=False)}["collection fields"]
    assert not fields.ok
    assert fields.detail == (
        "CustomerCard has no field 'LoyaltyTeir' (named in customer_from_ipaas.yaml), 'Loyalty_Tier' (named in "
        "company_to_ipaas.yaml, customer_to_ipaas.yaml) in Business Central's $metadata")
    assert "publish the page extension" in fields.fix

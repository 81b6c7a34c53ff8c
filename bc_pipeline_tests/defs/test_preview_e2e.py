"""The preview before writing, against the sandbox: it lists what a run would do, field by field, and writes nothing."""

import dagster as dg
import pytest
from sqlalchemy import MetaData, select

from bc_pipeline.defs.preview import previews_in, run_preview
from bc_pipeline.runner import run_job
from bc_pipeline.settings import load_settings
from bc_pipeline.state import leases
from bc_pipeline.state.database import engine_for
from bc_pipeline_tests.defs.test_from_ipaas_e2e import _put_company

pytestmark = pytest.mark.e2e

ENTITIES = ["customer_price_groups", "customers", "items"]
IPAAS_MODELS = ("Company", "Customer", "Customer Category", "Product", "Transaction")
BC_SERVICES = ("CustomerCard", "ItemCard", "CustomerPriceGroups", "SalesOrders", "SalesOrderLines")


def _state(engine) -> dict[str, list]:
    """Every row of the pipeline's own tables (links, hashes, watermarks, dead letters, leases, inbox)."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {name: sorted(map(repr, conn.execute(select(table)).all()))
                for name, table in meta.tables.items() if "throttle" not in name}


def _everything(world) -> dict:
    engine = engine_for(load_settings().state_database_url)
    return {"state": _state(engine),
            "ipaas": {m: world.ipaas_records(m) for m in IPAAS_MODELS}, "links": world.ipaas_links(),
            "bc": {s: world.handle.records(s) for s in BC_SERVICES}}


def _writes(world, bc_since, ipaas_since):
    bc = [r for r in world.handle.requests(bc_since)
          if r["method"] in ("POST", "PATCH", "PUT", "DELETE") and "/ODataV4/" in r["path"]]
    ipaas = [r for r in world.ipaas_writes(ipaas_since) if "/External/Lookup" not in r["path"]]
    return bc + ipaas


@pytest.fixture
def loaded(world, instance):
    outcome = run_job("initial_load", ENTITIES, instance=instance)
    assert outcome.success, outcome.error
    return world


def test_dry_run_shows_the_three_bc_edits_field_by_field_and_a_new_record_and_writes_nothing(loaded, instance, capsys):
    world = loaded
    companies = [c for c in world.handle.records("CustomerCard") if c["Partner_Type"] != "Person"][:3]
    for i, customer in enumerate(companies):
        edited = world.handle.edit_record("CustomerCard", customer["No"], {"Phone_No": f"+1 555 01{i:02d}"})
    world.handle.insert_record("CustomerCard", {"No": "PREVIEW1", "Name": "Preview & Söhne", "Partner_Type": "Company",
                                                "Last_Date_Modified": edited["record"]["Last_Date_Modified"]})
    # A run loading companies right now: the preview takes no lease, so it neither waits for nor blocks it.
    engine = engine_for(load_settings().state_database_url)
    holder = leases.holder_name("a-real-run")
    assert leases.try_acquire(engine, "load:company_to_ipaas", holder) is None
    before = _everything(world)
    bc_since, ipaas_since = world.handle.last_seq(), world.ipaas_last_seq()

    code, run_id, previews = run_preview(ENTITIES, instance=instance)

    assert code == 0
    assert _writes(world, bc_since, ipaas_since) == []
    assert _everything(world) == before
    by_slug = {p.slug: p for p in previews}
    company = by_slug["company_to_ipaas"]
    updated = {i.key: i for i in company.items if i.kind == "updated"}
    assert set(updated) == {c["No"] for c in companies}
    for i, customer in enumerate(companies):
        changes = updated[customer["No"]].changes
        [change] = [c for c in changes if c.field == "phone_number"]
        # the card's own address (an address child) carries the phone number too
        assert all(c.field.startswith("addresses") for c in changes if c is not change), [c.field for c in changes]
        assert (change.field, change.old, change.new) == ("phone_number", customer["Phone_No"].strip() or None,
                                                           f"+1 555 01{i:02d}")
    assert [i.key for i in company.items if i.kind == "created"] == ["PREVIEW1"]
    assert company.counts["unchanged"] > 0
    others = [p for p in previews if p.slug != "company_to_ipaas"]
    assert sum(p.counts["updated"] + p.counts["created"] for p in others) == 0
    assert sum(p.counts["updated"] for p in previews) == 3

    out = capsys.readouterr().out
    assert "nothing was written" in out
    assert "| company_to_ipaas" in out
    assert f"phone_number: {customer['Phone_No'].strip()!r} -> '+1 555 0102'" in out
    # The run is in the UI with the same details as Markdown and a summary table.
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.job_name == "preview"
    event = instance.get_latest_materialization_event(dg.AssetKey(["preview", "company_to_ipaas"]))
    details = event.asset_materialization.metadata["details"].value
    assert "3 to update" in details and "`phone_number`" in details and "PREVIEW1" in details
    summary = instance.get_latest_materialization_event(dg.AssetKey(["preview", "summary"]))
    assert "company_to_ipaas" in summary.asset_materialization.metadata["collections"].value

    # And the run that follows does exactly what the preview said.
    leases.release(engine, "load:company_to_ipaas", holder)
    outcome = run_job("sync_to_ipaas", ENTITIES, instance=instance)
    assert outcome.success, outcome.error
    assert (outcome.loads["company_to_ipaas"]["updated"], outcome.loads["company_to_ipaas"]["created"]) == (3, 1)


def test_the_preview_job_compares_ipaas_records_with_bc_as_the_writer_finds_them(loaded, instance):
    world = loaded
    links = {str(link["internal_id"]): link["external_id"] for link in world.ipaas_links()
             if link["table_name"].lower() == "customer"}
    companies = [c for c in world.ipaas_records("Company") if str(c["id"]) in links]
    edited, same = companies[0], companies[1]
    _put_company(world, edited, phone_number="+1 555 0177")
    new = world.ipaas("POST", "records/Company", json={"name": "Brand New Preview GmbH", "phone_number": "+49 30 1"})
    # An order for a customer BC does not know: the mapping refuses it (its customer reference is required).
    refused = world.ipaas("POST", "records/Transaction", json={
        "transaction_number": "WEB-2001", "type": "Order", "status": "Pending", "customer_id": int(new["id"]),
        "lines": [{"sequence_number": 1, "sku": "X", "description": "x", "qty": 1, "unit_price": 1.0}]})
    ids = [str(edited["id"]), str(same["id"]), str(new["id"])]
    from bc_pipeline.definitions import defs

    # Written once, so the unchanged one is known by its delivered hash, as the writer knows it.
    result = defs.resolve_job_def("sync_from_ipaas").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["bc_out", "company_from_ipaas"])],
        run_config={"ops": {"bc_out__company_from_ipaas": {"config": {"ipaas_ids": [str(same["id"])]}}}})
    assert result.success
    before = _everything(world)
    bc_since, ipaas_since = world.handle.last_seq(), world.ipaas_last_seq()
    [bc_customer] = world.handle.records("CustomerCard", key=links[str(edited["id"])])

    result = defs.resolve_job_def("preview").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["preview", slug]) for slug in
                                            ("company_from_ipaas", "sales_order_from_ipaas", "summary")],
        run_config={"ops": {"preview_from_ipaas": {"config": {"ipaas_ids": {
            "company_from_ipaas": ids, "sales_order_from_ipaas": [str(refused["id"])]}}}}})

    assert result.success
    assert _writes(world, bc_since, ipaas_since) == []
    assert _everything(world) == before
    preview, orders = previews_in({k: v.value for k, v in e.event_specific_data.materialization.metadata.items()}
                                  for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION")
    kinds = {i.key: i for i in preview.items}
    assert kinds[str(new["id"])].kind == "created"
    assert kinds[str(edited["id"])].kind == "updated"
    assert kinds[str(edited["id"])].target == bc_customer["No"]
    assert ("Phone_No", bc_customer["Phone_No"], "+1 555 0177") in {(c.field, c.old, c.new) for c in kinds[str(edited["id"])].changes}
    assert str(same["id"]) not in kinds
    assert [preview.counts[k] for k in ("created", "updated", "unchanged", "refused")] == [1, 1, 1, 0]
    [order] = orders.items
    assert (orders.slug, order.key, order.kind) == ("sales_order_from_ipaas", str(refused["id"]), "refused")
    assert "not linked" in order.reason


def test_bc_pipeline_run_dry_run_on_a_new_sandbox_would_create_everything_parents_first(world, tmp_path, monkeypatch,
                                                                                       capsys):
    """What refers to a record the run would create first (inventory: its product and location) maps as in the run."""
    from bc_pipeline.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["run", "--dry-run", "--select", "items", "locations", "inventory_by_location"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in out.splitlines() if line.startswith("| ") and "_to_ipaas" in line}
    assert set(rows) == {"product_to_ipaas", "location_to_ipaas", "product_inventory_to_ipaas"}
    for slug, (direction, created, updated, unchanged, refused, *_) in rows.items():
        assert (direction, updated, unchanged, refused) == ("to iPaaS.com", "0", "0", "0"), slug
        assert int(created) > 0, slug
    assert "parent_id '(new product " in out and "location_id '(new location " in out
    assert "Preview run" in out and str(tmp_path / "dagster") in out
    assert world.ipaas_records("Product") == [] and world.ipaas_links() == []

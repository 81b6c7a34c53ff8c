"""Company/Customer FROM iPaaS: the collection's add defaults on Add only, and an iPaaS id that is a BC No links."""

import pytest

from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.settings import load_settings

from bc_pipeline_tests.defs.test_from_ipaas_e2e import _links, _write

pytestmark = pytest.mark.e2e


def test_add_sets_the_collections_posting_groups_payment_terms_and_tax_area_and_update_leaves_them(world, instance):
    company = world.ipaas("POST", "records/Company", json={"name": "Lakeside Lamps, Inc.",
                                                         "email_address": "orders@lakeside.example"})
    meta = _write(instance, "company_from_ipaas", [company["id"]])
    assert (meta["created"], meta["failed"]) == (1, 0)
    no = _links(world, "customer")[str(company["id"])]
    [customer] = world.handle.records("CustomerCard", key=no)
    assert (customer["Gen_Bus_Posting_Group"], customer["Customer_Posting_Group"], customer["Payment_Terms_Code"],
            customer["Tax_Area_Code"]) == ("DOMESTIC", "DOMESTIC", "30 DAYS", "IL-1")

    world.handle.edit_record("CustomerCard", no, {"Tax_Area_Code": "GA-2", "Payment_Terms_Code": "14 DAYS"})
    client = IpaasClient(load_settings())
    try:
        current = client.get("Company", company["id"])
        client.replace("Company", company["id"], {**current, "name": "Lakeside Lamps & Co."})
    finally:
        client.close()
    meta = _write(instance, "company_from_ipaas", [company["id"]])
    assert meta["updated"] == 1
    [customer] = world.handle.records("CustomerCard", key=no)
    assert customer["Name"] == "Lakeside Lamps & Co."
    assert (customer["Tax_Area_Code"], customer["Payment_Terms_Code"]) == ("GA-2", "14 DAYS")


@pytest.mark.parametrize("model, slug", [("Company", "company_from_ipaas"), ("Customer", "customer_from_ipaas")])
def test_an_ipaas_record_whose_id_is_a_bc_customer_no_is_linked_to_it_not_created_again(world, instance, model, slug):
    body = {"name": "Harbor Marine Supply"} if model == "Company" else {
        "first_name": "Zoë", "last_name": "O'Neill", "email_address": "zoe@harbor.example"}
    record = world.ipaas("POST", f"records/{model}", json=body)
    no = str(record["id"])
    world.handle.insert_record("CustomerCard", {"No": no, "Name": "HARBOR (typed in BC)",
                                                "E_Mail": "someone.else@example.com"})
    before = world.handle.count("CustomerCard")["count"]

    meta = _write(instance, slug, [record["id"]])
    assert (meta["created"], meta["failed"]) == (0, 0)
    assert world.handle.count("CustomerCard")["count"] == before
    assert _links(world, "customer")[no] == no
    [customer] = world.handle.records("CustomerCard", key=no)
    assert customer["Name"] == ("Harbor Marine Supply" if model == "Company" else "Zoë O'Neill")

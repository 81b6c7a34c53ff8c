"""The Business Central client against the HTTPS sandbox: tokens, paging, filters, ETags, throttling, errors."""

import math

import pytest

from bc_pipeline.clients import odata
from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.clients.errors import AuthenticationError, BusinessCentralError, EntityChangedError, NotPublishedError
from bc_pipeline.settings import load_settings


@pytest.fixture
def client(world):
    bc = BusinessCentralClient(load_settings())
    yield bc
    bc.close()


def test_a_token_comes_from_entra_through_msal_and_is_cached(client):
    first = client.tokens.token()
    assert first == client.tokens.token()
    assert client.tokens.tokens_issued == 1


def test_a_wrong_client_secret_is_explained_without_revealing_it(world, monkeypatch):
    monkeypatch.setenv("BC_CLIENT_SECRET", "not-the-secret-42")
    bc = BusinessCentralClient(load_settings())
    with pytest.raises(AuthenticationError) as error:
        bc.companies()
    text = str(error.value)
    assert error.value.code == "invalid_client"
    assert "AADSTS7000215" in text
    assert "Client Secret is wrong" in text
    assert "not-the-secret-42" not in text


def test_a_wrong_tenant_is_explained(world, monkeypatch):
    monkeypatch.setenv("BC_TENANT_ID", "11111111-2222-3333-4444-555555555555")
    bc = BusinessCentralClient(load_settings())
    with pytest.raises(AuthenticationError) as error:
        bc.companies()
    assert "Tenant ID is wrong" in str(error.value)


def test_pages_are_followed_to_the_end_without_duplicates(client, world):
    expected = world.handle.records("CustomerCard")
    pages = list(client.iter_pages("CustomerCard", select=["No", "Name"], page_size=7))
    numbers = [r["No"] for p in pages for r in p.records]
    assert len(numbers) == len(expected) == len(set(numbers))
    assert len(pages) == math.ceil(len(expected) / 7)
    assert all(p.next_link and "skiptoken" in p.next_link.lower() for p in pages[:-1])
    assert pages[-1].next_link is None
    assert set(pages[0].records[0]) <= {"No", "Name", "@odata.etag"}


def test_a_name_with_an_apostrophe_is_found_as_a_literal(client, world):
    named = [r for r in world.handle.records("CustomerCard") if "'" in r["Name"]]
    assert named, "the seed has names with apostrophes"
    found = list(client.read("CustomerCard", filter=odata.compare("Name", "eq", named[0]["Name"])))
    assert [r["No"] for r in found] == [named[0]["No"]]


def test_an_injected_filter_matches_nothing_instead_of_everything(client):
    found = list(client.read("CustomerCard", filter=odata.compare("No", "eq", "x' or No ne 'y")))
    assert found == []


def test_a_stale_etag_is_a_conflict_with_the_services_code_and_correlation_id(client, world):
    customer = client.get("CustomerCard", {"No": world.handle.records("CustomerCard")[0]["No"]})
    world.handle.edit_record("CustomerCard", customer["No"], {"Phone_No": "555-0100"})
    with pytest.raises(EntityChangedError) as error:
        client.update("CustomerCard", {"No": customer["No"]}, {"Name_2": "changed"}, etag=customer["@odata.etag"])
    assert error.value.status == 409
    assert error.value.code == "Request_EntityChanged"
    assert error.value.correlation_id
    assert "re-read it" in str(error.value)
    fresh = client.get("CustomerCard", {"No": customer["No"]})
    updated = client.update("CustomerCard", {"No": customer["No"]}, {"Name_2": "changed"}, etag=fresh["@odata.etag"])
    assert updated["Name_2"] == "changed"
    assert world.handle.records("CustomerCard", key=customer["No"])[0]["Name_2"] == "changed"


def test_429s_are_waited_out_and_the_read_completes(client, world):
    world.handle.set_faults({"kind": "status", "status": 429, "count": 2, "retry_after": 1, "service": "ShippingAgents"})
    rows = list(client.read("ShippingAgents"))
    assert len(rows) == len(world.handle.records("ShippingAgents"))
    assert client.counter.throttled == 2
    assert client.counter.retries == 2
    assert client.throttle.stats.paused_seconds >= 0.9


def test_a_token_that_expires_mid_run_is_renewed_once(client, world):
    list(client.read("Locations"))
    world.handle.set_faults({"action": "expire_tokens"})
    rows = list(client.read("Locations"))
    assert rows
    assert client.tokens.tokens_issued == 2


def test_an_unpublished_service_says_how_to_publish_it(client, world):
    world.handle.set_faults({"action": "unpublish", "service": "ItemCard"})
    with pytest.raises(NotPublishedError) as error:
        list(client.read("ItemCard"))
    text = str(error.value)
    assert error.value.status == 404
    assert "Object ID 30" in text and "Service Name ItemCard" in text


def test_an_app_without_permission_is_told_to_get_it(client, world):
    world.handle.set_faults({"action": "deny_client", "client_id": world.handle.config.client_id})
    with pytest.raises(BusinessCentralError) as error:
        list(client.read("Locations"))
    assert error.value.status == 403
    assert "Microsoft Entra Applications" in str(error.value)


def test_a_sales_order_and_its_lines_are_written_and_a_batch_answers_in_order(client, world):
    customer = world.handle.records("CustomerCard")[0]["No"]
    item = world.handle.records("ItemCard")[0]["No"]
    order = client.create("SalesOrders", {"Sell_to_Customer_No": customer, "External_Document_No": "TEST-1"})
    line = client.create("SalesOrderLines", {"Document_Type": "Order", "Document_No": order["No"], "Type": "Item",
                                             "No": item, "Quantity": 2})
    assert line["Document_No"] == order["No"]
    answers = client.batch([
        {"method": "GET", "url": f"{client.company_root}/SalesOrders(Document_Type='Order',No='{order['No']}')"},
        {"method": "GET", "url": f"{client.company_root}/ItemCard{odata.key_segment({'No': item})}"},  # No may hold '/'
    ])
    assert [a["status"] for a in answers] == [200, 200]
    assert answers[1]["body"]["No"] == item

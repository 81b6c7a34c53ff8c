"""The Entra ID and Business Central stand-ins over real HTTPS, in a sandbox subprocess (scale 0.05)."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from datetime import date
from urllib.parse import quote

import msal
import pytest
import requests

from bc_pipeline.sandbox.config import BC_SCOPE, ClientRegistration
from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

from .bc_support import bc_error, follow, odata_session

WORK_DATE = date(2026, 11, 20)
MAX_PAGE_SIZE = 30  # the server's Max Page Size here: several services need more than one page
NO_BC_CLIENT = ClientRegistration(client_id="7e57c11e-0000-4000-8000-000000000403", client_secret="s-403",
                                  bc_permission=False)


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    handle = start_sandbox(SandboxConfig(scale=0.05, seed=11, work_date=WORK_DATE, extra_clients=[NO_BC_CLIENT],
                                         max_page_size=MAX_PAGE_SIZE, state_dir=tmp_path_factory.mktemp("bc-sandbox")))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def s(sb):
    session = odata_session(sb)
    yield session
    session.close()


# --- Entra ID with the real MSAL ---------------------------------------------------------------------------

def msal_app(sb, monkeypatch, secret=None, tenant=None, client_id=None):
    # requests lets REQUESTS_CA_BUNDLE override a session's verify=, so MSAL's verify= alone is not enough here
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sb.ca_path))
    return msal.ConfidentialClientApplication(
        client_id or sb.config.client_id, client_credential=secret or sb.config.client_secret,
        authority=f"{sb.base_url}/{tenant or sb.config.tenant_id}", instance_discovery=False, verify=str(sb.ca_path))


def test_msal_gets_a_token_that_business_central_accepts(sb, monkeypatch):
    result = msal_app(sb, monkeypatch).acquire_token_for_client(scopes=[BC_SCOPE])
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3600, result
    r = requests.get(f"{sb.odata_root}/Company", headers={"Authorization": f"Bearer {result['access_token']}"},
                     verify=str(sb.ca_path))
    assert r.status_code == 200 and r.json()["value"][0]["Name"] == SandboxConfig().company_name


def test_msal_with_a_bad_secret_gets_invalid_client(sb, monkeypatch):
    result = msal_app(sb, monkeypatch, secret="wrong").acquire_token_for_client(scopes=[BC_SCOPE])
    assert result["error"] == "invalid_client" and "AADSTS7000215" in result["error_description"]
    assert result["error_codes"] == [7000215] and result["correlation_id"]


def test_msal_with_an_unknown_tenant_fails_discovery(sb, monkeypatch):
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal_app(sb, monkeypatch, tenant="99999999-2222-3333-4444-555555555555")


@pytest.mark.parametrize("tenant, form, status, error, code", [
    ("99999999-2222-3333-4444-555555555555", {}, 400, "invalid_request", "AADSTS90002"),
    ("not a tenant", {}, 400, "invalid_request", "AADSTS900023"),
    (None, {"client_id": "11111111-2222-3333-4444-555555555555"}, 400, "unauthorized_client", "AADSTS700016"),
    (None, {"scope": "https://graph.microsoft.com/.default"}, 400, "invalid_scope", "AADSTS70011"),
    (None, {"grant_type": "password"}, 400, "unsupported_grant_type", "AADSTS70003"),
    (None, {"client_secret": "nope"}, 401, "invalid_client", "AADSTS7000215"),
])
def test_token_endpoint_errors(sb, tenant, form, status, error, code):
    data = {"grant_type": "client_credentials", "client_id": sb.config.client_id,
            "client_secret": sb.config.client_secret, "scope": BC_SCOPE, **form}
    url = f"{sb.base_url}/{quote(tenant or sb.config.tenant_id)}/oauth2/v2.0/token"
    r = requests.post(url, data=data, verify=str(sb.ca_path))
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and body["error_description"].startswith(code)
    assert {"error_codes", "timestamp", "trace_id", "correlation_id"} <= set(body)


# --- Reading ----------------------------------------------------------------------------------------------

def test_paging_follows_next_links_verbatim_to_the_end(sb, s):
    expected = {(r["Document_No"], r["Line_No"]) for r in sb.records("SalesOrderLines")}
    records, pages = follow(s, sb.company_url("SalesOrderLines"), params={"$select": "Document_No,Line_No,No"},
                            headers={"Prefer": "odata.maxpagesize=20"})
    keys = [(r["Document_No"], r["Line_No"]) for r in records]
    assert len(keys) == len(set(keys)) == len(expected) and set(keys) == expected
    assert len(pages) == -(-len(expected) // 20)
    assert all(p.headers["Preference-Applied"] == "odata.maxpagesize=20" for p in pages)
    assert all(len(p.json()["value"]) == 20 for p in pages[:-1]) and "@odata.nextLink" not in pages[-1].json()
    link = pages[0].json()["@odata.nextLink"]
    assert link.startswith(sb.company_url("SalesOrderLines") + "?") and "$skiptoken=" in link and "select" in link
    assert set(records[0]) == {"@odata.etag", "Document_No", "Line_No", "No"}


@pytest.mark.parametrize("service, key", [("SalesOrderLines", ("Document_No", "Line_No")), ("SalesOrders", ("No",)),
                                          ("Itemsbylocation", None)])
def test_without_prefer_pages_hold_the_max_page_size_and_next_links_give_every_row_once(sb, s, service, key):
    expected = sb.records(service)
    records, pages = follow(s, sb.company_url(service))
    assert len(pages) == -(-len(expected) // MAX_PAGE_SIZE) >= 2
    assert all(len(p.json()["value"]) == MAX_PAGE_SIZE and "@odata.nextLink" in p.json() for p in pages[:-1])
    assert "@odata.nextLink" not in pages[-1].json() and not any("Preference-Applied" in p.headers for p in pages)
    if key is None:  # a query has no key: every row, in order, once
        assert records == expected
    else:
        keys = [tuple(r[k] for k in key) for r in records]
        assert len(set(keys)) == len(keys) == len(expected)


def test_a_prefer_above_the_max_page_size_is_capped_one_above_20000_refused_and_filters_survive_paging(sb, s):
    r = s.get(sb.company_url("SalesOrders"), headers={"Prefer": "odata.maxpagesize=20000"}, params={"$select": "No"})
    assert r.headers["Preference-Applied"] == f"odata.maxpagesize={MAX_PAGE_SIZE}"
    assert len(r.json()["value"]) == MAX_PAGE_SIZE and "@odata.nextLink" in r.json()
    bc_error(s.get(sb.company_url("ItemCard"), headers={"Prefer": "odata.maxpagesize=20001"}), 413)
    flt = "Last_Date_Modified ge 2025-06-01 and Type eq 'Inventory'"
    expected = {x["No"] for x in sb.records("ItemCard", filter=flt)}
    records, pages = follow(s, sb.company_url("ItemCard"), params={"$filter": flt, "$select": "No"},
                            headers={"Prefer": "odata.maxpagesize=3"})
    assert [x["No"] for x in records] == sorted(expected) and len(pages) > 1


def test_paging_is_stable_when_records_are_inserted_meanwhile(sb, s):
    headers = {"Prefer": "odata.maxpagesize=5"}
    first = s.get(sb.company_url("CustomerCard"), params={"$select": "No"}, headers=headers).json()
    before = {r["No"] for r in sb.records("CustomerCard")}
    sb.insert_record("CustomerCard", {"No": "C00005", "Name": "Early Bird Ltd."})  # before the read position
    rest, _ = follow(s, first["@odata.nextLink"], headers=headers)
    seen = [r["No"] for r in first["value"]] + [r["No"] for r in rest]
    assert len(seen) == len(set(seen)) and set(seen) == before
    sb.edit_record("CustomerCard", "C00005", delete=True)


def test_filter_with_a_quote_in_the_literal(sb, s):
    r = s.get(sb.company_url("CustomerCard"), params={"$filter": "Name eq 'O''Brien Supply'", "$select": "No,Name"})
    assert r.status_code == 200 and [x["Name"] for x in r.json()["value"]] == ["O'Brien Supply"]
    r = s.get(sb.company_url("CustomerCard"), params={"$filter": "Name eq 'Société Générale'"})
    assert [x["No"] for x in r.json()["value"]] == ["SOCIÉTÉ/GÉN"]
    r = s.get(sb.company_url("CustomerCard"), params={"$filter": "No eq 'O''BRIEN' or No eq 'SMITH&JONES'"})
    assert [x["Name"] for x in r.json()["value"]] == ["O'Brien Supply", "Smith, Jones & Partners"]


def test_flow_filters_sum_item_flowfields_for_the_locations_asked(sb, s):
    at: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in sb.records("Itemsbylocation"):
        at[row["LocationCode"]][row["ItemNo"]] += row["RemainingQuantity"]
    everywhere = {i["No"]: i for i in sb.records("ItemCard")}
    for location in ("EAST", "O'HARE", "R&D/LAB"):
        literal = location.replace("'", "''")
        records, _ = follow(s, sb.company_url("ItemCard"), headers={"Prefer": "odata.maxpagesize=7"},
                            params={"$filter": f"Location_Filter eq '{literal}'", "$select": "No,Inventory"})
        assert {r["No"]: r["Inventory"] for r in records} == {no: at[location].get(no, 0.0) for no in everywhere}
        stocked, _ = follow(s, sb.company_url("ItemCard"), params={
            "$filter": f"Inventory gt 0 and Location_Filter eq '{literal}'", "$select": "No,Inventory"})
        assert {r["No"] for r in stocked} == {no for no, q in at[location].items() if q > 0}
    item = next(no for no in everywhere if sum(no in at[loc] for loc in at) >= 2)
    first, second = [loc for loc in at if item in at[loc]][:2]
    flt = (f"No eq '{item.replace(chr(39), chr(39) * 2)}' and "
           f"(Location_Filter eq '{first.replace(chr(39), chr(39) * 2)}' or "
           f"Location_Filter eq '{second.replace(chr(39), chr(39) * 2)}')")
    (record,) = s.get(sb.company_url("ItemCard"), params={"$filter": flt}).json()["value"]
    assert record["Inventory"] == record["InventoryNonFoundation"] == at[first][item] + at[second][item]
    plain = s.get(sb.company_url("ItemCard"), params={"$filter": f"No eq '{item.replace(chr(39), chr(39) * 2)}'"})
    (unfiltered,) = plain.json()["value"]
    assert unfiltered["Inventory"] == sum(at[loc].get(item, 0.0) for loc in at)
    assert unfiltered["@odata.etag"] == record["@odata.etag"]  # a FlowField is no change to the record
    error = bc_error(s.get(sb.company_url("CustomerCard"), params={"$filter": "Date_Filter le 2026-11-01"}), 400)
    assert "Date_Filter" in error["message"]
    bc_error(s.get(sb.company_url("ItemCard"), params={"$filter": "Location_Filter eq 'EAST' or No eq '10010'"}), 400)


@pytest.mark.parametrize("flt, code", [
    ("Name eq 'unterminated", "BadRequest_NotFound"),
    ("Name eq", "BadRequest_NotFound"),
    ("Name eq 'a' )", "BadRequest_NotFound"),
    ("eq eq eq", "BadRequest_NotFound"),
    ("Name eq 'a' or No eq 'C10000'", None),
    ("Nope eq 'a'", "BadRequest_NotFound"),
    ("Last_Date_Modified ge '2026-01-01'", None),
])
def test_bad_filters_answer_400_with_bc_error_json(sb, s, flt, code):
    error = bc_error(s.get(sb.company_url("CustomerCard"), params={"$filter": flt}), 400, code)
    if code == "BadRequest_NotFound" and "Nope" not in flt:
        assert error["message"].startswith("Bad Request - Error in query syntax.")


def test_select_returns_only_the_fields_asked_for(sb, s):
    r = s.get(sb.company_url("ItemCard"), params={"$select": "No,Description,UPC_Code", "$top": "3"})
    assert [set(x) for x in r.json()["value"]] == [{"@odata.etag", "No", "Description", "UPC_Code"}] * 3
    assert r.json()["@odata.context"].endswith("/ItemCard(No,Description,UPC_Code)")
    bc_error(s.get(sb.company_url("ItemCard"), params={"$select": "No,Nope"}), 400)
    full = s.get(sb.company_url("ItemCard"), params={"$top": "1"}).json()["value"][0]
    assert len(full) == 1 + len(sb.records("ItemCard")[0]) - 1 and "Manufacturer_Code" in full


def test_guide_item_10010_with_its_custom_fields(sb, s):
    r = s.get(sb.company_url("ItemCard") + "('10010')",
              params={"$select": "No,Description,Base_Unit_of_Measure,UPC_Code,Product_Group_Code,CatItemGroup,"
                                 "Unit_Price,Manufacturer_Code,Replenishment_System"})
    assert r.status_code == 200
    body = r.json()
    assert body["@odata.etag"] == r.headers["ETag"]
    body.pop("@odata.context"), body.pop("@odata.etag")
    assert body == {"No": "10010", "Description": "DISC. REPLACEMENT 10039", "Base_Unit_of_Measure": "EA",
                    "UPC_Code": "760479100105", "Product_Group_Code": "BULK",
                    "CatItemGroup": "CLASSIC WATERMELON LED W/STAINLESS STEEL FLANGE MOUNT BEZEL", "Unit_Price": 0.16,
                    "Manufacturer_Code": "", "Replenishment_System": "Purchase"}


def test_single_records_by_simple_and_compound_keys(sb, s):
    line = sb.records("SalesOrderLines")[0]
    order_no, line_no = line["Document_No"], line["Line_No"]
    for no in ("O'BRIEN", "SOCIÉTÉ/GÉN", "SMITH&JONES", "WEIß & SÖHNE"):
        literal = quote("'" + no.replace("'", "''") + "'", safe="'")  # a '/' in a key is %2F, never a segment
        assert s.get(sb.company_url("CustomerCard") + f"({literal})").json()["No"] == no
    order = s.get(sb.company_url("SalesOrders") + f"(Document_Type='Order',No='{order_no}')").json()
    assert order["No"] == order_no and order["Document_Type"] == "Order"
    got = s.get(sb.company_url("SalesOrderLines")
                + f"(Document_Type='Order',Document_No='{order_no}',Line_No={line_no})").json()
    assert (got["Document_No"], got["Line_No"]) == (order_no, line_no)
    bc_error(s.get(sb.company_url("CustomerCard") + "('NOPE')"), 404)
    assert s.get(f"{sb.odata_root}/Company(Id={sb.config.company_id})/CustomerCard('ADATUM')").status_code == 200


def test_metadata_lists_the_published_services_with_keys(sb, s):
    xml = s.get(f"{sb.odata_root}/$metadata").text
    for service in ("CustomerCard", "Locations", "ItemCard", "ShippingAgents", "SalesOrders", "SalesOrderLines",
                    "Itemsbylocation", "CustomerPriceGroups"):
        assert f'<EntitySet Name="{service}"' in xml
    assert '<PropertyRef Name="Document_Type"/><PropertyRef Name="Document_No"/><PropertyRef Name="Line_No"/>' in xml
    assert '<Property Name="CatItemGroup" Type="Edm.String"' in xml
    query = xml.split('<EntityType Name="Itemsbylocation">', 1)[1].split("</EntityType>", 1)[0]
    assert "<Key>" not in query and '<Property Name="RemainingQuantity" Type="Edm.Decimal"' in query


# --- Errors: auth, permission, publication, company ----------------------------------------------------------

def test_401_without_or_with_a_bad_or_expired_token(sb, s):
    url = sb.company_url("Locations")
    r = requests.get(url, verify=str(sb.ca_path))
    bc_error(r, 401, "Authentication_InvalidCredentials")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    bc_error(requests.get(url, headers={"Authorization": "Bearer forged"}, verify=str(sb.ca_path)), 401)
    fresh = odata_session(sb)
    assert fresh.get(url).status_code == 200
    sb.set_faults({"action": "expire_tokens"})
    bc_error(fresh.get(url), 401, "Authentication_InvalidCredentials")
    s.headers["Authorization"] = "Bearer " + sb.token()  # the module's session gets a new token


def test_403_for_an_app_without_business_central_permission(sb, s):
    denied = odata_session(sb, NO_BC_CLIENT.client_id, NO_BC_CLIENT.client_secret)
    bc_error(denied.get(sb.company_url("Locations")), 403, "Authorization_InsufficientPermissions")
    sb.set_faults({"action": "deny_client", "client_id": sb.config.client_id})
    bc_error(s.get(sb.company_url("Locations")), 403)
    sb.clear_faults()
    assert s.get(sb.company_url("Locations")).status_code == 200


def test_404_for_an_unpublished_service_and_an_unknown_company(sb, s):
    sb.set_faults({"action": "unpublish", "service": "ItemCard"})
    error = bc_error(s.get(sb.company_url("ItemCard")), 404, "BadRequest_ResourceNotFound")
    assert "ItemCard" in error["message"]
    assert '<EntitySet Name="ItemCard"' not in s.get(f"{sb.odata_root}/$metadata").text
    sb.clear_faults()
    assert s.get(sb.company_url("ItemCard"), params={"$top": "1"}).status_code == 200
    other_case = sb.company_url("ItemCard").replace("CRONUS", "Cronus")  # names are case-sensitive
    bc_error(s.get(other_case), 404, "Internal_CompanyNotFound")


# --- Writing ----------------------------------------------------------------------------------------------

def test_patch_needs_if_match_and_a_current_etag(sb, s):
    url = sb.company_url("CustomerCard") + "('MÜLLER')"
    r = s.get(url)
    etag = r.headers["ETag"]
    bc_error(s.patch(url, json={"Phone_No": "+1 555-0100"}), 400, "BadRequest_InvalidToken")
    ok = s.patch(url, json={"Phone_No": "+1 555-0100"}, headers={"If-Match": etag})
    assert ok.status_code == 200 and ok.json()["Phone_No"] == "+1 555-0100"
    assert ok.json()["Last_Date_Modified"] == WORK_DATE.isoformat() and ok.headers["ETag"] != etag
    error = bc_error(s.patch(url, json={"Phone_No": "x"}, headers={"If-Match": etag}), 409, "Request_EntityChanged")
    assert "Another user has already changed the record" in error["message"]
    assert s.patch(url, json={"Phone_No": "+1 555-0101"}, headers={"If-Match": "*"}).status_code == 200
    bc_error(s.patch(url, json={"Nope": 1}, headers={"If-Match": "*"}), 400)
    bc_error(s.patch(url, json={"Credit_Limit_LCY": "lots"}, headers={"If-Match": "*"}), 400)
    assert sb.records("CustomerCard", key="MÜLLER")[0]["Phone_No"] == "+1 555-0101"


def test_another_users_edit_makes_the_etag_stale(sb, s):
    url = sb.company_url("ItemCard") + "('10020')"
    etag = s.get(url).headers["ETag"]
    sb.edit_record("ItemCard", "10020", {"Unit_Price": 12.5})
    bc_error(s.patch(url, json={"Unit_Price": 13}, headers={"If-Match": etag}), 409, "Request_EntityChanged")
    etag = s.get(url).headers["ETag"]
    sb.set_faults({"kind": "etag_conflict", "service": "ItemCard", "key": "10020"})
    bc_error(s.delete(url, headers={"If-Match": etag}), 409, "Request_EntityChanged")
    etag = s.get(url).headers["ETag"]
    assert s.patch(url, json={"Unit_Price": 13}, headers={"If-Match": etag}).json()["Unit_Price"] == 13


def test_post_creates_with_numbers_from_the_series(sb, s):
    customer = s.post(sb.company_url("CustomerCard"), json={"Name": "Zoë's Bikes, Inc."})
    assert customer.status_code == 201, customer.text
    no = customer.json()["No"]
    numbers = sorted(int(r["No"][1:]) for r in sb.records("CustomerCard") if r["No"][1:].isdigit())
    assert no == f"C{numbers[-1]}" and customer.headers["Location"].endswith(f"/CustomerCard('{no}')")
    bc_error(s.post(sb.company_url("CustomerCard"), json={"No": no, "Name": "again"}), 400,
             "Internal_EntityWithSameKeyExists")
    order = s.post(sb.company_url("SalesOrders"), json={"Sell_to_Customer_No": no, "External_Document_No": "X-1"})
    assert order.status_code == 201 and order.json()["Sell_to_Customer_Name"] == "Zoë's Bikes, Inc."
    order_no = order.json()["No"]
    lines = [s.post(sb.company_url("SalesOrderLines"), json={"Document_Type": "Order", "Document_No": order_no,
                                                             "Type": "Item", "No": "10010", "Quantity": q,
                                                             "Line_Discount_Percent": 10})
             for q in (100, 3)]
    assert [line.status_code for line in lines] == [201, 201]
    assert [line.json()["Line_No"] for line in lines] == [10000, 20000]
    assert lines[0].json()["Line_Amount"] == 14.4 and lines[0].json()["Description"] == "DISC. REPLACEMENT 10039"
    bc_error(s.post(sb.company_url("SalesOrderLines"), json={"Document_No": "999999", "No": "10010"}), 400)
    url = sb.company_url("SalesOrders") + f"(Document_Type='Order',No='{order_no}')"
    assert s.delete(url, headers={"If-Match": "*"}).status_code == 204
    assert sb.records("SalesOrderLines", filter=f"Document_No eq '{order_no}'") == []


# --- The rest of the port: iPaaS dispatch, admin, launcher -----------------------------------------------

def test_ipaas_paths_reach_the_ipaas_stand_in(sb):
    r = requests.get(f"{sb.base_url}/products/v2/Catalog/Products", verify=str(sb.ca_path),
                     headers={"Authorization": f"Bearer {sb.config.ipaas_api_token}"})
    assert r.status_code in (200, 404) and "@odata.context" not in r.text
    assert sb.health()["ipaas"] is True and r.status_code == 200


def test_request_log_and_stats(sb, s):
    since = sb.last_seq()
    s.get(sb.company_url("ShippingAgents"), params={"$select": "Code"})
    entries = sb.requests(since)
    assert [(e["method"], e["service"], e["status"], e["client_id"]) for e in entries] == [
        ("GET", "ShippingAgents", 200, sb.config.client_id)]
    assert entries[0]["path"].endswith("select=Code")
    stats = sb.stats()
    assert stats["by_service"]["ShippingAgents"]["GET"] >= 1 and stats["peak_concurrency"][sb.config.client_id] >= 1


def test_env_points_the_pipeline_at_the_sandbox(sb):
    env = sb.env()
    assert env["BC_API_URL"] == env["BC_AUTHORITY_HOST"] == env["IPAAS_API_URL"] == sb.base_url
    assert env["REQUESTS_CA_BUNDLE"] == str(sb.ca_path) and sb.ca_path.read_text().startswith("-----BEGIN")
    assert env["BC_COMPANY_NAME"] == "CRONUS Müller & O'Brien, Inc." and env["BC_ENVIRONMENT"] == "Sandbox"
    assert {"BC_TENANT_ID", "BC_CLIENT_ID", "BC_CLIENT_SECRET", "IPAAS_API_TOKEN", "IPAAS_SYSTEM_ID"} <= set(env)


def test_the_sandbox_dies_with_its_parent(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox
        sb = start_sandbox(SandboxConfig(scale=0.01, state_dir={str(tmp_path)!r}))
        print(sb.process.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child_pid}/status") as f:
                if "State:\tZ" in f.read():
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the sandbox outlived its parent")


def test_skiptoken_is_opaque_base64_of_the_last_key(sb, s):
    r = s.get(sb.company_url("CustomerCard"), params={"$select": "No"}, headers={"Prefer": "odata.maxpagesize=2"})
    token = r.json()["@odata.nextLink"].split("$skiptoken=")[1]
    assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)) == f'["{r.json()["value"][-1]["No"]}"]'.encode()
    bc_error(s.get(sb.company_url("CustomerCard"), params={"$skiptoken": "garbage!"}), 400)

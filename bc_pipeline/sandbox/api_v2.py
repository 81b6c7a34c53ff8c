"""Business Central's standard API v2.0 over the page services' records: companies, customers, items, salesOrders,
locations (each record with its SystemId `id` and its `number` or `code`), and `subscriptions` for webhooks.

Paths are under /v2.0/{tenant}/{environment}/api/v2.0/. The sandbox reads these resources (GET); API writes are
not served (the pipeline writes through the page services). A record's SystemId is derived from its company,
page and key, so it is stable while the record exists (a record deleted and created again with the same key
gets the same id: ASSUMED, BC would give a new one).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qsl, unquote

import orjson

from .bc_errors import Answer, BCError
from .bc_store import Row
from .webhooks import MAX_SUBSCRIPTIONS, Subscription, iso

if TYPE_CHECKING:
    from .state import SandboxState

MAX_CLIENT_STATE = 2048
MAX_URL = 2048


@dataclass(frozen=True)
class ApiEntity:
    """An API v2.0 entity set served from a page service's records."""

    name: str  # as in the URL: salesOrders
    service: str  # the page service holding its records
    key_field: str  # number or code
    fields: tuple[tuple[str, str], ...]  # (API field, page field)
    document_type: Optional[str] = None  # SalesOrders holds orders only here

    def key_of(self, key: tuple) -> str:
        return str(key[-1])


ENTITIES: dict[str, ApiEntity] = {e.name: e for e in (
    ApiEntity("customers", "CustomerCard", "number", (
        ("number", "No"), ("displayName", "Name"), ("addressLine1", "Address"), ("addressLine2", "Address_2"),
        ("city", "City"), ("state", "County"), ("country", "Country_Region_Code"), ("postalCode", "Post_Code"),
        ("phoneNumber", "Phone_No"), ("email", "E_Mail"), ("blocked", "Blocked"))),
    ApiEntity("items", "ItemCard", "number", (
        ("number", "No"), ("displayName", "Description"), ("type", "Type"), ("blocked", "Blocked"),
        ("baseUnitOfMeasureCode", "Base_Unit_of_Measure"), ("gtin", "GTIN"), ("itemCategoryCode", "Item_Category_Code"),
        ("inventory", "Inventory"), ("unitCost", "Unit_Cost"))),
    ApiEntity("salesOrders", "SalesOrders", "number", (
        ("number", "No"), ("externalDocumentNumber", "External_Document_No"), ("orderDate", "Order_Date"),
        ("customerNumber", "Sell_to_Customer_No"), ("customerName", "Sell_to_Customer_Name"),
        ("currencyCode", "Currency_Code"), ("status", "Status")), document_type="Order"),
    ApiEntity("locations", "Locations", "code", (
        ("code", "Code"), ("displayName", "Name"), ("addressLine1", "Address"), ("city", "City"),
        ("country", "Country_Region_Code"), ("postalCode", "Post_Code"), ("phoneNumber", "Phone_No"),
        ("email", "E_Mail"))),
    ApiEntity("itemCategories", "ItemCategoryCard", "code", (
        ("code", "Code"), ("displayName", "Description"), ("parentCategory", "Parent_Category"))),
    # API v2.0's salesInvoices holds draft and posted invoices; the sandbox has posted ones (page 132) only.
    ApiEntity("salesInvoices", "PostedSalesInvoices", "number", (
        ("number", "No"), ("externalDocumentNumber", "External_Document_No"), ("invoiceDate", "Document_Date"),
        ("postingDate", "Posting_Date"), ("dueDate", "Due_Date"), ("orderNumber", "Order_No"),
        ("customerNumber", "Sell_to_Customer_No"), ("customerName", "Sell_to_Customer_Name"),
        ("currencyCode", "Currency_Code"))),
    ApiEntity("contacts", "Contacts", "number", (
        ("number", "No"), ("type", "Type"), ("displayName", "Name"), ("companyNumber", "Company_No"),
        ("companyName", "Company_Name"), ("jobTitle", "Job_Title"), ("email", "E_Mail"),
        ("phoneNumber", "Phone_No"), ("mobilePhoneNumber", "Mobile_Phone_No"))),
)}
BY_SERVICE = {e.service: e for e in ENTITIES.values()}
_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")
_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((.*)\))?$")
_RESOURCE = re.compile(r"^(?:https://[^/]+/v2\.0/[^/]+/[^/]+)?/?api/v2\.0/companies\(([^()]*)\)/([A-Za-z]+)/?$")


def system_id(state: SandboxState, service: str, key: tuple) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bc-sandbox:{state.config.company_id}:{service}:{key!r}"))


def _guid(text: str, what: str) -> str:
    match = _GUID.match(text.strip().strip("'"))
    if match is None:
        raise BCError(400, "BadRequest", f"'{text[:80]}' is not a valid value for {what}: a GUID is expected.")
    return match.group(1).lower()


def _api_record(state: SandboxState, entity: ApiEntity, key: tuple, row: Row) -> dict[str, Any]:
    table = state.store.tables[entity.service]
    service = table.service
    out: dict[str, Any] = {"@odata.etag": table.etag(key, row), "id": system_id(state, entity.service, key)}
    for api_field, page_field in entity.fields:
        if page_field in service.index:
            out[api_field] = row.values[service.index[page_field]]
    modified = state.modified_at.get((entity.service, key))
    if modified is None and "Last_Date_Modified" in service.index:
        day = row.values[service.index["Last_Date_Modified"]]
        modified = f"{day}T00:00:00Z" if day else None
    out["lastModifiedDateTime"] = modified or "0001-01-01T00:00:00Z"
    return out


def _rows(state: SandboxState, entity: ApiEntity):
    for key, row in state.store.tables[entity.service].iter_from(None):
        if entity.document_type is None or key[0] == entity.document_type:
            yield key, row


def find_by_id(state: SandboxState, entity: ApiEntity, record_id: str) -> Optional[tuple[tuple, Row]]:
    ids = state.api_ids.setdefault(entity.service, {})
    key = ids.get(record_id)
    if key is None:  # a record added since the index was built: index again
        ids.clear()
        ids.update({system_id(state, entity.service, k): k for k, _ in _rows(state, entity)})
        key = ids.get(record_id)
    row = state.store.tables[entity.service].get(key) if key is not None else None
    return (key, row) if row is not None else None


def record_resource(state: SandboxState, entity: ApiEntity, key: tuple) -> str:
    return f"/api/v2.0/companies({state.config.company_id})/{entity.name}({system_id(state, entity.service, key)})"


def notify_change(state: SandboxState, service: str, change: str, key: tuple) -> None:
    """A page record was written: stamp it and queue webhook notifications (a line changes its order)."""
    if service == "SalesOrderLines":  # ASSUMED: a line's change is its order's change
        service, key, change = "SalesOrders", (key[0], key[1]), "updated"
        if state.store.tables["SalesOrders"].get(key) is None:
            return
    entity = BY_SERVICE.get(service)
    if entity is None or (entity.document_type is not None and key[0] != entity.document_type):
        return
    state.modified_at[(service, key)] = iso(time.time())
    state.webhooks.changed(entity.name, record_resource(state, entity, key), change)


# --- HTTP ----------------------------------------------------------------------------------------------------

def _json(obj: Any, status: int = 200, headers: Optional[dict[str, str]] = None) -> Answer:
    return Answer(status, orjson.dumps(obj), {"OData-Version": "4.0", **(headers or {})})


def _company(state: SandboxState, root: str) -> dict[str, Any]:
    c = state.config
    return {"id": c.company_id, "systemVersion": "26.0", "name": c.company_name, "displayName": c.company_name,
            "businessProfileId": ""}


def resource_name(rest: str) -> str:
    """What an API path names, for logs, stats and fault rules: api/customers, api/subscriptions."""
    parts = [p for p in rest.split("?")[0].split("/") if p]
    last = _SEGMENT.match(unquote(parts[-1])) if parts else None
    return f"api/{last.group(1) if last else ''}"


async def handle(state: SandboxState, method: str, rest: str, query: str, headers: dict[str, str], body: bytes,
                 root: str, client_id: str) -> Answer:
    """One API v2.0 call; `rest` is the path after /api/ (v2.0/companies(…)/customers(…))."""
    segments = [unquote(s) for s in rest.split("/") if s]
    if not segments or segments[0] != "v2.0":
        raise BCError(404, "BadRequest_NotFound", f"No HTTP resource was found that matches the request URI "
                      f"'{root}{rest}'. The sandbox serves the standard API v2.0.")
    parts = [_SEGMENT.match(s) for s in segments[1:]]
    if not parts or any(p is None for p in parts):
        raise BCError(404, "BadRequest_NotFound", f"No HTTP resource was found that matches the request URI '{root}{rest}'.")
    params = parse_qsl(query, keep_blank_values=True)
    base, root = root, f"{root}v2.0/"
    name, arg = parts[0].group(1), parts[0].group(2)
    if name == "subscriptions" and len(parts) == 1:
        return await _subscriptions(state, method, arg, headers, body, root, client_id)
    if name != "companies":
        raise BCError(404, "BadRequest_NotFound", f"Resource not found for the segment '{name}'.")
    if method != "GET":
        raise BCError(405, "BadRequest_MethodNotAllowed", f"'{method}' is not served by the sandbox's API v2.0: "
                      "it reads; write through the page services.")
    if arg is None:
        if len(parts) > 1:
            raise BCError(400, "BadRequest", "Select a company: companies(<id>)/…")
        if any(k.startswith("$") and k != "$select" for k, _ in params):
            raise BCError(400, "BadRequest", "The sandbox's companies list takes no query options but $select.")
        return _json({"@odata.context": f"{root}$metadata#companies", "value": [_company(state, root)]})
    if _guid(arg, "the company id") != state.config.company_id:
        raise BCError(404, "BadRequest_NotFound", f"The company '{arg}' does not exist.")
    if len(parts) == 1:
        return _json({"@odata.context": f"{root}$metadata#companies/$entity", **_company(state, root)})
    if len(parts) > 2:
        raise BCError(404, "BadRequest_NotFound", "The sandbox serves API entity sets and single records; "
                      "navigation beyond them is not served.")
    entity = ENTITIES.get(parts[1].group(1))
    if entity is None:
        raise BCError(404, "BadRequest_NotFound", f"Resource not found for the segment '{parts[1].group(1)}'. "
                      f"The sandbox serves {', '.join(ENTITIES)}.")
    record_arg = parts[1].group(2)
    context = f"{root}$metadata#companies({state.config.company_id})/{entity.name}"
    if record_arg is None:
        return _collection(state, entity, params, context, f"{base}{rest.split('?')[0]}")
    found = find_by_id(state, entity, _guid(record_arg, "the id"))
    if found is None:
        table = state.store.tables[entity.service].service.table
        raise BCError(404, "BadRequest_NotFound",
                      f"The {table} does not exist. Identification fields and values: SystemId='{record_arg}'")
    return _json({"@odata.context": f"{context}/$entity", **_api_record(state, entity, *found)})


def _collection(state: SandboxState, entity: ApiEntity, params: list[tuple[str, str]], context: str,
                url: str) -> Answer:
    options = dict(params)
    unknown = [k for k in options if k.startswith("$") and k not in ("$top", "$skip", "$skiptoken")]
    if unknown:
        raise BCError(400, "BadRequest", f"The query option '{unknown[0]}' is not served by the sandbox's API v2.0.")
    try:
        top = int(options["$top"]) if "$top" in options else None
        skip = int(options.get("$skiptoken") or options.get("$skip") or 0)
    except ValueError:
        raise BCError(400, "BadRequest_NotFound", "Bad Request - Error in query syntax.") from None
    size = state.config.max_page_size if top is None else min(top, state.config.max_page_size)
    rows = list(_rows(state, entity))
    page = rows[skip: skip + size]
    answer: dict[str, Any] = {"@odata.context": context,
                              "value": [_api_record(state, entity, k, r) for k, r in page]}
    if top is None and skip + size < len(rows):
        answer["@odata.nextLink"] = f"{url}?$skiptoken={skip + size}"
    return _json(answer)


async def _subscriptions(state: SandboxState, method: str, arg: Optional[str], headers: dict[str, str], body: bytes,
                         root: str, client_id: str) -> Answer:
    hub = state.webhooks
    context = f"{root}$metadata#subscriptions"
    if arg is None:
        if method == "GET":
            return _json({"@odata.context": context, "value": [s.as_json() for s in hub.active()]})
        if method == "POST":
            return await _create(state, _body(body), context, client_id)
        raise BCError(405, "BadRequest_MethodNotAllowed", f"'{method}' is not allowed on subscriptions.")
    sub_id = arg.strip().strip("'")
    hub.purge_expired()
    sub = hub.subscriptions.get(sub_id)
    if sub is None:
        raise BCError(404, "BadRequest_NotFound", f"The subscription '{sub_id[:64]}' does not exist.")
    if method == "GET":
        return _json({"@odata.context": f"{context}/$entity", **sub.as_json()})
    if method in ("PATCH", "DELETE"):
        _check_if_match(headers, sub.etag())
    if method == "DELETE":
        hub.remove(sub.id, "deleted by its subscriber")
        return Answer(204, b"", {}, None)
    if method == "PATCH":
        return await _renew(state, sub, _body(body), context)
    raise BCError(405, "BadRequest_MethodNotAllowed", f"'{method}' is not allowed on a subscription.")


def _check_if_match(headers: dict[str, str], current: str) -> None:
    value = (headers.get("if-match") or "").strip()
    if not value:
        raise BCError(400, "BadRequest_InvalidToken", "Could not validate the client concurrency token required "
                      "by the service. Please provide a valid token in the client request.")
    if value != "*" and current not in [t.strip() for t in value.split(",")]:
        raise BCError(409, "Request_EntityChanged", "Another user has already changed the record.")


def _body(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise BCError(400, "BadRequest", "The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BCError(400, "BadRequest", "The request body must be a JSON object.")
    known = {"notificationUrl", "resource", "clientState", "@odata.etag", "subscriptionId", "expirationDateTime",
             "userId", "lastModifiedDateTime", "systemCreatedAt", "systemModifiedAt"}
    unknown = [k for k in value if k not in known]
    if unknown:
        raise BCError(400, "BadRequest", f"The property '{unknown[0][:60]}' does not exist on type "
                      "'Microsoft.NAV.subscriptions'.")
    return value


def _text(body: dict[str, Any], name: str, limit: int, required: bool) -> Optional[str]:
    value = body.get(name)
    if value is None:
        if required:
            raise BCError(400, "BadRequest", f"'{name}' is required.")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BCError(400, "BadRequest", f"'{name}' must be a string of at most {limit} characters.")
    return value


def _url(body: dict[str, Any], required: bool) -> Optional[str]:
    url = _text(body, "notificationUrl", MAX_URL, required)
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        raise BCError(400, "BadRequest", "'notificationUrl' must be an absolute http(s) URL.")
    return url


async def _create(state: SandboxState, body: dict[str, Any], context: str, client_id: str) -> Answer:
    hub = state.webhooks
    url = _url(body, True)
    resource = _text(body, "resource", MAX_URL, True) or ""
    client_state = _text(body, "clientState", MAX_CLIENT_STATE, False) or ""
    match = _RESOURCE.match(resource.strip())
    entity = ENTITIES.get(match.group(2)) if match else None
    if match is None or entity is None:
        raise BCError(400, "BadRequest", f"The resource '{resource[:200]}' cannot be subscribed to: name an API "
                      f"entity set like /api/v2.0/companies(<id>)/customers ({', '.join(ENTITIES)}).")
    company = _guid(match.group(1), "the company id")
    if company != state.config.company_id:
        raise BCError(404, "BadRequest_NotFound", f"The company '{match.group(1)}' does not exist.")
    if len(hub.active()) >= MAX_SUBSCRIPTIONS:
        raise BCError(400, "BadRequest", f"The environment has {MAX_SUBSCRIPTIONS} webhook subscriptions, the most "
                      "allowed.")
    why = await hub.handshake(url)
    if why is not None:
        raise BCError(400, "BadRequest", f"The subscription was not created: {why}.")
    now = time.time()
    sub = Subscription(hub.new_id(), url, f"/api/v2.0/companies({company})/{entity.name}", entity.name,
                       client_state, client_id, now + state.config.webhook_subscription_seconds, now, now)
    hub.add(sub)
    return _json({"@odata.context": f"{context}/$entity", **sub.as_json()}, 201,
                 {"ETag": sub.etag(), "Location": f"{context.split('$metadata')[0]}subscriptions('{sub.id}')"})


async def _renew(state: SandboxState, sub: Subscription, body: dict[str, Any], context: str) -> Answer:
    url = _url(body, False) or sub.notification_url
    resource = body.get("resource")
    if resource is not None and (not isinstance(resource, str) or
                                 resource.strip().lstrip("/").rstrip("/") != sub.resource.lstrip("/")):
        raise BCError(400, "BadRequest", "The resource of a subscription cannot be changed; delete it and subscribe "
                      "again.")
    client_state = _text(body, "clientState", MAX_CLIENT_STATE, False)
    why = await state.webhooks.handshake(url)
    if why is not None:
        raise BCError(400, "BadRequest", f"The subscription was not renewed: {why}.")
    now = time.time()
    sub.notification_url = url
    if client_state is not None:
        sub.client_state = client_state
    sub.expires = now + state.config.webhook_subscription_seconds
    sub.modified = now
    sub.version += 1
    return _json({"@odata.context": f"{context}/$entity", **sub.as_json()}, 200, {"ETag": sub.etag()})


__all__ = ["ENTITIES", "handle", "notify_change", "resource_name", "system_id"]

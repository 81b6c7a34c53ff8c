"""Business Central writes: POST creates, PATCH updates, DELETE deletes, with If-Match ETags and page triggers.

Triggers imitated: No. Series numbers when the key is left out (CustomerCard C10000+10, ItemCard 10000+10,
SalesOrders 101001+1); Line_No in steps of 10,000 on SalesOrderLines; Last_Date_Modified (and
SystemModifiedAt when enabled) on CustomerCard/ItemCard; Search_Name/Search_Description; a sales header
copies its customer's name and addresses; a line copies its item's description, unit and price, and
Line_Amount = Quantity x Unit_Price x (1 - Line_Discount_Percent/100); deleting an order deletes its lines.
Code fields are upper-cased; what BC refuses (read-only fields, options, relations, blocked records, orders that
are not Open) is checked by bc_rules.py.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Optional

import orjson

from . import bc_rules, odata
from .bc_errors import Answer, BCError
from .bc_routes import ODataRequest, Route, company_segment, entity_answer, find_record, key_description
from .schema import EDM, Service, code_upper
from .state import SandboxState

IF_MATCH_MISSING = ("Could not validate the client concurrency token required by the service. Please provide a "
                    "valid token in the client request.")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_body(req: ODataRequest, service: Service) -> dict[str, Any]:
    """The JSON object of a write, with '@odata.*' annotations dropped and every property checked."""
    try:
        body = orjson.loads(req.body or b"{}")
    except orjson.JSONDecodeError:
        raise BCError(400, "BadRequest", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BCError(400, "BadRequest", "The request body must be a JSON object.")
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name.startswith("@") or "@odata." in name:
            continue
        if name not in service.index:
            raise BCError(400, "BadRequest", f"The property '{name}' does not exist on type 'NAV.{service.name}'. "
                          "Make sure to only use property names that are defined by the type.")
        out[name] = coerce(service, name, value)
    return out


def coerce(service: Service, name: str, value: Any) -> Any:
    ftype = service.types[name]
    bad = BCError(400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type '{EDM[ftype]}' "
                  f"of property '{name}'.")
    if ftype in ("str", "enum"):
        if not isinstance(value, str):
            raise bad
        if name in service.code_fields:
            value = code_upper(value)
        limit = service.max_length.get(name)
        if limit and len(value) > limit:
            raise BCError(400, "Application_StringExceededLength", f"The length of the string is {len(value)}, but "
                          f"it must be less than or equal to {limit} characters. Value: {value}")
        return value
    if ftype == "dec":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return value
    if ftype == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise bad
        return int(value)
    if ftype == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if ftype == "date":
        if not isinstance(value, str) or not _DATE.match(value):
            raise bad
        try:
            date.fromisoformat(value)
        except ValueError:
            raise bad from None
        return value
    if ftype == "datetime":
        if not isinstance(value, str):
            raise bad
        try:
            return odata.normalize_datetime(value)
        except odata.ODataSyntaxError:
            raise bad from None
    return value


def check_if_match(req: ODataRequest, current: str) -> None:
    value = req.headers.get("if-match")
    if value is None or not value.strip():
        raise BCError(400, "BadRequest_InvalidToken", IF_MATCH_MISSING)
    tags = [t.strip() for t in re.findall(r'(?:W/)?"(?:[^"\\]|\\.)*"|\*', value)]
    if not tags:
        raise BCError(400, "BadRequest_InvalidToken", IF_MATCH_MISSING)
    if "*" in tags or current in tags:
        return
    raise BCError(409, "Request_EntityChanged", "Another user has already changed the record.")


def _set(service: Service, values: list, name: str, value: Any) -> None:
    i = service.index.get(name)
    if i is not None:
        values[i] = value


def _get(service: Service, values: list, name: str) -> Any:
    i = service.index.get(name)
    return values[i] if i is not None else None


def _record_not_found(table: str, desc: str) -> BCError:
    return BCError(400, "Internal_RecordNotFound", f"The {table} does not exist. Identification fields and values: "
                   f"{desc}")


def _stamp(state: SandboxState, service: Service, values: list) -> None:
    if service.name in ("CustomerCard", "ItemCard"):
        _set(service, values, "Last_Date_Modified", state.today())
    _set(service, values, "SystemModifiedAt", state.now_iso())  # BC stamps every table; shown where exposed


def _fill_from_customer(state: SandboxState, service: Service, values: list, given: dict[str, Any]) -> None:
    no = _get(service, values, "Sell_to_Customer_No")
    if not no:
        return
    row = state.store.tables["CustomerCard"].get((no,))
    if row is None:
        raise bc_rules.invalid_relation(service, "Sell_to_Customer_No", no, "Customer")
    bc_rules.check_customer_can_order(state, no)
    cs = state.services["CustomerCard"]
    c = dict(zip(cs.fields, row.values))
    copy = {"Sell_to_Customer_Name": c["Name"], "Sell_to_Address": c["Address"], "Sell_to_Address_2": c["Address_2"],
            "Sell_to_City": c["City"], "Sell_to_County": c["County"], "Sell_to_Post_Code": c["Post_Code"],
            "Sell_to_Country_Region_Code": c["Country_Region_Code"], "Sell_to_Phone_No": c["Phone_No"],
            "Sell_to_E_Mail": c["E_Mail"], "Sell_to_Contact": c["ContactName"], "Bill_to_Name": c["Name"],
            "Bill_to_Address": c["Address"], "Bill_to_Address_2": c["Address_2"], "Bill_to_City": c["City"],
            "Bill_to_County": c["County"], "Bill_to_Post_Code": c["Post_Code"],
            "Bill_to_Country_Region_Code": c["Country_Region_Code"], "Bill_to_Contact": c["ContactName"],
            "Ship_to_Name": c["Name"], "Ship_to_Address": c["Address"], "Ship_to_Address_2": c["Address_2"],
            "Ship_to_City": c["City"], "Ship_to_County": c["County"], "Ship_to_Post_Code": c["Post_Code"],
            "Ship_to_Country_Region_Code": c["Country_Region_Code"], "Ship_to_Contact": c["ContactName"],
            "Payment_Terms_Code": c["Payment_Terms_Code"], "Currency_Code": c["Currency_Code"],
            "Gen_Bus_Posting_Group": c["Gen_Bus_Posting_Group"], "Customer_Posting_Group": c["Customer_Posting_Group"],
            "Shipping_Agent_Code": c["Shipping_Agent_Code"], "Location_Code": c["Location_Code"],
            "Salesperson_Code": c["Salesperson_Code"]}
    for name, value in copy.items():
        if name not in given:
            _set(service, values, name, value)


def _fill_from_item(state: SandboxState, service: Service, values: list, given: dict[str, Any]) -> None:
    if _get(service, values, "Type") != "Item" or not _get(service, values, "No"):
        return
    no = _get(service, values, "No")
    row = state.store.tables["ItemCard"].get((no,))
    if row is None:
        raise _record_not_found("Item", f"No.={odata.quote(no)}")
    its = state.services["ItemCard"]
    bc_rules.check_item_can_be_sold(its, no, row.values)
    it = dict(zip(its.fields, row.values))
    copy = {"Description": it["Description"], "Description_2": it["Description_2"],
            "Unit_of_Measure_Code": it["Sales_Unit_of_Measure"] or it["Base_Unit_of_Measure"],
            "Unit_Price": it["Unit_Price"], "Unit_Cost_LCY": it["Unit_Cost"], "Tax_Group_Code": it["Tax_Group_Code"],
            "Net_Weight": it["Net_Weight"], "Gross_Weight": it["Gross_Weight"], "Unit_Volume": it["Unit_Volume"],
            "Gen_Prod_Posting_Group": it["Gen_Prod_Posting_Group"], "VAT_Prod_Posting_Group": it["VAT_Prod_Posting_Group"]}
    for name, value in copy.items():
        if name not in given:
            _set(service, values, name, value)


def recompute_line(service: Service, values: list) -> None:
    """Line_Amount = Quantity x Unit_Price x (1 - Line_Discount_Percent/100), rounded to cents."""
    q = float(_get(service, values, "Quantity") or 0)
    p = float(_get(service, values, "Unit_Price") or 0)
    d = float(_get(service, values, "Line_Discount_Percent") or 0)
    gross = q * p
    discount = round(gross * d / 100, 2)
    _set(service, values, "Line_Discount_Amount", discount)
    _set(service, values, "Line_Amount", round(gross - discount, 2))
    shipped = float(_get(service, values, "Quantity_Shipped") or 0)
    invoiced = float(_get(service, values, "Quantity_Invoiced") or 0)
    _set(service, values, "Qty_to_Ship", max(q - shipped, 0.0))
    _set(service, values, "Qty_to_Invoice", max(q - invoiced, 0.0))


def _journal(req: ODataRequest, table, key: tuple, old) -> None:
    if req.journal is not None:
        req.journal.append((table, key, old))


def create(state: SandboxState, req: ODataRequest, route: Route, service: Service) -> Answer:
    if not service.writable:
        raise BCError(405, "BadRequest_MethodNotAllowed", f"'{service.name}' is a query; it cannot be written.")
    given = parse_body(req, service)
    bc_rules.check_fields(state, service, given)
    values = list(service.defaults)
    for name, value in given.items():
        values[service.index[name]] = value
    name = service.name
    if "Document_Type" in service.index:
        if given.get("Document_Type", "Order") != "Order":
            raise BCError(400, "BadRequest", f"Document_Type must be 'Order' on {name}.")
        _set(service, values, "Document_Type", "Order")
    if name in ("CustomerCard", "ItemCard", "SalesOrders") and not _get(service, values, "No"):
        _set(service, values, "No", state.next_number(name))
    if name == "CustomerCard" and "Search_Name" not in given:
        _set(service, values, "Search_Name", str(_get(service, values, "Name")).upper()[:100])
    if name == "ItemCard":
        if "Search_Description" not in given:
            _set(service, values, "Search_Description", str(_get(service, values, "Description")).upper()[:100])
        if "Sales_Unit_of_Measure" not in given:
            _set(service, values, "Sales_Unit_of_Measure", _get(service, values, "Base_Unit_of_Measure"))
    if name == "SalesOrders":
        for d in ("Order_Date", "Document_Date", "Posting_Date", "VAT_Reporting_Date", "Shipment_Date"):
            if d not in given:
                _set(service, values, d, state.today())
        _fill_from_customer(state, service, values, given)
    if name == "SalesOrderLines":
        doc = _get(service, values, "Document_No")
        if not doc:
            raise BCError(400, "BadRequest", "Document_No must have a value in Sales Line.")
        header = state.store.tables["SalesOrders"].get(("Order", doc))
        if header is None:
            raise bc_rules.invalid_relation(service, "Document_No", doc, "Sales Header")
        if _get(service, values, "Type") != "_blank_":  # TestStatusOpen skips comment lines
            bc_rules.check_order_open(state, doc, header.values)
        if "Line_No" not in given or not given["Line_No"]:
            table = state.store.tables[name]
            last = 0
            for key, _ in table.iter_from(("Order", doc, -1)):
                if key[1] != doc:
                    break
                last = key[2]
            _set(service, values, "Line_No", last + 10000)
        hs = state.services["SalesOrders"]
        if "Location_Code" not in given:
            _set(service, values, "Location_Code", header.values[hs.index["Location_Code"]])
        _fill_from_item(state, service, values, given)
        recompute_line(service, values)
    _stamp(state, service, values)
    for k in service.keys:
        if values[service.index[k]] in ("", None):
            raise BCError(400, "BadRequest", f"{service.field_captions.get(k, k)} must have a value in "
                          f"{service.table}.")
    table = state.store.tables[name]
    try:
        key, row = table.insert(values)
    except KeyError:
        key = tuple(values[i] for i in service.key_index)
        raise BCError(400, "Internal_EntityWithSameKeyExists", f"The record in table {service.table} already "
                      f"exists. Identification fields and values: {key_description(service, key)}") from None
    _journal(req, table, key, None)
    location = f"{req.service_root}{company_segment(state)}/{name}({_key_literal(service, key)})"
    return entity_answer(state, req, service, key, row, status=201, headers={"Location": location})


def _key_literal(service: Service, key: tuple) -> str:
    parts = [odata.quote(v) if isinstance(v, str) else str(v) for v in key]
    if len(parts) == 1:
        return parts[0]
    return ",".join(f"{k}={p}" for k, p in zip(service.keys, parts))


def _prepare_change(state: SandboxState, req: ODataRequest, route: Route, service: Service):
    if not service.writable:
        raise BCError(405, "BadRequest_MethodNotAllowed", f"'{service.name}' is a query; it cannot be written.")
    table, key, row = find_record(state, service, route.key_text or "")
    if state.faults.take_etag_conflict(service.name, key, service.keys, req.method):
        row = table.bump(key)  # another user saved it a moment ago
    check_if_match(req, table.etag(key, row))
    return table, key, row


def update(state: SandboxState, req: ODataRequest, route: Route, service: Service) -> Answer:
    table, key, row = _prepare_change(state, req, route, service)
    given = parse_body(req, service)
    bc_rules.check_fields(state, service, given)
    values = list(row.values)
    for k, v in zip(service.keys, key):
        if k in given and given[k] != v:
            raise BCError(400, "BadRequest", f"The key field {k} cannot be changed (renaming records is not "
                          "supported by the sandbox).")
    for name, value in given.items():
        values[service.index[name]] = value
    if service.name == "CustomerCard" and "Name" in given and "Search_Name" not in given:
        _set(service, values, "Search_Name", str(given["Name"]).upper()[:100])
    if service.name == "ItemCard" and "Description" in given and "Search_Description" not in given:
        _set(service, values, "Search_Description", str(given["Description"]).upper()[:100])
    if service.name == "SalesOrders":
        if bc_rules.HEADER_FIELDS_NEEDING_OPEN.intersection(given):
            bc_rules.check_order_open(state, key[1], row.values)
        if "Sell_to_Customer_No" in given:
            _fill_from_customer(state, service, values, given)
    if service.name == "SalesOrderLines":
        if set(given) - {"Description", "Description_2"}:
            _check_line_order_open(state, service, key, row.values, values)
        if "No" in given or "Type" in given:
            _fill_from_item(state, service, values, given)
        recompute_line(service, values)
    _stamp(state, service, values)
    new = table.replace(key, values)
    _journal(req, table, key, row)
    return entity_answer(state, req, service, key, new)


def _check_line_order_open(state: SandboxState, service: Service, key: tuple, *versions: list) -> None:
    """A line's TestStatusOpen: any change but to a comment line (Type blank before and after)."""
    if any(_get(service, v, "Type") != "_blank_" for v in versions):
        bc_rules.check_order_open(state, key[1])


def delete(state: SandboxState, req: ODataRequest, route: Route, service: Service) -> Answer:
    table, key, row = _prepare_change(state, req, route, service)
    if service.name == "SalesOrderLines":
        _check_line_order_open(state, service, key, row.values)
    table.delete(key)
    _journal(req, table, key, row)
    if service.name == "SalesOrders":
        lines = state.store.tables["SalesOrderLines"]
        doomed = []
        for lkey, lrow in lines.iter_from(("Order", key[1], -1)):
            if lkey[1] != key[1]:
                break
            doomed.append((lkey, lrow))
        for lkey, lrow in doomed:
            lines.delete(lkey)
            _journal(req, lines, lkey, lrow)
    return Answer(204, b"", {"OData-Version": "4.0"}, None)


def admin_edit(state: SandboxState, service: Service, key: tuple, changes: dict[str, Any]) -> Optional[tuple]:
    """Change a record as another user would in the BC client: new values, new version, new ETag."""
    table = state.store.tables[service.name]
    row = table.get(key)
    if row is None:
        raise KeyError(key)
    values = list(row.values)
    for name, value in changes.items():
        if name not in service.index:
            raise BCError(400, "BadRequest", f"The property '{name}' does not exist on type 'NAV.{service.name}'.")
        values[service.index[name]] = coerce(service, name, value)
    if service.name == "SalesOrderLines":
        recompute_line(service, values)
    if "Last_Date_Modified" not in changes:
        _stamp(state, service, values)
    table.replace(key, values)
    return key

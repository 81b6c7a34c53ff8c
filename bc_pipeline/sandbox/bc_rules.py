"""What Business Central refuses on a write: read-only fields, bad options, missing related records, blocked records."""

from __future__ import annotations

from typing import Any, Optional

from .bc_errors import BCError
from .bc_setup import RELATED_SERVICES, SETUP_CODES
from .schema import Service
from .state import SandboxState

# Sales Line "No." has ValidateTableRelation = false: its OnValidate gets the item itself (Internal_RecordNotFound).
UNCHECKED_RELATIONS = {("SalesOrderLines", "No")}
# Sales Header fields whose OnValidate calls TestStatusOpen (a Released order keeps them).
HEADER_FIELDS_NEEDING_OPEN = {"Sell_to_Customer_No", "Currency_Code", "Prices_Including_VAT", "Location_Code",
                              "Gen_Bus_Posting_Group", "VAT_Bus_Posting_Group", "Customer_Posting_Group"}


def check_fields(state: SandboxState, service: Service, given: dict[str, Any]) -> None:
    """Every written field may be written, holds one of its values and points at a record that exists."""
    for name, value in given.items():
        if name in service.read_only:
            raise BCError(400, "BadRequest_InvalidOperation",
                          f"Control '{service.field_captions.get(name, name)}' is read-only.")
        allowed = service.options.get(name)
        if allowed is not None and value not in allowed:
            raise BCError(400, "Application_EvaluateException",
                          f'The value "{value}" cannot be evaluated into type Option.')
        table = service.relations.get(name)
        if table and value and (service.name, name) not in UNCHECKED_RELATIONS and not _exists(state, table, value):
            raise invalid_relation(service, name, value, table)


def invalid_relation(service: Service, name: str, value: Any, table: str) -> BCError:
    return BCError(400, "Internal_InvalidTableRelation",
                   f"The field {service.field_captions.get(name, name)} of table {service.table} contains a value "
                   f"({value}) that cannot be found in the related table ({table}).")


def _exists(state: SandboxState, table: str, value: Any) -> bool:
    if table in SETUP_CODES:
        return value in SETUP_CODES[table]
    if table == "Sales Header":
        return state.store.tables["SalesOrders"].get(("Order", value)) is not None
    name = RELATED_SERVICES.get(table)
    if name is None:
        return True  # a table the sandbox has no codes for
    row = state.store.tables[name].get((value,))
    if row is None:
        return False
    if table == "Location":  # every Location relation on these pages filters "Use As In-Transit" = false
        return not _value(state.services[name], row.values, "Use_As_In_Transit")
    return True


def check_customer_can_order(state: SandboxState, customer_no: str) -> None:
    """Customer.CheckBlockedCustOnDocs for a new order: Ship, Invoice and All all refuse it."""
    service = state.services["CustomerCard"]
    row = state.store.tables["CustomerCard"].get((customer_no,))
    if row is None:
        return
    if _value(service, row.values, "Privacy_Blocked"):
        raise BCError(400, "Application_DialogException", f"You cannot create this type of document when Customer "
                      f"{customer_no} is blocked for privacy.")
    blocked = _value(service, row.values, "Blocked")
    if blocked in ("Ship", "Invoice", "All"):
        raise BCError(400, "Application_DialogException", f"You cannot create this type of document when Customer "
                      f"{customer_no} is blocked with type {blocked}")


def check_item_can_be_sold(service: Service, item_no: str, values: list) -> None:
    """Sales Line CopyFromItem: Item.TestField(Blocked, false), then the Sales Blocked check (BC 24+ label)."""
    if _value(service, values, "Blocked"):
        raise BCError(400, "Application_FieldValidationException", f"Blocked must be equal to 'No'  in Item: "
                      f"No.={item_no}. Current value is 'Yes'.")
    if _value(service, values, "Sales_Blocked"):
        raise BCError(400, "Application_DialogException", f"You cannot sell Item {item_no} because the Sales Blocked "
                      "check box is selected on the Item card.")


def check_order_open(state: SandboxState, order_no: str, header_values: Optional[list] = None) -> None:
    """Sales Header.TestField(Status, Open), as TestStatusOpen does before a line or a guarded header field changes."""
    service = state.services["SalesOrders"]
    if header_values is None:
        row = state.store.tables["SalesOrders"].get(("Order", order_no))
        if row is None:
            return
        header_values = row.values
    status = _value(service, header_values, "Status")
    if status != "Open":
        raise BCError(400, "Application_FieldValidationException", f"Status must be equal to 'Open'  in Sales Header: "
                      f"Document Type=Order, No.={order_no}. Current value is '{status}'.")


def _value(service: Service, values: list, name: str) -> Any:
    i = service.index.get(name)
    return values[i] if i is not None else None

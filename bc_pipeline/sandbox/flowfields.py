"""The Item Card's FlowFields summed under a request's FlowFilters, as BC computes them for each read."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .bc_errors import BCError
from .bc_store import Store
from .schema import Service

FlowFilters = dict[str, Callable[[Any], bool]]

# Item.Inventory = Sum("Item Ledger Entry".Quantity WHERE "Item No." = "No.", "Location Code" = "Location Filter",
# "Variant Code" = "Variant Filter", "Global Dimension 1/2 Code" = their filters, ...) - no Date Filter. Over
# every entry that sum equals RemainingQuantity summed over the open ones: the Itemsbylocation rows.
INVENTORY_FILTERS = {"Location_Filter": "LocationCode", "Variant_Filter": "VariantCode",
                     "Global_Dimension_1_Filter": None, "Global_Dimension_2_Filter": None}
# Item."Qty. on Sales Order" = Sum("Sales Line"."Outstanding Qty. (Base)" WHERE Document Type = Order,
# Type = Item, "No." = "No.", Location, Variant, "Shipment Date" = "Date Filter", Shortcut Dimension 1/2).
ON_SALES_ORDER_FILTERS = {"Location_Filter": "Location_Code", "Variant_Filter": "Variant_Code",
                          "Date_Filter": "Shipment_Date", "Global_Dimension_1_Filter": "Shortcut_Dimension_1_Code",
                          "Global_Dimension_2_Filter": "Shortcut_Dimension_2_Code"}
INVENTORY_FIELDS = ("Inventory", "InventoryNonFoundation")


def adjuster(store: Store, service: Service, flow: FlowFilters) -> Optional[Callable[[list], list]]:
    """values -> the values with their FlowFields summed under the FlowFilters (None: no FlowFilter)."""
    if not flow:
        return None
    if service.name != "ItemCard":
        raise BCError(400, "BadRequest_MethodNotImplemented", f"The sandbox keeps no ledger behind {service.name}'s "
                      f"FlowFields, so it cannot compute them under {', '.join(sorted(flow))}; Business Central "
                      "would. Leave the FlowFilter out.")
    inventory = _sums(store.services["Itemsbylocation"], store, "ItemNo", "RemainingQuantity", INVENTORY_FILTERS,
                      flow)
    on_order = _sums(store.services["SalesOrderLines"], store, "No", None, ON_SALES_ORDER_FILTERS, flow)
    no_i = service.index["No"]
    inventory_i = [service.index[f] for f in INVENTORY_FIELDS if f in service.index]
    on_order_i = service.index.get("Qty_on_Sales_Order")

    def adjust(values: list) -> list:
        out = list(values)
        no = values[no_i]
        for i in inventory_i:
            out[i] = inventory.get(no, 0.0)
        if on_order_i is not None:
            out[on_order_i] = on_order.get(no, 0.0)
        return out

    return adjust


def _sums(source: Service, store: Store, item_field: str, amount_field: Optional[str],
          filters: dict[str, Optional[str]], flow: FlowFilters) -> dict[str, float]:
    """Per item, the amount summed over the source's rows that pass the FlowFilters it knows."""
    index = source.seed_index
    needed = [item_field] + ([amount_field] if amount_field else ["Quantity", "Quantity_Shipped", "Type"])
    missing = [f for f in needed + [f for n, f in filters.items() if n in flow and f] if f not in index]
    if missing:
        raise BCError(400, "BadRequest_MethodNotImplemented", f"The sandbox's {source.name} lacks "
                      f"{', '.join(missing)}, so it cannot compute the FlowFields the FlowFilters ask for.")
    # a source without the filtered field (entries carry no dimensions here) holds '' in it
    checks = [(index[f] if f else None, flow[n]) for n, f in filters.items() if n in flow]
    item_i = index[item_field]
    if amount_field:
        def amount(row: list) -> float:
            return row[index[amount_field]]
    else:  # an order line's outstanding quantity; comment lines count nothing
        q, shipped, kind = index["Quantity"], index["Quantity_Shipped"], index["Type"]

        def amount(row: list) -> float:
            return row[q] - row[shipped] if row[kind] == "Item" else 0.0
    sums: dict[str, float] = {}
    for _, record in store.tables[source.name].iter_from(None):
        row = record.values
        if all(check(row[i] if i is not None else "") for i, check in checks):
            sums[row[item_i]] = sums.get(row[item_i], 0.0) + amount(row)
    return sums

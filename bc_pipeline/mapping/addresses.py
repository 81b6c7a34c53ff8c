"""An iPaaS.com record's primary billing and shipping address as flat columns (`billing_address.city`) for FROM iPaaS."""

from __future__ import annotations

from typing import Any

# role → (the address flag that names it, the address `type` that names it when no address is flagged)
ADDRESS_ROLES: dict[str, tuple[str, str]] = {
    "billing_address": ("is_primary_billing", "billing"),
    "shipping_address": ("is_primary_shipping", "shipping"),
}


def address_columns(record: dict[str, Any]) -> dict[str, Any]:
    """`<role>.<field>` for the first address flagged primary for the role, else the first of that type."""
    addresses = [a for a in record.get("addresses") or [] if isinstance(a, dict)]
    row: dict[str, Any] = {}
    for role, (flag, kind) in ADDRESS_ROLES.items():
        chosen = next((a for a in addresses if a.get(flag) is True), None) or next(
            (a for a in addresses if str(a.get("type") or "").strip().casefold() == kind), None)
        for name, value in (chosen or {}).items():
            if not isinstance(value, (list, dict)):
                row[f"{role}.{name}"] = value
    return row

"""An iPaaS.com record as one flat row, the shape FROM-iPaaS collections map: custom fields and addresses as columns."""

from __future__ import annotations

from typing import Any

from bc_pipeline.mapping.addresses import address_columns


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """Plain fields as they are, `custom_fields.<name>`, and `billing_address.<field>` / `shipping_address.<field>`."""
    row = {k: v for k, v in record.items() if not isinstance(v, (list, dict))}
    for custom in record.get("custom_fields") or []:
        if isinstance(custom, dict) and custom.get("custom_field_name"):
            row[f"custom_fields.{custom['custom_field_name']}"] = custom.get("value")
    row.update(address_columns(record))  # billing_address.city, shipping_address.postal_code, …
    return row

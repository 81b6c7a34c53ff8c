"""The iPaaS.com record shapes (ipaas.md) that mapping collections may write to or read from."""

from __future__ import annotations

COMMON = ("id", "tracking_guid", "custom_fields", "external_ids")

MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "Customer": ("customer_number", "first_name", "last_name", "email_address", "company", "comment", "category_id",
                 "created_datetime", "updated_datetime", "addresses", "status", "phone_number"),
    "Company": ("name", "department", "description", "email_address", "phone_number", "fax_number", "url",
                "account_number", "tax_id_number", "parent_company_id", "category_id", "status", "addresses",
                "relationships"),
    "Customer Category": ("name", "description"),
    "Product Category": ("name", "description", "parent_id", "category_sets"),
    "Address": ("first_name", "last_name", "company", "address_1", "address_2", "address_3", "city", "region", "country",
                "postal_code", "phone_number", "type", "is_primary_billing", "is_primary_shipping", "shipping_method",
                "customer_id"),
    "Product": ("sku", "name", "type", "tracking_method", "status", "description", "default_price", "msrp", "sale_price",
                "tax_class", "barcode", "unit", "allow_discounts", "allow_backorders", "width", "height", "depth",
                "weight", "variants", "inventory", "categories", "alternate_ids"),
    "Product Inventory": ("parent_id", "location_id", "qty_on_hand", "qty_available", "cost"),
    "Location": ("name", "description", "location_groups", "address_1", "address_2", "city", "region", "country",
                 "postal_code", "phone_number", "email_address"),
    "Shipping Method": ("name", "description"),
    "Transaction": ("system_id", "transaction_parent_id", "transaction_number", "customer_id", "company_id", "email_address", "type", "status",
                    "discount_amount", "tax_amount", "shipping_amount", "subtotal", "total", "total_qty",
                    "created_datetime", "updated_datetime", "lines", "taxes", "payments", "tracking", "addresses", "notes"),
    "Transaction Line": ("sequence_number", "status", "sku", "description", "type", "qty", "qty_shipped", "unit_price",
                         "extended_price", "discount_amount", "discount_percent", "tax_percent", "weight"),
    "Transaction Tracking": ("shipping_method", "shipping_method_description", "tracking_number", "cost"),
    "Transaction Payment": ("method", "amount", "status", "description", "method_info"),
    # ASSUMED (sandbox/IPAAS_BEHAVIOUR.md): a company's person relationships, each a linked iPaaS.com customer.
    "Company Relationship": ("customer_id", "type"),
    "Transaction Address": ("first_name", "last_name", "company", "address_1", "address_2", "address_3", "city", "region",
                            "country", "postal_code", "phone_number", "type", "is_primary_billing",
                            "is_primary_shipping"),
}

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "Product": ("sku", "name", "type", "tracking_method", "status"),
    "Location": ("name",),
    "Product Category": ("name",),
    "Product Inventory": ("location_id",),
}

"""A FROM-iPaaS collection's Add defaults: the documented setup codes BC needs on a new record, and their checks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AddDefault:
    """One setting of `add_defaults:`: the BC field it fills on Add and the setup table its code must exist in."""

    field: str  # the page's OData field
    table: str  # BC's setup table, as its error messages name it
    max_length: int  # Code[n]
    service: str  # the web service the doctor reads the codes from (suggested publication name)
    page: int  # the page to publish as that service
    page_name: str


# The documented keys, per Business Central entity a FROM-iPaaS collection writes.
ADD_DEFAULTS: dict[str, dict[str, AddDefault]] = {
    "customers": {
        "gen_bus_posting_group": AddDefault("Gen_Bus_Posting_Group", "Gen. Business Posting Group", 20,
                                            "GenBusinessPostingGroups", 312, "Gen. Business Posting Groups"),
        "customer_posting_group": AddDefault("Customer_Posting_Group", "Customer Posting Group", 20,
                                             "CustomerPostingGroups", 110, "Customer Posting Groups"),
        "payment_terms_code": AddDefault("Payment_Terms_Code", "Payment Terms", 10, "PaymentTerms", 4,
                                         "Payment Terms"),
        "tax_area_code": AddDefault("Tax_Area_Code", "Tax Area", 20, "TaxAreas", 469, "Tax Area List"),
    },
}


def check_add_defaults(entity: str, values: dict[str, object]) -> list[tuple[str, str]]:
    """Problems as (key, message): unknown keys, and values that cannot be a BC code of that table."""
    known = ADD_DEFAULTS.get(entity)
    if known is None:
        return [("", f"add_defaults are documented for {', '.join(ADD_DEFAULTS)} only, not {entity!r}; "
                     "use add_only_fields")]
    problems = []
    for key, value in values.items():
        spec = known.get(key)
        if spec is None:
            problems.append((key, f"unknown add default {key!r}; documented: {', '.join(known)}"))
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append((key, f"{key} is a {spec.table} code: a non-empty text, e.g. {key}: \"CODE\""))
            continue
        if value != value.strip():
            problems.append((key, f"{key} {value!r} has leading or trailing spaces, which a BC code never has"))
        elif len(value) > spec.max_length:
            problems.append((key, f"{key} {value!r} is longer than a {spec.table} code (at most {spec.max_length})"))
        elif value != _bc_upper(value):
            problems.append((key, f"{key} {value!r}: Business Central stores codes upper case; write "
                                  f"{_bc_upper(value)!r}"))
    return problems


def _bc_upper(text: str) -> str:
    return "".join(ch.upper() if len(ch.upper()) == 1 else ch for ch in text)

"""Every path the iPaaS.com stand-in serves, one row each; a row marked ASSUMED is a path no public source confirmed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote

from bc_pipeline.sandbox.ipaas_http import ApiError


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {id}/{parent_id}: integers; {domain}: customers|products|transactions; {rest}: anything
    action: str
    model: Optional[str] = None
    parent: Optional[str] = None  # the record kind {parent_id} must name
    assumed: bool = False
    public: bool = False  # no Bearer API token needed


ASSUMED = True
E = Endpoint
# fmt: off
ENDPOINTS: tuple[Endpoint, ...] = (
    # --- customers ---------------------------------------------------------------------------------------
    E("POST",   "customers/v2/Customer",                                "create", "Customer", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/{id}",                           "read",   "Customer"),
    E("PUT",    "customers/v2/Customer/{id}",                           "update", "Customer"),
    E("DELETE", "customers/v2/Customer/{id}",                           "delete", "Customer", assumed=ASSUMED),
    E("GET",    "customers/v2/Customers",                               "list",   "Customer"),
    E("POST",   "customers/v2/Customer/Company",                        "create", "Company", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/Company/{id}",                   "read",   "Company"),
    E("PUT",    "customers/v2/Customer/Company/{id}",                   "update", "Company"),
    E("DELETE", "customers/v2/Customer/Company/{id}",                   "delete", "Company", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/Companies",                      "list",   "Company"),
    E("POST",   "customers/v2/Customer/Category",                       "create", "Customer Category", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/Category/{id}",                  "read",   "Customer Category"),
    E("PUT",    "customers/v2/Customer/Category/{id}",                  "update", "Customer Category"),
    E("DELETE", "customers/v2/Customer/Category/{id}",                  "delete", "Customer Category", assumed=ASSUMED),
    E("GET",    "customers/v2/Customer/Categories",                     "list",   "Customer Category", assumed=ASSUMED),
    E("POST",   "customers/v2/Customer/{parent_id}/Address",            "create", "Address", "Customer", ASSUMED),
    E("GET",    "customers/v2/Customer/{parent_id}/Address/{id}",       "read",   "Address", "Customer", ASSUMED),
    E("PUT",    "customers/v2/Customer/{parent_id}/Address/{id}",       "update", "Address", "Customer", ASSUMED),
    E("DELETE", "customers/v2/Customer/{parent_id}/Address/{id}",       "delete", "Address", "Customer", ASSUMED),
    E("GET",    "customers/v2/Customer/{parent_id}/Addresses",          "list",   "Address", "Customer", ASSUMED),
    E("POST",   "customers/v2/Customer/Company/{parent_id}/Address",    "create", "Address", "Company", ASSUMED),
    E("GET",    "customers/v2/Customer/Company/{parent_id}/Address/{id}", "read", "Address", "Company", ASSUMED),
    E("PUT",    "customers/v2/Customer/Company/{parent_id}/Address/{id}", "update", "Address", "Company", ASSUMED),
    E("DELETE", "customers/v2/Customer/Company/{parent_id}/Address/{id}", "delete", "Address", "Company", ASSUMED),
    E("GET",    "customers/v2/Customer/Company/{parent_id}/Addresses",  "list",   "Address", "Company", ASSUMED),
    # --- products ----------------------------------------------------------------------------------------
    E("POST",   "products/v2/Catalog/Product",                          "create", "Product"),
    E("GET",    "products/v2/Catalog/Product/{id}",                     "read",   "Product"),
    E("PUT",    "products/v2/Catalog/Product/{id}",                     "update", "Product"),
    E("DELETE", "products/v2/Catalog/Product/{id}",                     "delete", "Product", assumed=ASSUMED),
    E("GET",    "products/v2/Catalog/Products",                         "list",   "Product"),
    E("POST",   "products/v2/Catalog/Product/Inventory",                "create", "Product Inventory"),
    E("GET",    "products/v2/Catalog/Product/Inventory/{id}",           "read",   "Product Inventory"),
    E("PUT",    "products/v2/Catalog/Product/Inventory/{id}",           "update", "Product Inventory"),
    E("DELETE", "products/v2/Catalog/Product/Inventory/{id}",           "delete", "Product Inventory", assumed=ASSUMED),
    E("GET",    "products/v2/Catalog/Product/Inventories",              "list",   "Product Inventory"),
    E("POST",   "products/v2/Catalog/Category",                         "create", "Product Category", assumed=ASSUMED),
    E("GET",    "products/v2/Catalog/Category/{id}",                    "read",   "Product Category"),
    E("PUT",    "products/v2/Catalog/Category/{id}",                    "update", "Product Category", assumed=ASSUMED),
    E("DELETE", "products/v2/Catalog/Category/{id}",                    "delete", "Product Category", assumed=ASSUMED),
    E("GET",    "products/v2/Catalog/Categories",                       "list",   "Product Category", assumed=ASSUMED),
    E("POST",   "products/v2/Catalog/Location",                         "create", "Location"),
    E("GET",    "products/v2/Catalog/Location/{id}",                    "read",   "Location"),
    E("PUT",    "products/v2/Catalog/Location/{id}",                    "update", "Location"),
    E("DELETE", "products/v2/Catalog/Location/{id}",                    "delete", "Location", assumed=ASSUMED),
    E("GET",    "products/v2/Catalog/Locations",                        "list",   "Location"),
    # --- transactions ------------------------------------------------------------------------------------
    E("POST",   "transactions/v2/ShippingMethod",                       "create", "Shipping Method", assumed=ASSUMED),
    E("GET",    "transactions/v2/ShippingMethod/{id}",                  "read",   "Shipping Method", assumed=ASSUMED),
    E("PUT",    "transactions/v2/ShippingMethod/{id}",                  "update", "Shipping Method", assumed=ASSUMED),
    E("DELETE", "transactions/v2/ShippingMethod/{id}",                  "delete", "Shipping Method", assumed=ASSUMED),
    E("GET",    "transactions/v2/ShippingMethods",                      "list",   "Shipping Method"),
    E("POST",   "transactions/v2/Transaction",                          "create", "Transaction"),
    E("GET",    "transactions/v2/Transaction/{id}",                     "read",   "Transaction"),
    E("PUT",    "transactions/v2/Transaction/{id}",                     "update", "Transaction"),
    E("DELETE", "transactions/v2/Transaction/{id}",                     "delete", "Transaction", assumed=ASSUMED),
    E("GET",    "transactions/v2/Transactions",                         "list",   "Transaction"),
    E("POST",   "transactions/v2/Transaction/{parent_id}/Tracking",     "child_create", "Transaction Tracking", "Transaction", ASSUMED),
    E("GET",    "transactions/v2/Transaction/{parent_id}/Tracking/{id}", "child_read", "Transaction Tracking", "Transaction", ASSUMED),
    E("PUT",    "transactions/v2/Transaction/{parent_id}/Tracking/{id}", "child_update", "Transaction Tracking", "Transaction", ASSUMED),
    E("DELETE", "transactions/v2/Transaction/{parent_id}/Tracking/{id}", "child_delete", "Transaction Tracking", "Transaction", ASSUMED),
    E("GET",    "transactions/v2/Transaction/{parent_id}/Trackings",    "child_list", "Transaction Tracking", "Transaction", ASSUMED),
    # --- external ids and custom fields, on every data domain -------------------------------------------
    E("GET",    "{domain}/v2/External/LookupSpaceport/{system_id}/{table}/{external_id}", "lookup_spaceport", "External"),
    E("GET",    "{domain}/v2/External/LookupExternal/{internal_id}/{system_id}/{table}",  "lookup_external", "External"),
    E("POST",   "{domain}/v2/External/LookupSpecial",                   "lookup_special", "External"),
    E("POST",   "{domain}/v2/External/UpdateExternalId",                "update_external_id", "External"),
    E("POST",   "{domain}/v2/CustomField/{api_name}",                   "custom_field", "Custom Field"),
    # --- sign-in and the inbound-webhook intake ---------------------------------------------------------
    E("POST",   "sso/v2/Auth/Login",                                    "login", "Auth", public=True),
    E("POST",   "sso/v2/Auth/Refresh",                                  "login", "Auth", public=True),
    E("POST",   "hookapi/{rest}",                                       "hook", "Hook", assumed=ASSUMED, public=True),
)
# fmt: on

_PARAM = {"id": r"\d+", "parent_id": r"\d+", "internal_id": r"[^/]+", "domain": "customers|products|transactions",
          "rest": r".+"}


def _compile(template: str) -> re.Pattern:
    out = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m[1]}>{_PARAM.get(m[1], '[^/]+')})",
                 re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
    return re.compile(f"^{out}$", re.IGNORECASE)


ROUTES: list[tuple[re.Pattern, dict[str, Endpoint]]] = []
for _ep in ENDPOINTS:
    for _pattern, _methods in ROUTES:
        if _pattern.pattern == _compile(_ep.path).pattern:
            _methods[_ep.method] = _ep
            break
    else:
        ROUTES.append((_compile(_ep.path), {_ep.method: _ep}))


def route(method: str, path: str) -> tuple[Optional[Endpoint], dict]:
    """The endpoint a method and path (no leading /, still percent-encoded) name, and its decoded path parameters."""
    for pattern, methods in ROUTES:
        m = pattern.match(path)
        if m:
            if method not in methods:
                raise ApiError(405, f"{method} is not allowed on /{path}; allowed: {', '.join(methods)}")
            return methods[method], {k: unquote(v) for k, v in m.groupdict().items()}
    return None, {}

"""The sandbox company's setup codes: tables BC relates fields to; a few are published as services (SETUP_SERVICES)."""

from __future__ import annotations

# CRONUS USA's codes, plus those seed.py and the from_iPaaS mapping collections use (e.g. payment method CARD).
SETUP_CODES: dict[str, frozenset[str]] = {
    "Country/Region": frozenset((
        "AT", "AU", "BE", "BG", "CA", "CH", "CN", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GR", "HR",
        "HU", "IE", "IS", "IT", "JP", "LT", "LU", "LV", "MT", "MX", "NL", "NO", "NZ", "PL", "PT", "RO", "SE", "SI",
        "SK", "US", "ZA")),
    "Currency": frozenset((
        "AUD", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "INR", "ISK", "JPY", "MXN", "NOK",
        "NZD", "PLN", "SEK", "SGD", "ZAR")),
    "Payment Terms": frozenset(("10 DAYS", "14 DAYS", "15 DAYS", "1M(8D)", "2 DAYS", "21 DAYS", "30 DAYS", "60 DAYS",
                                "7 DAYS", "CM", "COD")),
    "Payment Method": frozenset(("ACCOUNT", "BANK", "CARD", "CASH", "CHECK", "GIRO", "INTERCOM")),
    "Gen. Business Posting Group": frozenset(("DOMESTIC", "EU", "EXPORT", "INTERCOMP")),
    "Customer Posting Group": frozenset(("DOMESTIC", "EU", "FOREIGN")),
    "VAT Business Posting Group": frozenset(("DOMESTIC", "EU", "EXPORT")),
    "Gen. Product Posting Group": frozenset(("FREIGHT", "MANUFACT", "MISC", "NO VAT", "RAW MAT", "RETAIL",
                                             "SERVICES")),
    "VAT Product Posting Group": frozenset(("FULL NORM", "NO VAT", "REDUCED", "SERVICES", "STANDARD", "ZERO")),
    "Inventory Posting Group": frozenset(("FINISHED", "RAW MAT", "RESALE")),
    "Tax Group": frozenset(("FURNITURE", "LABOR", "MATERIALS", "NONTAXABLE", "SUPPLIES", "TAXABLE")),
    # The sandbox company's tax areas: "<state>-<n>", as seed.py gives its US customers.
    "Tax Area": frozenset(f"{state}-{n}" for state in ("AZ", "CO", "FL", "GA", "ID", "IL", "MA", "MI", "MN", "MO",
                                                       "NC", "NM", "OH", "OR", "TN", "TX", "UT", "WA")
                          for n in range(1, 10)),
}
# Setup tables published as web services (Code and Description), so `bc-pipeline doctor` can check a collection's
# add_defaults: service name -> (page id, table). Names as mapping/add_defaults.py suggests them.
SETUP_SERVICES = {"PaymentTerms": (4, "Payment Terms"), "GenBusinessPostingGroups": (312, "Gen. Business Posting Group"),
                  "CustomerPostingGroups": (110, "Customer Posting Group"), "TaxAreas": (469, "Tax Area")}
# Related tables the sandbox serves: the service holding their records (keyed by the related field alone).
RELATED_SERVICES = {"Customer": "CustomerCard", "Item": "ItemCard", "Location": "Locations",
                    "Shipping Agent": "ShippingAgents", "Customer Price Group": "CustomerPriceGroups",
                    "Item Category": "ItemCategoryCard"}

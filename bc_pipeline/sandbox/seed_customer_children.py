"""Seed rows of the seeded customers' ship-to addresses (page 300) and contacts (page 5050)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from .schema import Service, code_upper

# Ship-to codes and names as users type them: apostrophes, slashes, accents, German sharp s.
SHIP_TO = [("WAREHOUSE", "Warehouse"), ("O'HARE", "O'Hare Dock"), ("MÜNCHEN", "Lager München"),
           ("SÜD/WEST", "Süd/West depot"), ("STRAßE 5", "Straße 5 – back entrance"), ("MAIN", "Main office"),
           ("RÉCEPTION", "Réception – Bâtiment B"), ("DOCK 2", "Dock 2")]
SHIP_TO_PLACES = [("Boston", "MA", "02110", "US"), ("Chicago", "IL", "60601", "US"), ("München", "", "80331", "DE"),
                  ("Göteborg", "", "411 01", "SE"), ("Montréal", "QC", "H2X 1Y4", "CA"), ("Seattle", "WA", "98101", "US"),
                  ("Coeur d'Alene", "ID", "83814", "US"), ("Zürich", "", "8001", "CH")]
STREETS = ["O'Connell St", "Königstraße", "Rue de l'Église", "Harbor Blvd", "Industrial Pkwy", "Åvägen"]
FIRST = ["Zoë", "José", "Siobhán", "Björn", "Anne-Marie", "Seán", "Chloé", "Jürgen", "Mary", "Tom"]
LAST = ["O'Neil", "Müller", "García", "Ødegaard", "Smith", "D'Angelo", "Núñez", "Brown", "Lefèvre", "Taylor"]
TITLES = ["Purchasing Manager", "Accounts Payable", "Owner", "Warehouse Lead", ""]


def _slug(text: str) -> str:
    plain = text.lower().translate(str.maketrans("äåáàâãöøóòôõüúùûéèêëíìîïçñ", "aaaaaaoooooouuuueeeeiiiicn"))
    return "".join(ch for ch in plain if ch.isascii() and ch.isalnum())[:24] or "info"


def customer_children(services: dict[str, Service], customers: list[list], *, seed: int,
                      today: date) -> dict[str, list[list]]:
    """Ship-to addresses (several for some companies) and contacts (a company contact and its people) per customer.

    A random stream of its own, so the other services' rows stay as they were."""
    rng = random.Random(seed * 7919 + 300)
    cs = services["CustomerCard"]
    ship, contacts = services["ShipToAddresses"], services["Contacts"]
    out: dict[str, list[list]] = {"ShipToAddresses": [], "Contacts": []}
    _group_companies(cs, customers, rng)
    serial = 0
    for i, row in enumerate(customers):
        c = dict(zip(cs.fields, row))
        company = c["Partner_Type"] != "Person"
        for code, name in rng.sample(SHIP_TO, rng.choice([0, 1, 1, 2, 3]) if company else rng.choice([0, 0, 1])):
            city, county, post, country = rng.choice(SHIP_TO_PLACES)
            values = {"Customer_No": c["No"], "Code": code_upper(code), "Name": f"{c['Name']} – {name}"[:100],
                      "Address": f"{rng.randint(1, 999)} {rng.choice(STREETS)}", "City": city, "County": county,
                      "Post_Code": post, "Country_Region_Code": country,
                      "Contact": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "Phone_No": c["Phone_No"],
                      "E_Mail": f"shipping@{_slug(c['Name'])}.example",
                      "Shipping_Agent_Code": c["Shipping_Agent_Code"], "Location_Code": c["Location_Code"],
                      "Last_Date_Modified": (today - timedelta(days=rng.randint(0, 400))).isoformat()}
            out["ShipToAddresses"].append(_row(ship, values))
        if not company:
            continue
        serial += 1
        company_no = f"CT{200000 + 10 * serial}"
        common = {"Company_No": company_no, "Company_Name": c["Name"], "IntegrationCustomerNo": c["No"],
                  "Contact_Business_Relation": "Customer", "Address": c["Address"], "Address_2": c["Address_2"],
                  "City": c["City"], "County": c["County"], "Post_Code": c["Post_Code"],
                  "Country_Region_Code": c["Country_Region_Code"], "Salesperson_Code": c["Salesperson_Code"]}
        stamp = f"{(today - timedelta(days=rng.randint(0, 400))).isoformat()}T10:00:00Z"
        out["Contacts"].append(_row(contacts, {**common, "No": company_no, "Name": c["Name"], "Type": "Company",
                                               "Search_Name": code_upper(c["Name"])[:100], "E_Mail": c["E_Mail"],
                                               "Phone_No": c["Phone_No"], "LastDateTimeModified": stamp}))
        for k in range(rng.choice([1, 1, 2, 3])):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first} {last}"
            out["Contacts"].append(_row(contacts, {
                **common, "No": f"CT{200000 + 10 * serial + k + 1}", "Name": name, "Type": "Person",
                "Search_Name": code_upper(name), "Job_Title": rng.choice(TITLES),
                "E_Mail": f"{_slug(first)}.{_slug(last)}.{serial}{k}@{_slug(c['Name'])}.example",
                "Phone_No": f"+1 {rng.randint(201, 989)}-{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
                "LastDateTimeModified": stamp}))
    return out


def _group_companies(cs: Service, customers: list[list], rng: random.Random) -> None:
    """Groups of companies: a few pay through a parent company (their Bill-to Customer), at every scale."""
    no, kind, bill = cs.index["No"], cs.index["Partner_Type"], cs.index["Bill_to_Customer_No"]
    companies = [row for row in customers if row[kind] != "Person"]
    by_no = {row[no]: row for row in customers}
    for row in companies:  # a company billed to a person is no parent company: iPaaS.com relates companies only
        if row[bill] and by_no.get(row[bill], [None] * len(row))[kind] == "Person":
            row[bill] = ""
    parents, rest = companies[:2], companies[2:]
    for row in parents:  # no circles
        row[bill] = ""
    for child in rng.sample(rest, min(len(rest), max(2, len(customers) // 25))) if parents else []:
        child[bill] = rng.choice(parents)[no]


def _row(service: Service, values: dict[str, Any]) -> list:
    row = service.defaults.copy()
    for k, v in values.items():
        row[service.index[k]] = v
    return row

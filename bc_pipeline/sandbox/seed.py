"""Deterministic, realistic seed data for the Business Central stand-in (random.Random(seed), scalable)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any, Optional

from .schema import Service, code_upper
from .seed_customer_children import customer_children

# Counts at scale 1. "benchmark" is ~190,000 rows: 23k customers, 40k items, 15k orders, ~52k lines,
# ~60k inventory rows. Locations, shipping agents and price groups do not scale. ledger_rows_*: the rows
# Items by Location returns per item and location (one per lot, variant, unit of measure, source country).
PROFILES: dict[str, dict[str, Any]] = {
    "default": {
        "customers": 300, "items": 400, "locations": 12, "shipping_agents": 8, "customer_price_groups": 5,
        "sales_orders": 1000, "lines_per_order_min": 1, "lines_per_order_max": 10, "locations_per_item": 2.5,
        "ledger_rows_min": 1, "ledger_rows_max": 6,
    },
    "benchmark": {
        "customers": 23000, "items": 40000, "locations": 12, "shipping_agents": 8, "customer_price_groups": 5,
        "sales_orders": 15000, "lines_per_order_min": 1, "lines_per_order_max": 6, "locations_per_item": 1.1,
        "ledger_rows_min": 1, "ledger_rows_max": 2,
    },
}
LOYALTY_TIERS = ("", "BRONZE", "SILVER", "GOLD", "PLATINUM")  # a tenant extension field of the Customer Card
SEASONS = ("", "SPRING", "SUMMER", "AUTUMN", "WINTER", "ALL-YEAR")  # … of the Item Card
WEB_CHANNELS = ("", "WEBSHOP", "MARKETPLACE", "PHONE")  # … of the Sales Order
SCALED = ("customers", "items", "sales_orders")
MINIMUM = {"customers": 8, "items": 6, "sales_orders": 4, "locations": 3, "shipping_agents": 2,
           "customer_price_groups": 2}

# The integration guide's sample item, exactly as its GET response shows it.
GUIDE_ITEM = {
    "No": "10010", "Description": "DISC. REPLACEMENT 10039", "Base_Unit_of_Measure": "EA",
    "UPC_Code": "760479100105", "Product_Group_Code": "BULK",
    "CatItemGroup": "CLASSIC WATERMELON LED W/STAINLESS STEEL FLANGE MOUNT BEZEL", "Unit_Price": 0.16,
    "Manufacturer_Code": "", "Replenishment_System": "Purchase",
}
# Customers that tests look up by name, with the codes tenants give them: Code fields are upper case and
# take any other character (', /, &, —, ß stays ß: BC upper-cases letter by letter).
FIXED_CUSTOMERS = [("ADATUM", "Adatum Corporation"), ("O'BRIEN", "O'Brien Supply"), ("MÜLLER", "Müller GmbH"),
                   ("SOCIÉTÉ/GÉN", "Société Générale"), ("STRÖM—ÅSA", "Åsa Ström"),
                   ("SMITH&JONES", "Smith, Jones & Partners"), ("WEIß & SÖHNE", "Weiß & Söhne KG")]
# Item Nos. of this kind replace every 7th number of the series (10010, the guide's item, stays).
AWKWARD_ITEM_NOS = ["1/4-20 HEX BOLT", "R&D-LAMP", "O'HARE DOCK KIT", "LENS-CLÉAR", "MÜLLER-BEZEL", "STRAßE-SIGN",
                    "LED—24V", "CAFÉ/BAR LAMP"]

SURNAMES = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
            "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
            "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Carter", "O'Connor",
            "O'Neill", "D'Angelo", "McAllister", "Müller", "Schäfer", "Weiß", "Jørgensen", "Søndergaard", "Ström",
            "Lindqvist", "Dubois", "Lefèvre", "Gonçalves", "García", "Núñez", "Kowalski", "Nowak", "Dvořák",
            "Nguyen", "Tanaka", "Okafor", "Rossi", "Esposito", "Van der Berg", "De la Cruz", "Fitzgerald"]
FIRST_NAMES = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
               "Åsa", "Björn", "Zoë", "Chloé", "José", "François", "Søren", "Łucja", "Renée", "Jürgen", "Anaïs",
               "Sean", "Siobhán", "Mei", "Raj", "Aisha", "Carlos", "Ingrid", "Olga", "Tomás"]
COMPANY_FORMS = ["{s} Supply", "{s} & {t}", "{s}, {t} and Partners", "{s} GmbH", "{s} Industries", "{s}'s Hardware",
                 "The {s} Group", "{s} Lighting Co.", "{s} Marine, Inc.", "{s} Trailer Parts", "{s} & Sons",
                 "{s} Distribution LLC", "{f} {s}", "{s} Électrique", "{s} AB", "{s} Fleet Services",
                 "{s} Wholesale, Ltd.", "{s} Outfitters"]
US_CITIES = [("Atlanta", "GA", "303"), ("Chicago", "IL", "606"), ("Miami", "FL", "331"), ("Seattle", "WA", "981"),
             ("Boston", "MA", "021"), ("Denver", "CO", "802"), ("Dallas", "TX", "752"), ("Phoenix", "AZ", "850"),
             ("Portland", "OR", "972"), ("Nashville", "TN", "372"), ("Coeur d'Alene", "ID", "838"),
             ("Minneapolis", "MN", "554"), ("Detroit", "MI", "482"), ("Tampa", "FL", "336"),
             ("Salt Lake City", "UT", "841"), ("Charlotte", "NC", "282"), ("St. Louis", "MO", "631"),
             ("Kansas City", "MO", "641"), ("Columbus", "OH", "432"), ("Albuquerque", "NM", "871")]
FOREIGN_CITIES = [("München", "", "80331", "DE"), ("Paris", "", "75001", "FR"), ("Göteborg", "", "411 01", "SE"),
                  ("Montréal", "QC", "H2Y 1C6", "CA"), ("Toronto", "ON", "M5H 2N2", "CA"),
                  ("London", "", "EC1A 1BB", "GB"), ("København", "", "1050", "DK"), ("Zürich", "", "8001", "CH")]
STREETS = ["Main St", "Oak Ave", "Peachtree Rd NE", "Martin Luther King Jr. Blvd", "O'Farrell St", "Elm St",
           "Industrial Pkwy", "Harbor Way", "Commerce Dr", "Lake Shore Dr", "Königstraße", "Rue de la Paix",
           "Storgatan", "Maple Ln", "Airport Rd", "River Rd"]
PAYMENT_TERMS = ["30 DAYS", "14 DAYS", "7 DAYS", "COD", "1M(8D)", "21 DAYS", "CM"]
PAYMENT_METHODS = ["", "BANK", "CHECK", "CASH", "CARD"]
SALESPEOPLE = ["JR", "PS", "OF", "BC", "MH", "LT"]
SERVICE_LEVELS = ["GROUND", "2DAY", "NEXTDAY", "STANDARD", ""]

LOCATIONS = [("MAIN", "Main Warehouse"), ("EAST", "East Warehouse"), ("WEST", "West Warehouse"),
             ("MÜNCHEN", "Lager München — Süd"), ("O'HARE", "O'Hare Cross-Dock, Chicago"),
             ("R&D/LAB", "R&D / Returns Lab"), ("NORTH", "North Distribution Center"), ("SOUTH", "South Depot"),
             ("GROßHANDEL", "Großhandel Lager"), ("BLUE", "Blue Warehouse"), ("GREEN", "Green Warehouse"),
             ("OUT. LOG.", "Outsourced Logistics")]
SHIPPING_AGENTS = [("UPS", "UPS", "www.ups.com/tracking?tracknum=%1"),
                   ("FEDEX", "Federal Express", "www.fedex.com/apps/fedextrack/?tracknumbers=%1"),
                   ("USPS", "U.S. Postal Service", "tools.usps.com/go/TrackConfirmAction?tLabels=%1"),
                   ("DHL", "DHL Express", "www.dhl.com/en/express/tracking.html?AWB=%1"),
                   ("ONTRAC", "OnTrac", "www.ontrac.com/tracking/?number=%1"),
                   ("OWN LOG.", "Own Logistics", ""),
                   ("M&S", "Müller & Söhne Spedition", ""),
                   ("GLS/DE", "GLS Überseelogistik", "gls-group.com/track/%1")]
PRICE_GROUPS = [("RETAIL", "Retail customers"), ("WHOLESALE", "Wholesale – 15% off list"),
                ("EXPORT/EU", "Export (FOB) — EU"), ("DIST'R", "Distributors' pricing"),
                ("VIP", "Key accounts, net prices")]

ITEM_ADJ = ["CLASSIC", "MARINE", "HEAVY DUTY", "LOW PROFILE", "SLIM", "ROUND", "OVAL", "RECTANGULAR", "MINI"]
ITEM_COLOR = ["WATERMELON", "AMBER", "RED", "WHITE", "BLUE", "GREEN", "CLEAR", "SMOKED"]
ITEM_KIND = ["LED", "MARKER LAMP", "TAIL LIGHT", "CLEARANCE LIGHT", "WORK LIGHT", "LIGHT BAR", "DOME LIGHT",
             "TURN SIGNAL", "LICENSE LAMP", "STROBE"]
ITEM_MOUNT = ["W/STAINLESS STEEL FLANGE MOUNT BEZEL", "W/CHROME BEZEL", "W/GROMMET", "SURFACE MOUNT",
              "PANEL MOUNT", "W/PIGTAIL", "W/BRACKET"]
ITEM_PLAIN = ['Marker Lamp 2" Amber', 'Bolt, Hex 1/4" x 2"', "Driver's Side Mirror", "Café Table Lamp",
              "Crème LED Strip 5m", "Grommet, Rubber 2-1/2\"", "Wiring Harness, 7-Way", "Lens, Red (Oval)",
              "Pigtail 3-Wire", "Bezel – Chrome", "Light Bar 24\" Combo", "Flasher Relay 12V",
              "Junction Box, Sealed", "Dome Light, Warm White", "Bracket, Stainless 90°",
              "Straßenlaterne — Ersatzglas", "Über-Bright LED 5/8\"", "O'Hare Dock Light & Bracket"]
UOMS = ["PCS", "EA", "BOX", "PACK", "SET", "FT"]
CATEGORIES = ["LED", "LAMPS", "WIRING", "HARDWARE", "MIRRORS", "ACCESSORIES", "BEZELS", ""]
MANUFACTURERS = ["", "", "OPTRONICS", "GROTE", "TRUCKLITE", "PETERSON", "MAXXIMA"]
PRODUCT_GROUPS = ["BULK", "RETAIL", "OEM", "CLEARANCE", ""]
# Item ledger: variants (Code[10]), where receipts come from and where sales went (the entry's country).
VARIANTS = ["AMBER", "RED", "CLEAR/SMK", "WEIß", "BLÅ—12V"]
RECEIPT_COUNTRIES = ["US", "US", "US", "CN", "MX", "DE", "CA"]
SALE_COUNTRIES = ["US", "US", "CA", "DE"]
PURCHASE_UOMS = [("BOX", 12.0), ("PACK", 6.0)]
BULK_UPDATE_EVERY = 16  # records i % 16 in (5, 11) share one modification time: a mass update this morning


def resolve_counts(scale: float = 1.0, profile: str = "default", overrides: Optional[dict] = None) -> dict[str, Any]:
    """The number of rows of each kind for a scale, a profile and explicit overrides."""
    counts = dict(PROFILES[profile])
    for k in SCALED:
        counts[k] = max(MINIMUM[k], int(round(counts[k] * scale)))
    for k, v in (overrides or {}).items():
        if k not in counts:
            raise ValueError(f"unknown seed count {k!r}; known: {', '.join(counts)}")
        counts[k] = v
    for k, low in MINIMUM.items():
        counts[k] = max(low, int(counts[k]))
    return counts


def upc(rng: random.Random, serial: int) -> str:
    body = f"7604791{serial % 100000:05d}"[:11]
    odd = sum(int(c) for c in body[0::2])
    even = sum(int(c) for c in body[1::2])
    return body + str((10 - (odd * 3 + even) % 10) % 10)


class Builder:
    """Rows as lists in the service's field order, starting from the defaults."""

    def __init__(self, service: Service):
        self.service = service
        self.index = service.seed_index
        self.defaults = service.defaults

    def row(self, values: dict[str, Any]) -> list:
        row = self.defaults.copy()
        index = self.index
        for k, v in values.items():
            i = index.get(k)
            if i is not None:
                row[i] = v
        return row


def _address(rng: random.Random, foreign_share: float = 0.08) -> dict[str, str]:
    street = f"{rng.randint(1, 9999)} {rng.choice(STREETS)}"
    if rng.random() < foreign_share:
        city, county, post, country = rng.choice(FOREIGN_CITIES)
    else:
        city, county, prefix = rng.choice(US_CITIES)
        post, country = f"{prefix}{rng.randint(1, 99):02d}", "US"
    address2 = rng.choice(["", "", "", f"Suite {rng.randint(100, 999)}", f"Building {rng.randint(1, 9)}"])
    return {"Address": street, "Address_2": address2, "City": city, "County": county, "Post_Code": post,
            "Country_Region_Code": country}


def _slug(text: str) -> str:
    out = []
    for ch in text.lower():
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        elif ch in "äåáàâã":
            out.append("a")
        elif ch in "öøóòôõ":
            out.append("o")
        elif ch in "üúùû":
            out.append("u")
        elif ch in "éèêë":
            out.append("e")
        elif ch in "íìîï":
            out.append("i")
        elif ch in "çč":
            out.append("c")
        elif ch in "ñń":
            out.append("n")
        elif ch == "ß":
            out.append("ss")
    return "".join(out)[:24] or "info"


def _phone(rng: random.Random) -> str:
    return f"+1 {rng.randint(201, 989)}-{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"


def _tracking(rng: random.Random, agent: str) -> str:
    if agent == "UPS":
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(6)) + \
            f"{rng.randrange(10**10):010d}"
    if agent == "USPS":
        return "9400" + f"{rng.randrange(10**18):018d}"
    if agent == "ONTRAC":
        return "C" + f"{rng.randrange(10**14):014d}"
    if agent == "DHL":
        return f"{rng.randrange(10**10):010d}"
    return f"{rng.randrange(10**12):012d}"


def generate(services: dict[str, Service], *, seed: int = 42, scale: float = 1.0, profile: str = "default",
             counts: Optional[dict] = None, work_date: Optional[date] = None) -> dict[str, list[list]]:
    """Every service's rows (lists in field order); the same arguments always give the same rows."""
    n = resolve_counts(scale, profile, counts)
    today = work_date or date.today()
    rng = random.Random(seed)
    iso = [(today - timedelta(days=d)).isoformat() for d in range(0, 1200)]  # iso[d] = d days ago
    out: dict[str, list[list]] = {}
    has_sma = "SystemModifiedAt" in services["CustomerCard"].index

    def modified(days: int) -> dict[str, Any]:
        values = {"Last_Date_Modified": iso[days]}
        if has_sma:
            values["SystemModifiedAt"] = (f"{iso[days]}T{rng.randint(6, 19):02d}:{rng.randint(0, 59):02d}:"
                                          f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z")
        return values

    # the newest change date is shared, to the millisecond, by many records: a watermark's boundary case
    bulk_update: dict[str, Any] = {"Last_Date_Modified": iso[0]}
    if has_sma:
        bulk_update["SystemModifiedAt"] = f"{iso[0]}T05:30:00.000Z"

    def changed(i: int) -> dict[str, Any]:
        return bulk_update if i % BULK_UPDATE_EVERY in (5, 11) else modified(rng.randint(0, 730))

    # --- price groups, locations, shipping agents ---------------------------------------------------------
    b = Builder(services["CustomerPriceGroups"])
    groups = []
    for i in range(n["customer_price_groups"]):
        code, desc = PRICE_GROUPS[i] if i < len(PRICE_GROUPS) else (f"GROUP{i + 1:02d}", f"Price group {i + 1}")
        groups.append(code)
        out.setdefault("CustomerPriceGroups", []).append(b.row({
            "Code": code, "Description": desc, "Allow_Line_Disc": True, "Allow_Invoice_Disc": code != "VIP",
            "Price_Includes_VAT": code == "RETAIL", "Price_Calculation_Method": "Lowest Price",
            "VAT_Bus_Posting_Gr_Price": "DOMESTIC" if code == "RETAIL" else ""}))

    b = Builder(services["Locations"])
    locations = []  # (code, name, city, county, country)
    for i in range(n["locations"]):
        code, name = LOCATIONS[i] if i < len(LOCATIONS) else (f"LOC{i + 1:03d}", f"Location {i + 1}")
        addr = _address(rng, 0.1)
        transit = code == "OUT. LOG."
        locations.append((code, name, addr["City"], addr["County"], addr["Country_Region_Code"], transit))
        out.setdefault("Locations", []).append(b.row({
            "Code": code, "Name": name, "Use_As_In_Transit": transit, **addr,
            "Contact": f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}", "Phone_No": _phone(rng),
            "E_Mail": f"{_slug(code)}@cronus-sandbox.example", "Require_Shipment": i % 3 == 0,
            "Require_Pick": i % 4 == 0, "Bin_Mandatory": i % 5 == 0, "Outbound_Whse_Handling_Time": "1D",
            "Inbound_Whse_Handling_Time": "1D"}))
    stock_locations = [loc for loc in locations if not loc[5]]

    b = Builder(services["ShippingAgents"])
    agents = []
    for i in range(n["shipping_agents"]):
        code, name, url = SHIPPING_AGENTS[i] if i < len(SHIPPING_AGENTS) else (f"AGENT{i + 1:02d}",
                                                                               f"Carrier {i + 1}", "")
        agents.append(code)
        out.setdefault("ShippingAgents", []).append(b.row({
            "Code": code, "Name": name, "Internet_Address": url,
            "Account_No": "" if code == "OWN LOG." else f"{rng.randrange(10**8):08d}"}))
    carriers = [a for a in agents if a != "OWN LOG."] or agents

    # --- customers -----------------------------------------------------------------------------------------
    b = Builder(services["CustomerCard"])
    customers = []  # (No, name, addr, phone, email, contact, currency, terms, blocked)
    used_names = {name for _, name in FIXED_CUSTOMERS}
    rows = out["CustomerCard"] = []
    for i in range(n["customers"]):
        no = f"C{10000 + 10 * i}"
        if i < len(FIXED_CUSTOMERS):
            no, name = FIXED_CUSTOMERS[i]
        else:
            form = rng.choice(COMPANY_FORMS)
            name = form.format(s=rng.choice(SURNAMES), t=rng.choice(SURNAMES), f=rng.choice(FIRST_NAMES))
            if name in used_names:
                name = f"{name} ({rng.choice(US_CITIES)[0]})"
            used_names.add(name)
        addr = _address(rng)
        foreign = addr["Country_Region_Code"] != "US"
        contact = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"
        email = f"{_slug(contact.split()[0])}@{_slug(name)}.example"
        phone = _phone(rng)
        currency = {"DE": "EUR", "FR": "EUR", "SE": "SEK", "CA": "CAD", "GB": "GBP", "DK": "DKK",
                    "CH": "CHF"}.get(addr["Country_Region_Code"], "")
        blocked = "_blank_" if rng.random() < 0.95 else rng.choice(["Ship", "Invoice", "All"])
        terms = rng.choice(PAYMENT_TERMS)
        credit = float(rng.choice([0, 0, 5000, 10000, 25000, 50000, 100000]))
        balance = round(rng.uniform(0, 20000), 2) if rng.random() < 0.6 else 0.0
        values = {
            "No": no, "Name": name, "Search_Name": code_upper(name), **addr, "Phone_No": phone,
            "MobilePhoneNo": _phone(rng) if rng.random() < 0.3 else "", "E_Mail": email,
            "Home_Page": f"www.{_slug(name)}.example" if rng.random() < 0.5 else "", "ContactName": contact,
            "Primary_Contact_No": f"CT{100000 + i}", "Blocked": blocked, **changed(i),
            "Credit_Limit_LCY": credit, "CreditLimit": credit, "Balance_LCY": balance, "Balance_LCY2": balance,
            "Balance_Due_LCY": round(balance * rng.random(), 2), "TotalMoneyOwed": balance,
            "Gen_Bus_Posting_Group": "EXPORT" if foreign else "DOMESTIC",
            "VAT_Bus_Posting_Group": "EXPORT" if foreign else "DOMESTIC", "Customer_Posting_Group": "DOMESTIC"
            if not foreign else "FOREIGN", "Customer_Price_Group": rng.choice(groups) if rng.random() < 0.7 else "",
            "Payment_Terms_Code": terms, "Payment_Method_Code": rng.choice(PAYMENT_METHODS),
            "Shipping_Agent_Code": rng.choice(agents) if rng.random() < 0.6 else "",
            "Shipping_Agent_Service_Code": rng.choice(SERVICE_LEVELS), "Location_Code": rng.choice(stock_locations)[0]
            if rng.random() < 0.5 else "", "Tax_Liable": not foreign, "Tax_Area_Code": "" if foreign else
            f"{addr['County'] or 'US'}-{rng.randint(1, 9)}", "Currency_Code": currency,
            "Partner_Type": rng.choice(["_blank_", "Company", "Company", "Person"]),
            "Salesperson_Code": rng.choice(SALESPEOPLE), "Language_Code": "" if not foreign else
            {"DE": "DEU", "FR": "FRA", "SE": "SVE", "CA": "FRC", "DK": "DAN", "CH": "DES"}.get(
                addr["Country_Region_Code"], "ENU"),
            "VAT_Registration_No": f"{addr['Country_Region_Code']}{rng.randrange(10**9):09d}" if foreign else "",
            "Print_Statements": rng.random() < 0.3, "Priority": rng.choice([0, 0, 0, 1, 2, 5]),
            "Allow_Line_Disc": True, "Combine_Shipments": rng.random() < 0.4, "Prices_Including_VAT": False,
            "Copy_Sell_to_Addr_to_Qte_From": "Company", "Customized_Calendar": "No",
            "Document_Sending_Profile": rng.choice(["", "", "EMAIL", "PRINT"]),
            "LoyaltyTier": LOYALTY_TIERS[i % len(LOYALTY_TIERS)],  # not drawn from rng: the rest of the data stays
        }
        rows.append(b.row(values))
        customers.append((no, name, addr, phone, email, contact, currency, terms, blocked))
    # a few bill-to customers, as groups of companies have
    bi = services["CustomerCard"].index["Bill_to_Customer_No"]
    for j in range(len(rows) // 25):
        child, parent = rng.randrange(len(rows)), rng.randrange(len(rows))
        if child != parent:
            rows[child][bi] = customers[parent][0]

    # --- items ---------------------------------------------------------------------------------------------
    b = Builder(services["ItemCard"])
    items = []  # (No, description, type, uom, price, cost, tax group, weight, blocked)
    rows = out["ItemCard"] = []
    for i in range(n["items"]):
        no = str(10000 + 10 * i)
        if i % 7 == 4:
            k = i // 7
            no = AWKWARD_ITEM_NOS[k % len(AWKWARD_ITEM_NOS)] + (f"-{k // len(AWKWARD_ITEM_NOS)}"
                                                                if k >= len(AWKWARD_ITEM_NOS) else "")
        roll = rng.random()
        itype = "Inventory" if roll < 0.9 else ("Service" if roll < 0.96 else "Non-Inventory")
        if rng.random() < 0.55:
            cat_group = (f"{rng.choice(ITEM_ADJ)} {rng.choice(ITEM_COLOR)} {rng.choice(ITEM_KIND)} "
                         f"{rng.choice(ITEM_MOUNT)}")
            desc = f"{rng.choice(ITEM_KIND)} {rng.choice(ITEM_COLOR)} {rng.randint(100, 99999)}"
        else:
            cat_group = rng.choice(["", f"{rng.choice(ITEM_ADJ)} {rng.choice(ITEM_KIND)}"])
            desc = rng.choice(ITEM_PLAIN)
            if rng.random() < 0.5:
                desc = f"{desc} #{rng.randint(1, 999)}"
        if itype == "Service":
            desc, uom = rng.choice(["Installation, per hour", "Freight handling", "Rush order fee",
                                    "Custom wiring service", "Consulting – lighting design"]), "HOUR"
        else:
            uom = rng.choice(UOMS)
        cost = round(rng.choice([rng.uniform(0.05, 5), rng.uniform(5, 80), rng.uniform(80, 900)]), 2)
        price = round(cost * rng.uniform(1.15, 2.2), 2)
        weight = round(rng.uniform(0.01, 12), 3) if itype != "Service" else 0.0
        blocked = rng.random() < 0.03
        values = {
            "No": no, "Description": desc, "Search_Description": code_upper(desc)[:100], "Type": itype,
            "Blocked": blocked, "Base_Unit_of_Measure": uom, "Sales_Unit_of_Measure": uom,
            "Purch_Unit_of_Measure": uom, **changed(i),
            "GTIN": f"0{rng.randrange(10**12):012d}" if rng.random() < 0.4 else "",
            "Item_Category_Code": rng.choice(CATEGORIES), "Manufacturer_Code": rng.choice(MANUFACTURERS),
            "UPC_Code": upc(rng, i) if itype != "Service" and rng.random() < 0.85 else "",
            "Product_Group_Code": rng.choice(PRODUCT_GROUPS), "CatItemGroup": cat_group,
            "Net_Weight": weight, "Gross_Weight": round(weight * 1.1, 3), "Unit_Volume": round(weight / 7, 4),
            "Costing_Method": "FIFO" if itype == "Inventory" else "Standard", "Unit_Cost": cost,
            "Standard_Cost": cost if itype != "Inventory" else 0.0, "Last_Direct_Cost": cost, "Unit_Price": price,
            "CalcUnitPriceExclVAT": price, "Profit_Percent": round((price - cost) / price * 100, 5) if price else 0,
            "Gen_Prod_Posting_Group": "SERVICES" if itype == "Service" else "RETAIL",
            "VAT_Prod_Posting_Group": "SERVICES" if itype == "Service" else "STANDARD",
            "Tax_Group_Code": "NONTAXABLE" if itype == "Service" else "TAXABLE",
            "Inventory_Posting_Group": "RESALE" if itype == "Inventory" else "",
            "Vendor_No": f"V{10000 + 10 * rng.randint(0, 60)}" if itype != "Service" else "",
            "Vendor_Item_No": f"{rng.choice('ABCDEFGHKMPT')}-{rng.randint(1000, 99999)}" if rng.random() < 0.6
            else "", "Replenishment_System": "Purchase" if rng.random() < 0.93 else "Assembly",
            "Sales_Blocked": blocked or rng.random() < 0.01, "Purchasing_Blocked": rng.random() < 0.02,
            "Allow_Invoice_Disc": True, "Shelf_No": f"{rng.choice('ABCDEF')}{rng.randint(1, 40):02d}" if
            rng.random() < 0.5 else "", "Country_Region_of_Origin_Code": rng.choice(["US", "US", "CN", "MX", "DE"]),
            "Reorder_Point": float(rng.choice([0, 0, 10, 25, 50])), "Reserve": "Optional",
            "Reordering_Policy": rng.choice(["_blank_", "_blank_", "Fixed Reorder Qty.", "Lot-for-Lot"]),
            "Lead_Time_Calculation": rng.choice(["", "", "1W", "2W", "5D"]),
            "Order_Tracking_Policy": "None", "Assembly_Policy": "Assemble-to-Stock",
            "Season": SEASONS[i % len(SEASONS)],  # not drawn from rng, as LoyaltyTier
        }
        if no == GUIDE_ITEM["No"]:
            values.update(GUIDE_ITEM, Type="Inventory", Blocked=False, Sales_Blocked=False,
                          Search_Description=GUIDE_ITEM["Description"], Sales_Unit_of_Measure="EA",
                          Purch_Unit_of_Measure="EA", Unit_Cost=0.09, Last_Direct_Cost=0.09,
                          CalcUnitPriceExclVAT=0.16, Profit_Percent=43.75)
            itype, uom, price, blocked, desc = "Inventory", "EA", 0.16, False, GUIDE_ITEM["Description"]
        rows.append(b.row(values))
        items.append((no, desc, itype, uom, price, cost, values["Tax_Group_Code"], values["Net_Weight"], blocked,
                      values["Gen_Prod_Posting_Group"], values["VAT_Prod_Posting_Group"]))
    item_rows = {it[0]: r for it, r in zip(items, rows)}

    # --- sales orders and lines ------------------------------------------------------------------------------
    bh, bl = Builder(services["SalesOrders"]), Builder(services["SalesOrderLines"])
    headers = out["SalesOrders"] = []
    lines = out["SalesOrderLines"] = []
    sellable = [it for it in items if not it[8]] or items
    open_customers = [c for c in customers if c[8] != "All"] or customers
    ages = sorted((rng.randint(0, 720) for _ in range(n["sales_orders"])), reverse=True)
    on_order: dict[str, float] = {}
    lo, hi = int(n["lines_per_order_min"]), int(n["lines_per_order_max"])
    for i, age in enumerate(ages):
        no = str(101001 + i) if i % 10 != 7 else f"WEB/{iso[age][2:4]}/{i:05d}"  # a web shop's own series
        cust = rng.choice(open_customers)
        c_no, c_name, addr, phone, email, contact, currency, terms, _ = cust
        released = rng.random() < 0.8
        shipped = released and age > 7 and rng.random() < 0.7
        agent = rng.choice(carriers) if shipped or rng.random() < 0.4 else ""
        loc = rng.choice(stock_locations)[0]
        ship_age = max(0, age - rng.randint(1, 7))
        values = {
            "Document_Type": "Order", "No": no, "Sell_to_Customer_No": c_no, "Sell_to_Customer_Name": c_name,
            "Sell_to_Address": addr["Address"], "Sell_to_Address_2": addr["Address_2"],
            "Sell_to_City": addr["City"], "Sell_to_County": addr["County"], "Sell_to_Post_Code": addr["Post_Code"],
            "Sell_to_Country_Region_Code": addr["Country_Region_Code"], "Sell_to_Phone_No": phone,
            "Sell_to_E_Mail": email, "Sell_to_Contact": contact, "Sell_to_Contact_No": "",
            "Order_Date": iso[age], "Document_Date": iso[age], "Posting_Date": iso[age],
            "VAT_Reporting_Date": iso[age], "Due_Date": iso[max(0, age - 30)] if age >= 30 else
            (today + timedelta(days=30 - age)).isoformat(),
            "Requested_Delivery_Date": iso[max(0, age - 10)] if rng.random() < 0.3 else "0001-01-01",
            "Shipment_Date": iso[ship_age], "External_Document_No": f"PO-{rng.randint(10000, 999999)}"
            if rng.random() < 0.7 else "", "Your_Reference": rng.choice(["", "", "Rush", "Restock", "Q3 promo",
                                                                        "Per phone call"]),
            "Salesperson_Code": rng.choice(SALESPEOPLE), "Status": "Released" if released else "Open",
            "Currency_Code": currency, "Prices_Including_VAT": False, "Payment_Terms_Code": terms,
            "Shipment_Method_Code": rng.choice(["", "FOB", "EXW", "CIF", "DDP"]),
            "Shipping_Agent_Code": agent, "Shipping_Agent_Service_Code": rng.choice(SERVICE_LEVELS) if agent else "",
            "Package_Tracking_No": _tracking(rng, agent) if shipped and agent else "",
            "Location_Code": loc, "Completely_Shipped": shipped, "Shipping_Advice": "Partial",
            "Bill_to_Name": c_name, "Bill_to_Address": addr["Address"], "Bill_to_Address_2": addr["Address_2"],
            "Bill_to_City": addr["City"], "Bill_to_County": addr["County"], "Bill_to_Post_Code": addr["Post_Code"],
            "Bill_to_Country_Region_Code": addr["Country_Region_Code"], "Bill_to_Contact": contact,
            "Gen_Bus_Posting_Group": "DOMESTIC" if addr["Country_Region_Code"] == "US" else "EXPORT",
            "Customer_Posting_Group": "DOMESTIC" if addr["Country_Region_Code"] == "US" else "FOREIGN",
            "Posting_Description": f"Order {no}", "Assigned_User_ID": rng.choice(["", "ADMIN", "SALES01"]),
            "ShippingOptions": "Default (Sell-to Address)", "BillToOptions": "Default (Customer)",
            "WebChannel": WEB_CHANNELS[i % len(WEB_CHANNELS)],  # not drawn from rng, as LoyaltyTier
        }
        if rng.random() < 0.15:  # shipped somewhere else
            other = _address(rng)
            values.update({"ShippingOptions": "Custom Address", "Ship_to_Name": f"{c_name} – {other['City']}",
                           "Ship_to_Address": other["Address"], "Ship_to_Address_2": other["Address_2"],
                           "Ship_to_City": other["City"], "Ship_to_County": other["County"],
                           "Ship_to_Post_Code": other["Post_Code"],
                           "Ship_to_Country_Region_Code": other["Country_Region_Code"],
                           "Ship_to_Contact": f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}",
                           "Ship_to_Phone_No": _phone(rng)})
        else:
            values.update({"Ship_to_Name": c_name, "Ship_to_Address": addr["Address"],
                           "Ship_to_Address_2": addr["Address_2"], "Ship_to_City": addr["City"],
                           "Ship_to_County": addr["County"], "Ship_to_Post_Code": addr["Post_Code"],
                           "Ship_to_Country_Region_Code": addr["Country_Region_Code"], "Ship_to_Contact": contact,
                           "Ship_to_Phone_No": phone})
        headers.append(bh.row(values))
        for k in range(rng.randint(lo, hi)):
            line_no = 10000 * (k + 1)
            if k > 0 and rng.random() < 0.02:  # a comment line, as users type them
                lines.append(bl.row({"Document_Type": "Order", "Document_No": no, "Line_No": line_no,
                                     "Type": "_blank_", "FilteredTypeField": "_blank_",
                                     "Description": rng.choice(["Deliver to back door", "Call before delivery",
                                                                "Fragile – handle with care"])}))
                continue
            it = rng.choice(sellable)
            i_no, i_desc, itype, uom, price, cost, tax, weight, _, gen_prod, vat_prod = it
            qty = float(rng.choice([1, 1, 2, 3, 4, 5, 6, 10, 12, 20, 24, 25, 48, 50, 100]))
            unit_price = price if rng.random() < 0.9 else round(price * rng.uniform(0.8, 1.0), 2)
            disc = rng.choice([0.0, 0.0, 0.0, 0.0, 5.0, 10.0, 12.5, 15.0])
            gross = qty * unit_price
            shipped_qty = qty if shipped else (0.0 if not released or rng.random() < 0.7 else float(int(qty / 2)))
            lines.append(bl.row({
                "Document_Type": "Order", "Document_No": no, "Line_No": line_no, "Type": "Item",
                "FilteredTypeField": "Item", "No": i_no, "Description": i_desc, "Location_Code": loc
                if itype != "Service" else "", "Quantity": qty, "Unit_of_Measure_Code": uom,
                "Unit_of_Measure": {"PCS": "Piece", "EA": "Each", "BOX": "Box", "PACK": "Pack", "SET": "Set",
                                    "FT": "Foot", "HOUR": "Hour"}.get(uom, uom),
                "Unit_Price": unit_price, "Unit_Cost_LCY": cost, "Line_Discount_Percent": disc,
                "Line_Discount_Amount": round(gross * disc / 100, 2),
                "Line_Amount": round(gross * (1 - disc / 100), 2), "Qty_to_Ship": qty - shipped_qty,
                "Quantity_Shipped": shipped_qty, "Qty_to_Invoice": qty - shipped_qty if shipped else qty,
                "Quantity_Invoiced": shipped_qty if shipped and rng.random() < 0.5 else 0.0,
                "Tax_Group_Code": tax, "Tax_Liable": tax == "TAXABLE", "Net_Weight": weight,
                "Gross_Weight": round(weight * 1.1, 3), "Shipment_Date": iso[ship_age],
                "Shipping_Agent_Code": agent, "Gen_Prod_Posting_Group": gen_prod, "VAT_Prod_Posting_Group": vat_prod,
                "Gen_Bus_Posting_Group": values["Gen_Bus_Posting_Group"], "Allow_Invoice_Disc": True,
                "Allow_Item_Charge_Assignment": True, "Control50": "Optional",
            }))
            on_order[i_no] = on_order.get(i_no, 0.0) + qty - shipped_qty  # Qty. on Sales Order counts every item

    # A page extension's SystemModifiedAt on orders and lines: a line was last changed with its order, the day it
    # shipped (or was ordered), not drawn from rng so the rest of the data stays the same.
    if "SystemModifiedAt" in bh.index:
        changed_at = {}
        for header in headers:
            stamp = f"{header[bh.index['Shipment_Date']]}T12:00:00.000Z"
            header[bh.index["SystemModifiedAt"]] = changed_at[header[bh.index["No"]]] = stamp
        for line in lines:
            line[bl.index["SystemModifiedAt"]] = changed_at[line[bl.index["Document_No"]]]

    # --- inventory by location (query 2554) ------------------------------------------------------------------
    # As query 37015 "Inventory by Location" does: open item ledger entries (Open = const(true)) left-joined to
    # their location, Quantity / RemainingQuantity / ReservedQuantity summed per distinct value of every other
    # column. So an item has several rows at one location (per lot, serial, variant, unit of measure, the
    # country the goods came from); a partly applied receipt has RemainingQuantity < Quantity; stock sold below
    # zero is an open negative entry; a fully applied entry is closed and is no row at all. Item.Inventory sums
    # Quantity over every entry, open or closed, which equals RemainingQuantity summed over the open ones.
    inv_rows = out["Itemsbylocation"] = []
    ledger = Ledger(Builder(services["Itemsbylocation"]), rng, today, int(n["ledger_rows_min"]),
                    int(n["ledger_rows_max"]))
    per_item = float(n["locations_per_item"])
    whole, frac = int(per_item), per_item - int(per_item)
    item_svc = services["ItemCard"]
    inv_i, inv_nf, qso_i = (item_svc.index["Inventory"], item_svc.index["InventoryNonFoundation"],
                            item_svc.index["Qty_on_Sales_Order"])
    blank_location = ("", "", "", "", "", False)  # entries posted without a location: the join finds none
    for it in items:
        i_no, itype, uom = it[0], it[2], it[3]
        row = item_rows[i_no]
        row[qso_i] = on_order.get(i_no, 0.0)
        if itype != "Inventory":
            continue
        k = min(len(stock_locations), max(1, whole + (1 if rng.random() < frac else 0)))
        places = sorted(rng.sample(stock_locations, k)) + ([blank_location] if rng.random() < 0.04 else [])
        tracking = rng.choices(["", "lot", "serial"], weights=[87, 10, 3])[0]
        variants = rng.sample(VARIANTS, rng.randint(2, 3)) if rng.random() < 0.15 else [""]
        total = 0.0
        for place in places:
            rows, remaining = ledger.rows(i_no, uom, place, tracking, variants)
            inv_rows.extend(rows)
            total += remaining
        row[inv_i] = row[inv_nf] = total
    # Documents and tables added later draw from random streams of their own: the rows above stay as they were.
    from .seed_invoices import generate_posted_invoices
    from .seed_item_categories import generate_item_categories, generate_setup_tables

    generate_posted_invoices(services, out, seed=seed)
    generate_item_categories(services, out)
    generate_setup_tables(services, out)
    if "ShipToAddresses" in services and "Contacts" in services:
        out.update(customer_children(services, out["CustomerCard"], seed=seed, today=today))
    return out


class Ledger:
    """The Items by Location rows of one item at one location, as open item ledger entries sum up."""

    def __init__(self, builder: Builder, rng: random.Random, today: date, low: int, high: int):
        self.builder, self.rng, self.today, self.low, self.high = builder, rng, today, low, high
        self.serial = 0

    def rows(self, item: str, uom: str, place: tuple, tracking: str,
             variants: list[str]) -> tuple[list[list], float]:
        """The rows, and their RemainingQuantity summed (what Item.Inventory counts here)."""
        rng = self.rng
        # specific tracking forbids negative stock; otherwise one variant here may have been sold below zero
        short = rng.choice(variants) if not tracking and rng.random() < 0.07 else None
        seen: set[tuple] = set()
        out = []
        total = 0.0
        for _ in range(rng.randint(self.low, self.high)):
            variant = rng.choice(variants)
            group, quantities = (self.sale(uom, variant) if variant == short else
                                 self.receipt(uom, variant, tracking))
            if group in seen:  # the query would have summed it into the row already made
                continue
            seen.add(group)
            variant, lot, serial, expires, unit, per_unit, country = group
            quantity, remaining, reserved = quantities
            total += remaining
            code, name, city, county, loc_country, _ = place
            out.append(self.builder.row({
                "ItemNo": item, "VariantCode": variant, "LotNo": lot, "SerialNo": serial, "PackageNo": "",
                "ExpirationDate": expires, "UnitOfMeasureCode": unit, "QtyPerUnitOfMeasure": per_unit,
                "Quantity": quantity, "RemainingQuantity": remaining, "ReservedQuantity": reserved,
                "CountryRegionCode": country, "LocationCode": code, "LocationName": name, "LocationCity": city,
                "LocationCounty": county, "LocationCountryRegionCode": loc_country}))
        return out, total

    def receipt(self, uom: str, variant: str, tracking: str) -> tuple[tuple, tuple]:
        """Open positive entries (receipts, transfers in, positive adjustments), some partly applied."""
        rng = self.rng
        country = rng.choice(RECEIPT_COUNTRIES)
        if tracking == "serial":
            self.serial += 1
            return (variant, "", f"SN-{self.serial:06d}", "0001-01-01", uom, 1.0, country), (1.0, 1.0, 0.0)
        unit, per_unit = (uom, 1.0)
        if rng.random() < 0.2 and uom not in ("BOX", "PACK"):
            unit, per_unit = rng.choice(PURCHASE_UOMS)
        lot = expires = ""
        if tracking == "lot":
            lot = f"L{self.today.year % 100}/{rng.randint(1, 9999):04d}"
            expires = (self.today + timedelta(days=rng.randint(30, 700))).isoformat()
        quantity = per_unit * rng.choice([rng.randint(1, 50), rng.randint(50, 500), rng.randint(500, 4000)])
        remaining = quantity if rng.random() < 0.4 or quantity == 1 else float(rng.randint(1, int(quantity) - 1))
        reserved = float(min(remaining, rng.choice([0, 0, 0, rng.randint(1, 20)])))
        return (variant, lot, "", expires or "0001-01-01", unit, per_unit, country), (quantity, remaining, reserved)

    def sale(self, uom: str, variant: str) -> tuple[tuple, tuple]:
        """An open negative entry: shipped with no stock to apply to, maybe partly covered by a later receipt."""
        rng = self.rng
        quantity = float(rng.randint(1, 40))
        remaining = quantity if rng.random() < 0.6 or quantity == 1 else float(rng.randint(1, int(quantity) - 1))
        return (variant, "", "", "0001-01-01", uom, 1.0, rng.choice(SALE_COUNTRIES)), (-quantity, -remaining, 0.0)

"""Seed item categories (page 5733) as a hierarchy holding every Item_Category_Code the seeded items use."""

from __future__ import annotations

from .schema import Service
from .seed import Builder

# (Code, Description, Parent Category): parents before children, three levels deep; codes are Code[20].
ITEM_CATEGORIES = [
    ("LIGHTING", "Lighting — lamps & LEDs", ""),
    ("ELECTRICAL", "Electrical parts", ""),
    ("ACCESSORIES", "Accessories", ""),
    ("HARDWARE", "Hardware (bolts, brackets)", ""),
    ("LED", "LED lights", "LIGHTING"),
    ("LAMPS", "Lamps & lanterns", "LIGHTING"),
    ("BEZELS", "Bezels & trims", "LIGHTING"),
    ("WIRING", "Wiring, harnesses", "ELECTRICAL"),
    ("MIRRORS", "Driver's mirrors", "ACCESSORIES"),
    ("CAFÉ LAMPS", "Café & bar lamps", "LAMPS"),
    ("STRAßE", "Straßenbeleuchtung", "LAMPS"),
]


def generate_setup_tables(services: dict[str, Service], out: dict[str, list[list]]) -> None:
    """The setup tables the sandbox publishes, from the codes its write checks use (bc_setup.py)."""
    from .bc_setup import SETUP_CODES, SETUP_SERVICES

    for name, (_, table) in SETUP_SERVICES.items():
        if name in services:
            b = Builder(services[name])
            out[name] = [b.row({"Code": code, "Description": code.title()}) for code in sorted(SETUP_CODES[table])]


def generate_item_categories(services: dict[str, Service], out: dict[str, list[list]]) -> None:
    if "ItemCategoryCard" not in services:
        return
    b = Builder(services["ItemCategoryCard"])
    out["ItemCategoryCard"] = [b.row({"Code": code, "Description": description, "Parent_Category": parent})
                               for code, description, parent in ITEM_CATEGORIES]

"""Seed posted sales invoices (pages 132/133): most from the seeded orders' invoiced lines, some direct."""

from __future__ import annotations

import random
from typing import Any

from .schema import Service
from .seed import Builder

HEADER_COPIED = (
    "Sell_to_Customer_No", "Sell_to_Customer_Name", "Sell_to_Address", "Sell_to_Address_2", "Sell_to_City",
    "Sell_to_County", "Sell_to_Post_Code", "Sell_to_Country_Region_Code", "Sell_to_Contact", "Your_Reference",
    "External_Document_No", "Salesperson_Code", "Currency_Code", "Payment_Terms_Code", "Location_Code",
    "Shipment_Method_Code", "Shipping_Agent_Code", "Shipping_Agent_Service_Code", "Package_Tracking_No",
    "Ship_to_Code", "Ship_to_Name", "Ship_to_Address", "Ship_to_Address_2", "Ship_to_City", "Ship_to_County",
    "Ship_to_Post_Code", "Ship_to_Country_Region_Code", "Ship_to_Phone_No", "Ship_to_Contact", "Bill_to_Name",
    "Bill_to_Address", "Bill_to_Address_2", "Bill_to_City", "Bill_to_County", "Bill_to_Post_Code",
    "Bill_to_Country_Region_Code", "Bill_to_Contact", "Customer_Posting_Group", "Shipment_Date",
)
LINE_COPIED = ("Type", "FilteredTypeField", "No", "Description", "Description_2", "Variant_Code", "Location_Code",
               "Unit_of_Measure_Code", "Unit_of_Measure", "Unit_Price", "Unit_Cost_LCY", "Line_Discount_Percent",
               "Tax_Group_Code", "Tax_Liable", "Gen_Bus_Posting_Group", "Gen_Prod_Posting_Group",
               "VAT_Prod_Posting_Group", "Net_Weight", "Gross_Weight", "Allow_Invoice_Disc")
FIRST_INVOICE_NO = 103001  # CRONUS's posted sales invoice series, PS-INV103001, …


def _get(service: Service, row: list, name: str) -> Any:
    i = service.index.get(name)
    return row[i] if i is not None else None


def generate_posted_invoices(services: dict[str, Service], out: dict[str, list[list]], *, seed: int) -> None:
    """Add PostedSalesInvoices and PostedSalesInvoiceLines to `out` (own random stream: other data unchanged).

    An order line with Quantity_Invoiced > 0 was invoiced: one posted invoice per such order, its Order_No the
    order's No, a line per invoiced order line. A few invoices come from orders BC has deleted since (fully
    invoiced: their Order_No names no order) and a few are direct invoices (no order).
    """
    if "PostedSalesInvoices" not in services or "SalesOrders" not in out:
        return
    rng = random.Random(seed * 7919 + 132)
    orders, lines = services["SalesOrders"], services["SalesOrderLines"]
    invoices, invoice_lines = services["PostedSalesInvoices"], services["PostedSalesInvoiceLines"]
    bh, bl = Builder(invoices), Builder(invoice_lines)
    invoiced: dict[str, list[list]] = {}
    for row in out["SalesOrderLines"]:
        if (_get(lines, row, "Quantity_Invoiced") or 0) > 0:
            invoiced.setdefault(_get(lines, row, "Document_No"), []).append(row)
    headers = out["PostedSalesInvoices"] = []
    body = out["PostedSalesInvoiceLines"] = []
    number = FIRST_INVOICE_NO

    def post(order_row: list, order_no: str, order_lines: list[list], quantity_of) -> None:
        nonlocal number
        no = f"PS-INV{number}"
        number += 1
        posted = _get(orders, order_row, "Shipment_Date") or _get(orders, order_row, "Posting_Date")
        values = {name: _get(orders, order_row, name) for name in HEADER_COPIED}
        values.update(No=no, Order_No=order_no, Posting_Date=posted, Document_Date=posted, VAT_Reporting_Date=posted,
                      Due_Date=posted, Pre_Assigned_No="", No_Printed=rng.choice([0, 1, 1, 2]),
                      Closed=rng.random() < 0.6, Tax_Liable=_get(orders, order_row, "Sell_to_Country_Region_Code") == "US")
        values.update(SellToEmail=_get(orders, order_row, "Sell_to_E_Mail"),
                      SellToPhoneNo=_get(orders, order_row, "Sell_to_Phone_No"))
        headers.append(bh.row(values))
        for k, line in enumerate(order_lines):
            quantity = quantity_of(line)
            price = _get(lines, line, "Unit_Price") or 0.0
            discount = _get(lines, line, "Line_Discount_Percent") or 0.0
            gross = quantity * price
            body.append(bl.row({
                **{name: _get(lines, line, name) for name in LINE_COPIED},
                "Document_No": no, "Line_No": 10000 * (k + 1), "Quantity": quantity,
                "Line_Discount_Amount": round(gross * discount / 100, 2),
                "Line_Amount": round(gross * (1 - discount / 100), 2),
                "VAT_Percent": 0.0}))  # US sales tax, not VAT

    by_no = {_get(orders, row, "No"): row for row in out["SalesOrders"]}
    for order_no, order_lines in invoiced.items():
        post(by_no[order_no], order_no, order_lines, lambda line: _get(lines, line, "Quantity_Invoiced"))
    # Orders fully invoiced and then deleted by BC (Order_No names no order), and direct invoices (no order).
    samples = rng.sample(list(by_no.values()), min(len(by_no), max(2, len(invoiced) // 4)))
    for i, order_row in enumerate(samples):
        source_lines = [row for row in out["SalesOrderLines"] if _get(lines, row, "Document_No") ==
                        _get(orders, order_row, "No") and _get(lines, row, "Type") == "Item"][:3]
        if not source_lines:
            continue
        order_no = f"{100001 + i}" if i % 2 == 0 else ""
        post(order_row, order_no, source_lines, lambda line: _get(lines, line, "Quantity"))

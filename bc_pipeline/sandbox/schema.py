"""The published services' shapes: fields read from pages/*.tsv, their types, keys, defaults and write rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from .bc_setup import SETUP_SERVICES
from .config import ITEMS_BY_LOCATION_COLUMNS

PAGES_DIR = Path(__file__).resolve().parent / "pages"

# Types: str, enum (a string with a non-empty default), dec, int, bool, date, datetime.
DATE_FIELDS = {
    "Last_Date_Modified", "Document_Date", "Posting_Date", "VAT_Reporting_Date", "Order_Date", "Due_Date",
    "Requested_Delivery_Date", "Promised_Delivery_Date", "Pmt_Discount_Date", "Shipment_Date",
    "Prepayment_Due_Date", "Prepmt_Pmt_Discount_Date", "Planned_Delivery_Date", "Planned_Shipment_Date",
    "FA_Posting_Date", "Last_Phys_Invt_Date", "Last_Counting_Period_Update", "Next_Counting_Start_Date",
    "Next_Counting_End_Date", "ExpirationDate", "Promised_Pay_Date",
}
INT_FIELDS = {
    "Priority", "Last_Statement_No", "No_of_Archived_Versions", "Line_No", "Attached_to_Line_No",
    "Blanket_Order_Line_No", "Appl_from_Item_Entry", "Appl_to_Item_Entry", "Attached_Lines_Count",
    "DaysPaidPastDueDate",
}
DEC_FIELDS = {
    # Customer Card
    "Balance_LCY", "BalanceAsVendor", "Balance_Due_LCY", "Credit_Limit_LCY", "TotalSales2",
    "CustSalesLCY___CustProfit___AdjmtCostLCY", "AdjCustProfit", "AdjProfitPct", "Prepayment_Percent",
    "Balance_LCY2", "ExpectedCustMoneyOwed", "TotalMoneyOwed", "CreditLimit", "CalcCreditLimitLCYExpendedPct",
    "Balance_Due", "Payments_LCY", "AmountOnPostedInvoices", "AmountOnCrMemo", "AmountOnOutstandingInvoices",
    "AmountOnOutstandingCrMemos", "Totals", "CustInvDiscAmountLCY",
    # Item Card
    "Inventory", "InventoryNonFoundation", "Qty_on_Purch_Order", "Qty_on_Sales_Order", "Qty_on_Job_Order",
    "Net_Weight", "Gross_Weight", "Unit_Volume", "Trans_Ord_Receipt_Qty", "Trans_Ord_Shipment_Qty",
    "Qty_in_Transit", "Standard_Cost", "Unit_Cost", "Indirect_Cost_Percent", "Last_Direct_Cost",
    "Net_Invoiced_Qty", "Unit_Price", "CalcUnitPriceExclVAT", "Profit_Percent", "Dampener_Quantity",
    "Safety_Stock_Quantity", "Reorder_Point", "Reorder_Quantity", "Maximum_Inventory", "Overflow_Level",
    "Minimum_Order_Quantity", "Maximum_Order_Quantity", "Order_Multiple",
    # Sales Order / Subform
    "Payment_Discount_Percent", "Prepmt_Payment_Discount_Percent", "Quantity", "Qty_to_Assemble_to_Order",
    "Reserved_Quantity", "Unit_Cost_LCY", "Line_Discount_Percent", "Line_Amount", "Line_Discount_Amount",
    "Prepmt_Line_Amount", "Prepmt_Amt_Inv", "Inv_Discount_Amount", "Inv_Disc_Amount_to_Invoice", "Qty_to_Ship",
    "Quantity_Shipped", "Qty_to_Invoice", "Quantity_Invoiced", "Prepmt_Amt_to_Deduct", "Prepmt_Amt_Deducted",
    "Qty_to_Assign", "Item_Charge_Qty_to_Handle", "Qty_Assigned", "Whse_Outstanding_Qty",
    "Whse_Outstanding_Qty_Base", "ATO_Whse_Outstanding_Qty", "ATO_Whse_Outstd_Qty_Base", "Units_per_Parcel",
    "Invoice_Discount_Amount", "Invoice_Disc_Pct", "Total_Amount_Excl_VAT", "Total_VAT_Amount",
    "Total_Amount_Incl_VAT", "VAT_Percent",
    # Items by Location
    "QtyPerUnitOfMeasure", "RemainingQuantity", "ReservedQuantity",
}
BOOL_FIELDS = {
    "Privacy_Blocked", "Disable_Search_by_Name", "Use_GLN_in_Electronic_Document", "Tax_Liable",
    "Allow_Multiple_Posting_Groups", "Allow_Line_Disc", "Prices_Including_VAT", "Block_Payment_Tolerance",
    "Exclude_from_Pmt_Practices", "Combine_Shipments", "Price_Includes_VAT", "Allow_Invoice_Disc",
    "Coupled_to_Dataverse", "Automatic_Ext_Texts", "Created_From_Nonstock_Item", "Cost_is_Adjusted",
    "Excluded_from_Cost_Adjustment", "Cost_is_Posted_to_G_L", "Inventory_Value_Zero", "Sales_Blocked",
    "Service_Blocked", "Purchasing_Blocked", "Reverse_Charge_Applies", "AssemblyBOM", "Stockkeeping_Unit_Exists",
    "Critical", "Include_Inventory", "Use_Cross_Docking", "Use_As_In_Transit", "Require_Receive",
    "Require_Shipment", "Require_Put_away", "Require_Pick", "Bin_Mandatory", "Directed_Put_away_and_Pick",
    "Use_Put_away_Worksheet", "Use_ADCS", "Check_Whse_Class", "Allow_Breakbulk", "Always_Create_Put_away_Line",
    "Always_Create_Pick_Line", "Pick_According_to_FEFO", "Late_Order_Shipping", "Completely_Shipped",
    "Compress_Prepayment", "EU_3_Party_Trade", "Drop_Shipment", "Special_Order", "Nonstock",
    "Substitution_Available", "SalesPriceExist", "SalesLineDiscExists", "Allow_Item_Charge_Assignment",
    "Use_Duplication_List", "Depr_until_FA_Posting_Date", "Print_Statements",
    "Cancelled", "Corrective", "Closed",  # Posted Sales Invoice
}
# Options/enums: their value when nothing was chosen (BC writes a blank option as "_blank_").
ENUM_DEFAULTS = {
    "Partner_Type": "_blank_", "Application_Method": "Manual", "Reserve": "Optional", "Shipping_Advice": "Partial",
    "Price_Calculation_Method": "_blank_", "Intrastat_Partner_Type": "_blank_",
    "Copy_Sell_to_Addr_to_Qte_From": "Company", "Customized_Calendar": "No", "Type": "Inventory",
    "Costing_Method": "FIFO", "Price_Profit_Calculation": "Profit=Price-Cost", "Replenishment_System": "Purchase",
    "Assembly_Policy": "Assemble-to-Stock", "Reordering_Policy": "_blank_", "Order_Tracking_Policy": "None",
    "VariantMandatoryDefaultYes": "Default", "VariantMandatoryDefaultNo": "Default",
    "StockoutWarningDefaultYes": "Default", "StockoutWarningDefaultNo": "Default",
    "PreventNegInventoryDefaultYes": "Default", "PreventNegInventoryDefaultNo": "Default",
    "Prod_Consumption_Whse_Handling": "No Warehouse Handling", "Prod_Output_Whse_Handling": "No Warehouse Handling",
    "Asm_Consump_Whse_Handling": "No Warehouse Handling", "Job_Consump_Whse_Handling": "No Warehouse Handling",
    "Default_Bin_Selection": "_blank_", "Special_Equipment": "_blank_", "Bin_Capacity_Policy": "Never Check Capacity",
    "Put_away_Bin_Policy": "Default Bin", "Pick_Bin_Policy": "Default Bin", "Status": "Open",
    "Job_Queue_Status": "_blank_", "ShippingOptions": "Default (Sell-to Address)",
    "BillToOptions": "Default (Customer)", "FilteredTypeField": "Item", "IC_Partner_Ref_Type": "_blank_",
    "Control50": "Optional", "Document_Type": "Order",
}
# Per-service exceptions to the name-based rules above.
OVERRIDES: dict[str, dict[str, tuple[str, Any]]] = {
    "CustomerCard": {"Blocked": ("enum", "_blank_")},  # Customer.Blocked is an option: " ", Ship, Invoice, All
    "ItemCard": {"Blocked": ("bool", False)},
    "SalesOrderLines": {"Type": ("enum", "Item")},
    "PostedSalesInvoiceLines": {"Type": ("enum", "Item")},
    "Contacts": {"Type": ("enum", "Company"), "LastDateTimeModified": ("datetime", "0001-01-01T00:00:00Z")},
}
# The values each option/enum field accepts (its AL members, " " written "_blank_" as BC's OData does); the
# members are the captions the seed uses, e.g. "Non-Inventory", "Charge (Item)".
_BLANK = "_blank_"
_DEFAULT_YES_NO = ("Default", "No", "Yes")
_WHSE = ("No Warehouse Handling", "Warehouse Pick (optional)", "Warehouse Pick (mandatory)")
_LINE_TYPES = (_BLANK, "G/L Account", "Item", "Resource", "Fixed Asset", "Charge (Item)", "Allocation Account")
OPTION_VALUES: dict[str, tuple[str, ...]] = {
    "Partner_Type": (_BLANK, "Company", "Person"), "Intrastat_Partner_Type": (_BLANK, "Company", "Person"),
    "Application_Method": ("Manual", "Apply to Oldest"), "Reserve": ("Never", "Optional", "Always"),
    "Control50": ("Never", "Optional", "Always"), "Shipping_Advice": ("Partial", "Complete"),
    "Price_Calculation_Method": (_BLANK, "Lowest Price"), "Copy_Sell_to_Addr_to_Qte_From": ("Company", "Person"),
    "Customized_Calendar": ("No", "Yes"), "Type": ("Inventory", "Service", "Non-Inventory"),
    "Costing_Method": ("FIFO", "LIFO", "Specific", "Average", "Standard"),
    "Price_Profit_Calculation": ("Profit=Price-Cost", "Price=Cost+Profit", "No Relationship"),
    "Replenishment_System": ("Purchase", "Prod. Order", "Assembly"),
    "Assembly_Policy": ("Assemble-to-Stock", "Assemble-to-Order"),
    "Reordering_Policy": (_BLANK, "Fixed Reorder Qty.", "Maximum Qty.", "Order", "Lot-for-Lot"),
    "Order_Tracking_Policy": ("None", "Tracking Only", "Tracking & Action Msg."),
    "VariantMandatoryDefaultYes": _DEFAULT_YES_NO, "VariantMandatoryDefaultNo": _DEFAULT_YES_NO,
    "StockoutWarningDefaultYes": _DEFAULT_YES_NO, "StockoutWarningDefaultNo": _DEFAULT_YES_NO,
    "PreventNegInventoryDefaultYes": _DEFAULT_YES_NO, "PreventNegInventoryDefaultNo": _DEFAULT_YES_NO,
    "Prod_Consumption_Whse_Handling": (*_WHSE, "Inventory Pick/Movement"),
    "Prod_Output_Whse_Handling": ("No Warehouse Handling", "Inventory Put-away"),
    "Asm_Consump_Whse_Handling": (*_WHSE, "Inventory Movement"),
    "Job_Consump_Whse_Handling": ("No Warehouse Handling", "Warehouse Pick (mandatory)", "Inventory Pick"),
    "Default_Bin_Selection": (_BLANK, "Fixed Bin", "Last-Used Bin"),
    "Special_Equipment": (_BLANK, "According to Bin", "According to SKU/Item"),
    "Bin_Capacity_Policy": ("Never Check Capacity", "Allow More Than Max. Capacity", "Prohibit More Than Max. Cap."),
    "Put_away_Bin_Policy": ("Default Bin", "Put-away Template", "Directed Put-away"),
    "Pick_Bin_Policy": ("Default Bin", "Bin Ranking", "Directed Pick"),
    "Status": ("Open", "Released", "Pending Approval", "Pending Prepayment"),
    "Job_Queue_Status": (_BLANK, "Scheduled for Posting", "Error", "Posting"),
    "ShippingOptions": ("Default (Sell-to Address)", "Alternate Shipping Address", "Custom Address"),
    "BillToOptions": ("Default (Customer)", "Another Customer", "Custom Address"),
    "FilteredTypeField": (*_LINE_TYPES, "Comment"),
    "IC_Partner_Ref_Type": (_BLANK, "G/L Account", "Item", "Charge (Item)", "Cross Reference", "Common Item No.",
                            "Vendor Item No."),
    "Document_Type": ("Quote", "Order", "Invoice", "Credit Memo", "Blanket Order", "Return Order"),
}
SERVICE_OPTION_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "CustomerCard": {"Blocked": (_BLANK, "Ship", "Invoice", "All")},
    "SalesOrderLines": {"Type": _LINE_TYPES},
    "PostedSalesInvoiceLines": {"Type": _LINE_TYPES},
    "Contacts": {"Type": ("Company", "Person")},  # Contact.Type
}

_LENGTH = re.compile(r"^(?:Code|Text)\[(\d+)\]$")
SYSTEM_FIELDS = {"SystemModifiedAt": ("DateTime", "system")}  # (AL type, why read-only) of fields BC adds itself

EDM = {"str": "Edm.String", "enum": "Edm.String", "dec": "Edm.Decimal", "int": "Edm.Int32",
       "bool": "Edm.Boolean", "date": "Edm.Date", "datetime": "Edm.DateTimeOffset"}
DEFAULTS = {"str": "", "dec": 0, "int": 0, "bool": False, "date": "0001-01-01", "datetime": "0001-01-01T00:00:00Z"}


@dataclass
class Service:
    """One published web service: a page (with a key) or a query (without)."""

    name: str
    object_type: str  # Page or Query
    object_id: int
    table: str  # the source table's caption, used in BC's error messages
    keys: tuple[str, ...]
    fields: list[str]
    types: dict[str, str]
    defaults: list[Any]
    field_captions: dict[str, str] = field(default_factory=dict)  # OData name -> BC field caption
    flow_filters: tuple[str, ...] = ()  # accepted in $filter, not part of the record
    writable: bool = True
    al_types: dict[str, str] = field(default_factory=dict)  # OData name -> AL type, e.g. "Code[20]"
    read_only: dict[str, str] = field(default_factory=dict)  # OData name -> why: FlowField, system, ...
    relations: dict[str, str] = field(default_factory=dict)  # OData name -> related table's caption
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)  # option field -> its values
    standard_names: dict[str, str] = field(default_factory=dict)  # a renamed column's standard name -> its name
    index: dict[str, int] = field(init=False)
    max_length: dict[str, int] = field(init=False)
    code_fields: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {f: i for i, f in enumerate(self.fields)}
        lengths = {f: _LENGTH.match(t) for f, t in self.al_types.items()}
        self.max_length = {f: int(m.group(1)) for f, m in lengths.items() if m}
        self.code_fields = frozenset(f for f, t in self.al_types.items() if t.startswith("Code"))

    @property
    def seed_index(self) -> dict[str, int]:
        """Positions by served name and by standard name: the seed and the ledger sums use the standard ones."""
        return {**self.index, **{std: self.index[name] for std, name in self.standard_names.items()}}

    @property
    def key_index(self) -> tuple[int, ...]:
        return tuple(self.index[k] for k in self.keys)


# service name -> (tsv file, object type, object id, table caption, keys, flow filters)
PAGE_SERVICES = {
    "CustomerCard": ("CustomerCard.tsv", 21, "Customer", ("No",), ("Date_Filter", "Global_Dimension_1_Filter",
                                                                      "Global_Dimension_2_Filter", "Currency_Filter")),
    "Locations": ("LocationCard.tsv", 5703, "Location", ("Code",), ()),
    "ItemCard": ("ItemCard.tsv", 30, "Item", ("No",), ("Location_Filter", "Variant_Filter", "Date_Filter",
                                                       "Global_Dimension_1_Filter", "Global_Dimension_2_Filter")),
    "ShippingAgents": ("ShippingAgents.tsv", 428, "Shipping Agent", ("Code",), ()),
    "SalesOrders": ("SalesOrder.tsv", 42, "Sales Header", ("Document_Type", "No"), ("Date_Filter",)),
    "SalesOrderLines": ("SalesOrderSubform.tsv", 46, "Sales Line", ("Document_Type", "Document_No", "Line_No"), ()),
    "CustomerPriceGroups": ("CustomerPriceGroups.tsv", 7, "Customer Price Group", ("Code",), ()),
    "PostedSalesInvoices": ("PostedSalesInvoice.tsv", 132, "Sales Invoice Header", ("No",), ()),
    "PostedSalesInvoiceLines": ("PostedSalesInvoiceSubform.tsv", 133, "Sales Invoice Line", ("Document_No", "Line_No"),
                                ()),
    "ItemCategoryCard": ("ItemCategoryCard.tsv", 5733, "Item Category", ("Code",), ()),
    "ShipToAddresses": ("ShipToAddress.tsv", 300, "Ship-to Address", ("Customer_No", "Code"), ()),
    "Contacts": ("ContactCard.tsv", 5050, "Contact", ("No",), ()),
}
# Posted documents: BC refuses inserts and changes through their pages (InsertAllowed = false, Editable = false).
READ_ONLY_SERVICES = {"PostedSalesInvoices", "PostedSalesInvoiceLines"}
# Tenant extension fields: their AL types are unknown, so they are written as text, unchecked.
CUSTOM_FIELDS = {"ItemCard": ("UPC_Code", "Product_Group_Code", "CatItemGroup", "Manufacturer_Code", "Season"),
                 "CustomerCard": ("LoyaltyTier",), "SalesOrders": ("WebChannel",)}
# LoyaltyTier, Season and WebChannel: no catalog entry names them, so collections alone read and write them.
KEY_CAPTIONS = {"No": "No.", "Code": "Code", "Document_Type": "Document Type", "Document_No": "Document No.",
                "Line_No": "Line No."}
KEY_TYPES = {"No": "Code[20]", "Document_Type": "Option", "Document_No": "Code[20]", "Line_No": "Integer"}


@dataclass
class PageField:
    """One `field` row of a page TSV."""

    name: str
    caption: str
    al_type: str = ""
    read_only: str = ""  # why it cannot be written, or ""
    relation: str = ""  # the table a value must exist in, or ""


def read_page(tsv: Path) -> list[PageField]:
    """The `field` rows of a page TSV, in page order, without duplicates or quoted names."""
    rows: dict[str, PageField] = {}
    for line in tsv.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 3 or cols[0] != "field":
            continue
        name = cols[2].strip()
        if not name or '"' in name or "'" in name or name in rows:
            continue
        extra = [c.strip() for c in cols[7:10]] + [""] * (10 - max(len(cols), 7))
        rows[name] = PageField(name, cols[1].strip(), *extra[:3])
    return list(rows.values())


def code_upper(value: str) -> str:
    """A Code field's value as BC stores it: upper-cased letter by letter, so 'ß' stays 'ß' (not 'SS')."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in value)


def field_type(service: str, name: str) -> tuple[str, Any]:
    """The sandbox's OData type for a field, and its value when the record leaves it blank."""
    if name in OVERRIDES.get(service, {}):
        return OVERRIDES[service][name]
    if name in DATE_FIELDS:
        return "date", DEFAULTS["date"]
    if name == "SystemModifiedAt":
        return "datetime", DEFAULTS["datetime"]
    if name in INT_FIELDS:
        return "int", 0
    if name in DEC_FIELDS:
        return "dec", 0
    if name in BOOL_FIELDS:
        return "bool", False
    if name in ENUM_DEFAULTS:
        return "enum", ENUM_DEFAULTS[name]
    return "str", ""


def _service(name: str, object_type: str, object_id: int, table: str, keys: tuple[str, ...], fields: list[str],
             captions: dict[str, str], flow_filters: tuple[str, ...] = (), writable: bool = True,
             page: Optional[list[PageField]] = None) -> Service:
    types: dict[str, str] = {}
    defaults: list[Any] = []
    for f in fields:
        t, d = field_type(name, f)
        types[f] = t
        defaults.append(d)
    rows = {r.name: r for r in page or []}
    options = {f: SERVICE_OPTION_VALUES.get(name, {}).get(f) or OPTION_VALUES[f] for f in fields if types[f] == "enum"}
    return Service(name, object_type, object_id, table, keys, fields, types, defaults, captions, flow_filters, writable,
                   al_types={r.name: r.al_type for r in rows.values() if r.al_type},
                   read_only={r.name: r.read_only for r in rows.values() if r.read_only},
                   relations={r.name: r.relation for r in rows.values() if r.relation}, options=options)


# The pages a customer's page extension adds SystemModifiedAt to, when the sandbox is asked to (BC stamps every
# table's SystemModifiedAt; no standard page of the guide shows it).
SYSTEM_MODIFIED_AT_PAGES = ("CustomerCard", "ItemCard", "SalesOrders", "SalesOrderLines")


def build_services(*, itemsbylocation_columns=ITEMS_BY_LOCATION_COLUMNS, system_modified_at: bool = False,
                   pages_dir: Optional[Path] = None, itemsbylocation_names: Optional[dict[str, str]] = None
                   ) -> dict[str, Service]:
    """Every service the sandbox can publish, keyed by service name."""
    pages_dir = pages_dir or PAGES_DIR
    services: dict[str, Service] = {}
    for name, (tsv, object_id, table, keys, flow) in PAGE_SERVICES.items():
        page = read_page(pages_dir / tsv)
        fields = [r.name for r in page]
        captions = {r.name: r.caption for r in page}
        for k in reversed(keys):  # primary-key fields are always exposed, first
            if k not in fields:
                fields.insert(0, k)
                captions[k] = KEY_CAPTIONS.get(k, k)
                page.append(PageField(k, captions[k], KEY_TYPES.get(k, "")))
        for extra in CUSTOM_FIELDS.get(name, ()):
            if extra not in fields:
                fields.append(extra)
                captions[extra] = extra.replace("_", " ")
        if system_modified_at and name in SYSTEM_MODIFIED_AT_PAGES:
            fields.append("SystemModifiedAt")
            captions["SystemModifiedAt"] = "SystemModifiedAt"
            page.append(PageField("SystemModifiedAt", "SystemModifiedAt", *SYSTEM_FIELDS["SystemModifiedAt"]))
        services[name] = _service(name, "Page", object_id, table, keys, fields, captions, flow,
                                  writable=name not in READ_ONLY_SERVICES, page=page)
    for name, (object_id, table) in SETUP_SERVICES.items():
        services[name] = _service(name, "Page", object_id, table, ("Code",), ["Code", "Description"],
                                  {"Code": "Code", "Description": "Description"}, writable=False)
    columns = list(dict.fromkeys(itemsbylocation_columns))
    query = _service("Itemsbylocation", "Query", 2554, "Items by Location", (), columns, {c: c for c in columns},
                     writable=False)
    services["Itemsbylocation"] = _renamed(query, itemsbylocation_names or {})
    return services


def _renamed(service: Service, names: dict[str, str]) -> Service:
    """The query as a tenant's copy names its columns (types and data stay those of the standard columns)."""
    names = {std: new for std, new in names.items() if std in service.index and new != std}
    if not names:
        return service
    taken = [new for new in names.values() if new in service.index]
    if taken or len(set(names.values())) != len(names):
        raise ValueError(f"itemsbylocation_names: each new column name must be unused, got {names}")
    new = lambda f: names.get(f, f)  # noqa: E731
    return replace(service, fields=[new(f) for f in service.fields], types={new(f): t for f, t in service.types.items()},
                   field_captions={new(f): new(f) for f in service.field_captions},
                   options={new(f): o for f, o in service.options.items()}, standard_names=names)


# BC's field lengths (Code[20], Text[100]...) as $metadata shows them, from the page TSVs' AL types.
MAX_LENGTH = {(s.name, f): n for s in build_services().values() for f, n in s.max_length.items()}

"""The catalog: one declarative entry per Business Central entity the integration moves."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Optional


class Direction(str, Enum):
    TO_IPAAS = "to_ipaas"
    FROM_IPAAS = "from_ipaas"
    BOTH = "both"


@dataclass(frozen=True)
class Entity:
    """A published Business Central web service and where its records go in iPaaS.com."""

    name: str  # the asset name, in the user's words
    service: str  # the web service name published in BC (the guide's table)
    object_type: str  # Page or Query
    object_id: int
    object_name: str
    keys: tuple[str, ...]
    fields: tuple[str, ...]  # what the pipeline asks for with $select (keys included)
    ipaas_model: Optional[str]
    ipaas_table: Optional[str]
    direction: Direction
    modified_at: Optional[str] = None  # the change-date field, for incremental reads
    modified_at_is_date: bool = True  # Last_Date_Modified is a date; SystemModifiedAt a timestamp
    custom_fields: tuple[str, ...] = ()  # tenant extension fields, asked for when present
    fixed_filter: Optional[str] = None  # always applied (e.g. only orders on the order page)
    parents: tuple[str, ...] = field(default=())  # entities to load first
    description: str = ""
    # Its standard API v2.0 entity set (webhook subscriptions) and the field there that holds the page's key.
    api_entity: Optional[str] = None
    api_key_field: Optional[str] = None

    @property
    def record_keys(self) -> tuple[str, ...]:
        """The keys that name a record (Document_Type only says which kind of document a page holds)."""
        return tuple(k for k in self.keys if k != "Document_Type")

    @property
    def select(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.keys + self.fields + self.custom_fields))

    def external_id(self, record: dict) -> str:
        """The guide's external id: the BC key; a child's is `<parent>|<child>`."""
        parts = [str(record[k]) for k in self.record_keys]
        return "|".join(parts)

    def keys_from_external_id(self, external_id: str) -> dict[str, object]:
        """The record's key fields from its external id (`101005|10000` → Document_No, Line_No)."""
        named = self.record_keys
        parts = external_id.split("|")
        if len(parts) != len(named) or not all(parts):
            raise ValueError(f"{external_id!r} is not an external id of {self.service} (expected {'|'.join(named)})")
        keys: dict[str, object] = {"Document_Type": "Order"} if "Document_Type" in self.keys else {}
        for name, part in zip(named, parts):
            keys[name] = int(part) if name == "Line_No" else part
        return keys


CUSTOMER_PRICE_GROUPS = Entity(
    name="customer_price_groups",
    service="CustomerPriceGroups",
    object_type="Page",
    object_id=7,
    object_name="Customer Price Groups",
    keys=("Code",),
    fields=("Description", "Price_Includes_VAT", "Allow_Invoice_Disc", "Allow_Line_Disc"),
    ipaas_model="Customer Category",
    ipaas_table="customer category",
    direction=Direction.TO_IPAAS,
    description="Customer price groups, which become iPaaS.com customer categories.",
)

LOCATIONS = Entity(
    name="locations",
    api_entity="locations",
    api_key_field="code",
    service="Locations",
    object_type="Page",
    object_id=5703,
    object_name="Location Card",
    keys=("Code",),
    fields=(
        "Name", "Address", "Address_2", "City", "County", "Post_Code", "Country_Region_Code",
        "Contact", "Phone_No", "E_Mail", "Use_As_In_Transit",
    ),
    ipaas_model="Location",
    ipaas_table="location",
    direction=Direction.TO_IPAAS,
    description="Warehouse locations, which become iPaaS.com locations.",
)

SHIPPING_AGENTS = Entity(
    name="shipping_agents",
    service="ShippingAgents",
    object_type="Page",
    object_id=428,
    object_name="Shipping Agents",
    keys=("Code",),
    fields=("Name", "Internet_Address", "Account_No"),
    ipaas_model="Shipping Method",
    ipaas_table="shipping method",
    direction=Direction.TO_IPAAS,
    description="Shipping agents, which become iPaaS.com shipping methods.",
)

CUSTOMERS = Entity(
    name="customers",
    api_entity="customers",
    api_key_field="number",
    service="CustomerCard",
    object_type="Page",
    object_id=21,
    object_name="Customer Card",
    keys=("No",),
    fields=(
        "Name", "Name_2", "Blocked", "Last_Date_Modified", "Address", "Address_2", "City", "County",
        "Post_Code", "Country_Region_Code", "Phone_No", "MobilePhoneNo", "E_Mail", "Fax_No",
        "Home_Page", "ContactName", "Primary_Contact_No", "VAT_Registration_No", "Tax_Liable",
        "Tax_Area_Code", "Gen_Bus_Posting_Group", "Customer_Posting_Group", "Customer_Price_Group",
        "Payment_Terms_Code", "Shipping_Agent_Code", "Shipping_Agent_Service_Code", "Location_Code",
        "Partner_Type", "Currency_Code", "Credit_Limit_LCY", "Bill_to_Customer_No",
    ),
    ipaas_model="Company",
    ipaas_table="customer",
    direction=Direction.BOTH,
    modified_at="Last_Date_Modified",
    parents=("customer_price_groups",),
    description="Customers (Customer Card), which become iPaaS.com companies and customers.",
)

ITEMS = Entity(
    name="items",
    api_entity="items",
    api_key_field="number",
    service="ItemCard",
    object_type="Page",
    object_id=30,
    object_name="Item Card",
    keys=("No",),
    fields=(
        "Description", "Description_2", "Blocked", "Type", "Base_Unit_of_Measure", "Last_Date_Modified",
        "GTIN", "Item_Category_Code", "Inventory", "Net_Weight", "Gross_Weight", "Unit_Volume",
        "Unit_Cost", "Unit_Price", "Tax_Group_Code", "Gen_Prod_Posting_Group",
        "Inventory_Posting_Group", "Sales_Blocked", "Sales_Unit_of_Measure", "Vendor_No",
        "Replenishment_System",
    ),
    custom_fields=("UPC_Code", "Product_Group_Code", "CatItemGroup", "Manufacturer_Code"),
    ipaas_model="Product",
    ipaas_table="product",
    direction=Direction.BOTH,
    modified_at="Last_Date_Modified",
    description="Items (Item Card), which become iPaaS.com products.",
)

SALES_ORDERS = Entity(
    name="sales_orders",
    api_entity="salesOrders",
    api_key_field="number",
    service="SalesOrders",
    object_type="Page",
    object_id=42,
    object_name="Sales Order",
    keys=("Document_Type", "No"),
    fields=(
        "Sell_to_Customer_No", "Sell_to_Customer_Name", "Sell_to_E_Mail", "Sell_to_Phone_No",
        "Sell_to_Address", "Sell_to_Address_2", "Sell_to_City", "Sell_to_County", "Sell_to_Post_Code",
        "Sell_to_Country_Region_Code", "Order_Date", "Document_Date", "Posting_Date", "Due_Date",
        "Requested_Delivery_Date", "External_Document_No", "Your_Reference", "Status",
        "Currency_Code", "Prices_Including_VAT", "Payment_Terms_Code", "Ship_to_Code", "Ship_to_Name",
        "Ship_to_Address", "Ship_to_Address_2", "Ship_to_City", "Ship_to_County", "Ship_to_Post_Code",
        "Ship_to_Country_Region_Code", "Ship_to_Phone_No", "Ship_to_Contact", "Bill_to_Name",
        "Bill_to_Address", "Bill_to_Address_2", "Bill_to_City", "Bill_to_County", "Bill_to_Post_Code",
        "Bill_to_Country_Region_Code", "Shipment_Method_Code", "Shipping_Agent_Code",
        "Shipping_Agent_Service_Code", "Package_Tracking_No", "Location_Code", "Shipment_Date",
        "Completely_Shipped",
    ),
    ipaas_model="Transaction",
    ipaas_table="transaction",
    direction=Direction.BOTH,
    parents=("customers", "shipping_agents", "locations"),
    description="Sales orders (header), which become iPaaS.com transactions of type Order.",
)

SALES_ORDER_LINES = Entity(
    name="sales_order_lines",
    service="SalesOrderLines",
    object_type="Page",
    object_id=46,
    object_name="Sales Order Subform",
    keys=("Document_Type", "Document_No", "Line_No"),
    fields=(
        "Type", "No", "Description", "Description_2", "Variant_Code", "Location_Code", "Quantity",
        "Unit_of_Measure_Code", "Unit_Price", "Line_Discount_Percent", "Line_Discount_Amount",
        "Line_Amount", "Qty_to_Ship", "Quantity_Shipped", "Quantity_Invoiced", "Tax_Group_Code",
        "Net_Weight", "Gross_Weight", "Shipment_Date",
    ),
    ipaas_model="Transaction Line",
    ipaas_table="Transaction Line",
    direction=Direction.BOTH,
    parents=("sales_orders", "items"),
    description="Sales order lines, which become the lines of iPaaS.com transactions.",
)

INVENTORY_BY_LOCATION = Entity(
    name="inventory_by_location",
    service="Itemsbylocation",
    object_type="Query",
    object_id=2554,
    object_name="Items by Location",
    keys=("ItemNo", "LocationCode", "VariantCode"),
    fields=("UnitOfMeasureCode", "Quantity", "RemainingQuantity", "ReservedQuantity", "LocationName"),
    ipaas_model="Product Inventory",
    ipaas_table="product inventory",
    direction=Direction.TO_IPAAS,
    parents=("items", "locations"),
    description="Inventory per item and location (query Items by Location), which becomes iPaaS.com product inventory.",
)

POSTED_SALES_INVOICES = Entity(
    name="posted_sales_invoices",
    api_entity="salesInvoices",
    api_key_field="number",
    service="PostedSalesInvoices",
    object_type="Page",
    object_id=132,
    object_name="Posted Sales Invoice",
    keys=("No",),
    fields=(
        "Sell_to_Customer_No", "Sell_to_Customer_Name", "SellToEmail", "SellToPhoneNo", "Sell_to_Address",
        "Sell_to_Address_2", "Sell_to_City", "Sell_to_County", "Sell_to_Post_Code", "Sell_to_Country_Region_Code",
        "Sell_to_Contact", "Document_Date", "Posting_Date", "Due_Date", "Order_No", "External_Document_No",
        "Your_Reference", "Currency_Code", "Payment_Terms_Code", "Shipment_Date", "Location_Code",
        "Shipping_Agent_Code", "Shipping_Agent_Service_Code", "Package_Tracking_No", "Ship_to_Name",
        "Ship_to_Address", "Ship_to_Address_2", "Ship_to_City", "Ship_to_County", "Ship_to_Post_Code",
        "Ship_to_Country_Region_Code", "Ship_to_Phone_No", "Ship_to_Contact", "Bill_to_Name", "Bill_to_Address",
        "Bill_to_Address_2", "Bill_to_City", "Bill_to_County", "Bill_to_Post_Code", "Bill_to_Country_Region_Code",
        "Bill_to_Contact", "Cancelled", "Closed",
    ),
    ipaas_model="Transaction",
    ipaas_table="transaction",
    direction=Direction.TO_IPAAS,
    parents=("customers", "sales_orders", "shipping_agents"),
    description="Posted sales invoices (page 132), which become iPaaS.com transactions of type Invoice.",
)

POSTED_SALES_INVOICE_LINES = Entity(
    name="posted_sales_invoice_lines",
    service="PostedSalesInvoiceLines",
    object_type="Page",
    object_id=133,
    object_name="Posted Sales Invoice Subform",
    keys=("Document_No", "Line_No"),
    fields=(
        "Type", "No", "Description", "Description_2", "Variant_Code", "Location_Code", "Quantity",
        "Unit_of_Measure_Code", "Unit_Price", "Line_Discount_Percent", "Line_Discount_Amount", "Line_Amount",
        "Tax_Group_Code", "VAT_Percent", "Net_Weight",
    ),
    ipaas_model="Transaction Line",
    ipaas_table="Transaction Line",
    direction=Direction.TO_IPAAS,
    parents=("posted_sales_invoices", "items"),
    description="Posted sales invoice lines (page 133), which become the lines of iPaaS.com Invoice transactions.",
)

ITEM_CATEGORIES = Entity(
    name="item_categories",
    api_entity="itemCategories",
    api_key_field="code",
    service="ItemCategoryCard",
    object_type="Page",
    object_id=5733,
    object_name="Item Category Card",
    keys=("Code",),
    fields=("Description", "Parent_Category"),  # page 5730 Item Categories lacks Parent Category: the card has it
    ipaas_model="Product Category",
    ipaas_table="Product Category",
    direction=Direction.TO_IPAAS,
    description="Item categories with their parent (Item Category Card), which become iPaaS.com product categories.",
)

SHIP_TO_ADDRESSES = Entity(
    name="ship_to_addresses",
    service="ShipToAddresses",
    object_type="Page",
    object_id=300,
    object_name="Ship-to Address",
    keys=("Customer_No", "Code"),
    fields=(
        "Name", "Name_2", "Address", "Address_2", "City", "County", "Post_Code", "Country_Region_Code", "Phone_No",
        "Contact", "E_Mail", "Shipping_Agent_Code", "Location_Code", "Last_Date_Modified",
    ),
    ipaas_model="Address",
    ipaas_table="Address",
    direction=Direction.TO_IPAAS,
    # Read in full: they travel inside their customer's record, which a PUT replaces whole (no incremental read).
    parents=("customers",),
    description="Customers' ship-to addresses, which become addresses of iPaaS.com companies and customers.",
)

CONTACTS = Entity(
    name="contacts",
    api_entity="contacts",
    api_key_field="number",
    service="Contacts",
    object_type="Page",
    object_id=5050,
    object_name="Contact Card",
    keys=("No",),
    fields=(
        "Name", "Type", "Company_No", "Company_Name", "Job_Title", "IntegrationCustomerNo", "Address", "Address_2",
        "City", "County", "Post_Code", "Country_Region_Code", "Phone_No", "Mobile_Phone_No", "E_Mail",
    ),
    ipaas_model="Customer",
    ipaas_table="customer",
    direction=Direction.TO_IPAAS,
    # Read in full: its change time (LastDateTimeModified) is computed by the page and cannot be filtered on.
    parents=("customers",),
    description="Contacts (Contact Card), whose people become iPaaS.com customers related to their company.",
)

ENTITIES: tuple[Entity, ...] = (
    CUSTOMER_PRICE_GROUPS,
    LOCATIONS,
    SHIPPING_AGENTS,
    CUSTOMERS,
    ITEMS,
    SALES_ORDERS,
    SALES_ORDER_LINES,
    INVENTORY_BY_LOCATION,
    POSTED_SALES_INVOICES,
    POSTED_SALES_INVOICE_LINES,
    ITEM_CATEGORIES,
    SHIP_TO_ADDRESSES,
    CONTACTS,
)

BY_NAME: dict[str, Entity] = {e.name: e for e in ENTITIES}
# API v2.0 entity set, lower-cased (as a webhook resource may spell it) → the entity it notifies about.
BY_API_ENTITY: dict[str, Entity] = {e.api_entity.lower(): e for e in ENTITIES if e.api_entity}


def with_change_field(entity: Entity, overrides: dict[str, str]) -> Entity:
    """The entity read incrementally by a configured timestamp (e.g. SystemModifiedAt from a page extension)."""
    field_name = overrides.get(entity.name)
    if not field_name:
        return entity
    return replace(entity, modified_at=field_name, modified_at_is_date=field_name == "Last_Date_Modified",
                   fields=entity.fields + (field_name,))
BY_SERVICE: dict[str, Entity] = {e.service: e for e in ENTITIES}


def entity(name_or_service: str) -> Entity:
    """Find an entity by asset name or BC service name, with a clear error for an unknown one."""
    found = BY_NAME.get(name_or_service) or BY_SERVICE.get(name_or_service)
    if found is None:
        known = ", ".join(e.name for e in ENTITIES)
        raise KeyError(f"unknown entity {name_or_service!r}; known: {known}")
    return found

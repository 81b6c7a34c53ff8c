"""The mapping engine turns BC rows into iPaaS.com payloads, a column at a time."""

import pandas as pd

from bc_pipeline.mapping.engine import apply_collection
from bc_pipeline.mapping.registry import to_ipaas_collections

NO_LINKS = {"customer category": {"RETAIL": "7"}, "customer": {"C10000": "31"}, "product": {"10000": "5"},
            "location": {"MAIN": "2"}, "transaction": {}}


def links(table):
    return NO_LINKS.get(table, {})


def test_a_bc_customer_becomes_a_company_with_its_category_linked():
    collection = to_ipaas_collections()["company_to_ipaas"]
    frame = pd.DataFrame([
        {"No": "C10000", "Name": " O'Brien Supply ", "Name_2": "", "E_Mail": " Sales@OBrien.example ",
         "Phone_No": "", "Fax_No": "", "Home_Page": "", "VAT_Registration_No": "", "Customer_Price_Group": "RETAIL",
         "Blocked": "_blank_", "Partner_Type": "Company"},
        {"No": "C10010", "Name": "Åsa Ström", "Name_2": "", "E_Mail": "asa@example.se", "Phone_No": "",
         "Fax_No": "", "Home_Page": "", "VAT_Registration_No": "", "Customer_Price_Group": "", "Blocked": "All",
         "Partner_Type": "Person"},
    ])
    [record] = apply_collection(collection, frame, links)
    assert record.external_id == "C10000"
    assert record.payload["name"] == "O'Brien Supply"
    assert record.payload["email_address"] == "sales@obrien.example"
    assert record.payload["category_id"] == "7"
    assert record.payload["status"] == "Active"
    assert record.payload["phone_number"] is None
    assert record.match_value == "O'Brien Supply"


def test_an_item_becomes_a_product_and_empty_custom_fields_are_left_out():
    collection = to_ipaas_collections()["product_to_ipaas"]
    frame = pd.DataFrame([{
        "No": "10010", "Description": "DISC. REPLACEMENT 10039", "Description_2": "", "Type": "Service",
        "Blocked": True, "Unit_Price": 0.16, "Tax_Group_Code": "", "Net_Weight": 0, "Base_Unit_of_Measure": "EA",
        "GTIN": "", "CatItemGroup": "CLASSIC WATERMELON LED W/STAINLESS STEEL FLANGE MOUNT BEZEL",
        "UPC_Code": "760479100105", "Product_Group_Code": "BULK", "Manufacturer_Code": "",
    }])
    [record] = apply_collection(collection, frame, links)
    payload = record.payload
    assert (payload["sku"], payload["type"], payload["status"], payload["default_price"]) == (
        "10010", "Service Items", "Inactive", 0.16)
    assert payload["description"] == "DISC. REPLACEMENT 10039"
    names = [c["custom_field_name"] for c in payload["custom_fields"]]
    assert names == ["CatItemGroup", "UPC_Code", "Product_Group_Code"]


def test_inventory_is_summed_per_item_and_location_and_needs_both_links():
    collection = to_ipaas_collections()["product_inventory_to_ipaas"]
    frame = pd.DataFrame([
        {"ItemNo": "10000", "LocationCode": "MAIN", "VariantCode": "", "RemainingQuantity": 3.0},
        {"ItemNo": "10000", "LocationCode": "MAIN", "VariantCode": "RED", "RemainingQuantity": 4.0},
        {"ItemNo": "10000", "LocationCode": "", "VariantCode": "", "RemainingQuantity": 9.0},
        {"ItemNo": "99999", "LocationCode": "MAIN", "VariantCode": "", "RemainingQuantity": 1.0},
    ])
    records = {r.external_id: r for r in apply_collection(collection, frame, links)}
    assert set(records) == {"MAIN|10000", "MAIN|99999"}
    assert records["MAIN|10000"].payload == {"parent_id": "5", "location_id": "2", "qty_on_hand": 7.0,
                                             "qty_available": 7.0}
    assert "'99999' is not linked" in records["MAIN|99999"].error


def test_only_released_orders_go_with_their_lines_and_totals():
    collection = to_ipaas_collections()["sales_order_to_ipaas"]
    orders = pd.DataFrame([
        {"No": "101005", "Status": "Released", "Completely_Shipped": False, "Sell_to_Customer_No": "C10000",
         "Sell_to_E_Mail": "", "Order_Date": "2026-11-02"},
        {"No": "101006", "Status": "Open", "Completely_Shipped": False, "Sell_to_Customer_No": "C10000",
         "Sell_to_E_Mail": "", "Order_Date": "2026-11-02"},
    ])
    lines = pd.DataFrame([
        {"Document_No": "101005", "Line_No": 10000, "Type": "Item", "No": "10000", "Description": "A",
         "Quantity": 2.0, "Quantity_Shipped": 0.0, "Unit_Price": 5.0, "Line_Amount": 10.0,
         "Line_Discount_Amount": 0.0, "Line_Discount_Percent": 0.0, "Net_Weight": 1.0},
        {"Document_No": "101005", "Line_No": 20000, "Type": "_blank_", "No": "", "Description": "a comment",
         "Quantity": 0.0, "Quantity_Shipped": 0.0, "Unit_Price": 0.0, "Line_Amount": 0.0,
         "Line_Discount_Amount": 0.0, "Line_Discount_Percent": 0.0, "Net_Weight": 0.0},
        {"Document_No": "101005", "Line_No": 30000, "Type": "Item", "No": "10010", "Description": "B",
         "Quantity": 1.0, "Quantity_Shipped": 1.0, "Unit_Price": 2.5, "Line_Amount": 2.5,
         "Line_Discount_Amount": 0.0, "Line_Discount_Percent": 0.0, "Net_Weight": 0.5},
    ])
    [order] = apply_collection(collection, orders, links, {"sales_order_lines": lines})
    assert order.external_id == "101005"
    assert order.payload["customer_id"] == "31"
    assert order.payload["created_datetime"] == "2026-11-02T00:00:00Z"
    assert [ln["sequence_number"] for ln in order.payload["lines"]] == [10000, 30000]
    assert order.children["Transaction Line"] == ["101005|10000", "101005|30000"]
    assert (order.payload["subtotal"], order.payload["total_qty"]) == (12.5, 3.0)


def test_a_products_category_is_a_one_item_list_and_an_unlinked_one_is_noted_for_creation():
    collection = to_ipaas_collections()["product_to_ipaas"]
    base = {"Description": "LED", "Description_2": "", "Type": "Inventory", "Blocked": False, "Unit_Price": 1.0,
            "Tax_Group_Code": "", "Net_Weight": 0, "Base_Unit_of_Measure": "EA", "GTIN": ""}
    frame = pd.DataFrame([{**base, "No": "1", "Item_Category_Code": "LED"},
                          {**base, "No": "2", "Item_Category_Code": "CAFÉ LAMPS"},
                          {**base, "No": "3", "Item_Category_Code": ""}])
    linked = {"Product Category": {"LED": "12"}}
    first, second, third = apply_collection(collection, frame, lambda t: linked.get(t, {}))
    assert first.payload["categories"] == [{"category_id": "12"}] and first.missing_references == []
    assert second.payload["categories"] == [] and second.error is None
    assert second.missing_references == [{"field": "categories", "table": "Product Category", "key": "CAFÉ LAMPS",
                                          "error": None}]
    assert third.payload["categories"] == [] and third.missing_references == []


def test_inventory_at_an_unlinked_location_waits_with_its_error_and_the_location_to_create():
    collection = to_ipaas_collections()["product_inventory_to_ipaas"]
    frame = pd.DataFrame([{"ItemNo": "10000", "LocationCode": "O'HARE", "VariantCode": "", "RemainingQuantity": 4.0}])
    [record] = apply_collection(collection, frame, links)
    assert record.error == "LocationCode \"O'HARE\" is not linked in iPaaS.com table 'location' yet (sync it first)"
    assert record.missing_references == [{"field": "location_id", "table": "location", "key": "O'HARE",
                                          "error": record.error}]


def test_an_ipaas_records_primary_addresses_become_billing_and_shipping_columns():
    from bc_pipeline.mapping.addresses import address_columns

    record = {"addresses": [
        {"type": "Shipping", "city": "Seattle", "is_primary_shipping": False, "custom_fields": []},
        {"type": "Billing", "city": "Québec", "is_primary_billing": False},
        {"type": "Other", "city": "Tacoma", "is_primary_shipping": True},
    ]}
    columns = address_columns(record)
    assert columns["billing_address.city"] == "Québec"  # no address flagged: the first of type Billing
    assert columns["shipping_address.city"] == "Tacoma"  # the flagged one wins over the type
    assert "shipping_address.custom_fields" not in columns
    assert address_columns({"addresses": None}) == {}

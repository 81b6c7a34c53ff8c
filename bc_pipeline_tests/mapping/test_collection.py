"""Mapping collections are data: loading one checks it and points at the line of any mistake."""

import textwrap

import pytest

from bc_pipeline.mapping.collection import COLLECTIONS_DIR, CollectionError, load_collection, load_collections

VALID = """\
name: Dynamics Location Add/Update to iPaaS
direction: TO_IPAAS
source: locations
target_model: Location
table: location
external_id: "{Code}"
fields:
  name: Code
  description: {source: Name, transforms: [trim]}
"""


def _write(tmp_path, text):
    path = tmp_path / "collection.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _refusal(tmp_path, text) -> str:
    """The error a collection written from `text` is refused with."""
    with pytest.raises(CollectionError) as error:
        load_collection(_write(tmp_path, text))
    return str(error.value)


def test_the_shipped_collections_load_and_are_named_as_ipaas_names_them():
    names = set(load_collections())
    assert "Dynamics Company Add/Update to iPaaS" in names
    assert "Dynamics Sales Order Add/Update to iPaaS" in names
    assert "Dynamics Sales Invoice Add/Update to iPaaS" in names
    assert "Dynamics Product Category Add/Update to iPaaS" in names
    assert {"Dynamics Contact Add/Update to iPaaS", "Dynamics Company Relationship Add/Update to iPaaS"} <= names
    assert len([n for n in names if n.endswith("to iPaaS")]) >= 14


def test_no_stays_a_string_not_a_yaml_boolean(tmp_path):
    collection = load_collection(_write(tmp_path, VALID.replace("name: Code", "name: No").replace("locations", "items")
                                        .replace("Location", "Product").replace("{Code}", "{No}")
                                        .replace("description: {source: Name", "description: {source: Description")
                                        + "  sku: No\n  type: {value: Physical}\n  tracking_method: {value: Product}\n"
                                        "  status: {value: Active}\n"))
    assert collection.fields["sku"].source == "No"


def test_a_source_that_is_no_field_name_is_named_with_file_and_line(tmp_path):
    path = _write(tmp_path, VALID.replace("description: {source: Name,", "description: {source: Na me,"))
    with pytest.raises(CollectionError) as error:
        load_collection(path)
    assert str(error.value) == (
        "collection.yaml, line 9, fields.description: 'Na me' is not a field name of Locations "
        "(letters, digits and _, as OData names fields)"
    )


def test_a_field_the_catalog_does_not_know_is_read_and_checked_against_the_services_metadata(tmp_path):
    from bc_pipeline.catalog import LOCATIONS
    from bc_pipeline.mapping.fields import tenant_fields_by_service, with_collection_fields
    from bc_pipeline.sandbox.metadata import build_metadata
    from bc_pipeline.sandbox.schema import build_services
    from bc_pipeline.service_fields import MissingFieldsError, require_fields

    collection = load_collection(_write(tmp_path, VALID.replace("description: {source: Name,", "description: {source: Nmae,")))
    assert "Nmae" in with_collection_fields(LOCATIONS, [collection]).select
    assert "Nmae" not in with_collection_fields(LOCATIONS, []).select

    class Metadata:
        def metadata(self):
            return build_metadata(build_services(), {"Locations", "CustomerCard"}).decode()

    with pytest.raises(MissingFieldsError) as error:
        require_fields(Metadata(), tenant_fields_by_service([collection]))
    assert str(error.value).startswith(
        "Locations has no field 'Nmae' (named in collection.yaml) in Business Central's $metadata. What to do: ")
    require_fields(Metadata(), tenant_fields_by_service([load_collection(_write(tmp_path, VALID))]))  # all known


def test_an_unknown_target_field_is_named(tmp_path):
    with pytest.raises(CollectionError) as error:
        load_collection(_write(tmp_path, VALID + "  colour: Name\n"))
    assert "collection.yaml, line 10, fields.colour: Location has no field 'colour'" in str(error.value)


def test_an_unknown_transform_and_a_wrong_collision_method_are_named(tmp_path):
    text = VALID.replace("[trim]", "[shout]") + "collision: MERGE\n"
    with pytest.raises(CollectionError) as error:
        load_collection(_write(tmp_path, text))
    message = str(error.value)
    assert "line 9, fields.description.transforms" in message and "unknown transform 'shout'" in message
    assert "line 10, collision" in message


def test_a_required_ipaas_field_left_unmapped_is_named(tmp_path):
    with pytest.raises(CollectionError) as error:
        load_collection(_write(tmp_path, VALID.replace("  name: Code\n", "")))
    assert "Location requires 'name'" in str(error.value)


def test_broken_yaml_points_at_the_line(tmp_path):
    with pytest.raises(CollectionError) as error:
        load_collection(_write(tmp_path, VALID + "fields: [\n"))
    assert "collection.yaml, line" in str(error.value) and "not valid YAML" in str(error.value)


def test_a_field_with_two_origins_is_refused(tmp_path):
    with pytest.raises(CollectionError) as error:
        load_collection(_write(tmp_path, VALID.replace("name: Code", "name: {source: Code, value: X}")))
    assert "line 8, fields.name: give exactly one of source, value or template" in str(error.value)


def test_an_external_id_without_a_placeholder_is_refused_with_what_to_write(tmp_path):
    message = _refusal(tmp_path, VALID.replace('"{Code}"', '"Code"'))
    assert message == (
        "collection.yaml, line 6, external_id: 'Code' has no {placeholder}, so every record would get the same "
        'external id; write "{Code}"'
    )


def test_a_shipped_product_collection_with_a_constant_external_id_does_not_load(tmp_path):
    text = (COLLECTIONS_DIR / "product_to_ipaas.yaml").read_text().replace('external_id: "{No}"', 'external_id: "No"')
    message = _refusal(tmp_path, text)
    assert "external_id: 'No' has no {placeholder}" in message and 'write "{No}"' in message


def test_a_constant_external_id_that_names_no_field_is_told_the_entitys_key(tmp_path):
    message = _refusal(tmp_path, VALID.replace('"{Code}"', '"location"'))
    assert "external_id: 'location' has no {placeholder}" in message and 'write "{Code}"' in message


def test_a_childs_constant_or_unknown_external_id_is_refused(tmp_path):
    text = (COLLECTIONS_DIR / "sales_order_to_ipaas.yaml").read_text()
    message = _refusal(tmp_path, text.replace('"{Document_No}|{Line_No}"', '"Document_No|Line_No"'))
    assert "children.0.external_id: 'Document_No|Line_No' has no {placeholder}" in message
    assert 'write "{Document_No}|{Line_No}"' in message
    message = _refusal(tmp_path, text.replace('"{Document_No}|{Line_No}"', '"{Document_No}|{Line}"'))
    assert "children.0.external_id: 'Line' is not a field extracted from SalesOrderLines" in message


def test_a_from_ipaas_external_id_is_checked_against_the_business_central_entity(tmp_path):
    text = (COLLECTIONS_DIR / "product_from_ipaas.yaml").read_text()
    message = _refusal(tmp_path, text.replace('external_id: "{No}"', 'external_id: "No"'))
    assert "external_id: 'No' has no {placeholder}" in message
    message = _refusal(tmp_path, text.replace('external_id: "{No}"', 'external_id: "{Nr}"'))
    assert "external_id: 'Nr' is not a field of ItemCard in the catalog" in message


def test_an_external_id_placeholder_the_catalog_does_not_extract_is_named(tmp_path):
    message = _refusal(tmp_path, VALID.replace('"{Code}"', '"{Cdoe}"'))
    assert message == "collection.yaml, line 6, external_id: 'Cdoe' is not a field extracted from Locations"


def _customer_from_ipaas(**replace) -> str:
    from bc_pipeline.mapping.collection import COLLECTIONS_DIR

    text = (COLLECTIONS_DIR / "customer_from_ipaas.yaml").read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_add_defaults_are_documented_keys_set_on_add_in_their_bc_fields(tmp_path):
    collection = load_collection(_write(tmp_path, _customer_from_ipaas()))
    rules = collection.add_only_rules()
    assert {k: r.value for k, r in rules.items()} == {
        "Gen_Bus_Posting_Group": "DOMESTIC", "Customer_Posting_Group": "DOMESTIC", "Payment_Terms_Code": "30 DAYS",
        "Tax_Area_Code": "IL-1"}


@pytest.mark.parametrize("old, new, message", [
    ("  tax_area_code: IL-1", "  tax_areas: IL-1", "unknown add default 'tax_areas'; documented: gen_bus_posting_group"),
    ("payment_terms_code: 30 DAYS", "payment_terms_code: 30 days",
     "Business Central stores codes upper case; write '30 DAYS'"),
    ("payment_terms_code: 30 DAYS", "payment_terms_code: THIRTY DAYS NET",
     "longer than a Payment Terms code (at most 10)"),
    ("tax_area_code: IL-1", "tax_area_code: ''", "tax_area_code is a Tax Area code: a non-empty text"),
    ("tax_area_code: IL-1", "tax_area_code: 12", "tax_area_code is a Tax Area code"),
])
def test_a_wrong_add_default_is_refused_with_its_line(tmp_path, old, new, message):
    refusal = _refusal(tmp_path, _customer_from_ipaas(**{old: new}))
    assert message in refusal and "collection.yaml, line" in refusal and "add_defaults" in refusal


def test_an_add_default_set_twice_and_add_defaults_on_a_to_ipaas_collection_are_refused(tmp_path):
    twice = _customer_from_ipaas(**{"add_defaults:": "add_only_fields:\n  Tax_Area_Code: {value: GA-1}\nadd_defaults:"})
    assert "Tax_Area_Code is set by add_defaults.tax_area_code: set it in one place" in _refusal(tmp_path, twice)
    to_ipaas = VALID + "add_defaults: {payment_terms_code: 30 DAYS}\n"
    assert "add_defaults is for FROM_IPAAS collections" in _refusal(tmp_path, to_ipaas)


def test_from_ipaas_reads_billing_and_shipping_address_fields_and_refuses_unknown_ones(tmp_path):
    base = ("name: Dynamics Company Add/Update From iPaaS\ndirection: FROM_IPAAS\nsource: Company\n"
            "target_model: customers\ntable: customer\nexternal_id: \"{No}\"\nfields:\n  Name: name\n")
    collection = load_collection(_write(tmp_path, base + "  City: billing_address.city\n"))
    assert collection.fields["City"].source == "billing_address.city"
    assert "Company has no field 'billing_address.town'" in _refusal(tmp_path, base + "  City: billing_address.town\n")


def test_children_filling_one_list_must_share_their_link_table(tmp_path):
    text = open(COLLECTIONS_DIR / "company_to_ipaas.yaml", encoding="utf-8").read()
    broken = text.replace("    table: Address\n    parent_key: No\n    child_key: Customer_No",
                          "    table: Transaction Address\n    parent_key: No\n    child_key: Customer_No")
    assert "must share one table" in _refusal(tmp_path, broken)


def test_what_identifies_a_child_must_be_mapped(tmp_path):
    company = open(COLLECTIONS_DIR / "company_to_ipaas.yaml", encoding="utf-8").read()
    assert load_collections()["Dynamics Company Add/Update to iPaaS"].children[0].identity_fields == (
        "type", "is_primary_billing")
    message = _refusal(tmp_path, company.replace("identified_by: [type, is_primary_billing]",
                                                 "identified_by: [type, is_primary]"))
    assert "identified_by: 'is_primary' is not one of the child's fields" in message


def test_what_identifies_a_record_under_its_parent_must_be_mapped_and_needs_the_parent(tmp_path):
    tracking = open(COLLECTIONS_DIR / "transaction_tracking_to_ipaas.yaml", encoding="utf-8").read()
    assert "identified_by 'cost' must be one of the mapped fields" in _refusal(
        tmp_path, tracking.replace("identified_by: tracking_number", "identified_by: cost"))
    assert "identified_by is for records written under a parent" in _refusal(
        tmp_path, tracking.replace("parent: {table: transaction, key: No}\n", ""))

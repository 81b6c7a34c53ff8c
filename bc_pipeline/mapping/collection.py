"""Mapping collections: YAML files read, validated against the catalog and the iPaaS.com model, with line numbers."""

from __future__ import annotations

import os
import re
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bc_pipeline.catalog import BY_NAME, Entity
from bc_pipeline.ipaas_models import MODEL_FIELDS, REQUIRED_FIELDS
from bc_pipeline.mapping.add_defaults import ADD_DEFAULTS, check_add_defaults
from bc_pipeline.mapping.addresses import ADDRESS_ROLES

COLLECTIONS_DIR = Path(__file__).parent / "collections"
COLLECTIONS_DIR_VARIABLE = "BC_PIPELINE_COLLECTIONS_DIR"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")  # dots: FROM iPaaS `{billing_address.city}`
# A BC field the catalog does not know is a tenant (extension) field: read because a collection names it, and
# checked against the service's $metadata when Business Central is reached (extraction, writing, doctor).
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
SIMPLE_TRANSFORMS = ("trim", "upper", "lower", "title", "empty_as_null", "first_word", "after_first_word", "not")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. BC's `No` (the key of most pages) must stay a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class CollectionError(ValueError):
    """A mapping collection that cannot be used; the message names file, line, field and problem."""


class Direction(str, Enum):
    TO_IPAAS = "TO_IPAAS"
    FROM_IPAAS = "FROM_IPAAS"


class Collision(str, Enum):
    """What to do when a record to create already exists in the target (iPaaS SDK CollisionHandlerSettings)."""

    ERROR = "ERROR"
    REMAP_AND_LINK = "REMAP_AND_LINK"
    UPDATE_AND_LINK = "UPDATE_AND_LINK"
    UPDATE_AND_NO_LINK = "UPDATE_AND_NO_LINK"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Reference(_Strict):
    """The value is a source key whose linked iPaaS id (in `table`) is what is written."""

    table: str
    required: bool = False
    # TO iPaaS: a key not linked yet is first created (or linked) through the collection loading `table`, with
    # its find-before-create, then this record is sent with its id (iPaaS.com's own integration does so for
    # inventory's location; a category's parent).
    create_missing: bool = False


Transform = Union[str, dict[str, Any]]


class FieldRule(_Strict):
    """Where a target field's value comes from, and how it is shaped on the way."""

    source: Optional[str] = None
    value: Any = None
    template: Optional[str] = None
    transforms: list[Transform] = Field(default_factory=list)
    lookup: Optional[dict[Any, Any]] = None
    lookup_default: Any = None
    reference: Optional[Reference] = None
    default: Any = None
    type: Optional[str] = None
    # The value becomes a one-item list of objects, e.g. a product's `categories: [{category_id: 12}]`; [] when empty.
    as_list_item: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `name: Code` is short for `name: {source: Code}`.
        if isinstance(data, str):
            return {"source": data}
        return data

    @model_validator(mode="after")
    def _one_origin(self) -> "FieldRule":
        origins = [o for o in (self.source, self.template) if o is not None] + ([1] if "value" in self.model_fields_set else [])
        if len(origins) != 1:
            raise ValueError("give exactly one of source, value or template")
        return self

    @field_validator("transforms")
    @classmethod
    def _known_transforms(cls, transforms: list[Transform]) -> list[Transform]:
        for t in transforms:
            if isinstance(t, str):
                if t not in SIMPLE_TRANSFORMS:
                    raise ValueError(f"unknown transform {t!r}; known: {', '.join(SIMPLE_TRANSFORMS)}, truncate, date_format, round")
            elif isinstance(t, dict) and len(t) == 1:
                (name, arg), = t.items()
                if name == "truncate" and not (isinstance(arg, int) and arg > 0):
                    raise ValueError("truncate takes a positive number of characters")
                if name == "round" and not (isinstance(arg, int) and arg >= 0):
                    raise ValueError("round takes a number of decimals")
                if name == "date_format" and not isinstance(arg, str):
                    raise ValueError("date_format takes a strftime pattern such as '%Y-%m-%d'")
                if name not in ("truncate", "round", "date_format"):
                    raise ValueError(f"unknown transform {name!r}")
            else:
                raise ValueError(f"a transform is a name or a one-key mapping, got {t!r}")
        return transforms

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and value not in ("string", "number", "integer", "boolean", "datetime", "date"):
            raise ValueError("type is one of string, number, integer, boolean, date, datetime")
        return value

    def source_fields(self) -> list[str]:
        if self.source:
            return [self.source]
        if self.template:
            return PLACEHOLDER.findall(self.template)
        return []


class CustomFieldRule(FieldRule):
    custom_field_name: str


class FilterRule(_Strict):
    """Keep a record only when `field` passes the test; several rules must all pass."""

    field: str
    equals: Any = None
    not_equals: Any = None
    in_: Optional[list[Any]] = Field(None, alias="in")
    not_in: Optional[list[Any]] = None
    not_empty: Optional[bool] = None

    @model_validator(mode="after")
    def _one_test(self) -> "FilterRule":
        tests = [k for k in ("equals", "not_equals", "in_", "not_in", "not_empty") if getattr(self, k) is not None]
        if len(tests) != 1:
            raise ValueError("give exactly one of equals, not_equals, in, not_in, not_empty")
        return self


class Aggregate(_Strict):
    """Rows that share `by` become one (e.g. inventory per item and location over lots and variants)."""

    by: list[str]
    sum: list[str] = Field(default_factory=list)


class Child(_Strict):
    """Records of another entity nested in the parent's payload (e.g. a transaction's lines)."""

    name: str
    source: str
    model: str
    table: Optional[str] = None
    parent_key: str
    child_key: str
    external_id: str
    # Fields of the child that, with its parent's link, identify it (a line's sequence_number; a card's address by
    # type and is_primary_billing): such children are not linked by a request each; their links travel in the
    # parent's create where iPaaS.com takes them.
    identified_by: Optional[Union[str, list[str]]] = None
    filter: list[FilterRule] = Field(default_factory=list)
    fields: dict[str, FieldRule]
    custom_fields: list[CustomFieldRule] = Field(default_factory=list)

    @property
    def identity_fields(self) -> tuple[str, ...]:
        """The fields named by identified_by, () when the child is linked by its external id."""
        if self.identified_by is None:
            return ()
        return (self.identified_by,) if isinstance(self.identified_by, str) else tuple(self.identified_by)

    @model_validator(mode="after")
    def _identity_is_mapped(self) -> "Child":
        if self.identified_by is not None and not self.identity_fields:
            raise ValueError("identified_by: name at least one of the child's fields")
        for name in self.identity_fields:
            if name not in self.fields:
                raise ValueError(f"identified_by: {name!r} is not one of the child's fields ({', '.join(self.fields)})")
        return self


class Parent(_Strict):
    """The record is written under a parent (e.g. tracking under its transaction)."""

    table: str
    key: str


class MappingCollection(_Strict):
    name: str
    description: str = ""
    direction: Direction
    source: str
    target_model: str
    table: str
    external_id: str
    match_on: Optional[str] = None
    collision: Collision = Collision.UPDATE_AND_LINK
    parent: Optional[Parent] = None
    # With `parent`: the field that, with the parent's link, identifies the record (a tracking number): it is found
    # by that field among its parent's children, and not linked by a request of its own.
    identified_by: Optional[str] = None
    filter: list[FilterRule] = Field(default_factory=list)
    aggregate: Optional[Aggregate] = None
    fields: dict[str, FieldRule]
    custom_fields: list[CustomFieldRule] = Field(default_factory=list)
    children: list[Child] = Field(default_factory=list)
    sums_from_children: dict[str, str] = Field(default_factory=dict)
    # FROM_IPAAS only: BC fields set when the record is created and left alone on update.
    add_only_fields: dict[str, FieldRule] = Field(default_factory=dict)
    # FROM_IPAAS only: the documented setup codes a new BC record gets (mapping/add_defaults.py), e.g.
    # payment_terms_code: 30 DAYS; checked here for shape and by `bc-pipeline doctor` against the company.
    add_defaults: dict[str, Any] = Field(default_factory=dict)
    # FROM_IPAAS only: an unlinked iPaaS.com record whose value of this field equals an existing BC record's key
    # (e.g. `id` and a customer's No) is linked to it instead of creating another.
    link_when_key_equals: Optional[str] = None
    after: list[str] = Field(default_factory=list)  # collections (by name) to load first, beyond references
    # TO_IPAAS only: update records another collection created and linked (never create); an unlinked one waits.
    update_only: bool = False
    source_file: Optional[str] = Field(None, exclude=True)

    @property
    def match_field(self) -> Optional[str]:
        """The field an unlinked record is looked for by before it is created: match_on, else identified_by."""
        return self.match_on or self.identified_by

    @property
    def slug(self) -> str:
        """`company_to_ipaas` for "Dynamics Company Add/Update to iPaaS": the asset name."""
        words = re.sub(r"^dynamics\s+|add/update\s+", "", self.name.lower())
        return re.sub(r"[^a-z0-9]+", "_", words).strip("_")

    @property
    def entity(self) -> Entity:
        """The Business Central entity read (TO iPaaS) or written (FROM iPaaS)."""
        return BY_NAME[self.source if self.direction is Direction.TO_IPAAS else self.target_model]

    @property
    def source_entities(self) -> list[str]:
        """TO iPaaS: the catalog entities the collection reads, its own source first, then its children's."""
        return list(dict.fromkeys([self.source, *(child.source for child in self.children)]))

    def add_only_rules(self) -> dict[str, FieldRule]:
        """What a create sets beyond `fields`: add_only_fields, then each add default in its BC field."""
        specs = ADD_DEFAULTS.get(self.target_model, {})
        defaults = {specs[k].field: FieldRule(value=v) for k, v in self.add_defaults.items() if k in specs}
        return {**self.add_only_fields, **defaults}

    def referenced_tables(self) -> set[str]:
        tables = {r.reference.table for r in self._all_rules() if r.reference}
        if self.parent:
            tables.add(self.parent.table)
        return tables

    def _all_rules(self) -> list[FieldRule]:
        rules: list[FieldRule] = list(self.fields.values()) + list(self.custom_fields) + list(self.add_only_fields.values())
        for child in self.children:
            rules += list(child.fields.values()) + list(child.custom_fields)
        return rules


def _check_external_id(template: str, entity: Entity, where: tuple, field_of: str) -> list[tuple[tuple, str]]:
    """An external id must differ per record: without a placeholder every record would share one."""
    names = PLACEHOLDER.findall(template)
    if not names:
        return [(where, f"{template!r} has no {{placeholder}}, so every record would get the same external id; "
                        f'write "{_suggested_external_id(template, entity)}"')]
    if entity.object_type == "Query":
        return []  # a query's columns are the tenant's own: checked against its $metadata when BC is reached
    return [(where, f"{name!r} is not a field {field_of}") for name in names if name not in entity.select]


def _suggested_external_id(template: str, entity: Entity) -> str:
    """The fields the user named, in braces; else the entity's key, as the guide builds external ids."""
    parts = [p.strip() for p in template.split("|")]
    if not all(p in entity.select for p in parts):
        parts = list(entity.record_keys)
    return "|".join(f"{{{p}}}" for p in parts)


def _is_address_field(model: str, source: str) -> bool:
    """`billing_address.city`, `shipping_address.postal_code`: a field of the record's primary address of that role."""
    role, _, name = source.partition(".")
    address_model = "Transaction Address" if model == "Transaction" else "Address"
    return role in ADDRESS_ROLES and "addresses" in MODEL_FIELDS[model] and name in MODEL_FIELDS[address_model]


def _check_from_ipaas(c: MappingCollection) -> list[tuple[tuple, str]]:
    """FROM iPaaS: sources are iPaaS.com fields (or `custom_fields.<name>`), targets are the BC page's fields."""
    problems: list[tuple[tuple, str]] = []
    if c.source not in MODEL_FIELDS:
        return [(("source",), f"unknown iPaaS.com model {c.source!r}; known: {', '.join(MODEL_FIELDS)}")]
    entity = BY_NAME.get(c.target_model)
    if entity is None:
        return [(("target_model",), f"unknown Business Central entity {c.target_model!r}; known: {', '.join(BY_NAME)}")]

    def check(rules: dict[str, FieldRule], model: str, target: Entity, where: tuple) -> None:
        for bc_field, rule in rules.items():
            if bc_field not in target.select and not FIELD_NAME.fullmatch(bc_field):
                problems.append((where + (bc_field,), f"{bc_field!r} is not a field name of {target.service} "
                                                      "(letters, digits and _, as OData names fields)"))
            for f in rule.source_fields():
                if f not in MODEL_FIELDS[model] and f not in ("id", "tracking_guid") and not f.startswith("custom_fields.") \
                        and not _is_address_field(model, f):
                    problems.append((where + (bc_field,), f"{model} has no field {f!r}"))

    check(c.fields, c.source, entity, ("fields",))
    check(c.add_only_fields, c.source, entity, ("add_only_fields",))
    if c.add_defaults:
        problems += [(("add_defaults",) + ((key,) if key else ()), message)
                     for key, message in check_add_defaults(c.target_model, c.add_defaults)]
        specs = ADD_DEFAULTS.get(c.target_model, {})
        for key in c.add_defaults:
            if key in specs and specs[key].field in c.add_only_fields:
                problems.append((("add_only_fields", specs[key].field),
                                 f"{specs[key].field} is set by add_defaults.{key}: set it in one place"))
    if c.link_when_key_equals and c.link_when_key_equals not in MODEL_FIELDS[c.source] + ("id",):
        problems.append((("link_when_key_equals",), f"{c.source} has no field {c.link_when_key_equals!r}"))
    if c.link_when_key_equals and len(entity.record_keys) != 1:
        problems.append((("link_when_key_equals",), f"{entity.service} has no single key to compare with"))
    problems += _check_external_id(c.external_id, entity, ("external_id",), f"of {entity.service} in the catalog")
    for i, rule in enumerate(c.filter):
        if rule.field not in MODEL_FIELDS[c.source]:
            problems.append((("filter", i, "field"), f"{c.source} has no field {rule.field!r}"))
    for i, child in enumerate(c.children):
        child_entity = BY_NAME.get(child.model)
        if child_entity is None or child.source not in MODEL_FIELDS:
            problems.append((("children", i), "a child maps an iPaaS.com model (source) to a BC entity (model)"))
            continue
        check(child.fields, child.source, child_entity, ("children", i, "fields"))
        problems += _check_external_id(child.external_id, child_entity, ("children", i, "external_id"),
                                       f"of {child_entity.service} in the catalog")
    return problems


def _check_against_catalog(c: MappingCollection) -> list[tuple[tuple, str]]:
    """Problems as (location in the YAML, message): fields the catalog does not extract, unknown targets."""
    if c.direction is Direction.FROM_IPAAS:
        return _check_from_ipaas(c)
    problems: list[tuple[tuple, str]] = []
    for name in ("add_only_fields", "add_defaults", "link_when_key_equals"):
        if getattr(c, name):
            problems.append(((name,), f"{name} is for FROM_IPAAS collections (what a new BC record gets)"))
    entity = BY_NAME.get(c.source)
    if entity is None:
        return [(("source",), f"unknown source entity {c.source!r}; known: {', '.join(BY_NAME)}")]
    known_targets = MODEL_FIELDS.get(c.target_model)
    if known_targets is None:
        return [(("target_model",), f"unknown iPaaS.com model {c.target_model!r}; known: {', '.join(MODEL_FIELDS)}")]

    def readable(name: str, entity: Entity, where: tuple) -> None:
        if name not in entity.select and not FIELD_NAME.fullmatch(name):
            problems.append((where, f"{name!r} is not a field name of {entity.service} "
                                    "(letters, digits and _, as OData names fields)"))

    def check_rules(rules: dict[str, FieldRule], entity: Entity, model: str, where: tuple) -> None:
        for target, rule in rules.items():
            if target not in MODEL_FIELDS[model]:
                problems.append((where + (target,), f"{model} has no field {target!r}"))
            for f in rule.source_fields():
                readable(f, entity, where + (target,))

    check_rules(c.fields, entity, c.target_model, ("fields",))
    for i, cf in enumerate(c.custom_fields):
        for f in cf.source_fields():
            readable(f, entity, ("custom_fields", i))
    problems += _check_external_id(c.external_id, entity, ("external_id",), f"extracted from {entity.service}")
    for i, rule in enumerate(c.filter):
        readable(rule.field, entity, ("filter", i, "field"))
    for required in () if c.update_only else REQUIRED_FIELDS.get(c.target_model, ()):
        if required not in c.fields:
            problems.append((("fields",), f"{c.target_model} requires {required!r}; map it"))
    if c.match_on and c.match_on not in c.fields:
        problems.append((("match_on",), f"match_on {c.match_on!r} must be one of the mapped fields"))
    if c.identified_by is not None and c.parent is None:
        problems.append((("identified_by",), "identified_by is for records written under a parent (parent:), which "
                                             "identifies them with the field"))
    elif c.identified_by is not None and c.identified_by not in c.fields:
        problems.append((("identified_by",), f"identified_by {c.identified_by!r} must be one of the mapped fields"))
    tables_of: dict[str, Optional[str]] = {}
    for i, child in enumerate(c.children):
        if tables_of.setdefault(child.name, child.table) != child.table:
            problems.append((("children", i, "table"), f"children filling {child.name!r} must share one table "
                                                        f"({tables_of[child.name]!r}), so each keeps its link"))
        child_entity = BY_NAME.get(child.source)
        if child_entity is None:
            problems.append((("children", i, "source"), f"unknown source entity {child.source!r}"))
            continue
        if child.model not in MODEL_FIELDS:
            problems.append((("children", i, "model"), f"unknown iPaaS.com model {child.model!r}"))
            continue
        check_rules(child.fields, child_entity, child.model, ("children", i, "fields"))
        problems += _check_external_id(child.external_id, child_entity, ("children", i, "external_id"),
                                       f"extracted from {child_entity.service}")
    return problems


def _locate(node: yaml.Node, path: tuple) -> Optional[int]:
    """The 1-based line of the deepest YAML node on `path`."""
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part) or (part == "in_" and key.value == "in"):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_collection(path: Path) -> MappingCollection:
    """Read and validate one collection; every problem is reported with file, line and field."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise CollectionError(f"{path.name}, {where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or node is None:
        raise CollectionError(f"{path.name}, line 1: a mapping collection is a YAML mapping (name, direction, source, …)")
    try:
        collection = MappingCollection.model_validate({**data, "source_file": str(path)})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "str", "dict["))))
            line = _locate(node, loc)
            field = ".".join(str(p) for p in loc) or "(collection)"
            lines.append(f"{path.name}, line {line}, {field}: {error['msg'].removeprefix('Value error, ')}")
        raise CollectionError("\n".join(lines)) from None
    problems = _check_against_catalog(collection)
    if problems:
        raise CollectionError(
            "\n".join(f"{path.name}, line {_locate(node, loc)}, {'.'.join(map(str, loc))}: {msg}" for loc, msg in problems)
        )
    return collection


def user_collections_dir() -> Optional[Path]:
    """BC_PIPELINE_COLLECTIONS_DIR: a folder of the user's own collection files (e.g. with custom fields)."""
    value = os.environ.get(COLLECTIONS_DIR_VARIABLE, "").strip()
    return Path(value) if value else None


def load_collections(directory: Path = COLLECTIONS_DIR, overrides: Optional[Path] = None) -> dict[str, MappingCollection]:
    """Every collection in a folder, by name; names must be unique. A file in `overrides` replaces the shipped
    file of the same file name; its other files are added."""
    found: dict[str, MappingCollection] = {}
    errors = []
    paths = {p.name: p for p in sorted(Path(directory).glob("*.yaml"))}
    if overrides is not None:
        if not Path(overrides).is_dir():
            raise CollectionError(f"{COLLECTIONS_DIR_VARIABLE}={str(overrides)!r} is not a folder of collection files")
        paths.update({p.name: p for p in sorted(Path(overrides).glob("*.yaml"))})
    for _, path in sorted(paths.items()):
        try:
            collection = load_collection(path)
        except CollectionError as exc:
            errors.append(str(exc))
            continue
        if collection.name in found:
            errors.append(f"{path.name}: the name {collection.name!r} is used by another collection too")
        found[collection.name] = collection
    if errors:
        raise CollectionError("\n".join(errors))
    return found

"""Validation shared by the webhook receiver and Manual Sync: scopes, ids and collections → inbox requests."""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from bc_pipeline.catalog import BY_API_ENTITY
from bc_pipeline.mapping.collection import COLLECTIONS_DIR, load_collections, user_collections_dir
from bc_pipeline.state.inbox import MAX_ID_LENGTH, NewRequest

SYSTEM = "MSD 365"  # the guide's Manual Sync "System" field for this integration
ACTIONS = ("created", "updated", "deleted", "initialize", "poll", "bulk")
ID_LESS_ACTIONS = ("initialize", "poll")  # the whole entity: no id needed
MAX_NOTIFICATIONS = 3000  # iPaaS.com Manual Sync: up to 3,000 ids per request
MAX_RESOURCE_LENGTH = 2048
_REPORTED_PROBLEMS = 50

# A scope's model (`<model>/<action>`) → its default collections: (TO iPaaS, FROM iPaaS). A notification
# with `external_id` (a BC key) goes to the first, one with `id` (an iPaaS.com id) to the second.
SCOPE_COLLECTIONS: dict[str, tuple[Optional[str], Optional[str]]] = {
    "company": ("Dynamics Company Add/Update to iPaaS", "Dynamics Company Add/Update From iPaaS"),
    "company/relationship": ("Dynamics Company Relationship Add/Update to iPaaS", None),
    "contact": ("Dynamics Contact Add/Update to iPaaS", None),
    "customer": ("Dynamics Customer Add/Update to iPaaS", "Dynamics Customer Add/Update From iPaaS"),
    "customer/category": ("Dynamics Customer Category Add/Update to iPaaS", None),
    "product": ("Dynamics Product Add/Update to iPaaS", "Dynamics Product Add/Update From iPaaS"),
    "product/inventory": ("Dynamics Product Inventory Add/Update to iPaaS", None),
    "product/category": ("Dynamics Product Category Add/Update to iPaaS", None),
    "transaction": ("Dynamics Sales Order Add/Update to iPaaS", "Dynamics Sales Order Add/Update From iPaaS"),
    "transaction/tracking": ("Dynamics Transaction Tracking Add/Update to iPaaS", None),
    "invoice": ("Dynamics Sales Invoice Add/Update to iPaaS", None),
    "invoice/tracking": ("Dynamics Sales Invoice Tracking Add/Update to iPaaS", None),
    "location": ("Dynamics Location Add/Update to iPaaS", None),
    "shipping method": ("Dynamics Shipping Method Add/Update to iPaaS", None),
    "shippingmethod": ("Dynamics Shipping Method Add/Update to iPaaS", None),
}

BC_CHANGE_TYPES = ("created", "updated", "deleted", "collection")
_BC_RESOURCE = re.compile(r"companies\(([^()/]*)\)/([A-Za-z][A-Za-z0-9]*)(?:\(([^()/]*)\))?/?$")


@dataclass(frozen=True)
class Problem:
    """What is wrong with one notification (or the body, when index is None)."""

    index: Optional[int]
    field: str
    message: str

    def __str__(self) -> str:
        where = f"notifications[{self.index}]." if self.index is not None else ""
        return f"{where}{self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class NotificationError(ValueError):
    """A request that is not valid; nothing of it may be recorded. Lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = problems[:_REPORTED_PROBLEMS]
        more = f"\n  … and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__("\n".join(f"  - {p}" for p in shown) + more)


class _Invalid(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


# -- collections ------------------------------------------------------------------------------

def _slug(name: str) -> str:
    """`customer_to_ipaas` for "Dynamics Customer Add/Update to iPaaS" (as MappingCollection.slug)."""
    words = re.sub(r"^dynamics\s+|add/update\s+", "", name.lower())
    return re.sub(r"[^a-z0-9]+", "_", words).strip("_")


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class KnownCollections:
    """The collections requests may target: name → direction ("TO_IPAAS" or "FROM_IPAAS")."""

    directions: Mapping[str, str]
    # TO-iPaaS collections: name → (the catalog entity it reads, its iPaaS.com model)
    readers: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    def resolve(self, name: str) -> Optional[str]:
        """The exact collection name for a name given in any case, or its slug (`customer_to_ipaas`)."""
        if name in self.directions:
            return name
        folded = _fold(name)
        for known in self.directions:
            if _fold(known) == folded or _slug(known) == folded:
                return known
        return None

    def reading(self, entity: str) -> list[str]:
        """The TO-iPaaS collections whose records come from a catalog entity (a BC customer: companies and
        customers; an order: orders and their tracking)."""
        return [name for name, (source, _) in self.readers.items() if source == entity]

    def scope_model(self, collection: str) -> str:
        """The scope model of a collection's requests: its default model ("customer"), else its iPaaS.com model."""
        return scope_model_for(collection) or self.readers.get(collection, ("", collection))[1].lower()

    def describe(self) -> str:
        return "; ".join(sorted(self.directions))


@functools.lru_cache(maxsize=8)
def _known(directory: str, overrides: str = "") -> KnownCollections:
    loaded = load_collections(Path(directory), Path(overrides) if overrides else None)
    return KnownCollections({name: c.direction.value for name, c in loaded.items()},
                            # update_only collections (company relationships) complete records others create:
                            # they travel by the schedule, not one notification at a time.
                            {name: (c.source, c.target_model) for name, c in loaded.items()
                             if c.direction.value == "TO_IPAAS" and not c.update_only})


def known_collections(directory: Optional[Path] = None) -> KnownCollections:
    """The mapping collections' names and directions (with the user's BC_PIPELINE_COLLECTIONS_DIR, by default)."""
    if directory is None:
        return _known(str(COLLECTIONS_DIR.resolve()), str(user_collections_dir() or ""))
    return _known(str(Path(directory).resolve()))


def scope_model_for(collection: str) -> Optional[str]:
    """The scope model whose default collection this is (e.g. "customer"), or None."""
    for model, names in SCOPE_COLLECTIONS.items():
        if collection in names:
            return model
    return None


# -- fields -----------------------------------------------------------------------------------

def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_id(value: Any, field: str) -> str:
    """A record id as received: a non-empty string of at most 255 characters without control characters.

    It is kept verbatim (quotes and OData syntax included); it is a literal, escaped where it is used.
    """
    if not isinstance(value, str):
        raise _Invalid(field, f"must be a string, got {_json_type(value)}")
    if not value.strip():
        raise _Invalid(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise _Invalid(field, f"is {len(value)} characters long; at most {MAX_ID_LENGTH}")
    for position, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise _Invalid(field, f"contains a control character (U+{ord(char):04X}) at position {position}")
    return value


def parse_scope(value: Any, field: str = "scope") -> tuple[str, str]:
    """`customer/created` → ("customer", "created"); the model may have a slash (`customer/category/poll`)."""
    if not isinstance(value, str):
        raise _Invalid(field, f"must be a string like customer/created, got {_json_type(value)}")
    text = value.strip().lower()
    if "/" not in text:
        raise _Invalid(field, f"must be <model>/<action> like customer/created, got {value[:100]!r}")
    model, action = text.rsplit("/", 1)
    model = " ".join(model.split())
    if action not in ACTIONS:
        raise _Invalid(field, f"unknown action {action[:40]!r} in {value[:100]!r}; known: {', '.join(ACTIONS)}")
    if model not in SCOPE_COLLECTIONS:
        raise _Invalid(field, f"unknown model {model[:60]!r} in {value[:100]!r}; known: {', '.join(SCOPE_COLLECTIONS)}")
    return model, action


def _optional(notification: Mapping[str, Any], field: str) -> Optional[str]:
    value = notification.get(field)
    return None if value is None else check_id(value, field)


def to_request(notification: Any, *, source: str, known: KnownCollections, priority: int = 0) -> NewRequest:
    """One notification (`scope`, `external_id` or `id`, optional `collection`) as an inbox request."""
    if not isinstance(notification, dict):
        raise _Invalid("(notification)", f"must be an object, got {_json_type(notification)}")
    if "scope" not in notification:
        raise _Invalid("scope", "is required, e.g. customer/created")
    model, action = parse_scope(notification["scope"])
    external_id = _optional(notification, "external_id")
    ipaas_id = _optional(notification, "id")

    named = notification.get("collection")
    if named is not None:
        if not isinstance(named, str):
            raise _Invalid("collection", f"must be a string, got {_json_type(named)}")
        collection = known.resolve(named)
        if collection is None:
            raise _Invalid("collection", f"unknown mapping collection {named[:120]!r}; known: {known.describe()}")
        direction = known.directions[collection]
        if direction == "TO_IPAAS" and external_id is None and ipaas_id is not None:
            raise _Invalid("id", f"{collection!r} sends to iPaaS.com: give external_id (the Business Central key), "
                                 "not id (an iPaaS.com id)")
        if direction == "FROM_IPAAS" and ipaas_id is None and external_id is not None:
            raise _Invalid("external_id", f"{collection!r} reads from iPaaS.com: give id (the iPaaS.com id), "
                                          "not external_id")
    else:
        if external_id is not None and ipaas_id is not None:
            raise _Invalid("id", "give external_id (a Business Central key, to iPaaS) or id (an iPaaS.com id, "
                                 "from iPaaS), not both — or name the collection")
        direction = "FROM_IPAAS" if ipaas_id is not None else "TO_IPAAS"
        to_ipaas, from_ipaas = SCOPE_COLLECTIONS[model]
        collection = to_ipaas if direction == "TO_IPAAS" else from_ipaas
        if collection is None:
            raise _Invalid("id", f"there is no collection from iPaaS.com for {model!r}; "
                                 "give external_id (a Business Central key) instead")
        if collection not in known.directions:
            raise _Invalid("scope", f"the collection for {model!r}, {collection!r}, is not configured")

    the_id = external_id if direction == "TO_IPAAS" else ipaas_id
    if the_id is None and action not in ID_LESS_ACTIONS:
        wanted = "external_id (a Business Central key)" if direction == "TO_IPAAS" else "id (an iPaaS.com id)"
        raise _Invalid("external_id" if direction == "TO_IPAAS" else "id",
                       f"{wanted} is required for {action!r} (only {' and '.join(ID_LESS_ACTIONS)} may omit it)")
    return NewRequest(
        source=source,
        system=SYSTEM,
        collection=collection,
        direction=direction,
        scope=f"{model}/{action}",
        action=action,
        external_id=the_id if direction == "TO_IPAAS" else None,
        ipaas_id=the_id if direction == "FROM_IPAAS" else None,
        priority=priority,
    )


def to_requests(notifications: Any, *, source: str, known: KnownCollections, priority: int = 0,
                field: str = "notifications") -> list[NewRequest]:
    """Every notification as a request, or NotificationError listing each bad one (all or nothing)."""
    if not isinstance(notifications, list):
        raise NotificationError([Problem(None, field, f"must be a list of notifications, got {_json_type(notifications)}")])
    if not 1 <= len(notifications) <= MAX_NOTIFICATIONS:
        raise NotificationError([Problem(None, field, f"must hold 1 to {MAX_NOTIFICATIONS:,} notifications, "
                                                      f"got {len(notifications):,}")])
    requests: list[NewRequest] = []
    problems: list[Problem] = []
    for index, notification in enumerate(notifications):
        try:
            requests.append(to_request(notification, source=source, known=known, priority=priority))
        except _Invalid as exc:
            problems.append(Problem(index, exc.field, exc.message))
    if problems:
        raise NotificationError(problems)
    return requests


def ipaas_requests(body: Any, known: KnownCollections) -> list[NewRequest]:
    """An iPaaS.com-style webhook body `{"notifications": [...]}` (top-level id/attempt are ignored)."""
    if not isinstance(body, dict):
        raise NotificationError([Problem(None, "body", f"must be a JSON object with a notifications list, "
                                                       f"got {_json_type(body)}")])
    if "notifications" not in body:
        raise NotificationError([Problem(None, "notifications", "is required")])
    return to_requests(body["notifications"], source="ipaas_webhook", known=known)


# -- Business Central API webhooks ---------------------------------------------------------------

def bc_notifications(body: Any) -> list[dict[str, Any]]:
    """The `value` list of a BC notification body, each an object; NotificationError otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise NotificationError([Problem(None, "value", "the body must be a JSON object with a value list")])
    items = body["value"]
    if not items:
        raise NotificationError([Problem(None, "value", "must hold at least one notification")])
    bad = [Problem(i, "(notification)", f"must be an object, got {_json_type(item)}")
           for i, item in enumerate(items) if not isinstance(item, dict)]
    if bad:
        raise NotificationError(bad)
    return items


def _resource_id(raw: Optional[str]) -> Optional[str]:
    if raw is None or raw == "":
        return None
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        raw = raw[1:-1].replace("''", "'")
    return check_id(raw, "resource")


def bc_requests(items: list[dict[str, Any]], known: KnownCollections) -> tuple[list[NewRequest], list[Problem]]:
    """BC notifications as requests to the TO-iPaaS collections, and those of entities no collection reads.

    `created`/`updated`/`deleted` keep the resource's id (BC's SystemId GUID) as external_id; `collection`
    (over 1,000 changes at once) becomes one id-less `<model>/poll` request per collection. A malformed
    notification raises NotificationError (all or nothing).
    """
    requests: list[NewRequest] = []
    ignored: list[Problem] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        change = item.get("changeType")
        resource = item.get("resource")
        if change not in BC_CHANGE_TYPES:
            problems.append(Problem(index, "changeType", f"must be one of {', '.join(BC_CHANGE_TYPES)}, got {str(change)[:40]!r}"))
            continue
        if not isinstance(resource, str) or not resource or len(resource) > MAX_RESOURCE_LENGTH:
            problems.append(Problem(index, "resource", f"must be a resource path of at most {MAX_RESOURCE_LENGTH} characters"))
            continue
        # A `collection` notification names the entity set with `?$filter=lastModifiedDateTime gt …`.
        path, _, query = resource.partition("?")
        match = _BC_RESOURCE.search(path)
        if query and change != "collection":
            problems.append(Problem(index, "resource", f"only a collection notification has a query: {resource[:200]!r}"))
            continue
        if match is None:
            problems.append(Problem(index, "resource", f"is not like /api/v2.0/companies(<id>)/customers(<id>): {resource[:200]!r}"))
            continue
        entity = match.group(2).lower()
        try:
            record_id = _resource_id(match.group(3))
        except _Invalid as exc:
            problems.append(Problem(index, "resource", exc.message))
            continue
        if change != "collection" and record_id is None:
            problems.append(Problem(index, "resource", f"names no record, which changeType {change!r} needs"))
            continue
        source = BY_API_ENTITY.get(entity)
        collections = known.reading(source.name) if source is not None else []
        if not collections:
            ignored.append(Problem(index, "resource", f"no collection reads {match.group(2)!r}; not recorded"))
            continue
        action = "poll" if change == "collection" else change
        for collection in collections:
            requests.append(NewRequest(
                source="bc_webhook", system=SYSTEM, collection=collection, direction="TO_IPAAS",
                scope=f"{known.scope_model(collection)}/{action}", action=action,
                external_id=None if change == "collection" else record_id, resource=resource,
            ))
    if problems:
        raise NotificationError(problems)
    return requests, ignored


__all__ = [
    "ACTIONS", "KnownCollections", "MAX_NOTIFICATIONS", "NotificationError",
    "Problem", "SCOPE_COLLECTIONS", "SYSTEM", "bc_notifications", "bc_requests",
    "check_id", "ipaas_requests", "known_collections", "parse_scope", "scope_model_for", "to_request", "to_requests",
]

"""From a Business Central notification's SystemId to the record's key: one API GET per changed record.

The page services cannot filter on a SystemId, so each `created`/`updated` notification is resolved through the
API entity set it names (`customers(<id>)` → `number`); the inbox then holds a targeted request for that key,
one per collection reading the entity. A record deleted before it is read ends as a failed request saying so.
Without a resolver (no BC credentials where the receiver runs), a change becomes a poll of its entity.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Optional

from bc_pipeline.catalog import BY_API_ENTITY
from bc_pipeline.clients.bc_api import is_guid
from bc_pipeline.state.inbox import NewRequest

# (API entity set as notified, company id, SystemId) → the record's key, or None when it no longer exists.
Resolver = Callable[[str, str, str], Optional[str]]
RESOLVED_ACTIONS = ("created", "updated")
_RESOURCE = re.compile(r"companies\(([^()/]*)\)/([A-Za-z][A-Za-z0-9]*)\(([^()/]*)\)/?$")


class ResolutionError(RuntimeError):
    """A notified record could not be read for a reason other than its absence (BC retries the delivery)."""


def _target(request: NewRequest) -> Optional[tuple[str, str, str]]:
    match = _RESOURCE.search((request.resource or "").partition("?")[0])
    if match is None:
        return None
    company, entity, record = (g.strip("'{}") for g in match.groups())
    return (entity, company.lower(), record.lower()) if is_guid(company) and is_guid(record) else None


def _vanished(request: NewRequest, entity: str, system_id: str) -> str:
    return (f"the {entity} record with SystemId {system_id} was {request.action} and then deleted in Business "
            "Central before it could be read; nothing was synced")


def resolve(requests: list[NewRequest], resolver: Optional[Resolver], *,
            workers: int = 5) -> tuple[list[NewRequest], list[tuple[NewRequest, str]]]:
    """(requests to enqueue, requests that ended already with why). Raises ResolutionError when BC cannot answer."""
    def is_wanted(r: NewRequest) -> bool:
        return r.source == "bc_webhook" and r.action in RESOLVED_ACTIONS and bool(r.external_id)

    wanted = [r for r in requests if is_wanted(r)]
    if resolver is None:
        polls = [replace(r, action="poll", scope=r.scope.rsplit("/", 1)[0] + "/poll", external_id=None) for r in wanted]
        return [r for r in requests if not is_wanted(r)] + polls, []
    targets = {t for t in (_target(r) for r in wanted) if t is not None}
    keys: dict[tuple[str, str, str], Optional[str]] = {}

    def one(target: tuple[str, str, str]) -> None:
        try:
            keys[target] = resolver(*target)
        except Exception as exc:
            raise ResolutionError(f"reading the notified {target[0]} record from Business Central failed: "
                                  f"{type(exc).__name__}: {exc}") from exc

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets) or 1))) as pool:
        list(pool.map(one, sorted(targets)))
    ready: list[NewRequest] = []
    ended: list[tuple[NewRequest, str]] = []
    for request in requests:
        if not is_wanted(request):
            ready.append(request)
            continue
        target = _target(request)
        if target is None:
            ended.append((request, f"the notified resource {request.resource!r} names no record by SystemId"))
        elif keys.get(target) is None:
            ended.append((request, _vanished(request, target[0], target[2])))
        else:
            ready.append(replace(request, external_id=keys[target]))
    return ready, ended


def api_resolver(settings) -> Resolver:
    """A resolver reading through Business Central's API v2.0 with the pipeline's settings and throttle."""
    from bc_pipeline.clients.bc_api import BusinessCentralApi
    from bc_pipeline.clients.business_central import BusinessCentralClient

    api = BusinessCentralApi(BusinessCentralClient(settings))

    def resolver(entity_set: str, company_id: str, system_id: str) -> Optional[str]:
        entity = BY_API_ENTITY.get(entity_set.lower())
        if entity is None or not entity.api_entity or not entity.api_key_field:
            raise ResolutionError(f"no catalog entity has the API entity set {entity_set!r}")
        record = api.record(entity.api_entity, system_id, company_id=company_id)
        if record is None:
            return None
        key = record.get(entity.api_key_field)
        if not isinstance(key, str) or not key:
            raise ResolutionError(f"Business Central's {entity.api_entity}({system_id}) has no {entity.api_key_field}")
        return key

    return resolver


__all__ = ["ResolutionError", "Resolver", "api_resolver", "resolve"]

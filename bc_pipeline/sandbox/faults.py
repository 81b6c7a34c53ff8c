"""Fault switches set through /_sandbox/faults: failing, slow or dropped answers, stale ETags, and admin actions.

A rule (``{"kind": ..., "count": N, ...}``) fires on the next N matching requests (count -1: until cleared):
  status         answer HTTP ``status`` (429, 500, 502, 503, 504...) with the service's error body (BC's, Entra
                 ID's or iPaaS.com's); ``retry_after`` seconds adds a Retry-After header (``null``: none); a rule
                 on a service (and method) also answers each such operation inside a $batch, one count each: that
                 operation is not processed, the others are (an ``Isolation: snapshot`` batch is rolled back whole)
  delay          wait ``seconds`` before answering (inside the client's concurrency slot)
  drop           close the connection without answering; a rule on a service (and method) also drops a $batch
                 holding such an operation, one count per batch, before any of it is processed
  lost_answer    process the request in full (the record is created, changed or linked), then lose the
                 answer: ``then`` "drop" (default) closes the connection without answering, a status (429, 500,
                 502, 503, 504...) answers that status with the service's error body (``retry_after`` as above);
                 only requests the service processed (status below 400) consume it; a rule on a service
                 (and method) also takes the answer of a $batch holding such an operation: the whole
                 batch was processed and its one answer is lost
  etag_conflict  before the next PATCH/DELETE of record ``key`` in ``service``, bump its version as if
                 another user had saved it, so the client's ETag is stale (409 Request_EntityChanged)
Rules match on ``target`` ("bc" by default, or "entra", "ipaas", "any"), and optionally ``service`` (a BC
service name), ``path_prefix`` (the raw path) and ``method``. E.g. an iPaaS.com transaction created but its
answer lost: ``{"kind": "lost_answer", "then": 503, "target": "ipaas", "method": "POST",
"path_prefix": "/transactions/v2/Transaction", "retry_after": 1}``.

An action (``{"action": ...}``) happens at once:
  expire_tokens                     every access token issued so far is expired
  unpublish / publish  (service)    remove / restore a web service (404 / back)
  deny_client / allow_client (client_id)  BC answers 403 to that app / stops doing so
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Optional

KINDS = ("status", "delay", "drop", "lost_answer", "etag_conflict")
TARGETS = ("bc", "entra", "ipaas", "any")
ACTIONS = ("expire_tokens", "unpublish", "publish", "deny_client", "allow_client")


class FaultSpecError(ValueError):
    """A fault or action the sandbox does not understand."""


@dataclass
class Rule:
    id: int
    kind: str
    count: int = 1
    status: int = 503
    retry_after: Optional[float] = None
    seconds: float = 0.0
    target: str = "bc"
    service: Optional[str] = None
    path_prefix: Optional[str] = None
    method: Optional[str] = None
    key: Any = None  # etag_conflict: "C10000", ["Order", "101005"] or {"No": "C10000"}
    then: Any = "drop"  # lost_answer: "drop" or the status answered instead
    fired: int = 0

    def matches(self, target: str, service: Optional[str], path: str, method: str) -> bool:
        if self.count == 0:
            return False
        if self.target != "any" and self.target != target:
            return False
        if self.service is not None and self.service != service:
            return False
        if self.path_prefix is not None and not path.startswith(self.path_prefix):
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return True

    @property
    def instead(self) -> Any:
        """What a drop, status or lost_answer rule answers: "drop" or a status."""
        if self.kind == "lost_answer":
            return self.then
        return "drop" if self.kind == "drop" else int(self.status)

    def fire(self) -> None:
        self.fired += 1
        if self.count > 0:
            self.count -= 1


class Faults:
    """The active rules, consumed in the order they were added."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self._ids = itertools.count(1)

    def add(self, spec: dict[str, Any]) -> Rule:
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in KINDS:
            raise FaultSpecError(f"fault kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if spec.get("target", "bc") not in TARGETS:
            raise FaultSpecError(f"fault target must be one of {', '.join(TARGETS)}, got {spec.get('target')!r}")
        known = set(Rule.__dataclass_fields__) - {"id", "kind", "fired"}
        unknown = set(spec) - known
        if unknown:
            raise FaultSpecError(f"unknown fault field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        if kind == "etag_conflict" and (spec.get("service") is None or spec.get("key") is None):
            raise FaultSpecError("etag_conflict needs 'service' and 'key'")
        if kind == "status" and not 400 <= int(spec.get("status", 503)) <= 599:
            raise FaultSpecError("a status fault needs a 4xx or 5xx 'status'")
        if kind == "lost_answer":
            spec["then"] = _then(spec.get("then", "drop"))
        rule = Rule(id=next(self._ids), kind=kind, **spec)
        rule.count = int(rule.count)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def _take(self, kinds: tuple[str, ...], target: str, service: Optional[str], path: str,
              method: str) -> Optional[Rule]:
        for rule in self.rules:
            if rule.kind in kinds and rule.matches(target, service, path, method):
                rule.fire()
                return rule
        return None

    def take_failure(self, target: str, service: Optional[str], path: str, method: str) -> Optional[Rule]:
        """The next drop or status rule for this request (consumed), if any."""
        return self._take(("drop", "status"), target, service, path, method)

    def take_inner_drop(self, target: str, operations: list[tuple[str, str, str]]) -> Optional[Rule]:
        """The next drop rule for a $batch holding one of these (service, method, path) operations (consumed)."""
        for rule in self.rules:
            if rule.kind == "drop" and any(rule.matches(target, service, path, method)
                                           for service, method, path in operations):
                rule.fire()
                return rule
        return None

    def take_status(self, target: str, service: Optional[str], path: str, method: str) -> Optional[Rule]:
        """The next status rule for one operation inside a $batch (consumed)."""
        return self._take(("status",), target, service, path, method)

    def awaits_lost_answer(self, target: str, service: Optional[str], path: str, method: str) -> bool:
        """Whether a lost_answer rule may take this request's answer (not consumed: that waits for the answer)."""
        return any(r.kind == "lost_answer" and r.matches(target, service, path, method) for r in self.rules)

    def take_lost_answer(self, target: str, service: Optional[str], path: str, method: str) -> Optional[Rule]:
        """The next lost_answer rule for this processed request (consumed), if any."""
        return self._take(("lost_answer",), target, service, path, method)

    def take_delay(self, target: str, service: Optional[str], path: str, method: str) -> float:
        rule = self._take(("delay",), target, service, path, method)
        return float(rule.seconds) if rule else 0.0

    def take_etag_conflict(self, service: str, key: tuple, keys: tuple[str, ...], method: str) -> bool:
        for rule in self.rules:
            if rule.kind != "etag_conflict" or rule.count == 0 or rule.service != service:
                continue
            if rule.method is not None and rule.method.upper() != method.upper():
                continue
            if _key_matches(rule.key, key, keys):
                rule.fire()
                return True
        return False

    def describe(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rules if r.count != 0]


def _then(value: Any) -> Any:
    if value == "drop":
        return value
    try:
        status = int(value)
    except (TypeError, ValueError):
        status = 0
    if not 400 <= status <= 599:
        raise FaultSpecError(f"a lost_answer's 'then' must be \"drop\" or a 4xx or 5xx status, got {value!r}")
    return status


def _key_matches(spec: Any, key: tuple, keys: tuple[str, ...]) -> bool:
    if isinstance(spec, dict):
        return all(spec.get(k, v) == v for k, v in zip(keys, key)) and set(spec) <= set(keys)
    if isinstance(spec, (list, tuple)):
        return tuple(spec) == key or (len(spec) == len(key) - 1 and key[0] == "Order" and tuple(spec) == key[1:])
    if len(key) == 1:
        return spec == key[0]
    if len(key) == 2 and key[0] == "Order":  # SalesOrders: the order number alone
        return spec == key[1]
    return False

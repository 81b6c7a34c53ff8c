"""The iPaaS.com stand-in's state between requests: records, rate window (ASSUMED limit), fault and reject rules, log."""

from __future__ import annotations

import math
import random
import time
from collections import deque
from typing import Any, Optional

from bc_pipeline.sandbox.ipaas_http import ApiError
from bc_pipeline.sandbox.ipaas_store import Store

DEFAULTS: dict[str, Any] = {
    "api_token": "sandbox-ipaas-token", "system_id": "1001", "webhook_api_key": "sandbox-ipaas-webhook-key",
    "rate_limit": 500, "rate_window_seconds": 60.0, "default_page_size": 100, "max_page_size": 1000,
    "seed": 0, "scale": 1.0, "preseed": 0, "preload": None,
}  # other keys (the launcher passes state_dir) are ignored
PRELOAD_ORDER = ("Customer Category", "Location", "Shipping Method", "Company", "Customer", "Address",
                 "Product", "Product Inventory", "Transaction")


class IpaasState:
    """The store plus what the HTTP layer keeps: rate window, fault and reject rules, request log, hooks, counters."""

    def __init__(self, config: Optional[dict] = None):
        self.config = {**DEFAULTS, **{k: v for k, v in (config or {}).items() if v is not None}}
        self.reset()

    def reset(self) -> None:
        self.store = Store(str(self.config["system_id"]))
        self.window: deque[float] = deque()
        self.peak = 0
        self.faults: list[dict] = []
        self.rejects: list[dict] = []
        self.log: list[dict] = []
        self.hooks: list[dict] = []
        self.counts: dict[str, dict[str, int]] = {}
        self.by_status: dict[str, int] = {}
        self.rate_limited = 0
        self.faults_sent = 0
        populate(self.store, self.config)

    def admit(self) -> None:
        """Sliding-window limit: at most rate_limit calls in any rate_window_seconds, else 429 + Retry-After."""
        limit, span = int(self.config["rate_limit"] or 0), float(self.config["rate_window_seconds"])
        if limit <= 0:
            return
        now, w = time.monotonic(), self.window
        while w and w[0] <= now - span:
            w.popleft()
        if len(w) >= limit:
            self.rate_limited += 1
            retry = max(1, math.ceil(w[0] + span - now))
            raise ApiError(429, f"rate limit exceeded: {limit} calls per {span:g} seconds; retry after {retry} s",
                           None, {"Retry-After": str(retry)})
        w.append(now)
        self.peak = max(self.peak, len(w))

    def fault(self, method: str, path: str) -> None:
        """Raise the first fault rule that matches (``path`` from the root, with its leading /)."""
        for f in self.faults:
            if f["remaining"] == 0 or not path.lower().startswith(f["path_prefix"].lower()):
                continue
            if f["method"] and f["method"] != method:
                continue
            if f["remaining"] > 0:
                f["remaining"] -= 1
            self.faults_sent += 1
            headers = {"Retry-After": str(f["retry_after"])} if f["retry_after"] is not None else None
            raise ApiError(f["status"], f["message"], None, headers)

    def reject(self, model: str, body: Any) -> None:
        for rule in self.rejects:
            if rule["model"].lower() == model.lower() and _matches(body, rule["field"].split("."), rule["equals"]):
                raise ApiError(400, rule["message"], rule["field"])

    def record(self, method: str, path: str, query: str, model: Optional[str], status: int, started: float,
               correlation_id: str) -> None:
        label = model or "unknown"
        per = self.counts.setdefault(label, {})
        per[method] = per.get(method, 0) + 1
        self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1
        self.log.append({"seq": len(self.log) + 1, "method": method, "path": path, "query": query, "status": status,
                         "model": label, "time": started, "duration_ms": round((time.time() - started) * 1000, 3),
                         "correlation_id": correlation_id})


def _matches(value: Any, parts: list[str], expected: Any) -> bool:
    if isinstance(value, list):
        return any(_matches(v, parts, expected) for v in value)
    if not parts:
        return value is not None and str(value) == str(expected)
    return isinstance(value, dict) and _matches(value.get(parts[0]), parts[1:], expected)


def populate(store: Store, config: dict) -> None:
    """Pre-existing iPaaS.com records: ``preload`` ({model: [record, ...]}, records may carry ``external_ids``), then
    round(``preseed`` x ``scale``) unlinked companies, customers and products each, named from ``seed``. ``preseed``
    defaults to 0: the pipeline loads into an empty iPaaS.com."""
    preload = config.get("preload") or {}
    unknown = [k for k in preload if k.lower() not in {m.lower() for m in PRELOAD_ORDER}]
    if unknown:
        raise ValueError(f"preload names unknown models {unknown}; known: {', '.join(PRELOAD_ORDER)}")
    for name in PRELOAD_ORDER:
        for rec in next((v for k, v in preload.items() if k.lower() == name.lower()), None) or []:
            try:
                store.create(name, rec)
            except ApiError as e:
                raise ValueError(f"preload {name} {rec!r}: {e.message}") from None
    rng = random.Random(config.get("seed") or 0)
    words = ("Alpine", "Harbor", "Cedar", "Summit", "Prairie", "Coastal", "Granite", "Willow", "Beacon", "Juniper")
    count = round(float(config.get("preseed") or 0) * float(config.get("scale") or 1))
    for i in range(1, count + 1):
        word = rng.choice(words)
        store.create("Company", {"name": f"{word} Trading {i:05d} (iPaaS only)",
                                 "email_address": f"sales{i:05d}@{word.lower()}.example"})
        store.create("Customer", {"first_name": word, "last_name": f"Shopper {i:05d}",
                                  "email_address": f"{word.lower()}.shopper{i:05d}@example.org"})
        store.create("Product", {"sku": f"IPAAS-{i:05d}", "name": f"{word} web-only item {i}", "type": "Physical",
                                 "tracking_method": "Product", "status": "Active", "default_price": rng.randint(1, 500)})

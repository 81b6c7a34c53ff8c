"""The running sandbox's shared state: config, records, tokens, limits, faults, request log and counters."""

from __future__ import annotations

import time
from collections import Counter, deque
from datetime import date, datetime, timezone
from typing import Any, Optional

from .bc_store import Store
from .config import SandboxConfig
from .entra import TokenStore
from .faults import Faults
from .limits import Limits
from .schema import build_services
from .api_v2 import notify_change
from .webhooks import WebhookHub
from . import seed as seeding

REQUEST_LOG_SIZE = 200_000


class SandboxState:
    """Everything the Entra, BC and admin handlers share; one per server process."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.services = build_services(itemsbylocation_columns=config.itemsbylocation_columns,
                                       system_modified_at=config.system_modified_at,
                                       itemsbylocation_names=config.itemsbylocation_names)
        unknown = [s for s in [*config.published_services, *config.service_names] if s not in self.services]
        if unknown:
            raise ValueError(f"unknown service(s) in published_services or service_names: {', '.join(unknown)}")
        self.tokens = TokenStore()
        self.faults = Faults()
        self.started = time.time()
        self.seed_seconds = 0.0
        self.reset()

    def reset(self) -> None:
        """Fresh seed data, no faults, empty log and counters (tokens stay valid)."""
        c = self.config
        t0 = time.perf_counter()
        data = seeding.generate(self.services, seed=c.seed, scale=c.scale, profile=c.seed_profile,
                                counts=c.seed_counts, work_date=c.work_date)
        self.store = Store(self.services, data, precompute=c.precompute_json)
        self.seed_seconds = time.perf_counter() - t0
        self.webhooks = WebhookHub(self)  # a reset forgets every subscription (its dispatcher stops)
        self.api_ids: dict[str, dict[str, tuple]] = {}  # API v2.0: SystemId -> key, per service
        self.modified_at: dict[tuple[str, tuple], str] = {}  # API v2.0 lastModifiedDateTime of written records
        for name, table in self.store.tables.items():
            table.listener = (lambda change, key, service=name: notify_change(self, service, change, key))
        self.published = set(c.published_services)
        self.denied_clients = {r.client_id for r in c.clients().values() if not r.bc_permission}
        self.faults.clear()
        self.limits = Limits(c.bc_rate_limit, c.bc_rate_window_seconds, c.bc_max_concurrent, c.bc_max_queue,
                             c.bc_queue_timeout_seconds)
        self.log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.seq = 0
        self.counters: Counter[str] = Counter()
        self.by_service: dict[str, Counter[str]] = {}
        self.by_status: Counter[int] = Counter()
        self.series: dict[str, int] = {}

    # --- dates ---------------------------------------------------------------------------------------

    def today(self) -> str:
        return (self.config.work_date or date.today()).isoformat()

    @staticmethod
    def now_iso() -> str:
        dt = datetime.now(timezone.utc)
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"

    # --- request log ---------------------------------------------------------------------------------

    def begin(self, method: str, path: str, target: str) -> dict[str, Any]:
        self.seq += 1
        entry = {"seq": self.seq, "time": time.time(), "method": method, "path": path, "target": target,
                 "status": None, "client_id": None, "service": None, "correlation_id": None, "duration_ms": None}
        self.log.append(entry)
        return entry

    def finish(self, entry: dict[str, Any], status: int) -> None:
        entry["status"] = status
        entry["duration_ms"] = round((time.time() - entry["time"]) * 1000, 2)
        self.by_status[status] += 1
        self.counters[f"{entry['target']}_requests"] += 1
        if entry.get("service"):
            self.count_service(entry["service"], entry["method"])

    def count_service(self, service: str, method: str) -> None:
        self.by_service.setdefault(service, Counter())[method] += 1

    def requests_since(self, since: int) -> list[dict[str, Any]]:
        return [dict(e) for e in self.log if e["seq"] > since]

    def stats(self) -> dict[str, Any]:
        return {
            "requests_total": self.seq,
            "by_target": {k[:-9]: v for k, v in self.counters.items() if k.endswith("_requests")},
            "by_service": {s: dict(c) for s, c in self.by_service.items()},
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "throttled_429": self.counters["throttled_429"],
            "fault_answers": self.counters["fault_answers"],
            "dropped_connections": self.counters["dropped"],
            "lost_answers": self.counters["lost_answers"],
            "tokens_issued": self.tokens.issued,
            "clients": self.limits.stats(),
            "peak_concurrency": {cid: c["peak_concurrency"] for cid, c in self.limits.stats().items()},
            "records": self.store.counts(),
            "seed_seconds": round(self.seed_seconds, 3),
        }

    # --- number series -------------------------------------------------------------------------------

    def next_number(self, service: str) -> str:
        """The next No. from a series like BC's No. Series: C10000, C10010... / 10000, 10010... / 101001..."""
        table = self.store.tables[service]
        if service not in self.series:
            prefix = "C" if service == "CustomerCard" else ""
            numbers = [int(k[-1][len(prefix):]) for k in table.rows
                       if str(k[-1]).startswith(prefix) and str(k[-1])[len(prefix):].isdigit()]
            start = {"CustomerCard": 10000 - 10, "ItemCard": 10000 - 10, "SalesOrders": 101000}[service]
            self.series[service] = max(numbers, default=start)
        step = 1 if service == "SalesOrders" else 10
        prefix = "C" if service == "CustomerCard" else ""
        while True:
            self.series[service] += step
            candidate = f"{prefix}{self.series[service]}"
            key = ("Order", candidate) if service == "SalesOrders" else (candidate,)
            if key not in table.rows:
                return candidate

    def standard_service(self, served: Optional[str]) -> Optional[str]:
        """The service a URL's name serves: a renamed one answers only under its published name."""
        renamed = self.config.service_names
        standard = {name: std for std, name in renamed.items()}
        if served in standard:
            return standard[served]
        return None if served in renamed else served

    def is_published(self, service: Optional[str]) -> bool:
        return service in self.published

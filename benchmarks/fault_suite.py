#!/usr/bin/env python
"""Exactly once, whatever fails: every fault the sandbox can inject, in both directions, and one table of what landed.

    .venv/bin/python benchmarks/fault_suite.py                  # every scenario, scale 0.05, 3 lanes (~5.5 minutes)
    .venv/bin/python benchmarks/fault_suite.py --only lost      # the scenarios whose name contains "lost"
    .venv/bin/python benchmarks/fault_suite.py --list           # the scenarios, without running them

Each scenario gets a reseeded sandbox (`handle.reset()`), an empty iPaaS.com (POST /_sandbox/ipaas/reset), a fresh
BC_PIPELINE_HOME and DAGSTER_HOME, and the sandbox's environment (`handle.env()`, IPAAS_THROTTLE_LIMIT=100000). Then:

  to    (BC -> iPaaS.com) `bc-pipeline run --full-refresh` in a subprocess under the fault (the `sync_to_ipaas` job;
        exit 0 all delivered, 1 a step failed, 3 records failed), faults cleared, the same command again (the
        clean re-run), then the count.
  from  (iPaaS.com -> BC) first `bc-pipeline run --select customer_price_groups customers items --full-refresh`
        (clean: the links transactions need), then iPaaS.com records created through the sandbox admin
        (transactions with 3 lines, customers, companies or products), then the `sync_from_ipaas` job for those
        ids in a subprocess (exit 1 the run failed, 3 the materialization's `failed` > 0, else 0) under the fault,
        faults cleared, the same again, then the count.

Some faults are set when the sandbox's request log shows a point of the run (`GET /_sandbox/requests?since=N`, polled
every 20 ms): tokens expired or the app denied after the first Business Central request, and kill -9 of the run's
process group after k iPaaS.com writes (k = 1, 25 %, 50 %, 75 % of a clean run's writes, and after the 3rd tracking
create).

Columns: source = the records that should land; target = the records there after the clean re-run (duplicates
included); dup = records beyond one per natural key; lost = source records missing; DL left = dead letters after the
clean re-run; after fault = records missing / dead letters right after the run under fault; exit = that run's exit
code (-9: killed). Natural keys: iPaaS.com Transaction transaction_number, its lines (transaction_number, BC line
external id) and tracking (transaction_number, tracking_number), Product sku, Product Inventory (sku, location name),
Location / Shipping Method / Customer Category / Company name, Customer customer_number; in BC sales orders by
External_Document_No, their lines by Line_No, customers by E_Mail (people) or Name (companies), items by No.
What should land in iPaaS.com is counted from Business Central for transactions, tracking and products, and from a
clean reference run for the rest (same seed, same scale: the same records every time).

The scenarios are spread over --lanes threads, each with its own sandbox (a scenario that waits on purpose - the capped
Retry-After, the timeouts - should not hold up the others on a 2-core machine); the waiting ones start first.
A row is FAIL when it has a duplicate or a lost record, when the run under fault exited 0 although a record was
missing or dead-lettered after it, or when the scenario could not be set up. The script prints progress to stderr, the table to stdout, and exits 1 when any row is FAIL.
"""

from __future__ import annotations

import argparse
import collections
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.load_to_ipaas import ipaas_admin  # noqa: E402

CLI = [str(REPO / ".venv" / "bin" / "bc-pipeline")]
RUN = ["run", "--full-refresh"]
LINKED = ["run", "--select", "customer_price_groups", "customers", "items", "--full-refresh"]
TRANSACTIONS = "/transactions/v2/Transaction"
LINK = "/transactions/v2/External/UpdateExternalId"
PATCHED_READ_TIMEOUT = 5  # seconds, for the timeout scenarios (transport.READ_TIMEOUT_SECONDS is 120)
# The sandbox delays before it processes, and a request whose client hung up is then not processed (logged 500):
# a timeout row is a timeout on an unprocessed request; processed-but-unanswered creates are the lost_answer rows.
NOT_PROCESSED = "the sandbox did not process the delayed request (client gone)"
RUN_TIMEOUT = 600
FROM_COUNT = 4  # iPaaS.com records created per iPaaS -> BC scenario (transactions get 3 lines each)

FROM_CHILD = """
import sys
import dagster as dg
{patch}
from bc_pipeline.definitions import defs
slug, ids = sys.argv[1], sys.argv[2:]
result = defs.resolve_job_def("sync_from_ipaas").execute_in_process(
    instance=dg.DagsterInstance.get(), asset_selection=[dg.AssetKey(["bc_out", slug])],
    run_config={{"ops": {{"bc_out__" + slug: {{"config": {{"ipaas_ids": ids}}}}}}}}, raise_on_error=False)
if not result.success:
    sys.exit(1)
failed = 0
for event in result.all_events:
    if event.event_type_value == "ASSET_MATERIALIZATION":
        meta = event.event_specific_data.materialization.metadata
        failed += int(meta["failed"].value) if "failed" in meta else 0
sys.exit(3 if failed else 0)
"""
CLI_CHILD = """
import sys
{patch}
from bc_pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""
PATCH_TIMEOUT = f"import bc_pipeline.clients.transport as t; t.READ_TIMEOUT_SECONDS = {PATCHED_READ_TIMEOUT}"


# ---------------------------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    direction: str  # "to" (BC -> iPaaS.com) or "from" (iPaaS.com -> BC)
    faults: list[dict[str, Any]] = field(default_factory=list)  # set before the run under fault
    model: str = "Transaction"  # from: the iPaaS.com model created (Transaction, Customer, Company, Product)
    when: Optional[str] = None  # a point of the run: "bc:N" after N BC requests, "writes:N" / "writes:P%" after
    #                             N (or P % of a clean run's) iPaaS.com writes, "tracking:N" after N tracking creates
    then: Any = None  # at that point: a list of faults/actions to set, or "kill"
    special: Optional[str] = None  # "overlap", "state_deleted"
    patch_timeout: bool = False
    slow: bool = False  # waits on purpose (a capped Retry-After, a timeout) or kills a run: started first
    notes: str = ""


def ipaas_rule(kind: str, prefix: str, method: str = "POST", count: int = -1, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "target": "ipaas", "method": method, "path_prefix": prefix, "count": count, **extra}


def lost(then: Any, prefix: str, count: int = -1, target: str = "ipaas", **extra: Any) -> dict[str, Any]:
    return {"kind": "lost_answer", "then": then, "target": target, "method": "POST", "count": count,
            "retry_after": 0, **({"path_prefix": prefix} if target == "ipaas" else {"service": prefix}), **extra}


def scenarios() -> list[Scenario]:
    to, fr = "to", "from"
    s = Scenario
    return [
        s("no fault (reference)", to),
        # -- lost answers on every kind of create and link, BC -> iPaaS.com --------------------------------------
        s("lost: category creates, drop", to, [lost("drop", "/customers/v2/Customer/Category")]),
        s("lost: company creates, 429", to, [lost(429, "/customers/v2/Customer/Company")]),
        s("lost: every customers-domain create (category, company, customer), 503", to,
          [lost(503, "/customers/v2/Customer")]),
        s("lost: product + inventory creates, drop", to, [lost("drop", "/products/v2/Catalog/Product")]),
        s("lost: inventory creates, 503", to, [lost(503, "/products/v2/Catalog/Product/Inventory")]),
        s("lost: location creates, 429", to, [lost(429, "/products/v2/Catalog/Location")]),
        s("lost: shipping method creates, drop", to, [lost("drop", "/transactions/v2/ShippingMethod")]),
        s("lost: transaction + tracking creates, 503", to, [lost(503, TRANSACTIONS)]),
        s("lost: 6 transaction creates, drop", to, [lost("drop", TRANSACTIONS, count=6)]),
        s("lost: tracking creates, 429", to, [lost(429, TRANSACTIONS + "/")]),
        s("lost: links (UpdateExternalId), 503", to, [lost(503, LINK)]),
        s("lost: 10 links (UpdateExternalId), drop", to, [lost("drop", LINK, count=10)]),
        # -- lost answers, iPaaS.com -> BC -------------------------------------------------------------------
        s("from lost: order creates, 503", fr, [lost(503, "SalesOrders", target="bc")]),
        s("from lost: order creates, drop", fr, [lost("drop", "SalesOrders", target="bc")]),
        s("from lost: order creates, 500", fr, [lost(500, "SalesOrders", target="bc")]),
        s("from lost: order line creates, 503", fr, [lost(503, "SalesOrderLines", target="bc")]),
        s("from lost: 3 order line creates, drop", fr, [lost("drop", "SalesOrderLines", count=3, target="bc")]),
        s("from lost: links (UpdateExternalId), 503", fr, [lost(503, LINK)]),
        s("from lost: customer (person) creates, drop", fr, [lost("drop", "CustomerCard", target="bc")],
          model="Customer"),
        s("from lost: company creates, 503", fr, [lost(503, "CustomerCard", target="bc")], model="Company"),
        s("from lost: item creates, 429", fr, [lost(429, "ItemCard", target="bc")], model="Product"),
        # -- throttling, errors, connections ---------------------------------------------------------------
        s("429 storm: 60 iPaaS.com answers, Retry-After 0.1", to,
          [{"kind": "status", "status": 429, "target": "ipaas", "count": 60, "retry_after": 0.1}]),
        s("429 storm: 10 BC reads, Retry-After 0.5", to,
          [{"kind": "status", "status": 429, "target": "bc", "method": "GET", "count": 10, "retry_after": 0.5}]),
        s("from 429 storm: 10 BC order writes, Retry-After 0.2", fr,
          [{"kind": "status", "status": 429, "target": "bc", "method": "POST", "count": 10, "retry_after": 0.2}]),
        s("Retry-After 1.5: 3 iPaaS.com creates", to,
          [ipaas_rule("status", "/", count=3, status=429, retry_after=1.5)]),
        s("Retry-After 86400: 1 iPaaS.com create", to, [ipaas_rule("status", TRANSACTIONS, count=1, status=429,
                                                                  retry_after=86400)], slow=True,
          notes="the client caps the wait at MAX_RETRY_AFTER_SECONDS (120 s)"),
        s("5xx: 500 on 5 iPaaS.com creates", to, [ipaas_rule("status", "/", count=5, status=500)]),
        s("5xx: 502/503/504 on BC reads", to,
          [{"kind": "status", "status": st, "target": "bc", "method": "GET", "count": 1} for st in (502, 503, 504)]),
        s("from 5xx: 500 on 2 BC order line creates", fr,
          [{"kind": "status", "status": 500, "target": "bc", "service": "SalesOrderLines", "method": "POST",
            "count": 2}]),
        s("dropped: 5 iPaaS.com creates (not processed)", to, [ipaas_rule("drop", "/", count=5)]),
        s("dropped: 3 BC reads", to, [{"kind": "drop", "target": "bc", "method": "GET", "count": 3}]),
        s("from dropped: 2 BC order creates (not processed)", fr,
          [{"kind": "drop", "target": "bc", "service": "SalesOrders", "method": "POST", "count": 2}]),
        s("timeout: 1 transaction create answered after 8 s", to,
          [ipaas_rule("delay", TRANSACTIONS, count=1, seconds=8)], patch_timeout=True, slow=True,
          notes=f"read timeout patched to {PATCHED_READ_TIMEOUT} s (120 s in transport.py); {NOT_PROCESSED}"),
        s("timeout: 1 BC read answered after 8 s", to,
          [{"kind": "delay", "target": "bc", "method": "GET", "service": "SalesOrders", "count": 1, "seconds": 8}],
          patch_timeout=True, notes=f"read timeout patched to {PATCHED_READ_TIMEOUT} s"),
        s("from timeout: 1 BC order create answered after 8 s", fr,
          [{"kind": "delay", "target": "bc", "method": "POST", "service": "SalesOrders", "count": 1, "seconds": 8}],
          patch_timeout=True, slow=True,
          notes=f"read timeout patched to {PATCHED_READ_TIMEOUT} s; {NOT_PROCESSED}"),
        # -- tokens ------------------------------------------------------------------------------------------
        s("token expired after the 2nd BC read", to, when="bc:2", then=[{"action": "expire_tokens"}]),
        s("token revoked (app denied) after the 2nd BC read", to, when="bc:2",
          then=[{"action": "deny_client", "client_id": "{client_id}"}]),
        s("iPaaS.com API key refused (401 until cleared)", to,
          [ipaas_rule("status", "/", method=None, status=401)]),
        s("from token expired after the 1st BC order create", fr, when="bc_write:1",
          then=[{"action": "expire_tokens"}]),
        s("from token revoked (app denied) after the 1st BC order create", fr, when="bc_write:1",
          then=[{"action": "deny_client", "client_id": "{client_id}"}]),
        # -- interrupted, overlapping, forgotten ---------------------------------------------------------------
        s("kill -9 after 1 iPaaS.com write", to, when="writes:1", then="kill", slow=True),
        s("kill -9 after 25% of the writes", to, when="writes:25%", then="kill", slow=True),
        s("kill -9 after 50% of the writes", to, when="writes:50%", then="kill", slow=True),
        s("kill -9 after 75% of the writes", to, when="writes:75%", then="kill", slow=True),
        s("kill -9 mid-tracking (after 3 tracking creates)", to, when="tracking:3", then="kill", slow=True),
        s("two overlapping runs", to, special="overlap"),
        s("state database deleted between runs", to, special="state_deleted"),
    ]


# ---------------------------------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------------------------------

def ipaas_records(handle, model: str) -> list[dict[str, Any]]:
    answer = ipaas_admin(handle, "GET", f"records/{model}")
    return answer["records"] if isinstance(answer, dict) and "records" in answer else answer


def ipaas_keys(handle) -> collections.Counter:
    """Every iPaaS.com record the BC -> iPaaS.com direction writes, by its natural key."""
    keys: collections.Counter = collections.Counter()
    for model, field_name in (("Product", "sku"), ("Location", "name"), ("Shipping Method", "name"),
                              ("Customer Category", "name"), ("Customer", "customer_number"), ("Company", "name")):
        keys.update((model, r.get(field_name)) for r in ipaas_records(handle, model))
    sku = {r["id"]: r.get("sku") for r in ipaas_records(handle, "Product")}
    location = {r["id"]: r.get("name") for r in ipaas_records(handle, "Location")}
    keys.update(("Product Inventory", sku.get(r.get("parent_id")), location.get(r.get("location_id")))
                for r in ipaas_records(handle, "Product Inventory"))
    for t in ipaas_records(handle, "Transaction"):
        number = t.get("transaction_number")
        keys[("Transaction", number)] += 1
        keys.update(("Transaction line", number, line_key(line)) for line in t.get("lines") or [])
        keys.update(("Tracking", number, k.get("tracking_number")) for k in t.get("tracking") or [])
    return keys


def line_key(line: dict[str, Any]) -> Any:
    ids = line.get("external_ids") or []
    if ids:
        return ids[0].get("external_id")
    return line.get("sequence_number") or line.get("sku")


def bc_truth(handle) -> collections.Counter:
    """What Business Central says must be in iPaaS.com: released orders, posted invoices, their tracking, every item."""
    orders = handle.records("SalesOrders")
    keys: collections.Counter = collections.Counter()
    keys.update(("Transaction", o["No"]) for o in orders if o["Status"] == "Released")
    keys.update(("Tracking", o["No"], o["Package_Tracking_No"].strip()) for o in orders
                if o["Status"] == "Released" and (o.get("Package_Tracking_No") or "").strip())
    keys.update(("Product", i["No"]) for i in handle.records("ItemCard"))
    invoices = handle.records("PostedSalesInvoices")  # every posted invoice, as an Invoice transaction
    keys.update(("Transaction", i["No"]) for i in invoices)
    keys.update(("Tracking", i["No"], i["Package_Tracking_No"].strip()) for i in invoices
                if (i.get("Package_Tracking_No") or "").strip())
    return keys


def bc_keys(handle, model: str, created: list[dict[str, Any]]) -> collections.Counter:
    """The BC records an iPaaS.com -> BC scenario wrote, by natural key (only those the scenario created)."""
    keys: collections.Counter = collections.Counter()
    if model == "Transaction":
        wanted = {c["transaction_number"] for c in created}
        orders = [o for o in handle.records("SalesOrders") if o.get("External_Document_No") in wanted]
        numbers = {o["No"]: o["External_Document_No"] for o in orders}
        keys.update(("SalesOrder", o["External_Document_No"]) for o in orders)
        keys.update(("SalesOrderLine", numbers[ln["Document_No"]], ln["Line_No"])
                    for ln in handle.records("SalesOrderLines") if ln.get("Document_No") in numbers)
    elif model in ("Customer", "Company"):
        by = "E_Mail" if model == "Customer" else "Name"
        wanted = {c["email_address"] if model == "Customer" else c["name"] for c in created}
        keys.update(("Customer", c.get(by)) for c in handle.records("CustomerCard") if c.get(by) in wanted)
    elif model == "Product":
        wanted = {c["sku"] for c in created}
        keys.update(("Item", i["No"]) for i in handle.records("ItemCard") if i["No"] in wanted)
    return keys


def compare(expected: collections.Counter, found: collections.Counter) -> tuple[int, int, int]:
    """(records found, duplicates, lost): found beyond / short of what is expected, per natural key."""
    dup = sum(max(0, n - expected.get(k, 0)) for k, n in found.items() if k in expected or n > 1)
    missing = sum(max(0, n - found.get(k, 0)) for k, n in expected.items())
    return sum(found[k] for k in found if k in expected or found[k] > 1), dup, missing


def dead_letters(home: Path) -> int:
    path = home / "state.sqlite"
    if not path.exists():
        return 0
    from sqlalchemy import create_engine

    from bc_pipeline.state import records

    engine = create_engine(f"sqlite:///{path}")
    try:
        return len(records.dead_letters_of(engine))
    except Exception:  # noqa: BLE001 - a state database the run never got to create tables in
        return 0
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------------------------
# a lane: one sandbox, scenarios one after another
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    direction: str
    source: int = 0
    target: int = 0
    dup: int = 0
    lost: int = 0
    dead_left: int = 0
    missing_after: int = 0
    dead_after: int = 0
    exit: str = ""
    fired: str = ""
    seconds: float = 0.0
    notes: str = ""

    @property
    def verdict(self) -> str:
        silent = self.exit in ("0", "0/0") and (self.missing_after or self.dead_after)
        # A scenario that could not even be set up proved nothing: it is no pass.
        return "FAIL" if self.dup or self.lost or silent or self.exit == "error" else "ok"


class Lane:
    def __init__(self, number: int, args: argparse.Namespace, workdir: Path):
        from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

        self.number = number
        self.args = args
        self.workdir = workdir
        self.handle = start_sandbox(SandboxConfig(scale=args.scale, state_dir=workdir / f"sandbox-{number}",
                                                  ipaas_rate_limit=100_000, ipaas_rate_window_seconds=60))
        self.reference: collections.Counter = collections.Counter()
        self.clean_writes = 0
        self.counter = 0

    # -- a fresh world ---------------------------------------------------------------------------------------

    def fresh(self, label: str) -> tuple[Path, dict[str, str]]:
        self.handle.reset()
        ipaas_admin(self.handle, "POST", "reset")
        self.counter += 1
        home = self.workdir / f"lane{self.number}-{self.counter:02d}-{slug(label)}"
        (home / "dagster_home").mkdir(parents=True)
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith(("BC_", "IPAAS_")) or k in ("CONCURRENT_CONNECTIONS", "REQUESTS_CA_BUNDLE",
                                                              "DAGSTER_HOME"))}
        env.update(self.handle.env())
        env.update({"BC_PIPELINE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
                    "IPAAS_THROTTLE_LIMIT": "100000", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
        return home, env

    # -- running the pipeline ----------------------------------------------------------------------------------

    def start(self, cmd: list[str], env: dict[str, str], home: Path, label: str) -> tuple[subprocess.Popen, Any]:
        log = open(home / f"{label}.log", "ab")
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(home),
                                start_new_session=True), log

    def run(self, cmd: list[str], env: dict[str, str], home: Path, label: str,
            watch: Optional[Callable[[list[dict[str, Any]], subprocess.Popen], None]] = None) -> int:
        """Run a command to its end (or its kill), calling watch with each batch of new sandbox log entries."""
        since = self.handle.last_seq() if watch else 0
        process, log = self.start(cmd, env, home, label)
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    return -999
                if watch is not None:
                    entries = self.handle.requests(since)
                    if entries:
                        since = entries[-1]["seq"]
                        watch(entries, process)
                    time.sleep(0.02)
                else:
                    time.sleep(0.1)
            return process.returncode
        finally:
            log.close()

    def command(self, s: Scenario, args: list[str]) -> list[str]:
        if s.patch_timeout:
            # The patch lives in this process: its steps must run here too, not in processes of their own.
            return [sys.executable, "-c", CLI_CHILD.format(patch=PATCH_TIMEOUT), *args, "--max-concurrent", "1"]
        return CLI + args

    def from_command(self, s: Scenario, ids: list[str]) -> list[str]:
        slug_ = {"Transaction": "sales_order_from_ipaas", "Customer": "customer_from_ipaas",
                 "Company": "company_from_ipaas", "Product": "product_from_ipaas"}[s.model]
        return [sys.executable, "-c", FROM_CHILD.format(patch=PATCH_TIMEOUT if s.patch_timeout else ""), slug_,
                *ids]

    def watcher(self, s: Scenario) -> Optional[Callable]:
        if s.when is None:
            return None
        what, _, n = s.when.partition(":")
        goal = (max(1, round(self.clean_writes * float(n[:-1]) / 100)) if n.endswith("%") else int(n))
        seen = {"n": 0, "done": False}

        def counts(entry: dict[str, Any]) -> bool:
            path = entry.get("path") or ""
            if what == "bc":
                return entry.get("target") == "bc"
            if what == "bc_write":
                return entry.get("target") == "bc" and entry.get("method") in ("POST", "PATCH")
            if entry.get("target") != "ipaas" or path.startswith("/_sandbox") or "/External/Lookup" in path:
                return False
            if what == "tracking":
                return entry.get("method") == "POST" and path.startswith(TRANSACTIONS + "/")
            return entry.get("method") in ("POST", "PUT", "DELETE")

        def watch(entries: list[dict[str, Any]], process: subprocess.Popen) -> None:
            if seen["done"]:
                return
            seen["n"] += sum(1 for e in entries if counts(e))
            if seen["n"] < goal:
                return
            seen["done"] = True
            if s.then == "kill":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                self.handle.set_faults(*[self.fill(f) for f in s.then])

        return watch

    def fill(self, fault: dict[str, Any]) -> dict[str, Any]:
        return {k: (v.format(client_id=self.handle.config.client_id) if isinstance(v, str) else v)
                for k, v in fault.items()}

    def clear(self) -> None:
        self.handle.clear_faults()
        self.handle.set_faults({"action": "allow_client", "client_id": self.handle.config.client_id})

    # -- the reference run ------------------------------------------------------------------------------------

    def measure_reference(self) -> Row:
        """A clean full load: what lands when nothing fails, and how many iPaaS.com writes it takes."""
        s = Scenario("no fault (reference)", "to")
        started = time.time()
        home, env = self.fresh(s.name)
        since = self.handle.last_seq()
        code = self.run(CLI + RUN, env, home, "fault")
        writes = [e for e in self.handle.requests(since) if e.get("target") == "ipaas"
                  and e.get("method") in ("POST", "PUT", "DELETE") and "/External/Lookup" not in e.get("path", "")]
        self.clean_writes = len(writes)
        found = ipaas_keys(self.handle)
        truth = bc_truth(self.handle)
        self.reference = collections.Counter({k: n for k, n in found.items() if k[0] not in
                                              ("Transaction", "Tracking", "Product")})
        self.reference.update(truth)
        row = Row(s.name, s.direction, exit=str(code))
        row.target, row.dup, row.lost = compare(self.reference, found)
        row.source = sum(self.reference.values())
        row.missing_after, row.dead_after = row.lost, dead_letters(home)
        row.dead_left = row.dead_after
        row.seconds = time.time() - started
        row.notes = f"{self.clean_writes} iPaaS.com writes; reference for the other rows"
        return row

    # -- one scenario ---------------------------------------------------------------------------------------------

    def scenario(self, s: Scenario) -> Row:
        started = time.time()
        row = Row(s.name, s.direction, notes=s.notes)
        try:
            if s.direction == "to":
                self.to_ipaas(s, row)
            else:
                self.from_ipaas(s, row)
        except Exception as exc:  # noqa: BLE001 - a scenario that could not run is a row that says so
            row.exit = "error"
            row.notes = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self.clear()
        row.seconds = time.time() - started
        return row

    def fired(self, before: dict[str, Any], since: int) -> str:
        """What the sandbox did instead of answering during the run under fault (from its counters and log)."""
        after = self.handle.stats()
        parts = [f"{after[k] - before[k]} {label}" for k, label in (("lost_answers", "lost"),
                 ("fault_answers", "faulted"), ("dropped_connections", "dropped")) if after[k] - before[k]]
        log = [e for e in self.handle.requests(since) if not (e.get("path") or "").startswith("/_sandbox")]
        for status in (401, 403):
            n = sum(1 for e in log if e.get("status") == status)
            parts += [f"{n} x {status}"] if n else []
        late = sum(1 for e in log if (e.get("duration_ms") or 0) >= PATCHED_READ_TIMEOUT * 1000)
        parts += [f"{late} late (>= {PATCHED_READ_TIMEOUT} s)"] if late else []
        return ", ".join(parts) or "-"

    def to_ipaas(self, s: Scenario, row: Row) -> None:
        home, env = self.fresh(s.name)
        before, since = self.handle.stats(), self.handle.last_seq()
        if s.special == "overlap":
            # Both storages exist before the race under test: the race is the loads', not the first schema creation's.
            subprocess.run([sys.executable, "-c", "import dagster as dg, os; from bc_pipeline.settings import "
                            "load_settings; from bc_pipeline.state.database import engine_for; "
                            "dg.DagsterInstance.from_config(os.environ['DAGSTER_HOME']).dispose(); "
                            "engine_for(load_settings().state_database_url)"], env=env, check=True,
                           capture_output=True)
            runs = [self.start(CLI + RUN, env, home, f"fault-{n}") for n in (1, 2)]
            codes = []
            for process, log in runs:
                try:
                    codes.append(process.wait(timeout=RUN_TIMEOUT))
                finally:
                    log.close()
            row.exit = "/".join(str(c) for c in codes)
        else:
            if s.special == "state_deleted":
                first = self.run(CLI + RUN, env, home, "before")
                for leftover in home.glob("state.sqlite*"):
                    leftover.unlink()
                row.notes = f"the run before the deletion exited {first}"
            if s.faults:
                self.handle.set_faults(*[self.fill(f) for f in s.faults])
            row.exit = str(self.run(self.command(s, RUN), env, home, "fault", self.watcher(s)))
        row.fired = self.fired(before, since)
        self.clear()
        _, _, row.missing_after = compare(self.reference, ipaas_keys(self.handle))
        row.dead_after = dead_letters(home)
        clean = self.run(CLI + RUN, env, home, "clean")
        row.target, row.dup, row.lost = compare(self.reference, ipaas_keys(self.handle))
        row.source = sum(self.reference.values())
        row.dead_left = dead_letters(home)
        if clean != 0:
            row.notes = (row.notes + f"; clean re-run exited {clean}").lstrip("; ")

    def from_ipaas(self, s: Scenario, row: Row) -> None:
        home, env = self.fresh(s.name)
        linked = self.run(CLI + LINKED, env, home, "linked")
        if linked != 0:
            raise RuntimeError(f"the load of customers, price groups and items exited {linked}")
        created = self.create_in_ipaas(s.model)
        ids = [str(c["id"]) for c in created]
        expected = self.expected_in_bc(s.model, created)
        before, since = self.handle.stats(), self.handle.last_seq()
        if s.faults:
            self.handle.set_faults(*[self.fill(f) for f in s.faults])
        row.exit = str(self.run(self.from_command(s, ids), env, home, "fault", self.watcher(s)))
        row.fired = self.fired(before, since)
        self.clear()
        _, _, row.missing_after = compare(expected, bc_keys(self.handle, s.model, created))
        row.dead_after = dead_letters(home)
        clean = self.run(self.from_command(Scenario(s.name, s.direction, model=s.model), ids), env, home, "clean")
        row.target, row.dup, row.lost = compare(expected, bc_keys(self.handle, s.model, created))
        row.source = sum(expected.values())
        row.dead_left = dead_letters(home)
        if clean != 0:
            row.notes = (row.notes + f"; clean re-run exited {clean}").lstrip("; ")

    def create_in_ipaas(self, model: str) -> list[dict[str, Any]]:
        tag = f"FS{self.number}{self.counter:02d}"
        made = []
        for n in range(1, FROM_COUNT + 1):
            if model == "Transaction":
                customer_id = next(int(c["id"]) for c in ipaas_records(self.handle, "Company"))
                skus = [i["No"] for i in self.handle.records("ItemCard")[:3]]
                body = {"transaction_number": f"WEB-{tag}-{n}", "type": "Order", "status": "Pending",
                        "customer_id": customer_id,
                        "lines": [{"sequence_number": k + 1, "sku": sku, "qty": k + 1, "unit_price": 5}
                                  for k, sku in enumerate(skus)]}
            elif model == "Customer":
                body = {"first_name": "Fault", "last_name": f"Suite {tag}-{n}",
                        "email_address": f"fault.{tag.lower()}.{n}@example.com"}
            elif model == "Company":
                body = {"name": f"Fault Suite {tag}-{n} Ltd", "email_address": f"co.{tag.lower()}.{n}@example.com"}
            else:
                body = {"sku": f"FS-{tag}-{n}", "name": f"Fault suite item {n}", "type": "Physical",
                        "tracking_method": "Product", "status": "Active", "default_price": 9.5}
            made.append(ipaas_admin(self.handle, "POST", f"records/{model}", json=body))
        return made

    @staticmethod
    def expected_in_bc(model: str, created: list[dict[str, Any]]) -> collections.Counter:
        keys: collections.Counter = collections.Counter()
        for c in created:
            if model == "Transaction":
                keys[("SalesOrder", c["transaction_number"])] += 1
                keys.update(("SalesOrderLine", c["transaction_number"], k + 1)
                            for k in range(len(c["lines"])))
            elif model == "Customer":
                keys[("Customer", c["email_address"])] += 1
            elif model == "Company":
                keys[("Customer", c["name"])] += 1
            else:
                keys[("Item", c["sku"])] += 1
        return keys

    def stop(self) -> None:
        self.handle.stop()


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40]


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------

def print_table(rows: list[Row]) -> None:
    from tabulate import tabulate

    table = [(r.name, r.direction, r.source, r.target, r.dup, r.lost, r.dead_left,
              f"{r.missing_after} / {r.dead_after}", r.exit, r.fired, f"{r.seconds:.0f}", r.verdict, r.notes)
             for r in rows]
    print(tabulate(table, headers=["scenario", "dir", "source", "target", "dup", "lost", "DL left",
                                   "after fault: missing / DL", "exit", "sandbox answered", "s", "", "notes"],
                   tablefmt="github"))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.05, help="sandbox seed scale (default 0.05, as the tests)")
    parser.add_argument("--only", help="run only the scenarios whose name contains this (the reference always runs)")
    parser.add_argument("--lanes", type=int, default=3, help="sandboxes running scenarios at once (default 3)")
    parser.add_argument("--workdir", type=Path, help="keep every scenario's home and logs here")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)

    chosen = [s for s in scenarios()[1:] if not args.only or args.only.lower() in s.name.lower()]
    if args.list:
        for s in scenarios():
            print(f"{s.direction:4} {s.name}")
        return 0
    started = time.time()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bc-fault-suite-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"fault_suite: {len(chosen) + 1} scenarios, scale {args.scale}, {args.lanes} lane(s), work dir {workdir}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", file=sys.stderr, flush=True)
    n_lanes = max(1, min(args.lanes, len(chosen)))
    lanes = [Lane(n, args, workdir) for n in range(1, n_lanes + 1)]
    rows: dict[str, Row] = {}
    try:
        reference = lanes[0].measure_reference()
        rows[reference.name] = reference
        print(f"[ref] {reference.name}: {reference.seconds:.0f} s, {reference.source} records, exit {reference.exit}",
              file=sys.stderr, flush=True)
        for lane in lanes[1:]:
            lane.reference, lane.clean_writes = lanes[0].reference, lanes[0].clean_writes
        # Waiting scenarios first, each lane taking the next when free: the slow ones overlap the rest.
        work: queue.Queue = queue.Queue()
        for s in sorted(chosen, key=lambda s: not s.slow):
            work.put(s)
        lock = threading.Lock()

        def worker(lane: Lane) -> None:
            while True:
                try:
                    s = work.get_nowait()
                except queue.Empty:
                    return
                row = lane.scenario(s)
                with lock:
                    rows[s.name] = row
                    print(f"[lane {lane.number}] {row.verdict:4} {s.name}: {row.seconds:.0f} s, exit {row.exit}, "
                          f"dup {row.dup}, lost {row.lost}, DL left {row.dead_left}", file=sys.stderr, flush=True)

        threads = [threading.Thread(target=worker, args=(lane,), daemon=True) for lane in lanes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for lane in lanes:
            lane.stop()
    ordered = [rows[s.name] for s in scenarios() if s.name in rows]
    print_table(ordered)
    failing = [r for r in ordered if r.verdict == "FAIL"]
    print(f"\n{len(ordered)} scenarios, {len(failing)} FAIL; total {time.time() - started:.0f} s "
          f"(scale {args.scale}, {n_lanes} lanes); load average {os.getloadavg()[0]:.2f}")
    if args.workdir is None and not failing:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"homes and logs kept in {workdir}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())

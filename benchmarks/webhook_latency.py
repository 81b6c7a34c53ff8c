#!/usr/bin/env python
"""Webhook → Business Central latency with the real Dagster daemon: how long from the receiver's 202 until the
announced iPaaS.com transaction is a BC sales order with all its lines.

    .venv/bin/python benchmarks/webhook_latency.py                    # 50 requests, one every 1-2 s: ~3 minutes
    .venv/bin/python benchmarks/webhook_latency.py --requests 80 --keep --workdir /tmp/wl   # keep logs and figures
    .venv/bin/python benchmarks/webhook_latency.py --coordinator immediate               # a variant (see below)

What runs, all as in production except HTTP (not HTTPS) on loopback for the receiver:
  * the HTTPS sandbox (--scale 0.05, the iPaaS stand-in's rate limit raised to 100,000/60 s, and the pipeline's
    iPaaS throttle with it), a temporary BC_PIPELINE_HOME (so a fresh SQLite state database and inbox) and a
    temporary DAGSTER_HOME holding a copy of the repo's dagster.yaml. That file sets no run coordinator or launcher,
    so the instance uses Dagster's defaults, the same as `dagster dev`: QueuedRunCoordinator (dequeued by the
    daemon every 5 s, at most 10 runs at once) and DefaultRunLauncher (one `dagster api execute_run` process per
    run, and the job's default multiprocess executor starts one more process per step).
  * preparation (not timed): `initial_load` of customer_price_groups, customers and items, in this process.
  * `bc-pipeline webhooks serve --port <free>` and `dagster-daemon run -w workspace.yaml` (cwd = the repo) as
    subprocesses; the sensor `sync_requests` is RUNNING by default. Measuring starts after its first tick and one
    warm-up request (--warmup) has landed.
  * --requests times, --min-gap..--max-gap seconds apart (uniform random, so requests fall at every point of the
    sensor interval): a Pending transaction with 1-3 lines (linked customer, existing item SKUs) is created through
    the stand-in's admin API (`POST /_sandbox/ipaas/records/Transaction`, not timed), then
    `{"notifications":[{"scope":"transaction/created","id":"<id>"}]}` is POSTed to /webhooks/ipaas with the bearer
    key; the clock starts when the receiver has answered 202.
  * every --poll seconds: `GET /_sandbox/ipaas/links` (transaction → BC order No), then for each newly linked order
    `SalesOrderLines` filtered on its Document_No; landed = the poll that saw every line (so a figure is late by up
    to one poll interval). A request not landed --timeout seconds after its 202 counts as failed.

Printed: p50 / p95 / max latency, failures, the sensor interval (declared, and the spacing of its ticks), the runs
launched, the target line `p95 ≤ 15 s: PASS/MISSED`, and where the time goes per request, from the Dagster
instance: 202 → run created (the sensor tick), created → launched (the run queue), launched → RUN_START (the run's
process), RUN_START → STEP_START (the step's process), STEP_START → landed.

Variants, to see what a change would do. They never touch the pipeline: the first two only write the temporary
dagster.yaml; the last two make the daemon load a benchmark-only code location in the working directory, which
imports bc_pipeline.definitions and replaces the one thing named (the sensor function itself is the pipeline's):
  --coordinator immediate     DefaultRunCoordinator: a run is launched by the sensor's own submit, no queue.
  --dequeue-interval N        QueuedRunCoordinator checking the queue every N s instead of 5.
  --sensor-interval N         the sensor's minimum_interval_seconds (the pipeline declares 5).
  --executor in_process       Definitions(executor=in_process_executor): the run's step runs in the run's process.

Before it starts, the script waits for a running benchmarks/load_to_ipaas.py, extract_vs_dlt.py or throttle_probe.py
(--no-wait skips), and prints a WARNING when one of them, or pytest, ran while it measured; it also prints the CPU
its own processes used while measuring and what everything else on the machine used.
Exit status 0 when it measured (target met or not), 1 when setup failed or no request landed. Every process it
started (sandbox, receiver, daemon and the daemon's code server and run processes) is stopped, even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VENV_BIN = Path(sys.executable).parent
TARGET_P95_SECONDS = 15.0
WEBHOOK_KEY = "webhook-latency-benchmark-key"
IPAAS_LIMIT = 100_000
IPAAS_WINDOW = 60
OTHER_BENCHMARKS = "benchmarks/(load_to_ipaas|extract_vs_dlt|throttle_probe)"


@dataclass
class Request:
    index: int  # 0.. ; negative for warm-up requests
    ipaas_id: str
    number: str
    lines: int
    sent: float = 0.0  # epoch seconds just before the webhook POST
    accepted: Optional[float] = None  # epoch seconds when the receiver's 202 arrived
    status: Optional[int] = None
    order_no: Optional[str] = None
    linked: Optional[float] = None  # first poll that saw the transaction link
    landed: Optional[float] = None  # first poll that saw every line
    failed: Optional[str] = None
    # filled from the Dagster instance afterwards
    run_id: Optional[str] = None
    requests_in_run: Optional[int] = None
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def latency(self) -> Optional[float]:
        return None if self.landed is None or self.accepted is None else self.landed - self.accepted


# ---------------------------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------------------------

def other_benchmarks(pattern: str = OTHER_BENCHMARKS) -> list[str]:
    mine = {os.getpid(), os.getppid()}
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [p for p in found if int(p) not in mine]


def wait_for_other_benchmarks() -> None:
    announced = False
    while True:
        found = other_benchmarks()
        if not found:
            return
        if not announced:
            print(f"waiting for another benchmark (pids {', '.join(found)}) to finish ...", flush=True)
            announced = True
        time.sleep(10)


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these processes and every descendant, running or already reaped."""
    import psutil

    seen: dict[int, float] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                t = proc.cpu_times()
                seen[proc.pid] = t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
    return sum(seen.values())


def busy_cpu() -> float:
    """CPU seconds the whole machine has been busy (every core)."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_tree(process: Optional[subprocess.Popen], name: str, grace: float = 20.0) -> None:
    """Stop a process we started and every descendant it has (the daemon's code server, run and step processes)."""
    if process is None:
        return
    try:
        import psutil
    except ImportError:  # without the bench extra: stop the process itself, which stops the servers it started
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return
    try:
        root = psutil.Process(process.pid)
        descendants = root.children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            print(f"{name} (pid {process.pid}) did not stop within {grace:.0f} s; killing it", flush=True)
            process.kill()
            process.wait()
    alive = [p for p in descendants if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, still = psutil.wait_procs(alive, timeout=5)
    for p in still:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if alive:
        print(f"{name}: stopped {len(alive)} leftover descendant process(es)", flush=True)


def instance_yaml(args: argparse.Namespace) -> str:
    text = (REPO / "dagster.yaml").read_text()
    if args.coordinator == "immediate":
        text += ("\n# webhook_latency.py --coordinator immediate\nrun_coordinator:\n"
                 "  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n")
    elif args.dequeue_interval is not None:
        text += (f"\n# webhook_latency.py --dequeue-interval\nrun_queue:\n"
                 f"  dequeue_interval_seconds: {args.dequeue_interval}\n")
    return text


VARIANT_LOCATION = '''"""webhook_latency.py's variant code location: bc_pipeline's definitions with {what}."""
import dagster as dg

from bc_pipeline.definitions import defs
from bc_pipeline.defs.from_ipaas import sync_from_ipaas
from bc_pipeline.defs.jobs import sync_to_ipaas
from bc_pipeline.defs.sensors import sync_requests_sensor as original

SENSOR_INTERVAL = {interval!r}
EXECUTOR = {executor!r}
changes = {{}}
if SENSOR_INTERVAL is not None:
    changes["sensors"] = [dg.sensor(name=original.name, jobs=[sync_to_ipaas, sync_from_ipaas],
                                    minimum_interval_seconds=SENSOR_INTERVAL, description=original.description,
                                    default_status=dg.DefaultSensorStatus.RUNNING)(original._raw_fn)]
if EXECUTOR == "in_process":
    changes["executor"] = dg.in_process_executor
defs = dg.Definitions(**{{"assets": defs.assets, "asset_checks": defs.asset_checks, "jobs": defs.jobs,
                          "schedules": defs.schedules, "sensors": defs.sensors, "resources": defs.resources,
                          "executor": defs.executor, **changes}})
'''


def workspace_for(args: argparse.Namespace, workdir: Path) -> Path:
    """The repo's workspace.yaml, or (for --sensor-interval / --executor) a variant code location in workdir."""
    if args.sensor_interval is None and args.executor is None:
        return REPO / "workspace.yaml"
    what = ", ".join(x for x in (f"minimum_interval_seconds={args.sensor_interval}" if args.sensor_interval is not None
                                 else "", f"executor {args.executor}" if args.executor else "") if x)
    location = workdir / "variant_location"
    location.mkdir(parents=True, exist_ok=True)
    (location / "wl_defs.py").write_text(VARIANT_LOCATION.format(what=what, interval=args.sensor_interval,
                                                                 executor=args.executor))
    workspace = workdir / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_file:\n      relative_path: {location / 'wl_defs.py'}\n"
                         f"      working_directory: {REPO}\n      location_name: bc_pipeline_variant\n")
    print(f"variant code location ({what}): {workspace}", flush=True)
    return workspace


def pipeline_env(handle, home: Path, dagster_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("BC_", "IPAAS_"))
                   or k in ("CONCURRENT_CONNECTIONS", "REQUESTS_CA_BUNDLE", "DAGSTER_HOME"))}
    env.update(handle.env())
    env.update({
        "BC_PIPELINE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "IPAAS_WEBHOOK_API_KEY": WEBHOOK_KEY,
        "IPAAS_THROTTLE_LIMIT": str(IPAAS_LIMIT),
        "IPAAS_THROTTLE_SECONDS": str(IPAAS_WINDOW),
        "PYTHONUNBUFFERED": "1",
    })
    return env


# ---------------------------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace, handle, receiver_url: str, customers: list[int], skus: list[str]):
        import requests

        self.args = args
        self.handle = handle
        self.receiver_url = receiver_url
        self.customers = customers
        self.skus = skus
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.sending_done = threading.Event()
        self.admin = requests.Session()
        self.admin.verify = str(handle.ca_path)
        self.admin.trust_env = False
        self.hooks = requests.Session()
        self.hooks.trust_env = False
        self.poller = requests.Session()
        self.poller.verify = str(handle.ca_path)
        self.poller.trust_env = False
        self.tag = f"{int(time.time()) % 100000:05d}"
        self.intruders: set[str] = set()  # other benchmarks seen running while measuring

    # --- one request ---------------------------------------------------------------------------------------
    def send(self, index: int) -> Request:
        n = self.rng.randint(1, 3)
        skus = self.rng.sample(self.skus, n)
        number = f"WH-{self.tag}-{index:03d}" if index >= 0 else f"WH-{self.tag}-W{-index}"
        body = {"transaction_number": number, "type": "Order", "status": "Pending",
                "customer_id": self.rng.choice(self.customers),
                "lines": [{"sequence_number": k + 1, "sku": sku, "qty": self.rng.randint(1, 5),
                           "unit_price": round(self.rng.uniform(1, 100), 2)} for k, sku in enumerate(skus)]}
        created = self.admin.post(f"{self.handle.base_url}/_sandbox/ipaas/records/Transaction", json=body, timeout=30)
        created.raise_for_status()
        req = Request(index=index, ipaas_id=str(created.json()["id"]), number=number, lines=n)
        hook = {"notifications": [{"scope": "transaction/created", "id": req.ipaas_id}]}
        req.sent = time.time()
        try:
            answer = self.hooks.post(f"{self.receiver_url}/webhooks/ipaas", json=hook, timeout=30,
                                     headers={"Authorization": f"Bearer {WEBHOOK_KEY}"})
            req.status = answer.status_code
            if answer.status_code == 202:
                req.accepted = time.time()
            else:
                req.failed = f"receiver answered {answer.status_code}: {answer.text[:200]}"
        except Exception as exc:  # noqa: BLE001 - a benchmark records, never raises, a failed delivery
            req.failed = f"webhook POST failed: {exc}"
        with self.lock:
            self.requests.append(req)
        return req

    def sender(self, count: int) -> None:
        try:
            for i in range(count):
                self.send(i)
                if i < count - 1:
                    time.sleep(self.rng.uniform(self.args.min_gap, self.args.max_gap))
        except Exception as exc:  # noqa: BLE001
            print(f"sender stopped: {exc!r}", flush=True)
        finally:
            self.sending_done.set()

    # --- landing -------------------------------------------------------------------------------------------
    def _links(self) -> dict[str, str]:
        answer = self.poller.get(f"{self.handle.base_url}/_sandbox/ipaas/links", timeout=30)
        answer.raise_for_status()
        data = answer.json()
        links = data["links"] if isinstance(data, dict) and "links" in data else data
        return {str(link["internal_id"]): str(link["external_id"]) for link in links
                if str(link.get("table_name", "")).lower() == "transaction" and not link.get("deleted")}

    def _line_count(self, order_no: str) -> int:
        literal = order_no.replace("'", "''")
        answer = self.poller.get(f"{self.handle.base_url}/_sandbox/bc/records/SalesOrderLines",
                                 params={"$filter": f"Document_No eq '{literal}'"}, timeout=30)
        answer.raise_for_status()
        return len(answer.json()["value"])

    def poll_once(self) -> None:
        with self.lock:
            waiting = [r for r in self.requests if r.accepted and r.landed is None and r.failed is None]
        if not waiting:
            return
        links = self._links()
        now = time.time()
        for r in waiting:
            if r.order_no is None and r.ipaas_id in links:
                r.order_no, r.linked = links[r.ipaas_id], now
            if r.order_no is not None and self._line_count(r.order_no) >= r.lines:
                r.landed = time.time()
            elif time.time() - r.accepted > self.args.timeout:
                r.failed = f"not in Business Central {self.args.timeout:.0f} s after the 202" + (
                    f" (order {r.order_no} linked, lines missing)" if r.order_no else " (no order linked)")

    def outstanding(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.accepted and r.landed is None and r.failed is None)

    def poll_until_done(self) -> None:
        polls = 0
        while not self.sending_done.is_set() or self.outstanding():
            started = time.monotonic()
            if polls % 20 == 0:
                self.intruders.update(other_benchmarks(OTHER_BENCHMARKS + "|pytest"))
            polls += 1
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a poll that failed is retried on the next
                print(f"poll failed: {exc!r}", flush=True)
            time.sleep(max(0.0, self.args.poll - (time.monotonic() - started)))


# ---------------------------------------------------------------------------------------------------------------
# the Dagster instance's view
# ---------------------------------------------------------------------------------------------------------------

def sensor_ticks(instance) -> list:
    from dagster._core.scheduler.instigation import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == "sync_requests":
            return sorted(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100_000),
                          key=lambda t: t.timestamp)
    return []


def run_marks(instance, run_id: str) -> dict[str, float]:
    """Epoch timestamps of a run's milestones from its event log."""
    from dagster import DagsterEventType as E

    names = {E.RUN_ENQUEUED: "enqueued", E.RUN_STARTING: "launched", E.RUN_START: "started",
             E.STEP_START: "step_start", E.STEP_SUCCESS: "step_end", E.STEP_FAILURE: "step_end",
             E.RUN_SUCCESS: "ended", E.RUN_FAILURE: "ended"}
    marks: dict[str, float] = {}
    record = instance.get_run_record_by_id(run_id)
    marks["created"] = record.create_timestamp.timestamp()
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        name = names.get(event.event_type)
        if name and (name not in marks or name in ("step_end", "ended")):
            if event.step_key and not event.step_key.startswith("bc_out__") and name.startswith("step"):
                continue
            marks[name] = entry.timestamp
    return marks


def attach_runs(instance, engine, reqs: list[Request]) -> dict[str, dict]:
    from bc_pipeline.state import inbox

    runs: dict[str, dict] = {}
    by_key = {}
    for record in instance.get_run_records():
        key = record.dagster_run.tags.get("bc_pipeline/inbox_batch")
        if key:
            by_key[key] = record.dagster_run
    for r in reqs:
        rows = inbox.status(engine, ipaas_id=r.ipaas_id, limit=None)
        row = next((x for x in rows if x.batch_key), None)
        if row is None or row.batch_key not in by_key:
            continue
        run = by_key[row.batch_key]
        if run.run_id not in runs:
            runs[run.run_id] = {"marks": run_marks(instance, run.run_id), "status": run.status.value,
                                "requests": int(run.tags.get("bc_pipeline/requests", "0"))}
        r.run_id, r.requests_in_run, r.marks = run.run_id, runs[run.run_id]["requests"], runs[run.run_id]["marks"]
    return runs


# ---------------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    values = sorted(values)
    if not values:
        return float("nan")
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


SEGMENTS = [  # name, from, to (a request's own marks: accepted, landed; the rest are its run's)
    ("202 → run created (sensor tick)", "accepted", "created"),
    ("run created → launched (run queue)", "created", "launched"),
    ("launched → RUN_START (run process)", "launched", "started"),
    ("RUN_START → STEP_START (step process)", "started", "step_start"),
    ("STEP_START → all lines in BC", "step_start", "landed"),
]


def breakdown(reqs: list[Request]) -> list[tuple[str, float, float, float]]:
    rows = []
    for name, a, b in SEGMENTS:
        spans = []
        for r in reqs:
            marks = {**r.marks, "accepted": r.accepted, "landed": r.landed}
            if marks.get(a) is not None and marks.get(b) is not None:
                spans.append(marks[b] - marks[a])
        if spans:
            rows.append((name, percentile(spans, 0.5), percentile(spans, 0.95), sum(spans) / len(spans)))
    return rows


def max_concurrent(runs: dict[str, dict]) -> int:
    edges = []
    for run in runs.values():
        m = run["marks"]
        if "launched" in m:
            edges += [(m["launched"], 1), (m.get("ended", float("inf")), -1)]
    best = cur = 0
    for _, d in sorted(edges):
        cur += d
        best = max(best, cur)
    return best


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------

def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="measured requests (default 50)")
    parser.add_argument("--warmup", type=int, default=1, help="requests sent and landed before measuring (default 1)")
    parser.add_argument("--min-gap", type=float, default=1.0, help="least seconds between requests (default 1)")
    parser.add_argument("--max-gap", type=float, default=2.0, help="most seconds between requests (default 2)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds after its 202 a request may take (120)")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between landing polls (default 0.25)")
    parser.add_argument("--scale", type=float, default=0.05, help="sandbox data scale (default 0.05)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for gaps, customers, SKUs")
    parser.add_argument("--coordinator", choices=["queued", "immediate"], default="queued",
                        help="queued: the instance default (as `dagster dev`); immediate: DefaultRunCoordinator")
    parser.add_argument("--dequeue-interval", type=int, help="QueuedRunCoordinator dequeue_interval_seconds")
    parser.add_argument("--sensor-interval", type=int,
                        help="variant: the sensor's minimum_interval_seconds (a benchmark-only code location)")
    parser.add_argument("--executor", choices=["in_process"],
                        help="variant: the jobs' executor (a benchmark-only code location)")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for another running benchmark")
    args = parser.parse_args(argv)

    if not args.no_wait:
        wait_for_other_benchmarks()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="webhook-latency-"))
    workdir.mkdir(parents=True, exist_ok=True)
    keep = args.keep or args.workdir is not None
    home, dagster_home = workdir / "home", workdir / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(instance_yaml(args))

    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

    handle = receiver = daemon = None
    code = 1
    logs: list[Path] = []
    load_before = os.getloadavg()
    try:
        started = time.monotonic()
        handle = start_sandbox(SandboxConfig(scale=args.scale, state_dir=workdir / "sandbox",
                                             ipaas_rate_limit=IPAAS_LIMIT, ipaas_rate_window_seconds=IPAAS_WINDOW))
        env = pipeline_env(handle, home, dagster_home)
        for key in [k for k in os.environ if k not in env]:
            del os.environ[key]
        os.environ.update(env)
        print(f"sandbox {handle.base_url} (scale {args.scale}) in {time.monotonic() - started:.1f} s; "
              f"workdir {workdir}", flush=True)

        import dagster as dg

        from bc_pipeline.defs.sensors import SENSOR_INTERVAL_SECONDS
        from bc_pipeline.runner import run_job
        from bc_pipeline.settings import load_settings
        from bc_pipeline.state.database import engine_for

        instance = dg.DagsterInstance.get()
        coordinator = instance.run_coordinator
        queue = (f" (dequeue every {coordinator.dequeue_interval_seconds} s, at most "
                 f"{coordinator.get_run_queue_config().max_concurrent_runs} runs)"
                 if hasattr(coordinator, "dequeue_interval_seconds") else "")
        print(f"instance: run coordinator {type(coordinator).__name__}{queue}, "
              f"run launcher {type(instance.run_launcher).__name__}", flush=True)
        started = time.monotonic()
        outcome = run_job("initial_load", ["customer_price_groups", "customers", "items"], instance=instance,
                          log_level="WARNING")
        if not outcome.success:
            print(f"initial_load failed: {outcome.error}", flush=True)
            return 1
        print(f"initial_load (customer_price_groups, customers, items) in {time.monotonic() - started:.1f} s",
              flush=True)

        links = [l for l in handle.session.get(f"{handle.base_url}/_sandbox/ipaas/links", timeout=60).json()
                 if not l.get("deleted")]
        customers = sorted({int(l["internal_id"]) for l in links if str(l["table_name"]).lower() == "customer"})
        skus = [i["No"] for i in handle.records("ItemCard") if not i.get("Blocked")]
        if not customers or len(skus) < 3:
            print(f"the initial load left {len(customers)} linked customers and {len(skus)} items: nothing to order")
            return 1

        workspace = workspace_for(args, workdir)
        port = free_port()
        receiver_log, daemon_log = workdir / "receiver.log", workdir / "daemon.log"
        logs += [receiver_log, daemon_log]
        with open(receiver_log, "wb") as out:
            receiver = subprocess.Popen([str(VENV_BIN / "bc-pipeline"), "webhooks", "serve", "--port", str(port)],
                                        stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO), env=env,
                                        stdin=subprocess.DEVNULL)
        with open(daemon_log, "wb") as out:
            daemon = subprocess.Popen([str(VENV_BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                                      stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO), env=env,
                                      stdin=subprocess.DEVNULL)
        receiver_url = f"http://127.0.0.1:{port}"
        import requests

        probe = requests.Session()
        probe.trust_env = False
        started = time.monotonic()
        while True:
            try:
                if probe.get(f"{receiver_url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if receiver.poll() is not None or time.monotonic() - started > 60:
                print(f"the receiver did not start; see {receiver_log}:\n{receiver_log.read_text()[-2000:]}")
                return 1
            time.sleep(0.2)
        print(f"receiver {receiver_url} up in {time.monotonic() - started:.1f} s", flush=True)
        started = time.monotonic()
        while not sensor_ticks(instance):
            if daemon.poll() is not None or time.monotonic() - started > 180:
                print(f"the daemon never ticked the sensor; see {daemon_log}:\n{daemon_log.read_text()[-3000:]}")
                return 1
            time.sleep(0.5)
        print(f"dagster-daemon: first sync_requests tick {time.monotonic() - started:.1f} s after start", flush=True)

        bench = Bench(args, handle, receiver_url, customers, skus)
        for w in range(1, args.warmup + 1):
            req = bench.send(-w)
            while bench.outstanding():
                bench.poll_once()
                time.sleep(args.poll)
            print(f"warm-up request {w}: {'landed in %.1f s' % req.latency if req.latency else req.failed}", flush=True)

        measure_from = time.time()
        load_start = os.getloadavg()
        mine = [os.getpid(), daemon.pid, receiver.pid, handle.process.pid]
        cpu_start, mine_start, wall_start = busy_cpu(), tree_cpu(mine), time.monotonic()
        print(f"sending {args.requests} requests, one every {args.min_gap:g}-{args.max_gap:g} s ...", flush=True)
        sender = threading.Thread(target=bench.sender, args=(args.requests,), daemon=True)
        sender.start()
        bench.poll_until_done()
        sender.join()
        load_end = os.getloadavg()
        cpu_busy, cpu_mine = busy_cpu() - cpu_start, tree_cpu(mine) - mine_start
        wall = time.monotonic() - wall_start

        # let the runs still in flight finish, so the figures and the shutdown see complete runs
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and instance.get_runs(filters=dg.RunsFilter(statuses=[
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.NOT_STARTED])):
            time.sleep(1)

        measured = sorted([r for r in bench.requests if r.index >= 0], key=lambda r: r.index)
        engine = engine_for(load_settings().state_database_url)
        runs = attach_runs(instance, engine, measured)
        ticks = [t for t in sensor_ticks(instance) if t.timestamp >= measure_from - 10]
        spacing = [b.timestamp - a.timestamp for a, b in zip(ticks, ticks[1:])]
        tick_seconds = [t.end_timestamp - t.timestamp for t in ticks if t.end_timestamp]
        all_runs = [r for r in instance.get_run_records()
                    if r.dagster_run.job_name in ("sync_from_ipaas", "sync_to_ipaas")
                    and r.create_timestamp.timestamp() >= measure_from]
        failed_runs = [r for r in all_runs if r.dagster_run.status.value != "SUCCESS"]

        latencies = [r.latency for r in measured if r.latency is not None]
        failures = [r for r in measured if r.latency is None]
        if not latencies:
            print("no request landed", flush=True)
            for r in failures[:10]:
                print(f"  {r.number} ({r.ipaas_id}): {r.failed}")
            return 1
        p50, p95, worst = percentile(latencies, 0.5), percentile(latencies, 0.95), max(latencies)

        print()
        print(f"requests sent {len(measured)}, landed {len(latencies)}, failed {len(failures)}")
        print(f"latency 202 → order and all lines in BC: p50 {p50:.2f} s, p95 {p95:.2f} s, max {worst:.2f} s "
              f"(min {min(latencies):.2f} s, mean {sum(latencies) / len(latencies):.2f} s; poll every {args.poll:g} s)")
        interval = args.sensor_interval if args.sensor_interval is not None else SENSOR_INTERVAL_SECONDS
        print(f"sensor interval: minimum_interval_seconds={interval}; ticks while measuring "
              f"{len(ticks)}, spacing median {percentile(spacing, 0.5):.2f} s (min {min(spacing, default=0):.2f}, "
              f"max {max(spacing, default=0):.2f}), evaluation median {percentile(tick_seconds, 0.5):.2f} s")
        per_run = [run["requests"] for run in runs.values()]
        print(f"runs launched: {len(all_runs)} ({len(failed_runs)} not successful), requests per run median "
              f"{percentile(per_run, 0.5):.0f} (max {max(per_run, default=0)}), at most {max_concurrent(runs)} "
              f"in flight at once")
        print(f"load average (1 min): {load_before[0]:.2f} before setup, {load_start[0]:.2f} at the first request, "
              f"{load_end[0]:.2f} at the last landing")
        cores = os.cpu_count() or 1
        print(f"CPU while measuring ({wall:.0f} s, {cores} cores): this benchmark's processes "
              f"{cpu_mine / wall:.2f} cores, everything else {max(0.0, cpu_busy - cpu_mine) / wall:.2f} cores")
        if bench.intruders:
            print(f"WARNING: another benchmark or a test run ran while measuring "
                  f"(pids {', '.join(sorted(bench.intruders))}): the figures are not comparable")
        print(f"target p95 ≤ {TARGET_P95_SECONDS:g} s: {'PASS' if p95 <= TARGET_P95_SECONDS else 'MISSED'} "
              f"({p95:.2f} s)")
        print()
        print("where the time goes, per request (seconds):")
        print(f"  {'segment':40} {'p50':>7} {'p95':>7} {'mean':>7}")
        for name, s50, s95, mean in breakdown(measured):
            print(f"  {name:40} {s50:7.2f} {s95:7.2f} {mean:7.2f}")
        print("  (a run's RUN_START → STEP_START includes the step process's start; STEP_START → landed the sync "
              "itself plus up to one poll)")
        durations = [(m["ended"] - m["launched"]) for m in (run["marks"] for run in runs.values())
                     if "ended" in m and "launched" in m]
        steps = [(m["step_end"] - m["step_start"]) for m in (run["marks"] for run in runs.values())
                 if "step_end" in m and "step_start" in m]
        if durations:
            print(f"  per run: launched → ended median {percentile(durations, 0.5):.2f} s, "
                  f"bc_out step median {percentile(steps, 0.5):.2f} s")
        for r in failures:
            print(f"  failed: {r.number} ({r.ipaas_id}): {r.failed}")

        (workdir / "requests.json").write_text(json.dumps([asdict(r) for r in measured], indent=1))
        (workdir / "runs.json").write_text(json.dumps(runs, indent=1))
        code = 0
    finally:
        stop_tree(daemon, "dagster-daemon")
        stop_tree(receiver, "receiver")
        if handle is not None:
            handle.stop()
        if code != 0:
            keep = True
            for log in logs:
                if log.exists():
                    print(f"log kept: {log}")
        if keep:
            print(f"working directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Business Central change → iPaaS.com latency through BC webhooks and the real Dagster daemon: from the moment
BC's notification was delivered (the receiver's answer to the sandbox's POST) until the changed record shows in
iPaaS.com.

    .venv/bin/python benchmarks/bc_change_latency.py                       # 50 edits, BC's 30 s delay: ~3 minutes
    .venv/bin/python benchmarks/bc_change_latency.py --bc-delay 5 --keep --workdir /tmp/bcl

What runs, all as in production, over HTTPS:
  * the sandbox (--scale 0.5: ~120 BC customers that are companies; its iPaaS.com rate limit and the pipeline's
    iPaaS throttle raised to 100,000/60 s; BC notifies changes --bc-delay seconds after them, 30 like BC), a
    temporary BC_PIPELINE_HOME (a fresh SQLite state database and inbox) and a temporary DAGSTER_HOME holding a copy
    of the repo's dagster.yaml (QueuedRunCoordinator, DefaultRunLauncher: a process per run).
  * preparation (not timed): `initial_load` of customer_price_groups and customers, in this process.
  * `bc-pipeline webhooks serve --certfile/--keyfile` (the sandbox's certificate, so BC's stand-in trusts it) and
    `bc-pipeline daemon` (dagster-daemon with its sensor loop every second; `--dagster-daemon`: the stock one, every
    5 s) as subprocesses; BC_WEBHOOK_NOTIFICATION_URL points at the receiver and
    the subscriptions are created with the pipeline's own code (`webhooks.subscriptions.ensure`).
  * --edits companies (distinct BC customers that are not persons) renamed through the sandbox's admin route (a BC
    user saving the card), --min-gap..--max-gap seconds apart; every --poll seconds iPaaS.com's companies are read
    (admin API) and an edit has landed when its new name shows.

Printed: edits, landed, lost (not landed after --timeout s), duplicated (iPaaS.com companies sharing an external id),
latency notification delivered → in iPaaS.com p50 / p95 / max, save → in iPaaS.com (BC's own delay included), the
notifications and runs, BC and iPaaS.com requests per change (everything the sandbox served while measuring, the
token and admin calls aside), and the targets: p95 ≤ 10 s, 0 lost, 0 duplicated, ≤ 3 BC + 2 iPaaS.com requests.
Exit status 0 when it measured, 1 when setup failed. Every process it started is stopped, even on failure.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from webhook_latency import free_port, percentile, sensor_ticks, stop_tree  # noqa: E402

VENV_BIN = Path(sys.executable).parent
TARGET_P95_SECONDS = 10.0
TARGET_BC_REQUESTS, TARGET_IPAAS_REQUESTS = 3.0, 2.0
CLIENT_STATE = "bc-change-latency-benchmark-client-state"
IPAAS_LIMIT, IPAAS_WINDOW = 100_000, 60


def pipeline_env(handle, home: Path, dagster_home: Path, url: str, executor: Optional[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("BC_", "IPAAS_")) or k in ("CONCURRENT_CONNECTIONS", "REQUESTS_CA_BUNDLE",
                                                           "DAGSTER_HOME"))}
    env.update(handle.env())
    env.update({"BC_PIPELINE_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "PYTHONUNBUFFERED": "1",
                "BC_WEBHOOK_NOTIFICATION_URL": url, "BC_WEBHOOK_CLIENT_STATE": CLIENT_STATE,
                "IPAAS_THROTTLE_LIMIT": str(IPAAS_LIMIT), "IPAAS_THROTTLE_SECONDS": str(IPAAS_WINDOW)})
    if executor:
        env["BC_PIPELINE_EXECUTOR"] = executor
    return env


def wait_until(check, timeout: float, what: str, process: Optional[subprocess.Popen] = None, log: Optional[Path] = None):
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if (process is not None and process.poll() is not None) or time.monotonic() - started > timeout:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s\n{tail}")
        time.sleep(0.2)


def service_requests(handle, since: int) -> tuple[list[dict], list[dict]]:
    """(BC requests, iPaaS.com requests) the sandbox served after `since`, without tokens and admin calls."""
    served = [r for r in handle.requests(since) if not r["path"].startswith("/_sandbox")]
    bc = [r for r in served if r["target"] == "bc"]
    ipaas = [r for r in served if r["target"] == "ipaas"]
    return bc, ipaas


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=50, help="records edited in BC (default 50)")
    parser.add_argument("--min-gap", type=float, default=0.5, help="least seconds between edits (default 0.5)")
    parser.add_argument("--max-gap", type=float, default=1.5, help="most seconds between edits (default 1.5)")
    parser.add_argument("--bc-delay", type=float, default=30.0, help="BC's notification delay, seconds (default 30)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds after its notification an edit may take")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between iPaaS.com polls (default 0.25)")
    parser.add_argument("--scale", type=float, default=0.5, help="sandbox data scale (default 0.5)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--executor", choices=["in_process", "multiprocess"],
                        help="BC_PIPELINE_EXECUTOR for the runs (default: the project's, multiprocess)")
    parser.add_argument("--dagster-daemon", action="store_true",
                        help="Dagster's own dagster-daemon (sensors every 5 s) instead of `bc-pipeline daemon` (every 1 s)")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--verbose", action="store_true", help="print progress every 5 s")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bc-change-latency-"))
    workdir.mkdir(parents=True, exist_ok=True)
    keep = args.keep or args.workdir is not None
    home, dagster_home = workdir / "home", workdir / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())

    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

    handle = receiver = daemon = None
    code = 1
    try:
        handle = start_sandbox(SandboxConfig(scale=args.scale, state_dir=workdir / "sandbox", ipaas_rate_limit=IPAAS_LIMIT,
                                             ipaas_rate_window_seconds=IPAAS_WINDOW,
                                             webhook_delay_seconds=args.bc_delay))
        port = free_port()
        url = f"https://127.0.0.1:{port}/webhooks/bc"
        env = pipeline_env(handle, home, dagster_home, url, args.executor)
        for key in [k for k in os.environ if k not in env]:
            del os.environ[key]
        os.environ.update(env)
        print(f"sandbox {handle.base_url} (scale {args.scale}, BC notification delay {args.bc_delay:g} s); "
              f"workdir {workdir}", flush=True)

        import dagster as dg
        import requests

        from bc_pipeline.clients.bc_api import BusinessCentralApi
        from bc_pipeline.clients.business_central import BusinessCentralClient
        from bc_pipeline.runner import run_job
        from bc_pipeline.settings import load_settings
        from bc_pipeline.webhooks import subscriptions

        instance = dg.DagsterInstance.get()
        started = time.monotonic()
        if not run_job("initial_load", ["customer_price_groups", "customers"], instance=instance,
                       log_level="WARNING").success:
            print("initial_load failed", flush=True)
            return 1
        print(f"initial_load (customer_price_groups, customers) in {time.monotonic() - started:.1f} s", flush=True)

        sandbox_dir = workdir / "sandbox"
        receiver_log, daemon_log = workdir / "receiver.log", workdir / "daemon.log"
        with open(receiver_log, "wb") as out:
            receiver = subprocess.Popen(
                [str(VENV_BIN / "bc-pipeline"), "webhooks", "serve", "--port", str(port),
                 "--certfile", str(sandbox_dir / "server.pem"), "--keyfile", str(sandbox_dir / "server.key")],
                stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO), env=env, stdin=subprocess.DEVNULL)
        with open(daemon_log, "wb") as out:
            command = ([str(VENV_BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")]
                       if args.dagster_daemon else [str(VENV_BIN / "bc-pipeline"), "daemon"])
            daemon = subprocess.Popen(command,
                                      stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO), env=env,
                                      stdin=subprocess.DEVNULL)
        probe = requests.Session()
        probe.verify = str(handle.ca_path)
        probe.trust_env = False
        seconds = wait_until(lambda: probe.get(url.replace("/webhooks/bc", "/healthz"), timeout=2).ok, 60,
                             "the receiver answering", receiver, receiver_log)
        print(f"receiver {url} up in {seconds:.1f} s", flush=True)
        seconds = wait_until(lambda: sensor_ticks(instance), 180, "the daemon's first sync_requests tick", daemon,
                             daemon_log)
        print(f"{'dagster-daemon' if args.dagster_daemon else 'bc-pipeline daemon'}: first sync_requests tick after "
              f"{seconds:.1f} s", flush=True)

        client = BusinessCentralClient(load_settings())
        try:
            api = BusinessCentralApi(client)
            made = subscriptions.ensure(api, load_settings())
            companies = {r["id"]: r["number"] for r in _all(api, "customers")}
        finally:
            client.close()
        print(f"subscriptions: {', '.join(f'{s.entity.name} {s.action or s.state}' for s in made)}", flush=True)

        people = {c["No"] for c in handle.records("CustomerCard") if c.get("Partner_Type") == "Person"}
        linked = {str(link["external_id"]) for link in handle.session.get(
            f"{handle.base_url}/_sandbox/ipaas/links", timeout=60).json()
            if str(link["table_name"]).lower() == "customer" and not link.get("deleted")}
        candidates = sorted(no for no in companies.values() if no not in people and no in linked)
        if len(candidates) < args.edits:
            print(f"only {len(candidates)} linked companies in BC; use a larger --scale", flush=True)
            return 1
        rng = random.Random(args.seed)
        chosen = rng.sample(candidates, args.edits)
        tag = f"{int(time.time()) % 100000:05d}"
        names = {no: f"BCL {tag} {i:03d}" for i, no in enumerate(chosen)}

        since = handle.last_seq()
        log_since = len(handle.webhooks()["log"])
        saved: dict[str, float] = {}
        landed: dict[str, float] = {}
        print(f"editing {args.edits} companies in BC, one every {args.min_gap:g}-{args.max_gap:g} s ...", flush=True)
        next_edit = time.monotonic()
        index = 0
        deadline: Optional[float] = None
        next_report = time.monotonic()
        load_start = os.getloadavg()
        while True:
            now = time.monotonic()
            if index < len(chosen) and now >= next_edit:
                no = chosen[index]
                handle.edit_record("CustomerCard", no, {"Name": names[no]})
                saved[no] = time.time()
                index += 1
                next_edit = now + rng.uniform(args.min_gap, args.max_gap)
                if index == len(chosen):
                    deadline = time.monotonic() + args.bc_delay + args.timeout
            by_name = {c.get("name"): c for c in handle.ipaas_records("Company")}
            if args.verbose and time.monotonic() >= next_report:
                next_report = time.monotonic() + 5
                print(f"  {time.strftime('%H:%M:%S')} edited {index}, landed {len(landed)}", flush=True)
            for no, name in names.items():
                if no not in landed and name in by_name:
                    landed[no] = time.time()
            if len(landed) == len(chosen) or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(args.poll)
        time.sleep(2)  # let runs still finishing (e.g. the customer collection's) make their requests
        _wait_for_runs(instance, dg)

        delivered: dict[str, float] = {}
        notifications = [e for e in handle.webhooks()["log"][log_since:] if e["event"] == "delivered"]
        for entry in notifications:
            for resource in entry.get("resources", []):
                system_id = resource.rsplit("(", 1)[-1].rstrip(")")
                no = companies.get(system_id)
                if no in names and no not in delivered:
                    delivered[no] = entry["time"]
        bc, ipaas = service_requests(handle, since)
        duplicates = handle.ipaas_count("Company", by="external_id").get("duplicates") or {}
        runs = [r for r in instance.get_run_records() if r.dagster_run.tags.get("bc_pipeline/inbox_batch")]

        after_notice = [landed[no] - delivered[no] for no in landed if no in delivered]
        after_save = [landed[no] - saved[no] for no in landed]
        lost = [no for no in chosen if no not in landed]
        if not after_notice:
            print(f"no edit landed with a delivered notification: {len(landed)} landed, {len(delivered)} notified "
                  f"in {len(notifications)} deliveries", flush=True)
            return 1
        p50, p95, worst = percentile(after_notice, 0.5), percentile(after_notice, 0.95), max(after_notice)
        bc_per, ipaas_per = len(bc) / len(chosen), len(ipaas) / len(chosen)
        print()
        print(f"edits {len(chosen)}, landed {len(landed)}, lost {len(lost)}, duplicated {len(duplicates)}")
        print(f"latency notification delivered → in iPaaS.com: p50 {p50:.2f} s, p95 {p95:.2f} s, max {worst:.2f} s "
              f"(min {min(after_notice):.2f} s; poll every {args.poll:g} s)")
        print(f"latency saved in BC → in iPaaS.com (BC's {args.bc_delay:g} s delay included): p50 "
              f"{percentile(after_save, 0.5):.2f} s, p95 {percentile(after_save, 0.95):.2f} s, max {max(after_save):.2f} s")
        print(f"notifications: {len(notifications)} deliveries carrying {sum(e['count'] for e in notifications)} "
              f"changes; runs launched: {len(runs)} "
              f"({sum(r.dagster_run.status.value != 'SUCCESS' for r in runs)} not successful)")
        by_service: dict[str, int] = {}
        for r in bc:
            by_service[r.get("service") or "?"] = by_service.get(r.get("service") or "?", 0) + 1
        print(f"requests per change: BC {bc_per:.2f} ({len(bc)}: "
              f"{', '.join(f'{k} {v}' for k, v in sorted(by_service.items()))}), iPaaS.com {ipaas_per:.2f} ({len(ipaas)})")
        print(f"load average (1 min) {load_start[0]:.1f} at the first edit, {os.getloadavg()[0]:.1f} at the end "
              f"({os.cpu_count()} cores)")
        ok = (p95 <= TARGET_P95_SECONDS and not lost and not duplicates and bc_per <= TARGET_BC_REQUESTS
              and ipaas_per <= TARGET_IPAAS_REQUESTS)
        print(f"targets p95 ≤ {TARGET_P95_SECONDS:g} s, 0 lost, 0 duplicated, ≤ {TARGET_BC_REQUESTS:g} BC + "
              f"{TARGET_IPAAS_REQUESTS:g} iPaaS.com requests per change: {'PASS' if ok else 'MISSED'}")
        for no in lost:
            print(f"  lost: {no} → {names[no]!r}")
        code = 0
    finally:
        stop_tree(daemon, "dagster-daemon")
        stop_tree(receiver, "receiver")
        if handle is not None:
            handle.stop()
        if code != 0:
            keep = True
        if keep:
            print(f"working directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


def _all(api, entity_set: str) -> list[dict[str, Any]]:
    import orjson

    url: Optional[str] = f"{api.root}/companies({api.company_id()})/{entity_set}"
    out: list[dict[str, Any]] = []
    while url:
        body = orjson.loads(api.client.send("GET", url).content)
        out += body.get("value", [])
        url = body.get("@odata.nextLink")
    return out


def _wait_for_runs(instance, dg, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    busy = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.NOT_STARTED]
    while time.monotonic() < deadline and instance.get_runs(filters=dg.RunsFilter(statuses=busy)):
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())

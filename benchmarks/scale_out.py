#!/usr/bin/env python
"""Scale out: `bc-pipeline run --extract-only` side by side vs one at a time, and on one vs two Celery workers.

    .venv/bin/python benchmarks/scale_out.py                      # both parts, 0.5 s per page (~9 min)
    .venv/bin/python benchmarks/scale_out.py --part ratio         # only side by side vs one at a time
    .venv/bin/python benchmarks/scale_out.py --part celery        # only one vs two Celery workers
    .venv/bin/python benchmarks/scale_out.py --shape run          # the data `bc-pipeline run` reads from its sandbox
    .venv/bin/python benchmarks/scale_out.py --latency 1.0 --repeat 3

An HTTPS sandbox subprocess with Business Central's limits on (a request rate per sliding window per app,
5 processed at once, more queued) and `bc_latency_seconds` (SandboxConfig) added to every OData answer inside
the concurrency slot: a page of real BC takes seconds, a page of the sandbox milliseconds, so without it nothing
shows whether the pipeline keeps BC's 5 connections busy. Every mode is the real command,
`bc-pipeline run --extract-only --full-refresh`, in a child process: a first run (full read) with a fresh
BC_PIPELINE_HOME and DAGSTER_HOME.

Part 1, "ratio": BC online's limits (6,000 requests per 300 s, 5 at once), ~6,000 rows in each large service:
  parallel       CONCURRENT_CONNECTIONS steps at once, each in a process of its own (the multiprocess executor)
  one at a time  the same with `--max-concurrent 1` (every step in the run's process)

Part 2, "celery": BC's limit scaled down so that the work is bound by it (default 40 requests per 10 s, Max
Page Size 100: ~300 pages, ~75 s, 7 whole windows), BC_THROTTLE_LIMIT/BC_THROTTLE_SECONDS set to match, and
BC_PIPELINE_EXECUTOR=celery. The script starts a PostgreSQL cluster of its own (scripts/test-postgres.sh in a
temporary folder, a free port), Redis (redis-server on a free port: `scripts/test-redis.sh install`) and, per
mode, fresh databases: the pipeline's state (BC_PIPELINE_STATE_URL, so the throttle is the shared PostgreSQL
one) and Dagster's storage (the README's snippet). Each worker is `celery -A dagster_celery.app worker` with
`--concurrency` 5 (prefork) and a BC_PIPELINE_HOME and DAGSTER_HOME of its own; they share only PostgreSQL, Redis
and the staging folder (BC_PIPELINE_STAGING_URL); its dagster_celery_config imports the code location before
the pool forks, as the README says. The run is started once every worker is ready.
  celery, 1 worker   one such worker (the one-worker baseline is Celery too, not the multiprocess run)
  celery, 2 workers  two of them: one throttle, one `business_central` pool across both

Measured from the sandbox's request log (each BC OData request: arrival, duration, status):
  extraction s     first BC request's arrival to the last one's answer (the wall time of the reads)
  process s        the command from exec to exit (imports, Dagster, the run's set-up; workers already up)
  requests         BC OData requests sent (Entra token requests not counted)
  429s             BC answers 429 (target 0)
  peak in flight   most BC requests whose intervals overlap (at most CONCURRENT_CONNECTIONS)
  busiest window   most requests in any window of the limit's length (sliding) / the limit: at most 100 %
  budget           requests in whole windows / (limit x whole windows): consecutive windows from the first
                   request, the last partial one left out (as benchmarks/load_to_ipaas.py counts them)
  records          rows staged for the run (read back from the staging area) whose keys are exactly the
                   sandbox's, per service: "all" when every service matches, without duplicates

Targets: parallel extraction s <= 0.35x one at a time; 0 answers 429 in every mode; on Celery, budget >= 90 %
for one and for two workers, the busiest window within the limit, and records all. The floor of the parallel
time is the largest service's chain of pages (a service's pages follow @odata.nextLink, one after another),
hence the balanced default shape; `--shape run` shows the data `bc-pipeline run` reads (SalesOrderLines is half
the rows). A missed target is printed as MISSED and the script exits 0; it exits 1 only when a run fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Optional

from celery_cluster import REPO, Worker, create_database, dagster_env, dagster_home, postgres_server, redis_server
from load_to_ipaas import windows

TARGET = 0.35  # parallel extraction s / one at a time
TARGET_BUDGET = 0.90  # requests in whole windows / (limit x whole windows), rate-bound
BC_LIMIT, BC_WINDOW, BC_CONCURRENT = 6000, 300.0, 5  # BC online's per-app limits (the sandbox's defaults)
# ~6,000 rows in each of the five large services (~24 pages each at 250 a page), the three small ones as seeded:
# enough pages per service that a step's start-up (its process, the code location, the client) is not the run.
BALANCED = {"customers": 6000, "items": 6000, "sales_orders": 6000, "lines_per_order_min": 1,
            "lines_per_order_max": 1, "locations_per_item": 1.0, "ledger_rows_min": 1, "ledger_rows_max": 1}
MODES = ("parallel", "one at a time")
CELERY_MODES = {"celery, 1 worker": 1, "celery, 2 workers": 2}


def peak_in_flight(entries: list[dict[str, Any]]) -> int:
    """The most requests whose [arrival, arrival + duration] intervals overlap."""
    edges = sorted([(e["time"], 1) for e in entries] + [(e["time"] + e["duration_ms"] / 1000, -1) for e in entries],
                   key=lambda edge: (edge[0], edge[1]))
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def busiest_window(times: list[float], window: float) -> int:
    """Most requests arriving within any `window` seconds."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def child_env(handle, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any pipeline, Dagster or sandbox setting, plus the sandbox's and extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BC_", "IPAAS_", "DAGSTER_")) and k not in ("REQUESTS_CA_BUNDLE", "CONCURRENT_CONNECTIONS")}
    return {**env, **handle.env(), "CONCURRENT_CONNECTIONS": str(BC_CONCURRENT), "PYTHONUNBUFFERED": "1", **extra}


def run_command(handle, run_dir: Path, env: dict[str, str], max_concurrent: Optional[int] = None) -> dict[str, Any]:
    """`bc-pipeline run --extract-only --full-refresh` in a child process; what the sandbox saw of it."""
    command = [sys.executable, "-m", "bc_pipeline.cli", "run", "--extract-only", "--full-refresh"]
    if max_concurrent is not None:
        command += ["--max-concurrent", str(max_concurrent)]
    since = handle.last_seq()
    started = time.perf_counter()
    with open(run_dir / "run.log", "wb") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO))
    process_seconds = time.perf_counter() - started
    bc = [e for e in handle.requests(since) if e["target"] == "bc" and e["duration_ms"] is not None]
    text = (run_dir / "run.log").read_text(errors="replace")
    run_id = next((line.split()[1] for line in text.splitlines() if line.startswith("Run ") and " recorded in " in line),
                  None)
    return {
        "ok": code == 0, "exit_code": code, "log": str(run_dir / "run.log"), "run_id": run_id,
        "extraction_seconds": (max(e["time"] + e["duration_ms"] / 1000 for e in bc) - min(e["time"] for e in bc))
        if bc else 0.0,
        "process_seconds": process_seconds, "requests": len(bc), "throttled": sum(e["status"] == 429 for e in bc),
        "peak_in_flight": peak_in_flight(bc), "times": sorted(e["time"] for e in bc),
    }


def records_check(handle, staging_url: str, run_id: Optional[str]) -> dict[str, tuple[int, int, bool]]:
    """Per service: rows staged for the run, rows in the sandbox, and whether the staged keys are exactly the
    sandbox's (no duplicate, none missing, none extra)."""
    from bc_pipeline.catalog import ENTITIES
    from bc_pipeline.state.staging import StagingArea

    area = StagingArea(staging_url)
    found = {}
    for entity in ENTITIES:
        if entity.service not in handle.config.published_services:
            continue
        expected = {tuple(str(r[k]) for k in entity.keys) for r in handle.records(entity.service, entity.fixed_filter)}
        staged = area.extract(entity.name, run_id) if run_id else None
        keys = [tuple(str(r[k]) for k in entity.keys) for r in staged.records()] if staged and staged.complete else []
        found[entity.service] = (len(keys), len(expected), len(keys) == len(set(keys)) and set(keys) == expected)
    return found


def run_mode(mode: str, handle, workdir: Path, index: int) -> dict[str, Any]:
    """Part 1: one run on this machine, multiprocess (parallel) or in the run's process (one at a time)."""
    run_dir = workdir / f"{mode.replace(' ', '_')}-{index}"
    run_dir.mkdir()
    env = child_env(handle, {"BC_PIPELINE_HOME": str(run_dir / "home"), "DAGSTER_HOME": str(run_dir / "dagster_home")})
    result = run_command(handle, run_dir, env, 1 if mode == "one at a time" else None)
    result["records"] = records_check(handle, str(run_dir / "home" / "staging"), result["run_id"])
    return result


def celery_mode(mode: str, workers: int, handle, workdir: Path, postgres_url: str, broker: str, concurrency: int,
                throttle: tuple[int, float]) -> dict[str, Any]:
    """Part 2: one run whose steps execute on `workers` Celery workers sharing PostgreSQL, Redis and staging."""
    run_dir = workdir / mode.replace(", ", "-").replace(" ", "_")
    staging = run_dir / "shared_staging"
    staging.mkdir(parents=True)
    from bc_pipeline.definitions import CELERY_BROKER_VARIABLE, EXECUTOR_VARIABLE

    shared = {EXECUTOR_VARIABLE: "celery", CELERY_BROKER_VARIABLE: broker,
              "BC_PIPELINE_STATE_URL": create_database(postgres_url, "state"), "BC_PIPELINE_STAGING_URL": str(staging),
              "BC_THROTTLE_LIMIT": str(throttle[0]), "BC_THROTTLE_SECONDS": f"{throttle[1]:g}",
              **dagster_env(create_database(postgres_url, "dagster"))}
    pool = [Worker(f"worker{i + 1}", run_dir / f"worker{i + 1}", child_env(handle, shared), broker, concurrency)
            for i in range(workers)]
    try:
        for worker in pool:
            worker.wait_ready()
        env = child_env(handle, {**shared, "BC_PIPELINE_HOME": str(run_dir / "home"),
                                 "DAGSTER_HOME": str(dagster_home(run_dir / "dagster_home"))})
        result = run_command(handle, run_dir, env)
    finally:
        for worker in pool:
            worker.stop()
    result["steps_per_worker"] = [w.steps_run() for w in pool]
    result["records"] = records_check(handle, str(staging), result["run_id"])
    return result


def records_cell(result: dict[str, Any]) -> str:
    found = result["records"]
    staged = sum(n for n, _, _ in found.values())
    wrong = [service for service, (_, _, ok) in found.items() if not ok]
    return f"{staged:,}: all" if not wrong else f"{staged:,}: wrong in {', '.join(wrong)}"


def ratio_part(args, workdir: Path) -> tuple[list[str], bool]:
    """Part 1's table and target lines; whether every run succeeded."""
    from tabulate import tabulate

    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

    handle = None
    try:
        handle = start_sandbox(SandboxConfig(
            scale=args.scale, state_dir=workdir / "sandbox", max_page_size=args.page_size,
            seed_counts=BALANCED if args.shape == "balanced" else {}, bc_rate_limit=BC_LIMIT,
            bc_rate_window_seconds=BC_WINDOW, bc_max_concurrent=BC_CONCURRENT, bc_latency_seconds=args.latency))
        counts = {s: handle.count(s)["count"] for s in handle.config.published_services}
        print(f"part 1, sandbox {handle.base_url}: BC {BC_LIMIT} requests per {BC_WINDOW:g} s, {BC_CONCURRENT} at once, "
              f"+{args.latency:g} s per OData answer, Max Page Size {args.page_size}; load {_loadavg()}")
        print("rows: " + ", ".join(f"{s} {n:,}" for s, n in counts.items()))
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
        for index in range(args.repeat):
            for mode in MODES:
                print(f"run {index + 1}/{args.repeat}: {mode} ...", flush=True)
                results[mode].append(run_mode(mode, handle, workdir, index))
    finally:
        if handle is not None:
            handle.stop()

    def median(mode: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[mode])

    table = []
    for mode in MODES:
        last = results[mode][-1]
        busiest = busiest_window(last["times"], BC_WINDOW)
        table.append((mode, f"{median(mode, 'extraction_seconds'):.2f}", f"{median(mode, 'process_seconds'):.2f}",
                      last["requests"], last["throttled"], last["peak_in_flight"],
                      f"{busiest} / {BC_LIMIT} ({100 * busiest / BC_LIMIT:.1f} %)", records_cell(last)))
    lines = [tabulate(table, headers=["mode", "extraction s", "process s", "requests", "429s", "peak in flight",
                                      f"busiest {BC_WINDOW:g} s window", "records"], tablefmt="github",
                      disable_numparse=True)]
    ratio = median("parallel", "extraction_seconds") / max(median("one at a time", "extraction_seconds"), 1e-9)
    process_ratio = median("parallel", "process_seconds") / max(median("one at a time", "process_seconds"), 1e-9)
    lines.append(f"\nparallel / one at a time: extraction {ratio:.3f}x (process {process_ratio:.3f}x)")
    lines.append(f"target: parallel extraction <= {TARGET}x one at a time ... {ratio:.3f}x: {_verdict(ratio <= TARGET)}")
    throttled = sum(r["throttled"] for runs in results.values() for r in runs)
    lines.append(f"target: 0 answers 429 (part 1) ... {throttled}: {_verdict(throttled == 0)}")
    peak = max(r["peak_in_flight"] for r in results["parallel"])
    lines.append(f"target: parallel keeps 1 < requests in flight <= {BC_CONCURRENT} ... peak {peak}: "
                 f"{_verdict(1 < peak <= BC_CONCURRENT)}")
    wrong = [m for m, runs in results.items() for r in runs if "wrong" in records_cell(r)]
    lines.append(f"target: records all (part 1) ... {'wrong in ' + ', '.join(wrong) if wrong else 'all'}: "
                 f"{_verdict(not wrong)}")
    ok = True
    for mode, runs in results.items():
        for r in runs:
            if not r["ok"]:
                ok = False
                lines.append(f"!! {mode} exited {r['exit_code']}: see {r['log']}")
    if args.repeat > 1:
        for mode, runs in results.items():
            lines.append(f"{mode} runs: extraction " + ", ".join(f"{r['extraction_seconds']:.2f}" for r in runs) + " s")
    return lines, ok


def celery_part(args, workdir: Path) -> tuple[list[str], bool]:
    """Part 2's table and target lines; whether every run succeeded."""
    from tabulate import tabulate

    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

    limit, window = args.budget_limit, args.budget_window
    results: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        postgres_url = stack.enter_context(postgres_server(args.pg_port))
        redis_url = stack.enter_context(redis_server(workdir / "redis"))
        handle = start_sandbox(SandboxConfig(
            scale=args.scale, state_dir=workdir / "sandbox-celery", max_page_size=args.budget_page_size,
            seed_counts=BALANCED if args.shape == "balanced" else {}, bc_rate_limit=limit,
            bc_rate_window_seconds=window, bc_max_concurrent=BC_CONCURRENT, bc_latency_seconds=args.latency))
        stack.callback(handle.stop)
        counts = {s: handle.count(s)["count"] for s in handle.config.published_services}
        print(f"part 2, sandbox {handle.base_url}: BC {limit} requests per {window:g} s (BC_THROTTLE_LIMIT/SECONDS "
              f"the same), {BC_CONCURRENT} at once, +{args.latency:g} s per OData answer, Max Page Size "
              f"{args.budget_page_size}; Celery workers --concurrency {args.worker_concurrency}; load {_loadavg()}")
        print("rows: " + ", ".join(f"{s} {n:,}" for s, n in counts.items()))
        for database, (mode, workers) in enumerate(CELERY_MODES.items(), start=1):
            print(f"{mode} ...", flush=True)
            broker = redis_url.rsplit("/", 1)[0] + f"/{database}"  # a Redis database per mode: no leftover task
            results[mode] = celery_mode(mode, workers, handle, workdir, postgres_url, broker, args.worker_concurrency,
                                        (limit, window))

    table, lines, ok = [], [], True
    for mode, r in results.items():
        busiest = busiest_window(r["times"], window)
        whole = windows(r["times"], limit, window, r["times"][0], r["times"][-1]) if r["times"] else {"k": 0}
        r["budget"] = whole["share"] if whole["k"] else float("nan")
        r["shares"] = whole.get("shares", [])
        r["busiest"] = busiest
        table.append((mode, f"{r['extraction_seconds']:.2f}", f"{r['process_seconds']:.2f}", r["requests"],
                      r["throttled"], r["peak_in_flight"], f"{busiest} / {limit} ({100 * busiest / limit:.0f} %)",
                      f"{100 * r['budget']:.1f} % ({whole['k']} windows)",
                      " / ".join(str(n) for n in r["steps_per_worker"]), records_cell(r)))
    lines.append(tabulate(table, headers=["mode", "extraction s", "process s", "requests", "429s", "peak in flight",
                                          f"busiest {window:g} s window", "budget, whole windows", "steps per worker",
                                          "records"], tablefmt="github", disable_numparse=True))
    lines.append("")
    for mode, r in results.items():
        throttled, budget, busiest = r["throttled"], r["budget"], r["busiest"]
        lines.append(f"target: {mode}: 0 answers 429 ... {throttled}: {_verdict(throttled == 0)}")
        lines.append(f"target: {mode}: budget over whole windows >= {TARGET_BUDGET:.0%} ... {budget:.1%}: "
                     f"{_verdict(budget >= TARGET_BUDGET)}")
        lines.append(f"target: {mode}: busiest {window:g} s window <= {limit} ... {busiest}: {_verdict(busiest <= limit)}")
        lines.append(f"{mode}: each whole {window:g} s window, % of the limit: " + " ".join(f"{100 * x:.0f}" for x in r["shares"]))
        wrong = [s for s, (_, _, good) in r["records"].items() if not good]
        lines.append(f"target: {mode}: records delivered correctly, all ... "
                     f"{'wrong in ' + ', '.join(wrong) if wrong else 'all'}: {_verdict(not wrong)}")
        if not r["ok"]:
            ok = False
            lines.append(f"!! {mode} exited {r['exit_code']}: see {r['log']}")
    if len(results) == 2 and all(len(r["steps_per_worker"]) == 2 for r in list(results.values())[1:]):
        two = list(results.values())[1]["steps_per_worker"]
        lines.append(f"target: two workers both ran steps ... {two[0]} / {two[1]}: {_verdict(min(two) > 0)}")
    return lines, ok


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "ratio", "celery"), default="all",
                        help="ratio: side by side vs one at a time; celery: one vs two Celery workers")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds added to every BC OData answer")
    parser.add_argument("--shape", choices=("balanced", "run"), default="balanced",
                        help="balanced: ~6,000 rows in each large service; run: bc-pipeline run's sandbox data")
    parser.add_argument("--scale", type=float, default=1.0, help="sandbox seed scale (--shape run)")
    parser.add_argument("--page-size", type=int, default=250, help="part 1: the sandbox's Max Page Size")
    parser.add_argument("--repeat", type=int, default=1, help="part 1: runs per mode, interleaved (medians shown)")
    parser.add_argument("--budget-limit", type=int, default=40, help="part 2: BC requests per window (sandbox and "
                        "throttle); below what 5 connections at --latency can send, so that the limit binds")
    parser.add_argument("--budget-window", type=float, default=10.0, help="part 2: the limit's window, seconds")
    parser.add_argument("--budget-page-size", type=int, default=100, help="part 2: the sandbox's Max Page Size")
    parser.add_argument("--worker-concurrency", type=int, default=BC_CONCURRENT,
                        help="part 2: steps each Celery worker runs at once (prefork)")
    parser.add_argument("--pg-port", type=int, default=None, help="part 2: the PostgreSQL cluster's port (default free)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, staged pages)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bc-scale-out-", dir=args.workdir))
    print(f"working in {workdir}")
    lines, ok = [], True
    if args.part in ("all", "ratio"):
        part, part_ok = ratio_part(args, workdir)
        lines += ["", "Part 1: side by side vs one at a time, BC's limits", *part]
        ok &= part_ok
    if args.part in ("all", "celery"):
        part, part_ok = celery_part(args, workdir)
        lines += ["", f"Part 2: one vs two Celery workers, BC's limit scaled to {args.budget_limit} per "
                      f"{args.budget_window:g} s, PostgreSQL throttle", *part]
        ok &= part_ok
    print("\n".join(lines))
    if not args.keep and ok:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())

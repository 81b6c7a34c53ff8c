#!/usr/bin/env python
"""bc_pipeline's extraction (through its Dagster assets) against dlt's rest_api source, on one HTTPS sandbox.

    .venv/bin/python benchmarks/extract_vs_dlt.py                 # scale 1.0: ~190,000 BC rows
    .venv/bin/python benchmarks/extract_vs_dlt.py --scale 0.25    # 0.25 / 0.5 / 1.0: memory should stay flat
    .venv/bin/python benchmarks/extract_vs_dlt.py --only dlt      # one side only
    .venv/bin/python benchmarks/extract_vs_dlt.py --profile       # cProfile of the bc_pipeline child

One sandbox subprocess (seed profile "benchmark", BC rate limit raised so that neither side is throttle-bound)
serves every run. Each tool runs in a child process of its own so that its peak memory is measured cleanly:
the parent reaps it with os.wait4(), whose ru_maxrss is that child's peak resident set (and nothing else's).

  bc_pipeline  run_job("extract_business_central", instance=DagsterInstance.ephemeral()) with the sandbox's
               environment and a fresh BC_PIPELINE_HOME: every extraction asset and its key check, as
               `bc-pipeline run --job extract_business_central` would run them (a first run, so a full read).
  dlt          dlt's rest_api source (one resource per service, same $select, same page size, same TLS CA)
               into a DuckDB file, with dlt's defaults otherwise (see child_dlt for every choice).
  dlt_jsonl    the same with pipeline.run(loader_file_format="jsonl"), the one-line tuning a dlt user would try
               first: DuckDB's default insert_values files are slow and memory-hungry. A reference only; the
               targets are judged against dlt's defaults (--skip dlt_jsonl to leave it out).
  floor        a plain requests loop over the same pages (GET + orjson.loads, nothing kept): what the sandbox,
               TLS and the wire cost on their own; neither tool can be faster than this.

Before any measured run, one unmeasured pass over every page warms the sandbox's per-$select JSON cache (the
first reader of a shape would otherwise pay its serialisation) and gives the expected row count per service.

Times: "wall s" is the extraction itself, timed inside the child after the code is imported (bc_pipeline:
the Dagster instance + run_job; dlt: the token + dlt.pipeline + pipeline.run); "process s" is the whole child,
interpreter start-up and imports included. The ratios are printed for both; the target uses "wall s".

Targets: bc_pipeline <= 0.2x dlt's wall time, and <= 1 GB peak memory. A missed target is printed as MISSED;
the script still exits 0 (it is a measurement). It exits 1 only when a run fails or row counts disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

PAGE_SIZE = 5_000  # bc_pipeline's default page size (SubscriptionResource.page_size); dlt is given the same
TIME_TARGET = 0.2  # bc_pipeline wall time / dlt wall time
MEMORY_TARGET_MB = 1024.0
TOOLS = ("bc_pipeline", "dlt")
EXTRAS = ("floor", "dlt_jsonl")  # references, run unless skipped; the targets are against "dlt"
ORDER = ("floor", "bc_pipeline", "dlt", "dlt_jsonl")
LABELS = {
    "bc_pipeline": "bc_pipeline (Dagster assets)",
    "dlt": "dlt rest_api -> duckdb (defaults)",
    "dlt_jsonl": "dlt, loader_file_format=jsonl",
    "floor": "plain requests loop (floor)",
}


# ---------------------------------------------------------------------------------------------------------------
# children: each runs one tool and writes what it saw to a JSON file; the parent measures time and memory
# ---------------------------------------------------------------------------------------------------------------

def _token(spec: dict[str, Any]) -> str:
    """A client-credentials token from the sandbox's Entra ID token endpoint (a plain POST, as MSAL would)."""
    import requests

    response = requests.post(spec["token_url"], data={
        "grant_type": "client_credentials", "client_id": os.environ["BC_CLIENT_ID"],
        "client_secret": os.environ["BC_CLIENT_SECRET"], "scope": os.environ["BC_SCOPE"]},
        verify=spec["ca_bundle"], timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def child_bc_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    import dagster as dg

    import bc_pipeline.definitions  # noqa: F401 - the code location, imported before the clock starts (as dlt's)
    from bc_pipeline.runner import run_job

    imported = time.perf_counter()
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    if spec.get("dagster_instance") == "sqlite":
        # a persistent SQLite instance, as `bc-pipeline run` uses in its DAGSTER_HOME
        instance = dg.DagsterInstance.local_temp(tempdir=os.environ["DAGSTER_HOME"])
    else:
        instance = dg.DagsterInstance.ephemeral()
    instance_seconds = time.perf_counter() - started
    outcome = run_job("extract_business_central", instance=instance)
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile_path"])

    rows = {meta.get("service", name): int(meta.get("rows", 0)) for name, meta in outcome.extracts.items()}
    assets = {
        meta.get("service", name): {
            k: meta.get(k) for k in ("rows", "pages", "requests", "bytes", "seconds", "throttle_wait_seconds")
        }
        for name, meta in outcome.extracts.items()
    }
    # Where the run's time went, step by step, from the run's own event log.
    steps: dict[str, dict[str, float]] = {}
    run_start = run_end = None
    for entry in instance.all_logs(outcome.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "PIPELINE_START" or kind == "RUN_START":
            run_start = entry.timestamp
        elif kind in ("PIPELINE_SUCCESS", "RUN_SUCCESS", "PIPELINE_FAILURE", "RUN_FAILURE"):
            run_end = entry.timestamp
        if event.step_key is None:
            continue
        step = steps.setdefault(event.step_key, {})
        if kind == "STEP_START":
            step["start"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = entry.timestamp
    step_seconds = {k: round(v["end"] - v["start"], 3) for k, v in steps.items() if "start" in v and "end" in v}
    return {
        "ok": outcome.success,
        "error": outcome.error,
        "rows": rows,
        "seconds": seconds,
        "import_seconds": imported - spec["child_started"],
        "instance_seconds": instance_seconds,
        "assets": assets,
        "steps": step_seconds,
        "run_event_seconds": (run_end - run_start) if run_start and run_end else None,
    }


def child_dlt(spec: dict[str, Any]) -> dict[str, Any]:
    import dlt
    import duckdb  # noqa: F401 - the destination's driver, imported before the clock starts
    from dlt.sources.rest_api import RESTAPIConfig, rest_api_source

    imported = time.perf_counter()
    started = time.perf_counter()
    token = _token(spec)
    # What a data engineer would write for BC's OData web services, and why:
    # - client.base_url is the company URL; one resource per published service, path = the service name.
    # - data_selector "value": OData puts the records in "value".
    # - paginator json_link on "['@odata.nextLink']" (bracket notation: the key holds an @ and a dot); the
    #   next link is absolute and carries $select and $skiptoken, and dlt drops the first request's params
    #   when it follows it, so nothing is sent twice.
    # - Prefer: odata.maxpagesize=5000, the page size bc_pipeline uses by default (BC's own maximum is 20,000).
    # - $select: the catalog's field lists, so both tools move exactly the same columns.
    # - bearer auth with a client-credentials token (a plain POST to the token endpoint, as MSAL does).
    # - TLS verified against the sandbox's CA through REQUESTS_CA_BUNDLE (dlt's client merges requests'
    #   environment settings); verification is never turned off.
    # - Everything else is dlt's default: write_disposition "append" into a fresh dataset (a full read, as
    #   bc_pipeline's first run), round-robin extraction in one thread, DuckDB's default loader file format
    #   (insert_values; parquet would need pyarrow, which the `bench` extra does not install), no primary keys
    #   or merge (bc_pipeline's extraction does not deduplicate either; its key check runs after).
    config: RESTAPIConfig = {
        "client": {
            "base_url": spec["company_url"] + "/",
            "auth": {"type": "bearer", "token": token},
            "headers": {"Prefer": f"odata.maxpagesize={spec['page_size']}", "Accept": "application/json"},
            "paginator": {"type": "json_link", "next_url_path": "['@odata.nextLink']"},
        },
        "resource_defaults": {"endpoint": {"data_selector": "value"}},
        "resources": [
            {"name": service, "endpoint": {"path": service, "params": {"$select": ",".join(select)}}}
            for service, select in spec["services"].items()
        ],
    }
    source = rest_api_source(config, name="business_central")
    workdir = Path(spec["workdir"])
    pipeline = dlt.pipeline(
        pipeline_name="bc_bench",
        pipelines_dir=str(workdir / "dlt_pipelines"),
        destination=dlt.destinations.duckdb(str(workdir / "bc_bench.duckdb")),
        dataset_name="business_central",
    )
    info = pipeline.run(source, loader_file_format=spec.get("dlt_file_format"))
    seconds = time.perf_counter() - started

    rows: dict[str, int] = {}
    naming = pipeline.default_schema.naming
    with pipeline.sql_client() as client:
        for service in spec["services"]:
            table = client.make_qualified_table_name(naming.normalize_table_identifier(service))
            try:
                rows[service] = int(client.execute_sql(f"SELECT count(*) FROM {table}")[0][0])
            except Exception:  # noqa: BLE001 - a service with no rows has no table
                rows[service] = 0
    trace = pipeline.last_trace
    phases = {s.step: round((s.finished_at - s.started_at).total_seconds(), 3) for s in trace.steps
              if s.started_at and s.finished_at}
    normalized = dict(trace.last_normalize_info.row_counts) if trace.last_normalize_info else {}
    return {
        "ok": not info.has_failed_jobs,
        "error": None if not info.has_failed_jobs else str(info),
        "rows": rows,
        "seconds": seconds,
        "import_seconds": imported - spec["child_started"],
        "phases": phases,
        "normalized_row_counts": {k: v for k, v in normalized.items() if not k.startswith("_dlt")},
    }


def fetch_all(spec: dict[str, Any], token: Optional[str] = None) -> dict[str, Any]:
    """Every page of every service with requests + orjson, nothing kept: the sandbox's own cost."""
    import orjson
    import requests

    token = token or _token(spec)
    session = requests.Session()
    session.trust_env = False  # else an inherited REQUESTS_CA_BUNDLE would win over session.verify
    session.verify = spec["ca_bundle"]
    session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json",
                            "Prefer": f"odata.maxpagesize={spec['page_size']}"})
    rows: dict[str, int] = {}
    fetch = parse = 0.0
    pages = 0
    for service, select in spec["services"].items():
        url: Optional[str] = f"{spec['company_url']}/{service}"
        params: Optional[dict[str, str]] = {"$select": ",".join(select)}
        count = 0
        while url:
            t0 = time.perf_counter()
            response = session.get(url, params=params, timeout=120)
            response.raise_for_status()
            content = response.content
            t1 = time.perf_counter()
            body = orjson.loads(content)
            t2 = time.perf_counter()
            fetch += t1 - t0
            parse += t2 - t1
            pages += 1
            count += len(body.get("value", []))
            url, params = body.get("@odata.nextLink"), None
        rows[service] = count
    session.close()
    return {"rows": rows, "fetch_seconds": fetch, "parse_seconds": parse, "pages": pages}


def child_floor(spec: dict[str, Any]) -> dict[str, Any]:
    imported = time.perf_counter()
    started = time.perf_counter()
    result = fetch_all(spec)
    seconds = time.perf_counter() - started
    return {"ok": True, "error": None, "seconds": seconds, "import_seconds": imported - spec["child_started"],
            **result}


def child_main(tool: str, spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    spec["child_started"] = time.perf_counter()
    runner = {"bc_pipeline": child_bc_pipeline, "dlt": child_dlt, "dlt_jsonl": child_dlt, "floor": child_floor}[tool]
    try:
        result = runner(spec)
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        import traceback

        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "rows": {}, "seconds": 0.0}
    Path(out_path).write_text(json.dumps(result, default=str))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------------------------

def run_child(tool: str, spec: dict[str, Any], env: dict[str, str], workdir: Path, index: int) -> dict[str, Any]:
    """Run one tool in a child process; its wall time and, from wait4, its peak RSS."""
    spec_path = workdir / f"{tool}-{index}.spec.json"
    out_path = workdir / f"{tool}-{index}.result.json"
    log_path = workdir / f"{tool}-{index}.log"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", tool, "--spec", str(spec_path), "--out", str(out_path)]
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(workdir))
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    process_seconds = time.perf_counter() - started
    result: dict[str, Any] = {"ok": False, "error": f"the child exited with {process.returncode}", "rows": {},
                              "seconds": 0.0}
    if out_path.exists():
        result = json.loads(out_path.read_text())
    result["process_seconds"] = process_seconds
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0  # Linux: kilobytes
    result["log"] = str(log_path)
    if not result.get("ok"):
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        result["log_tail"] = "\n".join(tail)
    return result


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r.get(key) or 0.0) for r in runs)


def fmt_ratio(value: float) -> str:
    return f"{value:.3f}x"


def print_report(args: argparse.Namespace, expected: dict[str, int], results: dict[str, list[dict[str, Any]]],
                 sandbox_seconds: float) -> int:
    from tabulate import tabulate

    problems = 0
    print()
    print(f"scale {args.scale}: {sum(expected.values()):,} rows in {len(expected)} services; page size "
          f"{PAGE_SIZE}; sandbox BC rate limit {args.rate_limit} per {args.rate_window:g} s; "
          f"sandbox started in {sandbox_seconds:.1f} s; {args.repeat} run(s) each, medians shown")
    rows = []
    for tool, runs in results.items():
        total_rows = sum(runs[-1].get("rows", {}).values())
        run_s = median_of(runs, "seconds")
        rows.append((LABELS[tool], f"{total_rows:,}", f"{run_s:.2f}", f"{median_of(runs, 'process_seconds'):.2f}",
                     f"{total_rows / run_s:,.0f}" if run_s else "-", f"{median_of(runs, 'peak_rss_mb'):.0f}"))
    print()
    print(tabulate(rows, headers=["tool", "rows", "wall s", "process s", "rows/s", "peak RSS MB"],
                   tablefmt="github", disable_numparse=True))
    print("wall s: the extraction, timed in the child after imports (bc_pipeline: Dagster instance + run_job; "
          "dlt: token + dlt.pipeline + pipeline.run);")
    print("process s: the child from exec to exit (interpreter start, imports, the run, teardown).")

    for tool, runs in results.items():
        for i, r in enumerate(runs):
            if not r.get("ok"):
                problems += 1
                print(f"\n!! {tool} run {i + 1} FAILED: {r.get('error')}\n{r.get('log_tail', '')}\n(log: {r['log']})")

    bc = results.get("bc_pipeline")
    print()
    if bc:
        for other in ("dlt", "dlt_jsonl"):
            if not results.get(other):
                continue
            ref = results[other]
            time_ratio = median_of(bc, "seconds") / max(median_of(ref, "seconds"), 1e-9)
            process_ratio = median_of(bc, "process_seconds") / max(median_of(ref, "process_seconds"), 1e-9)
            mem_ratio = median_of(bc, "peak_rss_mb") / max(median_of(ref, "peak_rss_mb"), 1e-9)
            print(f"bc_pipeline / {other}: wall time {fmt_ratio(time_ratio)} (process {fmt_ratio(process_ratio)}), "
                  f"peak memory {fmt_ratio(mem_ratio)}")
            verdict = "met" if time_ratio <= TIME_TARGET else "MISSED"
            what = "dlt's wall time" if other == "dlt" else "dlt's wall time with jsonl files (reference only)"
            print(f"target: bc_pipeline <= {TIME_TARGET}x {what} ... {fmt_ratio(time_ratio)}: {verdict}")
    if bc:
        peak = median_of(bc, "peak_rss_mb")
        verdict = "met" if peak <= MEMORY_TARGET_MB else "MISSED"
        print(f"target: bc_pipeline <= 1 GB peak memory ... {peak:.0f} MB: {verdict}")

    # row counts per service
    print()
    services = list(expected)
    count_rows = []
    for service in services:
        line = [service, f"{expected[service]:,}"]
        ok = True
        for tool, runs in results.items():
            got = runs[-1].get("rows", {}).get(service)
            line.append("-" if got is None else f"{got:,}")
            ok = ok and got == expected[service]
        line.append("ok" if ok else "MISMATCH")
        if not ok:
            problems += 1
        count_rows.append(line)
    print(tabulate(count_rows, headers=["service", "sandbox", *results.keys(), "rows"], tablefmt="github",
                   disable_numparse=True))
    if problems:
        print("ROW COUNT MISMATCH or failed run: see above" if any(r[-1] == "MISMATCH" for r in count_rows)
              else "a run failed: see above")

    # where the time went
    if bc and bc[-1].get("ok"):
        last = bc[-1]
        assets = last.get("assets", {})
        in_assets = sum(float(a.get("seconds") or 0) for a in assets.values())
        throttle = sum(float(a.get("throttle_wait_seconds") or 0) for a in assets.values())
        steps = last.get("steps", {})
        extract_steps = sum(v for k, v in steps.items() if k.startswith("bc__"))  # their key checks included
        print()
        instance_s = float(last.get("instance_seconds") or 0)
        pages = sum(int(a.get("pages") or 0) for a in assets.values())
        print(f"bc_pipeline (last run): {last['seconds']:.2f} s = Dagster instance {instance_s:.2f} s "
              f"+ extraction loops {in_assets:.2f} s (throttle wait {throttle:.2f} s, {pages} pages) "
              f"+ rest of the extract steps {extract_steps - in_assets:.2f} s (clients, token, metadata, key "
              f"checks) + Dagster outside steps {last['seconds'] - instance_s - extract_steps:.2f} s; "
              f"imports before the clock {last.get('import_seconds', 0):.2f} s")
        print("  per asset (s): " + ", ".join(f"{s} {float(a.get('seconds') or 0):.2f}" for s, a in assets.items()))
    for other in ("dlt", "dlt_jsonl"):
        runs = results.get(other)
        if not runs or not runs[-1].get("ok"):
            continue
        last = runs[-1]
        phases = last.get("phases", {})
        print(f"{other} (last run): {last['seconds']:.2f} s = "
              + " + ".join(f"{k} {v:.2f}" for k, v in phases.items() if k != "run")
              + f" (pipeline.run {phases.get('run', 0):.2f}); imports {last.get('import_seconds', 0):.2f} s")
    fl = results.get("floor")
    if fl and fl[-1].get("ok"):
        last = fl[-1]
        print(f"floor (last run): {last['seconds']:.2f} s = HTTP (sandbox + TLS + wire) {last['fetch_seconds']:.2f} s "
              f"+ orjson.loads {last['parse_seconds']:.2f} s over {last['pages']} pages")
    served = [(tool, runs[-1]) for tool, runs in results.items() if "sandbox_seconds" in runs[-1]]
    if served:
        print("sandbox's own time serving each run (its request log: Entra + OData, request in to body handed "
              "to the socket): " + "; ".join(f"{t} {r['sandbox_seconds']:.2f} s over {r['sandbox_requests']} requests"
                                              for t, r in served))
    if args.repeat > 1:
        print()
        for tool, runs in results.items():
            print(f"{tool} runs: wall " + ", ".join(f"{r.get('seconds', 0):.2f}" for r in runs) + " s; peak "
                  + ", ".join(f"{r.get('peak_rss_mb', 0):.0f}" for r in runs) + " MB")
    return problems


def print_profile(path: Path, limit: int = 30) -> None:
    import pstats

    print(f"\ncProfile of the bc_pipeline child ({path}), top {limit} by cumulative time:")
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(limit)
    print(f"top {limit} by own time:")
    stats.sort_stats("tottime").print_stats(limit)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="sandbox seed scale (1.0: ~190,000 rows)")
    parser.add_argument("--only", choices=ORDER, help="run one tool only")
    parser.add_argument("--skip", action="append", choices=EXTRAS, default=[],
                        help="skip a reference run: floor (plain requests loop), dlt_jsonl (dlt with jsonl files)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool, interleaved (medians reported)")
    parser.add_argument("--rate-limit", type=int, default=100_000, help="sandbox BC requests per window")
    parser.add_argument("--rate-window", type=float, default=300.0, help="sandbox BC rate window (s)")
    parser.add_argument("--dagster-instance", choices=["ephemeral", "sqlite"], default="ephemeral",
                        help="bc_pipeline's Dagster instance: in-memory, or SQLite in a temporary DAGSTER_HOME")
    parser.add_argument("--profile", action="store_true", help="cProfile the bc_pipeline child and print the top")
    parser.add_argument("--workdir", type=Path, default=None, help="where temporary files go (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.spec, args.out)

    from bc_pipeline.catalog import ENTITIES
    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

    if args.only:
        tools = [args.only]
    else:
        tools = [t for t in ORDER if t not in args.skip]
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bc-bench-", dir=args.workdir))
    load_at_start = _loadavg()
    print(f"working in {workdir}")
    handle = None
    try:
        started = time.perf_counter()
        handle = start_sandbox(SandboxConfig(
            seed_profile="benchmark", scale=args.scale, state_dir=workdir / "sandbox",
            bc_rate_limit=args.rate_limit, bc_rate_window_seconds=args.rate_window,
        ))
        sandbox_seconds = time.perf_counter() - started
        print(f"sandbox {handle.base_url} (pid {handle.process.pid}) ready in {sandbox_seconds:.1f} s")

        spec: dict[str, Any] = {
            "company_url": handle.company_url(),
            "token_url": handle.token_url,
            "ca_bundle": str(handle.ca_path),
            "page_size": PAGE_SIZE,
            "services": {e.service: list(e.select) for e in ENTITIES},
        }
        # Warm the sandbox's per-$select cache, and learn the expected counts, before anything is measured.
        warm = time.perf_counter()
        expected = fetch_all(spec, token=handle.token())["rows"]
        print(f"warm-up pass: {sum(expected.values()):,} rows in {time.perf_counter() - warm:.1f} s")

        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("BC_", "IPAAS_", "DAGSTER_", "DLT_", "RUNTIME__"))
                    and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "CONCURRENT_CONNECTIONS")}
        base_env.update(handle.env())
        base_env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
        base_env["PYTHONUNBUFFERED"] = "1"

        results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
        for index in range(args.repeat):
            for tool in tools:
                run_dir = workdir / f"{tool}-{index}"
                run_dir.mkdir()
                env = dict(base_env)
                env["BC_PIPELINE_HOME"] = str(run_dir / "home")
                env["DAGSTER_HOME"] = str(run_dir / "dagster_home")
                (run_dir / "dagster_home").mkdir()
                env["DLT_DATA_DIR"] = str(run_dir / "dlt_data")
                tool_spec = dict(spec, workdir=str(run_dir), dagster_instance=args.dagster_instance,
                                 dlt_file_format="jsonl" if tool == "dlt_jsonl" else None)
                if tool == "bc_pipeline" and args.profile:
                    tool_spec.update(profile=True, profile_path=str(run_dir / "bc_pipeline.pstats"))
                print(f"run {index + 1}/{args.repeat}: {tool} ...", flush=True)
                since = handle.last_seq()
                result = run_child(tool, tool_spec, env, workdir, index)
                served = [r for r in handle.requests(since) if r.get("target") in ("bc", "entra")]
                result["sandbox_requests"] = len(served)
                result["sandbox_seconds"] = sum(float(r.get("duration_ms") or 0) for r in served) / 1000.0
                print(f"  {'ok' if result.get('ok') else 'FAILED'}: {sum(result.get('rows', {}).values()):,} rows, "
                      f"{result.get('seconds', 0):.2f} s (process {result['process_seconds']:.2f} s), "
                      f"peak {result['peak_rss_mb']:.0f} MB", flush=True)
                results[tool].append(result)
                shutil.rmtree(run_dir / "home" / "staging", ignore_errors=True)  # disk, not memory

        problems = print_report(args, expected, results, sandbox_seconds)
        print(f"load average at start {load_at_start}, at end {_loadavg()} ({os.cpu_count()} CPUs; other work on the "
              f"machine skews the times)")
        if args.profile and results.get("bc_pipeline"):
            profile_path = workdir / "bc_pipeline-0" / "bc_pipeline.pstats"
            if profile_path.exists():
                print_profile(profile_path)
        return 1 if problems else 0
    finally:
        if handle is not None:
            handle.stop()
        if args.keep or args.profile:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

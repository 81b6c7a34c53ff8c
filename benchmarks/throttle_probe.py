#!/usr/bin/env python
"""Why the throttled iPaaS load still gets 429s: the pipeline's throttle timestamps vs the stand-in's clock.

    .venv/bin/python benchmarks/throttle_probe.py                       # 2 processes x 5 threads, 1,000 per 10 s, 60 s
    .venv/bin/python benchmarks/throttle_probe.py --throttle-seconds 11 # the same with a 1 s margin on the window

Each process builds the pipeline's own IpaasClient (its ThrottledTransport and the cross-process Throttle in a shared
BC_PIPELINE_HOME/throttle) and its CONCURRENT_CONNECTIONS threads send cheap GETs (a one-record page of Locations) as
fast as the throttle lets them, each with an X-Correlation-Id the stand-in writes to its request log. The throttle's
rate bucket (pyrate-limiter's SQLiteBucket) is wrapped, in this probe only, to record each admitted item's timestamp
and the wall clock at the moment it was admitted. Joined with the stand-in's log on the correlation id:

  stale    = admitted at (wall clock) - the item's timestamp: how much earlier than the truth the request is
             recorded in the throttle's window (pyrate adds the planned sleep to the item's original timestamp when
             a blocked acquire retries, so oversleeping and waiting for the bucket's file lock are not counted);
  transit  = the stand-in's arrival time - admitted at.

A request recorded `stale` ms too early leaves the throttle's window `stale` ms before it leaves the stand-in's, so a
request admitted in that gap is refused with 429 (pyrate's 50 ms sleep buffer covers only a blocked acquirer).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def child(spec: dict[str, Any]) -> dict[str, Any]:
    from bc_pipeline.clients.ipaas import IpaasClient
    from bc_pipeline.settings import load_settings

    client = IpaasClient(load_settings())
    bucket = client.throttle._bucket
    original_put = bucket.put
    local = threading.local()

    def recording_put(item):
        ok = original_put(item)
        if ok:
            local.puts.append((item.timestamp / 1000.0, time.time()))
        return ok

    bucket.put = recording_put  # the limiter looks the bucket's put up on the instance on every call
    url = client._url("products", "Catalog/Locations")
    deadline = spec["start_at"] + spec["seconds"]
    records: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker() -> None:
        local.puts = []
        mine = []
        while time.time() < deadline:
            cid = uuid.uuid4().hex
            local.puts = []
            status = None
            try:
                response = client._send("GET", url, params={"pageNumber": 1, "pageSize": 1},
                                        headers={"X-Correlation-Id": cid})
                status = response.status_code if response is not None else None
            except Exception as exc:  # noqa: BLE001 - a retried-out 429 ends as an error: still a data point
                status = type(exc).__name__
            mine.append({"cid": cid, "puts": list(local.puts), "status": status})
        with lock:
            records.extend(mine)

    while time.time() < spec["start_at"]:
        time.sleep(0.01)
    threads = [threading.Thread(target=worker) for _ in range(spec["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    return {"records": records, "counter": client.counter.snapshot()}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--window", type=float, default=10.0, help="the stand-in's window, seconds")
    parser.add_argument("--throttle-seconds", type=float, help="the pipeline's IPAAS_THROTTLE_SECONDS (default: --window)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=5, help="CONCURRENT_CONNECTIONS (threads per process)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(json.loads(Path(args.child).read_text()))
        Path(args.out).write_text(json.dumps(result))
        return 0

    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

    throttle_seconds = args.throttle_seconds or args.window
    work = Path(tempfile.mkdtemp(prefix="bc-throttle-probe-"))
    handle = start_sandbox(SandboxConfig(scale=0.01, state_dir=work / "sandbox", ipaas_rate_limit=args.limit,
                                         ipaas_rate_window_seconds=args.window))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_"))}
        env.update(handle.env())
        env.update({"BC_PIPELINE_HOME": str(work / "home"), "IPAAS_THROTTLE_LIMIT": str(args.limit),
                    "IPAAS_THROTTLE_SECONDS": str(throttle_seconds), "CONCURRENT_CONNECTIONS": str(args.connections),
                    "PYTHONPATH": str(REPO)})
        spec = {"start_at": time.time() + 4.0, "seconds": args.seconds, "threads": args.connections}
        (work / "spec.json").write_text(json.dumps(spec))
        procs = []
        for n in range(args.processes):
            out = work / f"out-{n}.json"
            log = open(work / f"child-{n}.log", "wb")
            procs.append((subprocess.Popen([sys.executable, __file__, "--child", str(work / "spec.json"), "--out",
                                            str(out)], env=env, stdout=log, stderr=subprocess.STDOUT), out, log))
        results = []
        for process, out, log in procs:
            process.wait()
            log.close()
            results.append(json.loads(out.read_text()))
        answer = handle.session.get(f"{handle.base_url}/_sandbox/ipaas/requests", params={"since": 0}, timeout=120).json()
        stand_in = answer["requests"] if isinstance(answer, dict) else answer
    finally:
        handle.stop()

    arrivals: dict[str, list[dict[str, Any]]] = {}
    for entry in stand_in:
        arrivals.setdefault(entry["correlation_id"], []).append(entry)
    stale, transit, rows = [], [], []
    for result in results:
        for rec in result["records"]:
            seen = arrivals.get(rec["cid"], [])
            for (stamp, admitted), entry in zip(rec["puts"], seen):
                stale.append((admitted - stamp) * 1000)
                transit.append((entry["time"] - admitted) * 1000)
                rows.append((stamp, admitted, entry["time"], entry["status"]))
    accepted = sorted(e["time"] for e in stand_in if e["status"] != 429)
    r429 = [e for e in stand_in if e["status"] == 429]

    def q(values: list[float], p: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")

    print(f"stand-in {args.limit} per {args.window:g} s; pipeline throttle {args.limit} per {throttle_seconds:g} s; "
          f"{args.processes} processes x {args.connections} threads for {args.seconds:g} s")
    print(f"requests {len(stand_in):,}: accepted {len(accepted):,} "
          f"({len(accepted) / (args.limit * (accepted[-1] - accepted[0]) / args.window):.1%} of the budget first to last), "
          f"429 {len(r429)}")
    print(f"stale (admitted - recorded timestamp), ms: median {statistics.median(stale):.1f}, p90 {q(stale, .9):.1f}, "
          f"p99 {q(stale, .99):.1f}, max {max(stale):.1f}; > 50 ms (pyrate's buffer): {sum(s > 50 for s in stale):,} "
          f"of {len(stale):,}")
    print(f"transit (arrival - admitted), ms: median {statistics.median(transit):.1f}, p99 {q(transit, .99):.1f}, "
          f"max {max(transit):.1f}")
    # For each 429: the requests the stand-in still counted but the throttle no longer did, and why
    ok_rows = [r for r in rows if r[3] != 429]
    for stamp, admitted, arrival, status in [r for r in rows if r[3] == 429][:20]:
        pipeline_view = sum(1 for r in ok_rows if stamp - throttle_seconds <= r[0] < stamp)
        stand_in_view = sum(1 for r in ok_rows if arrival - args.window < r[2] < arrival)
        extra = [r for r in ok_rows if r[0] < stamp - throttle_seconds and r[2] > arrival - args.window]
        print(f"  429 at +{arrival - accepted[0]:.3f} s: the throttle counted {pipeline_view} in its window, the "
              f"stand-in {stand_in_view}; {len(extra)} request(s) in the stand-in's window only, recorded "
              f"{', '.join(f'{(r[1] - r[0]) * 1000:.0f}' for r in extra[:8])} ms early (stale) and in transit "
              f"{', '.join(f'{(r[2] - r[1]) * 1000:.0f}' for r in extra[:8])} ms; this request: stale "
              f"{(admitted - stamp) * 1000:.0f} ms, transit {(arrival - admitted) * 1000:.0f} ms")
    (work / "rows.json").write_text(json.dumps(rows))
    print(f"work dir {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

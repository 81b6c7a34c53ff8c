#!/usr/bin/env python
"""What one 15-minute incremental sync (`sync_to_ipaas`) costs in requests, per entity, counted in the sandbox's logs.

    .venv/bin/python benchmarks/sync_cost.py              # the sandbox's default scale (1): a few minutes
    .venv/bin/python benchmarks/sync_cost.py --scale 0.1

For each tenant shape, a fresh sandbox: `initial_load`, then `sync_to_ipaas` with no change in BC, then one
order line's quantity changed through the sandbox admin (as a BC user would) and `sync_to_ipaas` again.
  standard        no page extension: customers and items by Last_Date_Modified, everything else read in full
  page extension  SystemModifiedAt on customers, items, orders and lines (BC_MODIFIED_AT_FIELDS)
Business Central requests are counted per service from the BC stand-in's request log ($metadata and token
requests on their own rows); iPaaS.com requests from the iPaaS stand-in's log, per collection from the load
assets' metadata. Prints a Markdown table per shape.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

PAGE_EXTENSION = ("customers=SystemModifiedAt,items=SystemModifiedAt,sales_orders=SystemModifiedAt,"
                  "sales_order_lines=SystemModifiedAt")


def _bc_counts(handle, since: int) -> Counter:
    counts: Counter = Counter()
    for entry in handle.requests(since):
        if "/ODataV4/" not in entry["path"] and entry.get("target") != "entra":
            continue
        if entry.get("target") == "entra":
            counts["(token)"] += 1
        elif entry["path"].endswith("/$metadata"):
            counts["($metadata)"] += 1
        else:
            counts[entry.get("service") or "(other)"] += 1
    return counts


def _ipaas_total(handle, since: int) -> int:
    response = handle.session.get(f"{handle.base_url}/_sandbox/ipaas/requests", params={"since": since}, timeout=60)
    answer = response.json()
    return len(answer["requests"] if isinstance(answer, dict) else answer)


def _ipaas_last(handle) -> int:
    response = handle.session.get(f"{handle.base_url}/_sandbox/ipaas/requests", params={"since": 0}, timeout=60)
    answer = response.json()
    rows = answer["requests"] if isinstance(answer, dict) else answer
    return max((r["seq"] for r in rows), default=0)


def measure(shape: str, scale: float, workdir: Path) -> str:
    import dagster as dg

    from bc_pipeline.catalog import ENTITIES
    from bc_pipeline.runner import run_job
    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

    config = SandboxConfig(scale=scale, state_dir=workdir / f"sb-{shape.replace(' ', '-')}",
                           system_modified_at=shape == "page extension",
                           ipaas_rate_limit=1_000_000, ipaas_rate_window_seconds=60)
    with start_sandbox(config) as handle, dg.instance_for_test() as instance:
        os.environ.update(handle.env())
        os.environ["BC_PIPELINE_HOME"] = str(workdir / f"home-{shape.replace(' ', '-')}")
        os.environ["IPAAS_THROTTLE_LIMIT"] = "1000000"
        os.environ.pop("BC_MODIFIED_AT_FIELDS", None)
        if shape == "page extension":
            os.environ["BC_MODIFIED_AT_FIELDS"] = PAGE_EXTENSION
        first = run_job("initial_load", instance=instance)
        if not first.success:
            raise SystemExit(f"initial_load failed: {first.error}")
        runs = {}
        for label in ("no change", "1 change"):
            if label == "1 change":
                released = {o["No"] for o in handle.records("SalesOrders") if o["Status"] == "Released"}
                line = next(ln for ln in handle.records("SalesOrderLines")
                            if ln["Type"] == "Item" and ln["Document_No"] in released)
                handle.edit_record("SalesOrderLines", [line["Document_No"], line["Line_No"]],
                                   {"Quantity": line["Quantity"] + 1})
            bc_since, ipaas_since = handle.last_seq(), _ipaas_last(handle)
            outcome = run_job("sync_to_ipaas", instance=instance)
            if not outcome.success:
                raise SystemExit(f"sync_to_ipaas failed: {outcome.error}")
            runs[label] = (outcome, _bc_counts(handle, bc_since), _ipaas_total(handle, ipaas_since))

    quiet, changed = runs["no change"], runs["1 change"]
    lines = [f"**{shape}** (scale {scale:g}):", "",
             "| entity | service | mode | rows read, no change | BC requests, no change | BC requests, 1 change |",
             "|---|---|---|---:|---:|---:|"]
    for entity in ENTITIES:
        meta = quiet[0].extracts.get(entity.name, {})
        lines.append(f"| {entity.name} | {entity.service} | {meta.get('mode', '')} | {meta.get('rows', '')} | "
                     f"{quiet[1].get(entity.service, 0)} | {changed[1].get(entity.service, 0)} |")
    for extra in ("($metadata)", "(token)"):
        if quiet[1].get(extra) or changed[1].get(extra):
            lines.append(f"| {extra} | | | | {quiet[1].get(extra, 0)} | {changed[1].get(extra, 0)} |")
    lines.append(f"| **all of Business Central** | | | | **{sum(quiet[1].values())}** | **{sum(changed[1].values())}** |")
    lines += ["", "| collection | iPaaS.com requests, no change | iPaaS.com requests, 1 change |", "|---|---:|---:|"]
    for slug in sorted(quiet[0].loads):
        lines.append(f"| {slug} | {quiet[0].loads[slug].get('requests', 0)} | "
                     f"{changed[0].loads.get(slug, {}).get('requests', 0)} |")
    lines.append(f"| **all of iPaaS.com** (its log) | **{quiet[2]}** | **{changed[2]}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="sandbox data scale (default 1, its default)")
    parser.add_argument("--shape", choices=("standard", "page extension", "both"), default="both")
    args = parser.parse_args(argv)
    shapes = ["standard", "page extension"] if args.shape == "both" else [args.shape]
    with tempfile.TemporaryDirectory(prefix="sync-cost-") as tmp:
        for shape in shapes:
            print(measure(shape, args.scale, Path(tmp)), flush=True)
            print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

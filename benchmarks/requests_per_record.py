#!/usr/bin/env python
"""Requests per created / updated / unchanged record, per mapping collection, both directions (issue 13's cost table).

    .venv/bin/python benchmarks/requests_per_record.py                 # default data (scale 1), a few minutes
    .venv/bin/python benchmarks/requests_per_record.py --scale 0.3 --orders 30 --workdir /tmp/rpr   # smaller, logs kept

One HTTPS sandbox with the data `bc-pipeline run` uses (seed profile "default" at --scale, max_page_size 250), no
limit that makes anything wait (the script counts requests, not seconds). Every pipeline run is `run_job(...)` or
the `sync_from_ipaas` job in a child process of its own, with the sandbox's environment, one temporary
BC_PIPELINE_HOME (so one state database across the runs) and an ephemeral Dagster instance.

  TO iPaaS.com    `initial_load` (created) -> --edit-share of customers (Phone_No), items (Description, Unit_Price)
                  and Released sales orders (Sell_to_E_Mail) changed in BC -> `sync_to_ipaas` (updated) ->
                  `sync_to_ipaas` again (unchanged). Per collection from the load assets' metadata (created, linked,
                  updated, unchanged, requests, and requests_lookups / _creates / _updates / _links when the loader
                  reports them); the totals are cross-checked with the sandbox's request log (target "ipaas").
  FROM iPaaS.com  --orders new iPaaS.com transactions (lines 1-20 uniformly, every 10th with 99) for linked
                  customers and products, plus --records new products, companies and customers; the write
                  (created) -> one line's qty changed in --edit-share of the orders, the price / phone of as many
                  other records (updated) -> the same ids again (unchanged). BC requests from the sandbox's request
                  log (target "bc"), Entra token requests counted apart and added in the "with token" figure.

Minutes at the limit: an initial load of the default data (scale 1: 300 customers, 400 items, 1,000 orders) at
iPaaS.com's 500 requests / 60 s (TO rows) and at BC's 6,000 / 5 min (FROM rows: one record per BC record of the
default data). At another --scale the created counts of the scaled tables (customers, items, orders, invoices, inventory) are
extrapolated linearly to scale 1 and the column says so. The script exits 0 when it measured (targets met or
missed), 1 when a run failed (the children's logs are then kept and their path printed).
"""

from __future__ import annotations

import argparse
import json
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
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

IPAAS_PER_MINUTE = 500 / 1.0  # iPaaS.com's worked example: 500 calls per 60 s
BC_PER_MINUTE = 6000 / 5.0  # BC online: 6,000 OData requests per 5 minutes
UNLIMITED = 10_000_000
SCALED_SOURCES = {"customers", "items", "sales_orders", "inventory_by_location", "posted_sales_invoices"}
COST_KEYS = ("requests_lookups", "requests_creates", "requests_updates", "requests_links")
# the "done when"
TARGET_ORDER_TO = {"created": 1.5, "updated": 1.0, "unchanged": 0.0}
TARGET_ORDER_FROM_CREATED = 2.0


# ---------------------------------------------------------------------------------------------------------------
# children: one pipeline run each
# ---------------------------------------------------------------------------------------------------------------

def child_main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    try:
        import dagster as dg

        instance = dg.DagsterInstance.ephemeral()
        if spec["kind"] == "run":
            from bc_pipeline.runner import run_job

            outcome = run_job(spec["job"], spec.get("select"), instance=instance, log_level="WARNING")
            result = {"ok": outcome.success, "error": outcome.error, "loads": outcome.loads}
        else:  # one FROM-iPaaS collection for the given ids
            from bc_pipeline.definitions import defs

            slug = spec["slug"]
            job = defs.resolve_job_def("sync_from_ipaas")
            run = job.execute_in_process(
                instance=instance, raise_on_error=False, asset_selection=[dg.AssetKey(["bc_out", slug])],
                run_config={"ops": {f"bc_out__{slug}": {"config": {"ipaas_ids": spec["ids"]}}},
                            "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
            loads = {}
            for event in run.all_events:
                if event.event_type_value == "ASSET_MATERIALIZATION":
                    m = event.event_specific_data.materialization
                    loads[m.asset_key.path[-1]] = {k: v.value for k, v in m.metadata.items() if k != "results"}
            result = {"ok": run.success and slug in loads, "error": None if run.success else "the write step failed",
                      "loads": loads}
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        import traceback

        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    Path(out_path).write_text(json.dumps(result, default=str))
    return 0


class Bench:
    """The sandbox, the one BC_PIPELINE_HOME and the children's logs."""

    def __init__(self, args: argparse.Namespace, workdir: Path, handle):
        self.args, self.workdir, self.handle = args, workdir, handle
        self.counter = 0
        self.failed = False
        home = workdir / "home"
        (home / "dagster_home").mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if not (k.startswith(("BC_", "IPAAS_")) or k in ("CONCURRENT_CONNECTIONS", "REQUESTS_CA_BUNDLE",
                                                                   "DAGSTER_HOME"))}
        self.env.update(handle.env())
        self.env.update({"BC_PIPELINE_HOME": str(home), "IPAAS_THROTTLE_LIMIT": str(UNLIMITED),
                         "IPAAS_THROTTLE_SECONDS": "60", "PYTHONUNBUFFERED": "1",
                         "DAGSTER_HOME": str(home / "dagster_home"), "PYTHONPATH": str(REPO),
                         "BC_PIPELINE_STATE_URL": f"sqlite:///{home / 'state.sqlite'}"})

    def run(self, spec: dict[str, Any], label: str) -> dict[str, Any]:
        """Run a child; the sandbox's requests it caused, by target, come back in result['log']."""
        self.counter += 1
        base = self.workdir / f"{self.counter:02d}-{label}"
        spec_path, out_path, log_path = Path(f"{base}.spec.json"), Path(f"{base}.result.json"), Path(f"{base}.log")
        spec_path.write_text(json.dumps(spec))
        since = self.handle.last_seq()
        t0 = time.time()
        with open(log_path, "wb") as log:
            code = subprocess.call([sys.executable, os.path.abspath(__file__), "--child", "--spec", str(spec_path),
                                    "--out", str(out_path)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=str(self.workdir))
        result: dict[str, Any] = {"ok": False, "error": f"the child exited with {code}"}
        if out_path.exists():
            result = json.loads(out_path.read_text())
        result["seconds"] = time.time() - t0
        result["log"] = [e for e in self.handle.requests(since) if e["target"] in ("bc", "entra", "ipaas")]
        failed = sum(int(m.get("failed") or 0) for m in result.get("loads", {}).values())
        print(f"  {label}: {'ok' if result.get('ok') else 'FAILED'} in {result['seconds']:.0f} s; requests "
              + ", ".join(f"{t} {sum(1 for e in result['log'] if e['target'] == t):,}" for t in ("ipaas", "bc", "entra"))
              + (f"; {failed} record(s) failed" if failed else ""), flush=True)
        if not result.get("ok"):
            self.failed = True
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
            print(f"!! {log_path.name} FAILED: {result.get('error')}\n{tail}", flush=True)
        return result

    # --- the sandbox's iPaaS.com, as a tenant's other apps would change it ---------------------------------

    def ipaas_admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.handle.session.request(method, f"{self.handle.base_url}/_sandbox/ipaas/{path}", timeout=300,
                                               **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"sandbox iPaaS admin {method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def ipaas_records(self, model: str) -> list[dict[str, Any]]:
        answer = self.ipaas_admin("GET", f"records/{model}")
        return answer["records"] if isinstance(answer, dict) and "records" in answer else answer

    def ipaas_links(self) -> list[dict[str, Any]]:
        answer = self.ipaas_admin("GET", "links")
        return answer["links"] if isinstance(answer, dict) and "links" in answer else answer

    def ipaas_put(self, path: str, body: dict[str, Any]) -> None:
        """A change through iPaaS.com's public API (its other apps' way), not counted against the pipeline."""
        response = self.handle.session.put(f"{self.handle.base_url}/{path}", json=body, timeout=60, headers={
            "Authorization": f"Bearer {self.handle.config.ipaas_api_token}"})
        if response.status_code >= 300:
            raise RuntimeError(f"PUT {path}: {response.status_code} {response.text[:300]}")


# ---------------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------------

def ratio(requests: int, records: int) -> str:
    if records:
        return f"{requests / records:.2f}"
    return "-" if not requests else f"{requests} req / 0"


def minutes(requests_per_record: Optional[float], records: float, per_minute: float) -> str:
    if requests_per_record is None or not records:
        return "-"
    return f"{requests_per_record * records / per_minute:,.1f}"


def cost_split(meta: dict[str, Any]) -> str:
    present = [k for k in COST_KEYS if k in meta]
    return " ".join(f"{k.split('_')[1]} {int(meta[k] or 0)}" for k in present) if present else "n/a"


# ---------------------------------------------------------------------------------------------------------------
# TO iPaaS.com
# ---------------------------------------------------------------------------------------------------------------

def edit_bc(bench: Bench, share: float) -> dict[str, int]:
    """Change share of customers, items and Released orders in BC, in fields the collections map."""
    handle = bench.handle
    rng = random.Random(13)
    customers = handle.records("CustomerCard")
    items = handle.records("ItemCard")
    released = [o for o in handle.records("SalesOrders") if o.get("Status") == "Released"]
    picked = {name: rng.sample(rows, max(1, round(len(rows) * share))) if rows else []
              for name, rows in (("customers", customers), ("items", items), ("orders", released))}
    for n, c in enumerate(picked["customers"]):
        handle.edit_record("CustomerCard", c["No"], {"Phone_No": f"+1 555 02{n:04d}"})
    for i in picked["items"]:
        handle.edit_record("ItemCard", i["No"], {"Description": (str(i.get("Description") or "") + " v2")[:100],
                                                 "Unit_Price": round(float(i.get("Unit_Price") or 0) + 1.25, 2)})
    for n, o in enumerate(picked["orders"]):
        handle.edit_record("SalesOrders", [o.get("Document_Type") or "Order", o["No"]],
                           {"Sell_to_E_Mail": f"buyer{n}@bench.example.com"})
    return {k: len(v) for k, v in picked.items()}


def phase_to(bench: Bench, rows: list[list[Any]], summary: dict[str, Any]) -> None:
    from bc_pipeline.defs.to_ipaas import COLLECTIONS

    scale = bench.args.scale
    print("\n== TO iPaaS.com", flush=True)
    initial = bench.run({"kind": "run", "job": "initial_load"}, "initial_load")
    if not initial.get("ok"):
        return
    edited = edit_bc(bench, bench.args.edit_share)
    print(f"  edited in BC: {edited['customers']} customers (Phone_No), {edited['items']} items (Description, "
          f"Unit_Price), {edited['orders']} Released sales orders (Sell_to_E_Mail)", flush=True)
    updated = bench.run({"kind": "run", "job": "sync_to_ipaas"}, "sync_updated")
    if not updated.get("ok"):
        return
    unchanged = bench.run({"kind": "run", "job": "sync_to_ipaas"}, "sync_unchanged")
    if not unchanged.get("ok"):
        return

    print("\n  cross-check, load assets' requests vs the sandbox's iPaaS.com log; BC reads (extraction):")
    for label, result in (("initial_load", initial), ("sync (updated)", updated), ("sync (unchanged)", unchanged)):
        meta_total = sum(int(m.get("requests") or 0) for m in result["loads"].values())
        logged = sum(1 for e in result["log"] if e["target"] == "ipaas")
        bc_reads = sum(1 for e in result["log"] if e["target"] == "bc")
        print(f"  {label}: metadata {meta_total:,}, log {logged:,} "
              f"({'equal' if meta_total == logged else f'DIFFERENT by {logged - meta_total:+,}'}); BC reads {bc_reads:,}")
    bc_reads = sum(1 for e in initial["log"] if e["target"] in ("bc", "entra"))
    summary["to_bc_reads"] = bc_reads
    summary["to_initial_requests"] = sum(1 for e in initial["log"] if e["target"] == "ipaas")
    reported = any(k in m for r in (initial, updated, unchanged) for m in r["loads"].values() for k in COST_KEYS)
    print("\n  requests by kind, initial / updated / unchanged:" if reported else
          f"\n  requests by kind: the loader reports none of {', '.join(COST_KEYS)}")
    for slug, collection in COLLECTIONS.items():
        a, b, c = (r["loads"].get(slug, {}) for r in (initial, updated, unchanged))
        created = int(a.get("created") or 0) + int(a.get("linked") or 0)
        req_c = int(a.get("requests") or 0)
        n_u, req_u = int(b.get("updated") or 0) + int(b.get("created") or 0) + int(b.get("linked") or 0), int(b.get("requests") or 0)
        n_n, req_n = int(c.get("unchanged") or 0), int(c.get("requests") or 0)
        per_created = req_c / created if created else None
        factor = 1 / scale if collection.source in SCALED_SOURCES else 1.0
        default_records = created * factor
        note = "" if scale == 1 or factor == 1 else "*"
        rows.append([slug, "TO iPaaS", created, ratio(req_c, created), n_u, ratio(req_u, n_u), n_n, ratio(req_n, n_n),
                     minutes(per_created, default_records, IPAAS_PER_MINUTE) + note, "-"])
        if reported:
            print(f"  {slug}: {cost_split(a)} / {cost_split(b)} / {cost_split(c)}")
        if int(a.get("linked") or 0):
            print(f"  {slug}: {a.get('linked')} of the initial load's records linked to existing iPaaS.com records")
        if slug == "sales_order_to_ipaas":
            summary["order_to"] = {"created": (req_c, created), "updated": (req_u, n_u), "unchanged": (req_n, n_n),
                                   "edited": edited["orders"]}


# ---------------------------------------------------------------------------------------------------------------
# FROM iPaaS.com
# ---------------------------------------------------------------------------------------------------------------

def line_counts(n: int, rng: random.Random) -> list[int]:
    """1-20 lines uniformly, every 10th order 99 (the issue's 'up to 99 lines')."""
    return [99 if k % 10 == 9 else rng.randint(1, 20) for k in range(n)]


def new_transactions(bench: Bench, n: int, rng: random.Random) -> list[dict[str, Any]]:
    handle = bench.handle
    links = [link for link in bench.ipaas_links() if not link.get("deleted")]
    customer_ids = {link["external_id"]: str(link["internal_id"]) for link in links
                    if link["table_name"].lower() == "customer"}
    product_ids = {link["external_id"] for link in links if link["table_name"].lower() == "product"}
    blocked = {c["No"] for c in handle.records("CustomerCard")
               if c.get("Blocked") not in (None, "", " ", "_blank_")}
    customers = [i for no, i in sorted(customer_ids.items()) if no not in blocked]
    skus = sorted(i["No"] for i in handle.records("ItemCard")
                  if i["No"] in product_ids and not i.get("Blocked") and not i.get("Sales_Blocked"))
    if not customers or not skus:
        raise RuntimeError(f"no linked open customers ({len(customers)}) or sellable products ({len(skus)})")
    made = []
    for k, count in enumerate(line_counts(n, rng)):
        lines = [{"sequence_number": j + 1, "sku": skus[(k * 7 + j) % len(skus)], "description": f"line {j + 1}",
                  "qty": rng.randint(1, 9), "unit_price": round(rng.uniform(1, 200), 2)} for j in range(count)]
        made.append(bench.ipaas_admin("POST", "records/Transaction", json={
            "transaction_number": f"BENCH-{k + 1:04d}", "type": "Order", "status": "Pending",
            "customer_id": int(customers[k % len(customers)]), "email_address": f"bench{k}@example.com",
            "lines": lines}))
    return made


def new_records(bench: Bench, slug: str, n: int) -> list[dict[str, Any]]:
    """n new iPaaS.com records of the collection's model, as a web shop would add them."""
    made = []
    for k in range(n):
        if slug == "product_from_ipaas":
            body = {"sku": f"BENCH-SKU-{k + 1:04d}", "name": f"Bench product {k + 1}", "type": "Physical",
                    "tracking_method": "Product", "status": "Active", "default_price": 10 + k}
            model = "Product"
        elif slug == "company_from_ipaas":
            body = {"name": f"Bench Company {k + 1:04d}", "email_address": f"company{k + 1}@bench.example.com",
                    "phone_number": f"+1 555 03{k:04d}"}
            model = "Company"
        elif slug == "customer_from_ipaas":
            body = {"first_name": "Bench", "last_name": f"Person {k + 1:04d}",
                    "email_address": f"person{k + 1}@bench.example.com", "phone_number": f"+1 555 04{k:04d}"}
            model = "Customer"
        else:
            return []
        made.append(bench.ipaas_admin("POST", f"records/{model}", json=body))
    return made


PUT_PATHS = {"Transaction": "transactions/v2/Transaction/{id}", "Product": "products/v2/Catalog/Product/{id}",
             "Company": "customers/v2/Customer/Company/{id}", "Customer": "customers/v2/Customer/{id}"}


def change_records(bench: Bench, model: str, ids: list[str]) -> None:
    """Change what the collection maps: a line's qty, a product's price, a company's phone, a person's name."""
    current = {str(r["id"]): r for r in bench.ipaas_records(model)}
    for n, i in enumerate(ids):
        record = dict(current[i])
        body = {k: v for k, v in record.items() if k not in ("id", "tracking_guid", "external_ids")}
        if model == "Transaction":
            body = {k: v for k, v in record.items() if k != "external_ids"}
            body["lines"] = [dict(ln) for ln in record["lines"]]
            body["lines"][0]["qty"] = float(body["lines"][0].get("qty") or 0) + 5
        elif model == "Product":
            body["default_price"] = float(record.get("default_price") or 0) + 2.5
        elif model == "Company":
            body["phone_number"] = f"+1 555 09{n:04d}"
        else:  # the stand-in's Customer keeps no phone_number: change what becomes the BC Name
            body["last_name"] = f"{record.get('last_name') or ''} v2"
        bench.ipaas_put(PUT_PATHS[model].format(id=i), body)


def from_figures(result: dict[str, Any], slug: str) -> dict[str, Any]:
    meta = result.get("loads", {}).get(slug, {})
    log = result["log"]
    from collections import Counter

    methods = Counter(f"{e['method']} {e.get('service') or '?'}" for e in log if e["target"] == "bc")
    return {"meta": meta, "bc_methods": ", ".join(f"{k} {v}" for k, v in methods.most_common()),
            "bc": sum(1 for e in log if e["target"] == "bc"),
            "entra": sum(1 for e in log if e["target"] == "entra"),
            "ipaas": sum(1 for e in log if e["target"] == "ipaas")}


def phase_from(bench: Bench, rows: list[list[Any]], summary: dict[str, Any], default_counts: dict[str, int]) -> None:
    from bc_pipeline.defs.from_ipaas import FROM_COLLECTIONS

    args = bench.args
    rng = random.Random(99)
    print("\n== FROM iPaaS.com", flush=True)
    for slug, collection in FROM_COLLECTIONS.items():
        model = collection.source
        try:
            made = new_transactions(bench, args.orders, rng) if model == "Transaction" else new_records(bench, slug, args.records)
        except RuntimeError as exc:
            print(f"  {slug}: not measured: {exc}", flush=True)
            continue
        if not made:
            print(f"  {slug}: not measured (the script does not know how to make a {model})", flush=True)
            continue
        ids = [str(r["id"]) for r in made]
        extra = ""
        if model == "Transaction":
            counts = [len(r.get("lines") or []) for r in made]
            extra = f" with {sum(counts):,} lines ({min(counts)}-{max(counts)} each)"
        print(f"  {slug}: {len(ids)} new iPaaS.com {model} records{extra}", flush=True)
        first = bench.run({"kind": "write", "slug": slug, "ids": ids}, f"{slug}-created")
        if not first.get("ok"):
            continue
        changed = rng.sample(ids, max(1, round(len(ids) * args.edit_share)))
        change_records(bench, model, changed)
        second = bench.run({"kind": "write", "slug": slug, "ids": ids}, f"{slug}-updated")
        if not second.get("ok"):
            continue
        third = bench.run({"kind": "write", "slug": slug, "ids": ids}, f"{slug}-unchanged")
        if not third.get("ok"):
            continue
        a, b, c = (from_figures(r, slug) for r in (first, second, third))
        n_c, n_u, n_n = int(a["meta"].get("created") or 0), int(b["meta"].get("updated") or 0), int(c["meta"].get("unchanged") or 0)
        # an updated or unchanged run also reads the records it leaves alone: their requests are the run's
        per_created = (a["bc"] + a["entra"]) / n_c if n_c else None
        default_records = default_counts.get(collection.entity.service, 0)
        rows.append([slug, "FROM iPaaS", n_c, f"{ratio(a['bc'], n_c)} ({ratio(a['bc'] + a['entra'], n_c)})",
                     n_u, f"{ratio(b['bc'], n_u)} ({ratio(b['bc'] + b['entra'], n_u)})",
                     n_n, f"{ratio(c['bc'], n_n)} ({ratio(c['bc'] + c['entra'], n_n)})",
                     "-", minutes(per_created, default_records, BC_PER_MINUTE)])
        for label, f in (("created", a), ("updated", b), ("unchanged", c)):
            meta_bc = f["meta"].get("bc_requests")
            print(f"    {label}: BC {f['bc']} (write's metadata {meta_bc}"
                  f"{'' if meta_bc is None or int(meta_bc) == f['bc'] else ', DIFFERENT'}), tokens {f['entra']}, "
                  f"iPaaS.com {f['ipaas']} (metadata {f['meta'].get('ipaas_requests')}); failed "
                  f"{f['meta'].get('failed')}, skipped {f['meta'].get('skipped')}"
                  + (f"; BC: {f['bc_methods']}" if f["bc_methods"] else ""), flush=True)
        summary.setdefault("from_minutes", 0.0)
        summary["from_minutes"] += (per_created or 0) * default_records / BC_PER_MINUTE
        if model == "Transaction":
            summary["order_from"] = {"bc": a["bc"], "entra": a["entra"], "created": n_c, "orders": len(ids),
                                     "lines": sum(len(r.get("lines") or []) for r in made)}


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_targets(summary: dict[str, Any], skipped: list[str]) -> None:
    print()
    if "to" in skipped:
        pass
    elif "order_to" in summary:
        s = summary["order_to"]
        for kind, limit in TARGET_ORDER_TO.items():
            req, n = s[kind]
            if kind == "unchanged":
                print(f"target Sales Order TO iPaaS: 0 iPaaS.com requests per unchanged order: {req} requests for "
                      f"{n:,} unchanged ... {verdict(req == 0)}")
                continue
            per = req / n if n else float("inf")
            print(f"target Sales Order TO iPaaS: <= {limit:g} iPaaS.com requests per {kind} order: {per:.2f} "
                  f"({req:,} / {n:,}) ... {verdict(n > 0 and per <= limit)}")
    else:
        print("target Sales Order TO iPaaS: not measured ... MISSED")
    if "from" in skipped:
        pass
    elif "order_from" in summary:
        s = summary["order_from"]
        total = s["bc"] + s["entra"]
        per = total / s["created"] if s["created"] else float("inf")
        print(f"target Sales Order FROM iPaaS: <= {TARGET_ORDER_FROM_CREATED:g} BC requests per created order (token "
              f"and lookups included): {per:.2f} ({s['bc']:,} BC + {s['entra']} token / {s['created']} of "
              f"{s['orders']} orders, {s['lines']:,} lines) ... "
              f"{verdict(s['created'] == s['orders'] and per <= TARGET_ORDER_FROM_CREATED)}")
    else:
        print("target Sales Order FROM iPaaS: not measured ... MISSED")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="seed scale (default 1: `bc-pipeline run`'s data)")
    parser.add_argument("--orders", type=int, default=50, help="new iPaaS.com transactions written to BC (default 50)")
    parser.add_argument("--records", type=int, default=20,
                        help="new iPaaS.com products, companies, customers written to BC (default 20 each)")
    parser.add_argument("--edit-share", type=float, default=0.10, help="share of records changed for the update run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["to", "from"], help="directions to leave out")
    parser.add_argument("--workdir", type=Path, help="keep the children's logs here (default: a temp dir, removed)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.spec, args.out)

    from tabulate import tabulate

    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox
    from bc_pipeline.sandbox.seed import resolve_counts

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bc-cost-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    print(f"requests_per_record: scale {args.scale}, work dir {workdir}; load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores", flush=True)
    handle = start_sandbox(SandboxConfig(scale=args.scale, state_dir=workdir / "sandbox", max_page_size=250,
                                         ipaas_rate_limit=UNLIMITED, bc_rate_limit=UNLIMITED))
    bench = Bench(args, workdir, handle)
    rows: list[list[Any]] = []
    summary: dict[str, Any] = {}
    try:
        counts = handle.health()["records"]
        print("BC rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
        default = resolve_counts(1.0, "default")
        default_counts = {"CustomerCard": default["customers"], "ItemCard": default["items"],
                          "SalesOrders": default["sales_orders"]}
        if "to" not in args.skip:
            phase_to(bench, rows, summary)
        if "from" not in args.skip:
            phase_from(bench, rows, summary, default_counts)
    finally:
        handle.stop()
    headers = ["collection", "direction", "created", "req/created", "updated", "req/updated", "unchanged",
               "req/unchanged", "initial load min @ iPaaS 500/60 s", "initial load min @ BC 6,000/5 min"]
    print(f"\n== requests per record (scale {args.scale}, seed profile 'default', max_page_size 250)")
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    print("TO rows: iPaaS.com requests. FROM rows: BC requests (with the Entra ID requests for the token in brackets); "
          "minutes: req/created (with token) x the default data's records (scale 1: 1,000 orders, 300 customers, "
          "400 items).")
    if args.scale != 1:
        print(f"* extrapolated from scale {args.scale} to scale 1 (created / {args.scale:g}).")
    if "to_initial_requests" in summary:
        n = summary["to_initial_requests"]
        print(f"initial_load TO iPaaS.com: {n:,} iPaaS.com requests"
              + (f" = {n / IPAAS_PER_MINUTE:.1f} min at 500/60 s" if args.scale == 1 else
                 f" at scale {args.scale:g} (the minutes column extrapolates per collection)"))
    if "from_minutes" in summary:
        print(f"FROM iPaaS.com, the default data's customers, items and orders created in BC: "
              f"{summary['from_minutes']:.1f} min at 6,000/5 min (the FROM rows' minutes added up)")
    if "to_bc_reads" in summary:
        reads = summary["to_bc_reads"]  # pages of 250 plus a fixed part per service: not extrapolated
        print(f"BC reads of initial_load (extraction, tokens included): {reads:,}"
              f"{'' if args.scale == 1 else f' at scale {args.scale:g}'} = {reads / BC_PER_MINUTE:.1f} min at BC's limit")
    print_targets(summary, args.skip)
    print(f"\ntotal {time.time() - started:.0f} s; load average {os.getloadavg()[0]:.2f}")
    if args.workdir is None and not bench.failed:
        shutil.rmtree(workdir, ignore_errors=True)
    elif bench.failed:
        print(f"logs kept in {workdir}")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())

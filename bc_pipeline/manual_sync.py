"""The integration guide's Manual Sync form (System, Mapping Collection, Scopes, ids) as `bc-pipeline sync`.

Manual Sync validates its input with the webhook receiver's code and records it in the same inbox, so a
manual request and a webhook are processed alike. "Debug" puts the requests at the front of the queue.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable, Optional, Sequence, Union

from sqlalchemy import Engine
from tabulate import tabulate

from bc_pipeline.mapping.collection import CollectionError
from bc_pipeline.state import inbox
from bc_pipeline.webhooks.notifications import (
    MAX_NOTIFICATIONS,
    SYSTEM,
    NotificationError,
    known_collections,
    parse_scope,
    scope_model_for,
    to_requests,
)

MAX_IDS = MAX_NOTIFICATIONS  # the guide: one Manual Sync request carries up to 3,000 ids
MANUAL_SCOPES = ("created", "updated")
DEBUG_PRIORITY = 1


class ManualSyncError(ValueError):
    """Manual Sync input that cannot be queued; the message says what to change."""


def parse_ids(values: Union[str, Iterable[str], None]) -> list[str]:
    """Ids as typed in the form: comma or newline separated, trimmed, duplicates dropped, at most 3,000.

    Each id is otherwise kept verbatim (quotes included); an id cannot itself contain a comma.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    ids: dict[str, None] = {}
    for value in values:
        for part in str(value).replace("\r", "\n").replace("\n", ",").split(","):
            part = part.strip()
            if part:
                ids[part] = None
    if len(ids) > MAX_IDS:
        raise ManualSyncError(
            f"{len(ids):,} ids given; a Manual Sync request takes at most {MAX_IDS:,}. Split them into several requests."
        )
    return list(ids)


def _scope_for(scope: str, collection: str) -> str:
    text = (scope or "").strip().lower()
    if text in MANUAL_SCOPES:
        model = scope_model_for(collection)
        if model is None:
            raise ManualSyncError(
                f"Scopes: {collection!r} has no default scope model; give the full scope, e.g. customer/{text}"
            )
        return f"{model}/{text}"
    if "/" in text:
        try:
            model, action = parse_scope(text)
        except ValueError as exc:
            raise ManualSyncError(f"Scopes: {getattr(exc, 'message', exc)}") from None
        return f"{model}/{action}"
    raise ManualSyncError(f"Scopes must be created or updated (or a full <model>/<action>), got {scope!r}")


def enqueue_manual_sync(engine: Engine, *, system: str = SYSTEM, collection: str, scope: str,
                        external_ids: Union[str, Sequence[str], None] = None,
                        ipaas_ids: Union[str, Sequence[str], None] = None, debug: bool = False) -> list[int]:
    """Queue the form's ids for a collection; returns one inbox id per id (an id still pending keeps its row).

    External IDs (Business Central keys, e.g. the Customer No) go with TO-iPaaS collections, iPaaS.com IDs
    with FROM-iPaaS collections. Raises ManualSyncError naming the field to fix; nothing is queued then.
    """
    if " ".join((system or "").split()).casefold() != SYSTEM.casefold():
        raise ManualSyncError(f"System must be {SYSTEM!r} (this integration), got {system!r}")
    known = known_collections()
    name = known.resolve(collection or "")
    if name is None:
        raise ManualSyncError(f"Mapping Collection {collection!r} is not known; known: {known.describe()}")
    direction = known.directions[name]
    externals, internals = parse_ids(external_ids), parse_ids(ipaas_ids)
    if externals and internals:
        raise ManualSyncError("give External IDs or iPaaS.com IDs, not both")
    if direction == "TO_IPAAS" and internals:
        raise ManualSyncError(f"{name!r} sends to iPaaS.com: give External IDs (the Business Central key, e.g. the "
                              "Customer No), not iPaaS.com IDs")
    if direction == "FROM_IPAAS" and externals:
        raise ManualSyncError(f"{name!r} reads from iPaaS.com: give iPaaS.com IDs (the Internal ID from the "
                              "iPaaS.com URL bar), not External IDs")
    ids = externals or internals
    if not ids:
        wanted = "External ID" if direction == "TO_IPAAS" else "iPaaS.com ID"
        raise ManualSyncError(f"give at least one {wanted} for {name!r}")
    full_scope = _scope_for(scope, name)
    field = "external_id" if direction == "TO_IPAAS" else "id"
    notifications = [{"scope": full_scope, "collection": name, field: value} for value in ids]
    try:
        requests = to_requests(notifications, source="manual", known=known,
                               priority=DEBUG_PRIORITY if debug else 0, field="ids")
    except NotificationError as exc:
        label = "External ID" if field == "external_id" else "iPaaS.com ID"
        lines = [
            f"{label} #{p.index + 1} {ids[p.index][:80]!r}: {p.message}" if p.index is not None else f"{p.field}: {p.message}"
            for p in exc.problems[:20]
        ]
        more = f"\n  … and {len(exc.problems) - 20} more" if len(exc.problems) > 20 else ""
        raise ManualSyncError("nothing was queued:\n  " + "\n  ".join(lines) + more) from None
    return inbox.enqueue(engine, requests)


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _row_value(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name, None)


def format_status(rows: Iterable[Any]) -> str:
    """The inbox as a table for `bc-pipeline sync --status` (rows from inbox.status / inbox.pending)."""
    rows = list(rows)
    if not rows:
        return "No sync requests."
    table = []
    for row in rows:
        received = _row_value(row, "received_at")
        external, internal = _row_value(row, "external_id"), _row_value(row, "ipaas_id")
        table.append([
            _row_value(row, "id"),
            received.strftime("%Y-%m-%d %H:%M:%S") if received is not None else "",
            _row_value(row, "source"),
            _cell(_row_value(row, "collection"), 48),
            _row_value(row, "scope"),
            _cell(external if external is not None else (f"iPaaS {internal}" if internal is not None else "(all)"), 40),
            _row_value(row, "status") + (" (debug)" if (_row_value(row, "priority") or 0) > 0 else ""),
            _row_value(row, "attempts"),
            _cell(_row_value(row, "run_id"), 12),
            _cell(_row_value(row, "error"), 60),
        ])
    headers = ["id", "received (UTC)", "source", "collection", "scope", "record", "status", "tries", "run", "error"]
    return tabulate(table, headers=headers, tablefmt="simple", disable_numparse=True)


def add_sync_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The Manual Sync form's fields as options of `bc-pipeline sync`."""
    parser.add_argument("--system", default=SYSTEM, help=f"System (default {SYSTEM!r}, the only one)")
    parser.add_argument("--collection", help='Mapping Collection, e.g. "Dynamics Customer Add/Update to iPaaS" '
                                             "(or its slug, customer_to_ipaas)")
    parser.add_argument("--scope", default="updated",
                        help="Scopes: created or updated (default), or a full <model>/<action>")
    parser.add_argument("--external-id", dest="external_ids", action="append", metavar="ID",
                        help="External ID (TO iPaaS collections): the Business Central key, e.g. the Customer No; "
                             "repeat it or give a comma list")
    parser.add_argument("--ipaas-id", dest="ipaas_ids", action="append", metavar="ID",
                        help="iPaaS.com ID (FROM iPaaS collections): the Internal ID; repeat it or give a comma list")
    parser.add_argument("--debug", action="store_true", help="put the requests at the front of the queue")
    parser.add_argument("--status", action="store_true", help="show the queued requests instead of adding any")
    parser.add_argument("--only", choices=inbox.STATUSES, help="with --status: only requests in this state")
    parser.add_argument("--limit", type=int, default=50, help="with --status: how many requests to show (default 50)")
    return parser


def run_sync_command(args: argparse.Namespace, settings: Any, *, engine: Optional[Engine] = None) -> int:
    """`bc-pipeline sync`: queue a Manual Sync request, or show the queue with --status. Returns the exit code."""
    if engine is None:
        from bc_pipeline.state.database import engine_for

        engine = engine_for(settings.state_database_url)
    try:
        if args.status:
            collection = None
            if args.collection:
                collection = known_collections().resolve(args.collection)
                if collection is None:
                    raise ManualSyncError(f"Mapping Collection {args.collection!r} is not known; known: "
                                          f"{known_collections().describe()}")
            rows = inbox.status(engine, collection=collection, statuses=[args.only] if args.only else None,
                                limit=max(1, args.limit))
            print(format_status(rows))
            totals = inbox.counts(engine)
            print("\n" + ", ".join(f"{count} {state}" for state, count in totals.items()))
            return 0
        if not args.collection:
            raise ManualSyncError("--collection is required (or --status to show the queue)")
        ids = enqueue_manual_sync(engine, system=args.system, collection=args.collection, scope=args.scope,
                                  external_ids=args.external_ids, ipaas_ids=args.ipaas_ids, debug=args.debug)
    except (ManualSyncError, CollectionError) as exc:  # CollectionError: a mapping collection file is broken
        print(f"bc-pipeline sync: {exc}", file=sys.stderr)
        return 2
    distinct = sorted(set(ids))
    span = f"{distinct[0]}" if len(distinct) == 1 else f"{distinct[0]}–{distinct[-1]}"
    print(f"Queued {len(ids)} id(s) as inbox request(s) {span}" + (" at the front of the queue" if args.debug else "")
          + "; an id already pending keeps its request. See them with `bc-pipeline sync --status`.")
    return 0


__all__ = [
    "MAX_IDS", "ManualSyncError", "add_sync_arguments", "enqueue_manual_sync", "format_status", "parse_ids",
    "run_sync_command",
]

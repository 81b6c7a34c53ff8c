"""Dead letters mapped again from their current source: the records they name are re-read from Business Central."""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Collection, Mapping, Optional

import pandas as pd
from sqlalchemy import Engine

from bc_pipeline.catalog import BY_NAME
from bc_pipeline.mapping.fields import with_collection_fields
from bc_pipeline.clients import odata
from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.mapping.collection import PLACEHOLDER, MappingCollection
from bc_pipeline.mapping.engine import MappedRecord, apply_collection
from bc_pipeline.state import records as state

log = logging.getLogger(__name__)

KEYS_PER_QUERY = 20


def key_values(template: str, external_id: str) -> dict[str, str] | None:
    """`{Location}|{Item}` and `EAST|1000` → {"Location": "EAST", "Item": "1000"}; None if it does not fit."""
    fields = PLACEHOLDER.findall(template)
    pattern = "".join(
        re.escape(piece) if i % 2 == 0 else "(.*?)" for i, piece in enumerate(PLACEHOLDER.split(template))
    )
    match = re.fullmatch(pattern, external_id, flags=re.DOTALL)
    return dict(zip(fields, match.groups())) if match else None


def read_where(bc: BusinessCentralClient, source: str, field: str, values: list[str]) -> list[dict[str, Any]]:
    """The rows of a source whose `field` is one of `values`, each value a literal (BC's `or` is per field)."""
    entity = with_collection_fields(BY_NAME[source])
    rows: list[dict[str, Any]] = []
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), KEYS_PER_QUERY):
        query = odata.all_of(entity.fixed_filter, odata.any_of(field, unique[start : start + KEYS_PER_QUERY]))
        rows.extend(bc.read(entity.service, select=entity.select or None, filter=query))
    return rows


def remap_dead_letters(
    collection: MappingCollection,
    bc: BusinessCentralClient,
    engine: Engine,
    already_mapped: set[str],
    links: Callable[[str], Mapping[str, str]],
    only: Optional[Collection[str]] = None,
) -> list[MappedRecord]:
    """Every dead letter of the collection not in this run's extract, mapped again from what BC holds now.

    only: just these dead letters (`bc-pipeline dead-letters retry --id`); None: every one.
    A dead letter whose record is gone from BC or no longer passes the collection's filter leaves the list:
    there is nothing left to send.
    """
    records, gone = dead_letter_records(collection, bc, engine, already_mapped, links, only)
    if gone:
        log.info("%s: %d dead letter(s) no longer in Business Central or no longer selected by the collection's "
                 "filter, so nothing is left to send: %s", collection.name, len(gone), ", ".join(gone[:20]))
        state.clear_dead_letters(engine, collection.slug, gone)
    return records


def dead_letter_records(
    collection: MappingCollection,
    bc: BusinessCentralClient,
    engine: Engine,
    already_mapped: set[str],
    links: Callable[[str], Mapping[str, str]],
    only: Optional[Collection[str]] = None,
) -> tuple[list[MappedRecord], list[str]]:
    """The dead letters not in `already_mapped` (and in `only`, when given), mapped from what BC holds now, and
    those with nothing left to send (gone from BC, or no longer selected by the filter). Reads only."""
    letters = [d.external_id for d in state.dead_letters_of(engine, collection.slug)
               if d.external_id not in already_mapped and (only is None or d.external_id in only)]
    if not letters:
        return [], []
    wanted = {e: key_values(collection.external_id, e) for e in letters}
    parsed = [v for v in wanted.values() if v]
    if not parsed:
        return [], []
    # The placeholder with the most distinct values narrows the read the most.
    field = max(parsed[0], key=lambda f: (len({p[f] for p in parsed}), list(parsed[0]).index(f)))
    frame = pd.DataFrame(read_where(bc, collection.source, field, [p[field] for p in parsed]))
    child_frames = {}
    for child in collection.children:
        if child.source == collection.source:  # the record's own fields (a card's address): already read
            child_frames[child.source] = frame
            continue
        parents = frame[child.parent_key].astype(str).tolist() if child.parent_key in frame.columns else []
        child_frames[child.source] = pd.DataFrame(read_where(bc, child.source, child.child_key, parents) if parents else [])
    records = [r for r in apply_collection(collection, frame, links, child_frames) if r.external_id in wanted]
    gone = sorted(set(wanted) - {r.external_id for r in records} - {e for e, v in wanted.items() if v is None})
    return records, gone

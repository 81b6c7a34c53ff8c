"""Whole documents from incremental reads: a changed header with all its lines, a changed line with its header."""

from __future__ import annotations

import pandas as pd

from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.mapping.collection import MappingCollection
from bc_pipeline.replay import read_where


def _values(frame: pd.DataFrame, column: str) -> set[str]:
    return set(frame[column].astype(str)) if column in frame.columns and len(frame) else set()


def complete_documents(collection: MappingCollection, frame: pd.DataFrame, child_frames: dict[str, pd.DataFrame],
                       modes: dict[str, str], bc: BusinessCentralClient
                       ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Headers and lines as whole documents when a child was read incrementally (only its changed lines).

    A header changes without its lines and a line without its header, so each document either side names is
    read again by key: its header (if only a line changed) and every line (the payload replaces them all).
    A full or keyed (partial) read of the child already holds every line of the headers read.
    """
    # A child from the record's own row (a card's address) is never read again: it is the header itself.
    incremental = [c for c in collection.children
                   if c.source != collection.source and modes.get(c.source) == "incremental"]
    if not incremental:
        return frame, child_frames
    child_frames = dict(child_frames)
    for child in incremental:
        changed = child_frames.get(child.source, pd.DataFrame())
        documents = _values(frame, child.parent_key) | _values(changed, child.child_key)
        headers_missing = sorted(documents - _values(frame, child.parent_key))
        if headers_missing:
            found = pd.DataFrame(read_where(bc, collection.source, child.parent_key, headers_missing))
            frame = pd.concat([frame, found], ignore_index=True) if len(frame) else found
        documents = sorted(_values(frame, child.parent_key))  # a line's header may be filtered out (not an order)
        child_frames[child.source] = pd.DataFrame(read_where(bc, child.source, child.child_key, documents)
                                                  if documents else [])
    return frame, child_frames

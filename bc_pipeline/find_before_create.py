"""Find before create: a create whose outcome is unclear is looked up before it is ever sent again."""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional, TypeVar

from bc_pipeline.clients.errors import PipelineError, outcome_unclear

log = logging.getLogger(__name__)

T = TypeVar("T")
CREATE_ATTEMPTS = 3
UNCLEAR_BACKOFF_SECONDS = (1.0, 4.0)


def create_once(create: Callable[[], T], find: Callable[[], Optional[T]], what: str) -> T:
    """`create()`; after an unclear outcome (lost answer, 5xx, 429), `find()` first, and create again only if
    nothing is found — at most CREATE_ATTEMPTS sends in all. A clear refusal is raised at once."""
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            return create()
        except PipelineError as exc:
            if not outcome_unclear(exc) or attempt == CREATE_ATTEMPTS:
                raise
            log.warning("%s: the create's outcome is unclear (%s); looking it up before sending again", what, exc)
            found = find()
            if found is not None:
                return found
            # Not there: give a busy service a moment before the next send.
            time.sleep(UNCLEAR_BACKOFF_SECONDS[attempt - 1])
    raise AssertionError("unreachable")

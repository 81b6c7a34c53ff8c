"""Staged extracts on disk: one file per page, written as read, so memory never holds a table."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Optional

import orjson

MANIFEST = "manifest.json"
KEEP_COMPLETE_EXTRACTS = 3


class StagedExtract:
    """A directory of page files for one entity and one run, complete once its manifest exists."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @property
    def complete(self) -> bool:
        return (self.directory / MANIFEST).exists()

    def manifest(self) -> dict[str, Any]:
        return orjson.loads((self.directory / MANIFEST).read_bytes())

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        for part in sorted(self.directory.glob("part-*.json")):
            yield orjson.loads(part.read_bytes())

    def records(self) -> Iterator[dict[str, Any]]:
        for page in self.pages():
            yield from page


class StagingWriter:
    """Writes pages of one extraction; `finish()` publishes it atomically with its manifest."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        self.pages = 0
        self.rows = 0
        self.bytes = 0

    def write_page(self, records: list[dict[str, Any]]) -> None:
        self.pages += 1
        data = orjson.dumps(records)
        path = self.directory / f"part-{self.pages:06d}.json"
        path.write_bytes(data)
        self.rows += len(records)
        self.bytes += len(data)

    def finish(self, **details: Any) -> StagedExtract:
        manifest = {
            "rows": self.rows,
            "pages": self.pages,
            "bytes": self.bytes,
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            **details,
        }
        tmp = self.directory / (MANIFEST + ".tmp")
        tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.directory / MANIFEST)
        return StagedExtract(self.directory)


class StagingArea:
    """Where extractions land: `<root>/bc/<entity>/<run id>/part-NNNNNN.json` + manifest.json."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def entity_dir(self, entity: str) -> Path:
        return self.root / "bc" / entity

    def writer(self, entity: str, run_id: str) -> StagingWriter:
        return StagingWriter(self.entity_dir(entity) / run_id)

    def extract(self, entity: str, run_id: str) -> StagedExtract:
        return StagedExtract(self.entity_dir(entity) / run_id)

    def latest(self, entity: str) -> Optional[StagedExtract]:
        complete = self._complete(entity)
        return complete[-1] if complete else None

    def _complete(self, entity: str) -> list[StagedExtract]:
        base = self.entity_dir(entity)
        if not base.exists():
            return []
        found = [StagedExtract(d) for d in base.iterdir() if d.is_dir() and (d / MANIFEST).exists()]
        return sorted(found, key=lambda e: (e.directory / MANIFEST).stat().st_mtime)

    def prune(self, entity: str, keep: int = KEEP_COMPLETE_EXTRACTS) -> None:
        """Drop all but the newest complete extracts (and abandoned incomplete ones older than them)."""
        complete = self._complete(entity)
        for old in complete[:-keep]:
            shutil.rmtree(old.directory, ignore_errors=True)
        if complete:
            newest = (complete[-1].directory / MANIFEST).stat().st_mtime
            for d in self.entity_dir(entity).iterdir():
                if d.is_dir() and not (d / MANIFEST).exists() and d.stat().st_mtime < newest - 3600:
                    shutil.rmtree(d, ignore_errors=True)

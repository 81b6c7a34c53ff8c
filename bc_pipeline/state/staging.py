"""Staged extracts and payloads through fsspec: one object per page, written as read, so memory never holds a table.

The staging area is a URL (`BC_PIPELINE_STAGING_URL`): a local folder by default, or any store fsspec serves
(`abfs://<container>/<prefix>` for Azure Blob / ADLS Gen2, `s3://…`, `gs://…`, `memory://…`). Everything is
addressed by run id: a step reads exactly its run's data, never another run's.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence
from urllib.parse import urlsplit, urlunsplit

import fsspec
import orjson

MANIFEST = "manifest.json"
STARTED = "_started.json"
KEEP_COMPLETE_EXTRACTS = 3
# A run may map its extract hours after reading it (the initial load waits for parents' loads), and other
# runs extract meanwhile: nothing younger than this is pruned, whatever the count.
KEEP_HOURS = 24
ABANDONED_AFTER_HOURS = 24

# Credentials come from the environment (AZURE_STORAGE_CONNECTION_STRING, AWS_…, GOOGLE_…): a filesystem is
# cached per URL and per those variables, so changed credentials get a new client.
_CREDENTIAL_PREFIXES = ("AZURE_", "AWS_", "GOOGLE_", "GCS_")
_filesystems: dict[tuple, tuple[Any, str]] = {}


class MissingExtract(Exception):
    """A step's own run has no complete extract (or payloads) in the staging area."""


def safe_url(url: str) -> str:
    """The URL as it may be shown: no password, no query (a SAS token), no fragment."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return url
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}" if ":" in user else netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _filesystem(url: str) -> tuple[Any, str]:
    credentials = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_CREDENTIAL_PREFIXES)))
    key = (url, credentials)
    if key not in _filesystems:
        scheme = urlsplit(url).scheme
        local = not scheme or len(scheme) == 1 or scheme in ("file", "local")
        options = {"auto_mkdir": True} if local else {}
        fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True, **options)
        _filesystems[key] = (fs, path.rstrip("/") or "/")
    return _filesystems[key]


def _parse_time(value: Any) -> Optional[dt.datetime]:
    try:
        return dt.datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


class StagedExtract:
    """The page objects of one entity and one run, complete once its manifest exists."""

    def __init__(self, area: "StagingArea", path: str):
        self.area = area
        self.path = path

    @property
    def directory(self) -> str:
        return self.path

    @property
    def run_id(self) -> str:
        """The run that staged it."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def location(self) -> str:
        """Where it is, as it may be shown (no secrets)."""
        return self.area.display(self.path)

    @property
    def complete(self) -> bool:
        return self.area.fs.exists(f"{self.path}/{MANIFEST}")

    def manifest(self) -> dict[str, Any]:
        return orjson.loads(self.area.fs.cat_file(f"{self.path}/{MANIFEST}"))

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        """Each page as written, one at a time; exactly the manifest's pages."""
        for number in range(1, int(self.manifest()["pages"]) + 1):
            yield orjson.loads(self.area.fs.cat_file(f"{self.path}/part-{number:06d}.json"))

    def records(self) -> Iterator[dict[str, Any]]:
        for page in self.pages():
            yield from page


class StagingWriter:
    """Writes the pages of one extraction (or transform); `finish()` publishes them with their manifest."""

    def __init__(self, area: "StagingArea", path: str):
        self.area = area
        self.path = path
        self.directory = path
        fs = area.fs
        if fs.exists(path):
            fs.rm(path, recursive=True)
        fs.pipe_file(f"{path}/{STARTED}", orjson.dumps({"started_at": _now().isoformat()}))
        self.pages = 0
        self.rows = 0
        self.bytes = 0

    @property
    def location(self) -> str:
        return self.area.display(self.path)

    def write_page(self, records: list[dict[str, Any]]) -> None:
        self.pages += 1
        data = orjson.dumps(records)
        self.area.fs.pipe_file(f"{self.path}/part-{self.pages:06d}.json", data)
        self.rows += len(records)
        self.bytes += len(data)

    def finish(self, **details: Any) -> StagedExtract:
        manifest = {
            "rows": self.rows,
            "pages": self.pages,
            "bytes": self.bytes,
            "finished_at": _now().isoformat(),
            **details,
        }
        data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
        fs = self.area.fs
        if self.area.local:
            # A rename is atomic on a local disk; one PUT is atomic on an object store.
            tmp = f"{self.path}/{MANIFEST}.tmp"
            fs.pipe_file(tmp, data)
            os.replace(tmp, f"{self.path}/{MANIFEST}")
        else:
            fs.pipe_file(f"{self.path}/{MANIFEST}", data)
        return StagedExtract(self.area, self.path)


class StagingArea:
    """`<url>/bc/<entity>/<run id>/part-NNNNNN.json` + manifest.json, and `<url>/payloads/<collection>/<run id>/…`."""

    def __init__(self, url: str | Path):
        self.url = str(url)
        self.fs, self.root = _filesystem(self.url)
        protocol = self.fs.protocol
        self.local = "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))

    def display(self, path: Optional[str] = None) -> str:
        """The URL (or a path under it) without secrets, for logs, metadata and errors."""
        base = safe_url(self.url).rstrip("/")
        if path is None or path == self.root:
            return base
        return base + "/" + path[len(self.root):].lstrip("/")

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts]) if self.root != "/" else "/" + "/".join(parts)

    def entity_dir(self, entity: str) -> str:
        return self._path("bc", entity)

    def payloads_dir(self, slug: str) -> str:
        return self._path("payloads", slug)

    def writer(self, entity: str, run_id: str) -> StagingWriter:
        return StagingWriter(self, f"{self.entity_dir(entity)}/{run_id}")

    def extract(self, entity: str, run_id: str) -> StagedExtract:
        return StagedExtract(self, f"{self.entity_dir(entity)}/{run_id}")

    def require_extract(self, entity: str, run_id: str | Sequence[str]) -> StagedExtract:
        """The complete extract of `entity` made by this run (or, for a re-execution, by the run it re-executes),
        or an error naming what is missing and where."""
        return self._first_complete(self.extract, entity, run_id, lambda runs, where: (
            f"no complete extract of {entity} for run {runs} at {where}: a transform reads only its own run's "
            f"extract, so run bc/{entity} in the same run (another run's data is never used)"))

    def payload_writer(self, slug: str, run_id: str) -> StagingWriter:
        return StagingWriter(self, f"{self.payloads_dir(slug)}/{run_id}")

    def payloads(self, slug: str, run_id: str) -> StagedExtract:
        return StagedExtract(self, f"{self.payloads_dir(slug)}/{run_id}")

    def require_payloads(self, slug: str, run_id: str | Sequence[str]) -> StagedExtract:
        """The complete payloads of `slug` mapped by this run (or by the run it re-executes), or an error."""
        return self._first_complete(self.payloads, slug, run_id, lambda runs, where: (
            f"no payloads of {slug} for run {runs} at {where}: a load reads only its own run's payloads, so run "
            f"mapped/{slug} (and its extracts) in the same run"))

    def _first_complete(self, staged_for: Callable[[str, str], StagedExtract], name: str,
                        run_id: str | Sequence[str], missing: Callable[[str, str], str]) -> StagedExtract:
        runs = [run_id] if isinstance(run_id, str) else list(run_id)
        for run in runs:
            staged = staged_for(name, run)
            if staged.complete:
                return staged
        raise MissingExtract(missing(_runs(runs), staged_for(name, runs[0]).location) + (_AGAIN if len(runs) > 1 else ""))

    def runs(self, entity: str) -> list[str]:
        """Run ids with a complete extract of `entity` (inspection only: steps read their own run's)."""
        return [run for run, _ in self._complete(self.entity_dir(entity))]

    def _children(self, base: str) -> list[str]:
        try:
            entries = self.fs.ls(base, detail=True)
        except FileNotFoundError:
            return []
        return [e["name"].rstrip("/") for e in entries if e.get("type") == "directory"]

    def _complete(self, base: str) -> list[tuple[str, dt.datetime]]:
        """(run id, finished at) of each complete run under `base`, oldest first."""
        found = []
        for path in self._children(base):
            try:
                finished = _parse_time(orjson.loads(self.fs.cat_file(f"{path}/{MANIFEST}")).get("finished_at"))
            except FileNotFoundError:
                continue
            found.append((path.rsplit("/", 1)[-1], finished or dt.datetime.min.replace(tzinfo=dt.timezone.utc)))
        return sorted(found, key=lambda item: item[1])

    def prune(self, entity: str, keep: int = KEEP_COMPLETE_EXTRACTS) -> None:
        self._prune(self.entity_dir(entity), keep)

    def prune_payloads(self, slug: str, keep: int = KEEP_COMPLETE_EXTRACTS) -> None:
        self._prune(self.payloads_dir(slug), keep)

    def _prune(self, base: str, keep: int) -> None:
        """Drop complete runs beyond the newest `keep` that are older than KEEP_HOURS, and abandoned ones."""
        now = _now()
        complete = self._complete(base)
        for run, finished in complete[:-keep] if keep else complete:
            if now - finished > dt.timedelta(hours=KEEP_HOURS):
                self._remove(f"{base}/{run}")
        done = {run for run, _ in complete}
        for path in self._children(base):
            if path.rsplit("/", 1)[-1] in done:
                continue
            try:
                started = _parse_time(orjson.loads(self.fs.cat_file(f"{path}/{STARTED}")).get("started_at"))
            except FileNotFoundError:
                started = None
            if started is not None and now - started > dt.timedelta(hours=ABANDONED_AFTER_HOURS):
                self._remove(path)

    def _remove(self, path: str) -> None:
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass


_AGAIN = ": re-execute all its steps, not only the failed ones (the staged data it would reuse is gone)"


def _runs(runs: Sequence[str]) -> str:
    """A run id, or a re-execution's run id and the runs it re-executes."""
    if len(runs) == 1:
        return runs[0]
    return f"{runs[0]} (a re-execution of {', '.join(runs[1:])})"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

"""One directory per started sandbox for the pipeline's own state, removed once the process that claimed it is gone."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from filelock import FileLock, Timeout


class Instance:
    """``<root>/<id>/``, claimed by holding ``<root>/<id>.lock`` for as long as the claiming process uses it."""

    def __init__(self, directory: Path, lock: FileLock):
        self.directory = directory
        self._lock = lock

    @property
    def state_file(self) -> Path:
        return self.directory / "state.sqlite"

    def release(self) -> None:
        """The directory stays, to be looked at, until a later claim removes it."""
        self._lock.release()


def claim(root: Path) -> Instance:
    """A new directory of this process's own under root, after removing those whose claimers are gone."""
    root.mkdir(parents=True, exist_ok=True)
    remove_leftovers(root)
    while True:
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        lock_path = root / f"{name}.lock"
        lock = FileLock(str(lock_path), thread_local=False)
        lock.acquire(timeout=0)
        if lock_path.exists():  # not taken for a leftover by a concurrent claim between its creation and locking
            break
        lock.release()
    # Locked before it exists: a concurrent claim never sees the directory unlocked.
    directory = root / name
    directory.mkdir()
    return Instance(directory, lock)


def remove_leftovers(root: Path) -> list[Path]:
    """Remove the directories whose lock nobody holds (their process ended); those in use stay."""
    removed = []
    for lock_path in sorted(root.glob("*.lock")):
        lock = FileLock(str(lock_path), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except (Timeout, FileNotFoundError):  # in use, or removed by another claim meanwhile
            continue
        directory = lock_path.with_suffix("")
        try:
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            lock.release()
        lock_path.unlink(missing_ok=True)
        removed.append(directory)
    return removed

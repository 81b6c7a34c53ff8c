"""The pieces a Celery run needs, as throwaway processes: PostgreSQL, Redis, fresh databases and Celery workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bc_pipeline_tests.redis_server import free_port, redis_binary  # noqa: E402
from bc_pipeline_tests.redis_server import redis_server as test_redis_server  # noqa: E402


@contextmanager
def postgres_server(port: Optional[int] = None) -> Iterator[str]:
    """A PostgreSQL cluster of its own (scripts/test-postgres.sh in a temporary folder); its server URL."""
    # As root the server runs as `postgres`, which must reach the folder: mkdtemp's is private to its owner.
    parent = Path(tempfile.mkdtemp(prefix="bc-scale-out-pg-"))
    parent.chmod(0o755)
    env = {**os.environ, "BC_PIPELINE_PG_DIR": str(parent / "cluster"), "BC_PIPELINE_PG_PORT": str(port or free_port())}
    script = str(REPO / "scripts" / "test-postgres.sh")
    url = subprocess.run([script, "start"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    try:
        yield url
    finally:
        subprocess.run([script, "stop"], env=env, check=False, capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)


def create_database(server_url: str, label: str) -> str:
    """A new, empty database on the server; its SQLAlchemy URL (dropped with the cluster)."""
    from sqlalchemy import create_engine, text

    name = f"bcp_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Redis on a free port, in a private folder, nothing saved to disk; its URL (database 0)."""
    binary = redis_binary()
    if binary is None:
        raise SystemExit("redis-server is missing: run `scripts/test-redis.sh install` first")
    with test_redis_server(folder, binary) as url:
        yield url


def dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME whose dagster.yaml is the repo's plus the README's PostgreSQL storage snippet
    (DAGSTER_PG_* from the environment, see dagster_env)."""
    from bc_pipeline_tests.dagster_storage import readme_storage_snippet

    folder.mkdir(parents=True)
    (folder / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text() + "\n" + readme_storage_snippet())
    return folder


def dagster_env(database_url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables the README's storage snippet reads, for a database URL."""
    from urllib.parse import urlsplit

    server = urlsplit(database_url)
    return {"DAGSTER_PG_USERNAME": server.username or "postgres", "DAGSTER_PG_PASSWORD": server.password or "",
            "DAGSTER_PG_HOST": server.hostname or "127.0.0.1", "DAGSTER_PG_PORT": str(server.port or 5432),
            "DAGSTER_PG_DB": server.path.lstrip("/")}


class Worker:
    """`celery -A dagster_celery.app worker` with a folder of its own (BC_PIPELINE_HOME, DAGSTER_HOME, its
    dagster_celery_config module, its log), as the README's "Celery" paragraph starts one."""

    def __init__(self, name: str, root: Path, env: dict[str, str], broker: str, concurrency: int,
                 preload: bool = True):
        self.name, self.root = name, root
        config = root / "celery_config"
        config.mkdir(parents=True)
        # The code location imported once in the worker, before it forks its pool: a pool process's first step
        # need not import it (measured ~15-20 s for 10 processes at once on a loaded 2-core machine).
        (config / "dagster_celery_config.py").write_text(
            f"broker_url = {broker!r}\nresult_backend = {broker!r}\n" + ("import bc_pipeline.definitions\n" if preload else ""))
        self.home = root / "home"
        env = {**env, "BC_PIPELINE_HOME": str(self.home), "DAGSTER_HOME": str(dagster_home(root / "dagster_home")),
               "PYTHONPATH": os.pathsep.join([str(config), str(REPO)])}
        self.log_path = root / "worker.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "dagster_celery.app", "worker", "-Q", "dagster",
             "--concurrency", str(concurrency), "--prefetch-multiplier", "1", "-n", f"{name}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while " ready." not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Celery worker {self.name} did not start: see {self.log_path}")
            time.sleep(0.2)

    def steps_run(self) -> int:
        """Dagster steps this worker finished (Celery tasks that succeeded)."""
        return self.log().count("] succeeded in ")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown: the pool's children with it
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()

"""BC_PIPELINE_EXECUTOR=celery: one run's steps execute on two Celery workers (Redis broker) that share nothing but
PostgreSQL (Dagster's storage and the pipeline's state), Redis and the staging folder; every record lands once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from bc_pipeline.definitions import CELERY_BROKER_VARIABLE, build_definitions
from bc_pipeline.runner import selection_for
from bc_pipeline_tests.dagster_storage import ROOT, dagster_pg_home, fresh_database  # noqa: F401 (fixture)
from bc_pipeline_tests.redis_server import redis_binary, redis_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What the workers load (by this module's name and attribute): the code location with the Celery executor.
celery_defs = build_definitions("celery")


@pytest.fixture
def redis_url(tmp_path):
    """A Redis server of the test's own: a free port, a private folder, nothing saved to disk."""
    binary = redis_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: `scripts/test-redis.sh install` (make test runs it)")
        pytest.skip("no redis-server (run the tests with `make test`)")
    with redis_server(tmp_path / "redis", binary) as url:
        yield url


def _start_worker(name: str, root: Path, env: dict[str, str]) -> subprocess.Popen:
    """`celery -A dagster_celery.app worker` in one process (solo pool: the steps run in the worker's own pid),
    configured as dagster-celery configures its workers: a `dagster_celery_config` module on PYTHONPATH."""
    config = root / "celery_config"
    config.mkdir(parents=True)
    broker = env[CELERY_BROKER_VARIABLE]
    (config / "dagster_celery_config.py").write_text(f"broker_url = {broker!r}\nresult_backend = {broker!r}\n")
    env = {**env, "PYTHONPATH": os.pathsep.join([str(config), str(ROOT)])}
    log = open(root / "worker.log", "wb")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "dagster_celery.app", "worker", "-Q", "dagster",
         "--pool", "solo", "--prefetch-multiplier", "1", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
         "--loglevel", "INFO"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _links(world, table):
    return {link["external_id"]: str(link["internal_id"]) for link in world.ipaas_links()
            if link["table_name"].lower() == table.lower() and not link.get("deleted")}


def test_one_run_on_two_celery_workers_delivers_everything(world, dagster_pg_home, redis_url, postgres_server_url,
                                                           tmp_path, monkeypatch):
    with fresh_database(postgres_server_url) as state_url:
        monkeypatch.setenv("BC_PIPELINE_STATE_URL", state_url)
        monkeypatch.setenv(CELERY_BROKER_VARIABLE, redis_url)
        # Until staging goes through a blob store, both workers stage into one folder: BC_PIPELINE_STAGING_URL
        # where that setting exists, and each worker's own BC_PIPELINE_HOME/staging linked to it where not.
        shared_staging = tmp_path / "shared_staging"
        shared_staging.mkdir()
        monkeypatch.setenv("BC_PIPELINE_STAGING_URL", str(shared_staging))
        workers, homes = [], []
        try:
            for name in ("worker1", "worker2"):
                root = tmp_path / name
                home, dagster_home = root / "home", root / "dagster_home"
                home.mkdir(parents=True)
                (home / "staging").symlink_to(shared_staging, target_is_directory=True)
                shutil.copytree(dagster_pg_home, dagster_home)
                homes.append(home)
                workers.append(_start_worker(name, root, {**os.environ, "BC_PIPELINE_HOME": str(home),
                                                          "DAGSTER_HOME": str(dagster_home)}))

            repository = ReconstructableRepository.for_module(__name__, "celery_defs", str(ROOT))
            keys = selection_for("initial_load", ["customer_price_groups", "customers"])
            job = repository.get_reconstructable_job("initial_load").get_subset(asset_selection=set(keys))
            with dg.DagsterInstance.from_config(str(dagster_pg_home)) as instance:
                with dg.execute_job(job, instance=instance) as result:
                    assert result.success, [w.args for w in workers]
                    steps = {e.step_key: e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        finally:
            for worker in workers:
                if worker.poll() is None:
                    os.killpg(worker.pid, 15)
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, 9)
                    worker.wait()

    # Every step ran on a worker, and each worker ran some.
    assert set(steps.values()) == {w.pid for w in workers}, (steps, [w.pid for w in workers])
    assert {"bc__customers", "ipaas__company_to_ipaas", "ipaas__customer_to_ipaas"} <= set(steps)

    customers = world.handle.records("CustomerCard")
    assert set(_links(world, "customer")) == {c["No"] for c in customers}
    companies = [c["name"] for c in world.ipaas_records("Company")]
    people = [c["customer_number"] for c in world.ipaas_records("Customer")]
    assert sorted(companies) == sorted(c["Name"].strip() for c in customers if c["Partner_Type"] != "Person")
    assert sorted(people) == sorted(c["No"] for c in customers if c["Partner_Type"] == "Person")
    assert {c["name"] for c in world.ipaas_records("Customer Category")} == {
        g["Code"] for g in world.handle.records("CustomerPriceGroups")}

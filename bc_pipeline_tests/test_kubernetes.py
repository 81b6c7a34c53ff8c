"""deploy/kubernetes/values.yaml (Dagster's Helm chart) against the code location: it loads with the k8s executor,
that executor's config validates, and the chart's instance settings are dagster.yaml's."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from bc_pipeline.definitions import EXECUTOR_VARIABLE, build_definitions, executor_for

ROOT = Path(__file__).resolve().parents[1]
VALUES = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "values.yaml").read_text())


def _deployment() -> dict:
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    return deployment


def test_the_code_location_loads_with_the_k8s_executor_and_validates_its_config(monkeypatch):
    pytest.importorskip("dagster_k8s", reason="pip install .[k8s] (make test installs it)")
    for name in ("BC_TENANT_ID", "BC_CLIENT_ID", "BC_CLIENT_SECRET", "BC_COMPANY_NAME", "BC_ENVIRONMENT",
                 "IPAAS_API_TOKEN", "IPAAS_SYSTEM_ID"):
        monkeypatch.setenv(name, "from the Secret")  # the resources' EnvVars, as the Secret sets them in a pod
    env = {e["name"]: e["value"] for e in _deployment()["env"]}
    assert env[EXECUTOR_VARIABLE] == "k8s"
    defs = build_definitions(env[EXECUTOR_VARIABLE])
    secret = _deployment()["envSecrets"][0]["name"]
    execution = {"config": {"job_namespace": "dagster", "env_secrets": [secret], "max_concurrent": 8,
                            "step_k8s_config": {"container_config": {"resources": {"requests": {"cpu": "250m"}}}}}}
    for name in ("sync_to_ipaas", "initial_load", "sync_from_ipaas"):
        job = defs.resolve_job_def(name)
        assert job.executor_def.name == "k8s"
        dg.validate_run_config(job, {"execution": execution})
        dg.validate_run_config(job, {})  # the sensor's runs name no executor: the run launcher's settings apply
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(defs.resolve_job_def("sync_to_ipaas"), {"execution": {"config": {"max_concurrent": "x"}}})


def test_the_chart_serves_this_code_location_with_the_settings_secret():
    import tomllib

    module = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    deployment = _deployment()
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", module]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    secret = deployment["envSecrets"][0]["name"]
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert VALUES["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": secret}]
    assert VALUES["postgresql"]["enabled"] is True


def test_the_chart_sets_the_pools_and_run_limits_of_dagster_yaml():
    instance = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    pools, runs = VALUES["concurrency"]["pools"], VALUES["concurrency"]["runs"]
    assert pools["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    assert pools["granularity"] == instance["concurrency"]["pools"]["granularity"]
    assert runs["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]


@pytest.mark.parametrize("name, executor", [("", "multi_or_in_process_executor"), ("multiprocess", "multi_or_in_process_executor"),
                                            ("in_process", "in_process"), ("celery", "celery"), ("k8s", "k8s")])
def test_bc_pipeline_executor_names_the_code_locations_executor(name, executor, monkeypatch):
    monkeypatch.setenv(EXECUTOR_VARIABLE, name)
    assert executor_for().name == executor


def test_an_unknown_executor_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv(EXECUTOR_VARIABLE, "dask")
    with pytest.raises(ValueError, match="in_process, multiprocess, celery, k8s"):
        executor_for()


def test_every_step_that_talks_to_business_central_is_in_the_pool():
    from bc_pipeline.defs.resources import BC_POOL

    defs = build_definitions()
    pools = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        for key in assets_def.keys - {dg.AssetKey(["bc_out", "run_report"]), dg.AssetKey(["ipaas", "run_report"])}:
            pools[key.path[0]] = pools.get(key.path[0], set()) | {assets_def.op.pool}
    assert pools["bc"] == pools["mapped"] == pools["bc_out"] == pools["resync"] == {BC_POOL}
    assert pools["ipaas"] == {None}  # iPaaS.com only: not limited by BC's connections

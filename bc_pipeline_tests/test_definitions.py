"""The asset graph, jobs, schedules and sensors: an accidental change to them fails here (syrupy snapshot)."""

from bc_pipeline.definitions import defs


def test_the_code_location_loads_with_every_asset_check_job_schedule_and_sensor(snapshot):
    graph = defs.resolve_asset_graph()
    assets = {
        key.to_user_string(): sorted(parent.to_user_string() for parent in graph.get(key).parent_keys)
        for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    }
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    schedules = sorted((s.name, s.cron_schedule, s.job_name) for s in defs.schedules)
    sensors = sorted(s.name for s in defs.sensors)
    assert {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors} == snapshot


def test_every_module_says_its_job_in_one_line():
    import pathlib

    import bc_pipeline

    root = pathlib.Path(bc_pipeline.__file__).parent
    undocumented = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        if text.strip() and not text.lstrip().startswith('"""'):
            undocumented.append(str(path.relative_to(root)))
    assert undocumented == []


def test_runs_that_load_one_collection_queue_one_after_the_other(tmp_path):
    """dagster.yaml's run queue lets one run per bc_pipeline/collection tag value through at a time."""
    import pathlib
    import shutil

    import dagster as dg

    from bc_pipeline.defs.jobs import COLLECTION_TAG

    shutil.copy(pathlib.Path(__file__).parents[1] / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": COLLECTION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    tagged = {j.name: j.tags.get(COLLECTION_TAG) for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    assert all(tagged[name] for name in ("sync_to_ipaas", "initial_load", "initialize_locations"))

"""`bc-pipeline daemon`: Dagster's daemon with its sensor loop turning every second."""

from bc_pipeline.daemon import SENSOR_LOOP_SECONDS, quicken_sensor_loop


def test_the_installed_dagster_lets_the_sensor_loop_turn_every_second(monkeypatch):
    from dagster._daemon import sensor

    monkeypatch.setattr(sensor, "MIN_INTERVAL_LOOP_TIME", 5)
    assert quicken_sensor_loop() is None  # a Dagster upgrade that drops the setting fails here, not silently
    assert sensor.MIN_INTERVAL_LOOP_TIME == SENSOR_LOOP_SECONDS == 1


def test_without_the_setting_the_daemon_says_it_keeps_dagsters_loop(monkeypatch):
    from dagster._daemon import sensor

    monkeypatch.delattr(sensor, "MIN_INTERVAL_LOOP_TIME")
    assert "Dagster's own loop (5 s)" in quicken_sensor_loop()


def test_the_daemon_command_is_offered(capsys):
    import pytest

    from bc_pipeline.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["daemon", "--help"])
    assert exit_.value.code == 0 and "every second" in capsys.readouterr().out

"""dev and prod: one code, settings from the environment, the same definitions wherever a
process starts, secrets never in the definitions' config."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from mlops_assets.config import REPO_ROOT, Settings

SHOW = ("from mlops_assets.config import Settings; s = Settings.from_env(); "
        "import json; print(json.dumps([str(s.home), s.first_week, s.first_scored_week]))")


def _settings_in(cwd, **env) -> list:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_HOME"))}
    out = subprocess.run([sys.executable, "-c", SHOW], cwd=cwd, env={**clean, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_definitions_do_not_depend_on_the_working_directory(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "partitions.json").write_text(json.dumps({"first_week": "2024-11-18", "first_scored_week": "2026-11-16"}))
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    # a process given only its Dagster instance (the daemon, a code server) finds the home above it
    for cwd in (tmp_path, elsewhere):
        assert _settings_in(cwd, DAGSTER_HOME=str(home / "dagster")) == [str(home), "2024-11-18", "2026-11-16"]
        assert _settings_in(cwd, MLOPS_HOME=str(home))[0] == str(home)
    # a DAGSTER_HOME of another layout (~/.dagster) says nothing of where data goes
    assert _settings_in(elsewhere, DAGSTER_HOME=str(tmp_path / ".dagster"))[0] == str(REPO_ROOT / ".mlops")
    # given nothing, the checkout's home, not the working directory's
    assert _settings_in(elsewhere)[0] == str(REPO_ROOT / ".mlops")
    assert not (elsewhere / ".mlops").exists()


def test_dev_and_prod_differ_only_in_configuration(monkeypatch, tmp_path):
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for name in ("MLOPS_ENV", "MLOPS_AUTOMATION", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    dev = build_definitions(Settings.from_env())
    monkeypatch.setenv("MLOPS_ENV", "prod")
    prod = build_definitions(Settings.from_env())
    # the same knobs, other values: what the environment decides, and nothing else
    assert (dev.resources["mlflow"].experiment, prod.resources["mlflow"].experiment) == (
        "demand-forecast-dev", "demand-forecast-prod")
    assert dev.resolve_sensor_def("landing_files").default_status == dg.DefaultSensorStatus.STOPPED
    assert prod.resolve_sensor_def("landing_files").default_status == dg.DefaultSensorStatus.RUNNING


def test_a_secret_in_the_tracking_uri_stays_an_environment_variable(monkeypatch, tmp_path):
    """Dagster shows a resource's config in the UI: a password in MLFLOW_TRACKING_URI must be
    resolved at run time from the environment, not copied into the definitions."""
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:s3cret-pw@127.0.0.1:5432/mlflow")
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK", "https://hooks.example.com/T000/s3cret-token")
    defs = build_definitions(Settings.from_env())
    mlflow, monitoring = defs.resources["mlflow"], defs.resources["monitoring"]
    assert isinstance(mlflow.tracking_uri, dg.EnvVar) and mlflow.tracking_uri.env_var_name == "MLFLOW_TRACKING_URI"
    assert isinstance(monitoring.webhook_url, dg.EnvVar)
    plain = [v for r in (mlflow, monitoring) for v in r.__dict__.values() if not isinstance(v, dg.EnvVar)]
    assert "s3cret" not in json.dumps(plain, default=repr)


def test_the_dask_executor_is_gone_with_a_clear_word(monkeypatch):
    """0.1.0 ran a run's steps on Dask, whose task keys collide across concurrent runs: a setting
    still pointing there is refused, saying what replaced it, instead of silently ignored."""
    monkeypatch.setenv("MLOPS_EXECUTOR", "in_process")  # the old default: what runs anyway
    Settings.from_env()
    monkeypatch.setenv("MLOPS_EXECUTOR", "dask")
    with pytest.raises(ValueError, match="MLOPS_EXECUTOR: no longer read.*one process"):
        Settings.from_env()

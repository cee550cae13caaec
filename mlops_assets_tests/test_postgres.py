"""Production storage on a real PostgreSQL started by the test: the Dagster instance (runs,
events, the run queue) with deploy/dagster.prod.yaml, and the MLflow tracking and registry store."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.config import REPO_ROOT
from mlops_assets_tests.servers import postgres_server, wait_for

pytestmark = pytest.mark.postgres
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def _python(code: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


INSTANCE = """
import json, dagster as dg
instance = dg.DagsterInstance.get()
runs = instance.get_runs()
print(json.dumps({"storage": type(instance.run_storage).__name__,
                  "events": type(instance.event_log_storage).__name__,
                  "runs": {r.run_id: [r.job_name, r.status.value] for r in runs},
                  "models": sorted(instance.get_materialized_partitions(dg.AssetKey("region_model")))}))
"""


def test_the_instance_and_mlflow_live_on_postgres_and_the_run_queue_survives_daemon_restarts(
        postgres, small_landing_template, tmp_path):
    host, port, user = postgres
    landing, home = tmp_path / "landing", tmp_path / "home"
    shutil.copytree(small_landing_template, landing)
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.prod.yaml", home / "dagster" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_"))}
    env.update(MLOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), MLOPS_LANDING_DIR=str(landing),
               DAGSTER_PG_USERNAME=user, DAGSTER_PG_PASSWORD="trust-auth-ignores-it", DAGSTER_PG_HOST=host,
               DAGSTER_PG_PORT=str(port), DAGSTER_PG_DB="dagster",
               MLFLOW_TRACKING_URI=f"postgresql+psycopg2://{user}@{host}:{port}/mlflow")

    # the whole pipeline for one region, training and the registry included
    run = subprocess.run([str(BIN / "mlops-assets"), "run", "--regions", "north"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]

    # a fresh process sees it all in PostgreSQL
    seen = _python(INSTANCE, env)
    assert (seen["storage"], seen["events"]) == ("PostgresRunStorage", "PostgresEventLogStorage")
    runs = list(seen["runs"].values())
    assert {"tables", "weekly", "training", "scoring", "alerting"} <= {job for job, _ in runs}, runs
    # every run succeeded (a training whose candidate fails a gate fails its run, by design)
    assert all(status == "SUCCESS" for job, status in runs if job != "training"), runs
    assert seen["models"] == ["north"]
    registry = _python(
        "import json; from mlops_assets.config import Settings; from mlops_assets.releases import "
        "registry_for; r = registry_for(Settings.from_env()).release('north', '1'); "
        "print(json.dumps({'version': r.version, 'verdict': r.verdict, 'run': r.run_id}))", env)
    assert registry["version"] == "1" and registry["verdict"] in ("passed", "failed")
    assert not (tmp_path / "mlruns").exists()  # the artifacts went under the home, not the working directory
    assert list((home / "dagster" / "mlflow" / "artifacts").rglob("MLmodel"))

    # runs queued while no daemon runs wait in PostgreSQL; a daemon started later, killed and
    # started again, runs each of them
    log = tmp_path / "daemon.log"
    for attempt in range(2):
        launched = subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", str(REPO_ROOT / "workspace.yaml"),
                                   "-j", "alerting"], env=env, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=300)
        assert launched.returncode == 0, launched.stderr[-2000:]
        queued = [rid for rid, (job, status) in _python(INSTANCE, env)["runs"].items()
                  if job == "alerting" and status == "QUEUED"]
        assert len(queued) == 1, queued
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
                                  env=env, cwd=tmp_path, stdout=log.open("a"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            wait_for(lambda: _python(INSTANCE, env)["runs"][queued[0]][1] == "SUCCESS", 240,
                     f"the queued run {queued[0]} (daemon start {attempt + 1})", log)
        finally:
            os.killpg(daemon.pid, signal.SIGKILL)  # no clean shutdown: the next daemon starts from the database
            daemon.wait()

"""Production storage on a real PostgreSQL started by the test: the Dagster instance (runs,
events, the run queue) with deploy/dagster.prod.yaml, and the MLflow tracking and registry store."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.config import REPO_ROOT
from mlops_assets_tests.servers import postgres_bin, postgres_server

pytestmark = pytest.mark.postgres
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def postgres():
    # passwords checked over TCP as a production server checks them: Dagster's as the superuser,
    # MLflow's database owned by a role of its own
    with postgres_server(password=SECRETS[0], owners={"mlflow": ("mlflow", SECRETS[1])}) as server:
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


def test_the_instance_and_mlflow_live_on_postgres_and_no_secret_is_written_or_shown(
        postgres, small_landing_template, tmp_path):
    host, port, user = postgres
    landing, home = tmp_path / "landing", tmp_path / "home"
    shutil.copytree(small_landing_template, landing)
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.prod.yaml", home / "dagster" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_"))}
    # secrets as production has them (the server asks for them): none may show in any output, file,
    # database row or process argument (checked at the end)
    env.update(MLOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), MLOPS_LANDING_DIR=str(landing),
               DAGSTER_PG_USERNAME=user, DAGSTER_PG_PASSWORD=SECRETS[0], DAGSTER_PG_HOST=host,
               DAGSTER_PG_PORT=str(port), DAGSTER_PG_DB="dagster",
               MLFLOW_TRACKING_URI=f"postgresql+psycopg2://mlflow:{SECRETS[1]}@{host}:{port}/mlflow",
               MLOPS_ALERT_WEBHOOK=f"http://127.0.0.1:9/hooks/{SECRETS[2]}")  # refused: logged, retried later
    outputs = []

    # the whole pipeline for one region, training and the registry included
    run = subprocess.run([str(BIN / "mlops-assets"), "run", "--regions", "north"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    outputs.append(run.stdout + run.stderr)
    for command in (["status"], ["validate", str(landing)]):
        shown = subprocess.run([str(BIN / "mlops-assets"), *command], env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=300)
        outputs.append(shown.stdout + shown.stderr)
    assert f"mlflow:***@{host}:{port}/mlflow" in outputs[1]  # the store, named with its password masked

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

    # no secret anywhere: command output, every file of the home (storage, the dashboard page,
    # compute logs, MLflow's artifacts), both databases (test_distributed.py looks at the
    # arguments of the daemon, the code server and the runs' processes)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    dumps = [subprocess.run([str(postgres_bin() / "pg_dump"), "-h", host, "-p", str(port), "-U", user, name],
                            capture_output=True, text=True, check=True, env={**os.environ, "PGPASSWORD": SECRETS[0]}
                            ).stdout for name in ("dagster", "mlflow")]
    assert "alerting" in dumps[0] and "demand-forecast-north" in dumps[1]  # the dumps hold the runs and models
    for secret in SECRETS:
        assert not [i for i, text in enumerate(outputs) if secret in text], secret
        assert not [p for p in written if secret.encode() in p.read_bytes()], secret
        assert not [name for name, dump in zip(("dagster", "mlflow"), dumps) if secret in dump], secret


SECRETS = ("S3cret-dagster-pg-0815", "S3cret-mlflow-pw-4711", "S3cret-webhook-token-42")


def test_the_test_server_asks_for_the_password(postgres):
    """The server the tests start refuses a wrong password: a deployment that dropped its password
    on the way could not pass for one that kept it."""
    import psycopg2

    host, port, user = postgres
    for role, good in ((user, SECRETS[0]), ("mlflow", SECRETS[1])):
        psycopg2.connect(host=host, port=port, user=role, password=good, dbname="mlflow").close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host=host, port=port, user=role, password=good + "x", dbname="mlflow")


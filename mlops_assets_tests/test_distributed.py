"""Scale-out as production launches it: the run is the unit. Three regions' trainings, queued by a
multi-region backfill, taken from the queue by the real dagster-daemon and started each in a
process of its own by the code server (the Helm chart starts a Kubernetes pod per run the same
way), on the production instance (deploy/dagster.prod.yaml on a PostgreSQL the test starts, the
MLflow store there too). One run's process is SIGKILLed in the middle of its training step.

What must hold: the three runs are in flight at once; each region's model is fit on its own
region's rows and registered from its own run; every step event of a run is that run's; the
`training` pool never has more than its two steps running; the killed run is marked failed at
once, registers and promotes nothing, and its slot goes back to the pool."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from mlops_assets.config import REPO_ROOT
from mlops_assets.sample import SampleSpec, generate
from mlops_assets_tests.browsing import stop_group
from mlops_assets_tests.conftest import SEED
from mlops_assets_tests.servers import postgres_server, process_arguments, wait_alongside

pytestmark = [pytest.mark.distributed, pytest.mark.postgres, pytest.mark.daemon]
BIN = Path(sys.executable).parent
REGIONS = ("north", "south", "east")
# every segment trains (about 15,000 rows a region), in seconds on one thread
LANDING = dict(regions=REGIONS, stores_per_region=4, products=8, weeks=44, end_week="2026-11-09", seed=17 + SEED,
               realism=False)
POOL_LIMIT = 2  # deploy/dagster.prod.yaml: concurrency.pools.default_limit
# the two databases' passwords, as production passes them (the test's server asks for them): in
# no process argument, output, log or file
SECRETS = ("S3cret-dagster-pg-2718", "S3cret-mlflow-pw-3141")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The production instance on PostgreSQL, the regions' weeks conditioned (``mlops-assets run``
    without training, in a process of its own); yields the environment of its processes."""
    root = tmp_path_factory.mktemp("scaleout")
    landing, home = root / "landing", root / "home"
    generate(SampleSpec(out_dir=landing, **LANDING))
    (home / "dagster").mkdir(parents=True)
    prod = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.prod.yaml").read_text())
    assert prod["concurrency"]["pools"]["default_limit"] == POOL_LIMIT
    # the test's only change: run monitoring looks every 2 s instead of every minute and frees a
    # dead run's slots after 5 s instead of two minutes, so the test does not wait that long
    prod["run_monitoring"].update(poll_interval_seconds=2, free_slots_after_run_end_seconds=5)
    (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(prod))
    with postgres_server(password=SECRETS[0], owners={"mlflow": ("mlflow", SECRETS[1])}) as (host, port, user):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_"))}
        env.update(MLOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), MLOPS_LANDING_DIR=str(landing),
                   MLOPS_ENV="prod", MLOPS_AUTOMATION="off", MLOPS_TRAIN_THREADS="1", MLOPS_COVERAGE_TOL="0.5",
                   DAGSTER_PG_USERNAME=user, DAGSTER_PG_PASSWORD=SECRETS[0], DAGSTER_PG_HOST=host,
                   DAGSTER_PG_PORT=str(port), DAGSTER_PG_DB="dagster",
                   MLFLOW_TRACKING_URI=f"postgresql+psycopg2://mlflow:{SECRETS[1]}@{host}:{port}/mlflow")
        prepared = subprocess.run(
            [sys.executable, "-c", "from mlops_assets.app.pipeline import run_pipeline; run_pipeline(train=False)"],
            env=env, cwd=root, capture_output=True, text=True, timeout=600)
        assert prepared.returncode == 0, prepared.stderr[-3000:]
        yield env, root


def _instance(env: dict, monkeypatch) -> dg.DagsterInstance:
    for name, value in env.items():
        if name.startswith(("DAGSTER_PG_", "MLOPS_", "MLFLOW_")) or name == "DAGSTER_HOME":
            monkeypatch.setenv(name, value)
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def _events(instance, run_id, *types):
    return [r for r in instance.all_logs(run_id) if r.dagster_event and r.dagster_event.event_type in types]


def test_three_regions_train_at_once_within_the_pool_and_a_killed_run_fails_at_once_and_frees_its_slot(
        deployment, monkeypatch):
    env, root = deployment
    instance = _instance(env, monkeypatch)
    log = root / "daemon.log"
    launched = subprocess.run([str(BIN / "dagster"), "job", "backfill", "-w", str(REPO_ROOT / "workspace.yaml"),
                               "-j", "training", "--partitions", ",".join(REGIONS), "--noprompt"],
                              env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stdout[-2000:] + launched.stderr[-2000:]
    training = dg.RunsFilter(job_name="training")
    queued = instance.get_runs(filters=training)
    assert sorted(r.tags["dagster/partition"] for r in queued) == sorted(REGIONS)
    assert {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}  # nothing runs until a daemon takes them
    backfill = {r.tags["dagster/backfill"] for r in queued}
    assert len(backfill) == 1

    # the pool as it is after the first training of a deployment: the queue knows it (a pool first
    # created in the daemon's own tick is not yet held against the runs it dequeues)
    instance.event_log_storage.set_concurrency_slots("training", POOL_LIMIT)
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
                              env=env, cwd=root, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        # once the three runs are in flight, a training step still running is killed in the
        # middle (its model not yet written)
        killed = wait_alongside(lambda: _training_step_to_kill(instance, training), 300, "three runs in flight",
                                daemon, log, lambda: _state(instance), every=0.5)
        arguments = process_arguments()  # the daemon, its code server, three runs' processes
        os.kill(killed.dagster_event.pid, signal.SIGKILL)
        # then every run ends, and run monitoring gives the killed step's slot back to the pool
        wait_alongside(lambda: all(r.is_finished for r in instance.get_runs(filters=training))
                       and not instance.event_log_storage.get_concurrency_info("training").claimed_slots,
                       300, "the end of the runs and the killed step's slot freed", daemon, log,
                       lambda: _state(instance))
    finally:
        stop_group(daemon)

    runs = {r.run_id: r for r in instance.get_runs(filters=training)}
    assert len(runs) == len(REGIONS)
    assert any("dagster-daemon run" in a for a in arguments)  # the scan saw the deployment's processes
    written = [p for p in root.rglob("*") if p.is_file()]
    for secret in SECRETS:
        assert not [a for a in arguments if secret in a], secret
        assert secret not in launched.stdout + launched.stderr, secret
        assert not [p for p in written if secret.encode() in p.read_bytes()], secret
    dead = runs[killed.run_id]
    region_of = {run_id: r.tags["dagster/partition"] for run_id, r in runs.items()}
    assert dead.status == dg.DagsterRunStatus.FAILURE
    told = [e.message for e in _events(instance, dead.run_id, dg.DagsterEventType.ENGINE_EVENT)]
    # the code server that started the process saw it die, and marked the run failed at once
    assert any("terminated by signal 9" in m for m in told), told[-5:]
    # run_retries retries a crashed run, but not one of a backfill that is over: `dagster job
    # backfill` submits its runs and closes the backfill (a UI backfill or a sensor's run is retried)
    assert any("Not retrying run since it is part of a backfill" in m for m in told), told[-5:]

    # in flight at once: the three runs all started (two training, one waiting for a slot) before any ended
    first = list(runs)
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(run_ids=list(runs)))}
    assert max(records[i].start_time for i in first) < min(records[i].end_time for i in first), \
        {region_of[i]: (records[i].start_time, records[i].end_time) for i in first}

    # each run's steps ran in the run's own process, on its own region's partition
    spans, pids = [], {}
    for run_id in runs:
        starts = _events(instance, run_id, dg.DagsterEventType.STEP_START)
        assert [e.dagster_event.step_key for e in starts] == ["region_model"], run_id
        pids[run_id] = starts[0].dagster_event.pid
        ended = _events(instance, run_id, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
                        dg.DagsterEventType.RUN_FAILURE)
        spans.append((starts[0].timestamp, ended[0].timestamp))
        for event in _events(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION):
            assert event.dagster_event.partition == region_of[run_id], (run_id, event.dagster_event.partition)
    assert len(set(pids.values())) == len(runs) and pids[dead.run_id] == killed.dagster_event.pid
    # the training pool: never more than its limit of region_model steps at once
    moments = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = [sum(step for _, step in moments[:i + 1]) for i in range(len(moments))]
    assert max(running) == POOL_LIMIT, spans  # the pool was full, and never over
    assert not _events(instance, dead.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)
    # the killed step's slot went back to the pool (run monitoring), or its limit would shrink for good
    info = instance.event_log_storage.get_concurrency_info("training")
    assert info.slot_count == POOL_LIMIT and not info.claimed_slots and not info.pending_steps

    # every region's model: from a run of its own that finished, fit on its own rows, never from the killed run
    from mlops_assets.config import Settings
    from mlops_assets.registry.lineage import frame_digest
    from mlops_assets.releases import registry_for

    settings = Settings.from_env()
    registry = registry_for(settings)
    stores = pd.read_csv(settings.landing_dir / "stores.csv", dtype=str)
    for region in set(REGIONS) - {region_of[dead.run_id]}:
        [version] = registry.versions(region)
        run_id = version.tags["dagster_run_id"]
        assert region_of[run_id] == region and run_id != dead.run_id and runs[run_id].is_finished
        [materialized] = _events(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)
        meta = materialized.dagster_event.event_specific_data.materialization.metadata
        snapshot = pd.read_parquet(meta["training data"].value)
        assert meta["training data digest"].value == version.tags["training_data_digest"] == frame_digest(snapshot)
        assert set(snapshot["store_id"]) == set(stores.loc[stores["region"] == region, "store_id"])
        features = pd.concat([pd.read_parquet(p) for p in (settings.storage_root / "features" / region).glob(
            "*.parquet")])
        assert len(snapshot) == int(features["target"].notna().sum())
    # the killed run registered and promoted nothing: its region has no model yet
    assert registry.versions(region_of[dead.run_id]) == [] and registry.champion(region_of[dead.run_id]) is None


def _training_step_to_kill(instance, training):
    """Once every region's run has started: the STEP_START of the region_model step that started
    last among those still fitting (started training, nothing logged to MLflow yet); else None."""
    runs = instance.get_runs(filters=training)
    if len(runs) < len(REGIONS) or any(r.status in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING)
                                       for r in runs):
        return None
    fitting = []
    for run in runs:
        logs = instance.all_logs(run.run_id)
        starts = [r for r in logs if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.STEP_START]
        ended = [r for r in logs if r.dagster_event and r.dagster_event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)]
        said = " ".join(r.user_message for r in logs)
        if starts and not ended and ": training on " in said and "logged MLflow run" not in said:
            fitting.append(starts[0])
    return max(fitting, key=lambda e: e.timestamp) if fitting else None


def _state(instance) -> str:
    """The training runs and their last events, for a failure's message."""
    out = []
    for run in dg.DagsterInstance.get_runs(instance, filters=dg.RunsFilter(job_name="training")):
        events = [f"{r.dagster_event.event_type_value if r.dagster_event else 'log'}: {r.message[:160]}"
                  for r in instance.all_logs(run.run_id)[-4:]]
        out.append(f"{run.tags.get('dagster/partition')} {run.run_id[:8]} {run.status.value}: " + " | ".join(events))
    return "\n".join(out)

"""A region's run on a real Dask cluster (a scheduler and two worker processes the test starts on
127.0.0.1): MLOPS_EXECUTOR=dask sends each step to a worker, which rebuilds the definitions
from the same settings and writes to the same storage and instance."""

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.app.pipeline import run_pipeline
from mlops_assets.config import Settings
from mlops_assets_tests.browsing import free_port
from mlops_assets_tests.conftest import isolated_home

pytestmark = pytest.mark.distributed
BIN = Path(sys.executable).parent
FIRST, LAST = "2026-08-03", "2026-11-09"


@contextmanager
def dask_cluster(env: dict, log: Path, workers: int = 2):
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1; yields the scheduler's address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**env, "MLOPS_DASK_SCHEDULER": address}  # the workers build the same definitions as the run
    out = log.open("w")
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard", "--no-show"], env=env, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)]
    try:
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--host", "127.0.0.1",
                                       "--nworkers", str(workers), "--nthreads", "1", "--no-dashboard"],
                                      env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
            pids = set(client.run(os.getpid).values())  # each worker process, asked itself
        yield address, pids
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def home(small_landing_template, tmp_path_factory):
    with isolated_home(small_landing_template, tmp_path_factory, "distributed") as landing:
        run_pipeline(landing, train=False)  # the tables and the partitions the run builds upon
        yield Settings.from_env(), dg.DagsterInstance.get()


def test_a_region_run_executes_its_steps_on_the_dask_workers(home, tmp_path):
    settings, instance = home
    env = {**os.environ, "MLOPS_EXECUTOR": "dask"}
    with dask_cluster(env, tmp_path / "dask.log") as (address, worker_pids):
        env["MLOPS_DASK_SCHEDULER"] = address
        tags = {"dagster/asset_partition_range_start": f"north|{FIRST}",
                "dagster/asset_partition_range_end": f"north|{LAST}", "mlops/trigger": "distributed-test"}
        out = subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "mlops_assets.definitions", "-a", "defs",
                              "-j", "weekly", "--tags", json.dumps(tags)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [run] = instance.get_runs(filters=dg.RunsFilter(tags={"mlops/trigger": "distributed-test"}))
    assert run.status == dg.DagsterRunStatus.SUCCESS
    starts = [e.dagster_event for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)]
    steps = {e.step_key for e in starts}
    assert {"net_demand", "weekly_weather", "weekly_events", "features"} <= steps, steps
    # every step ran in a worker process of the cluster, none in the launching process
    assert {e.pid for e in starts} <= worker_pids, ({e.pid for e in starts}, worker_pids)
    weeks = pd.date_range(FIRST, LAST, freq="7D").strftime("%Y-%m-%d")
    materialized = instance.get_materialized_partitions(dg.AssetKey("features"))
    assert {f"north|{w}" for w in weeks} <= materialized
    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("features"), asset_partitions=[f"north|{LAST}"]), limit=1).records
    assert records[0].run_id == run.run_id
    assert len(pd.read_parquet(settings.storage_root / "features" / "north" / f"{LAST}.parquet")) > 0

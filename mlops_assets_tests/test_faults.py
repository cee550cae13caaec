"""Faults production brings: a run killed mid-write, two trainings of one region at once, a
failing blocking check, a home pointed at another landing folder, leftovers and retention.

Each test asserts what a user relies on afterwards: what is stored is whole and agrees with the
event log, the last good state stays in use, nothing of another dataset is read.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.app.execution import RunFailed
from mlops_assets.app.pipeline import run_pipeline
from mlops_assets.config import Settings
from mlops_assets.definitions import build_definitions
from mlops_assets.errors import ContractError
from mlops_assets.resources.storage import StorageResource
from mlops_assets_tests.conftest import isolated_home

pytestmark = pytest.mark.faults

WEEKS_FIRST, WEEKS_LAST = "2026-06-15", "2026-11-09"  # a range of the small sample's weeks


@pytest.fixture(scope="module")
def conditioned(small_landing_template, tmp_path_factory):
    """A home with north and south conditioned and featurized (no training: not the subject)."""
    with isolated_home(small_landing_template, tmp_path_factory, "faults") as landing:
        run_pipeline(landing, train=False)
        yield landing, Settings.from_env(), dg.DagsterInstance.get()


def _files(settings, asset, region):
    return {p.name: p.read_bytes() for p in sorted((settings.storage_root / asset / region).glob("*.parquet"))}


def test_a_run_killed_mid_write_leaves_whole_files_and_a_rerun_agrees_with_the_event_log(conditioned, tmp_path):
    """kill -9 of a conditioning range run in the middle of writing its partitions, then the rerun."""
    landing, settings, instance = conditioned
    before = _files(settings, "net_demand", "north")
    # the run kills itself (SIGKILL: no handler, no cleanup) after its 5th partition file's bytes
    # are written but before that file is moved into place
    script = textwrap.dedent(f"""
        import os, signal
        from mlops_assets.resources import storage
        original, calls = storage.pd.DataFrame.to_parquet, []
        def dying(frame, path, *a, **k):
            original(frame, path, *a, **k)
            if "net_demand" in str(path):
                calls.append(path)
            if len(calls) == 5:
                os.kill(os.getpid(), signal.SIGKILL)
        storage.pd.DataFrame.to_parquet = dying
        from mlops_assets import cli
        cli.main(["backfill", "north", "--assets", "net_demand", "--first", "{WEEKS_FIRST}", "--last", "{WEEKS_LAST}"])
    """)
    killed = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    folder = settings.storage_root / "net_demand" / "north"
    leftovers = list(folder.glob(".*.tmp"))
    assert len(leftovers) == 1  # the interrupted write, under a name no reader globs
    # every partition file a reader can find is whole (the rename is atomic), old or new
    for path in folder.glob("*.parquet"):
        assert len(pd.read_parquet(path)) > 0, path
    assert set(_files(settings, "net_demand", "north")) == set(before)
    [run] = instance.get_runs(filters=dg.RunsFilter(tags={"mlops/trigger": "backfill"}), limit=1)
    assert not run.is_success
    # the killed run recorded no materialization: the event log claims nothing it did not finish
    assert not list(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION))

    from mlops_assets import cli

    assert cli.main(["backfill", "north", "--assets", "net_demand", "--first", WEEKS_FIRST,
                     "--last", WEEKS_LAST]) == 0
    [rerun] = instance.get_runs(filters=dg.RunsFilter(tags={"mlops/trigger": "backfill"}), limit=1)
    assert rerun.is_success and rerun.run_id != run.run_id
    after = _files(settings, "net_demand", "north")
    assert after == before  # same data, same bytes: nothing lost, nothing doubled
    records = {r.asset_materialization.partition: r.run_id for r in instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("net_demand"), after_storage_id=None), limit=10_000).records
        if r.run_id == rerun.run_id}
    weeks = [w.replace(".parquet", "") for w in after if WEEKS_FIRST <= w.replace(".parquet", "") <= WEEKS_LAST]
    assert set(records) == {f"north|{w}" for w in weeks}
    # the leftover goes with the retention pass, once it is older than a write could take
    removed = StorageResource(root=str(settings.storage_root)).housekeeping(now=time.time() + 7200)
    assert removed["interrupted writes"] == [str(leftovers[0].relative_to(settings.storage_root))]
    assert not list(folder.glob(".*.tmp"))


def test_a_failing_blocking_check_leaves_the_last_good_partition_in_use(conditioned, monkeypatch):
    _, settings, instance = conditioned
    from mlops_assets.contract import conditioning

    week = WEEKS_LAST
    path = settings.storage_root / "net_demand" / "south" / f"{week}.parquet"
    good = path.read_bytes()
    real = conditioning.net_demand

    def broken(*args, **kwargs):  # a conditioning bug: negative demand, which the schema forbids
        frame = real(*args, **kwargs)
        frame["net_demand"] = -1
        return frame

    monkeypatch.setattr(conditioning, "net_demand", broken)
    result = build_definitions(settings).resolve_job_def("weekly").execute_in_process(
        instance=instance, partition_key=f"south|{week}", asset_selection=[dg.AssetKey("net_demand")],
        raise_on_error=False)
    assert not result.success
    [check] = [e.asset_check_evaluation_data for e in result.all_events
               if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    assert check.check_name == "schema" and not check.passed  # visible on the Checks tab, with its cases
    assert path.read_bytes() == good  # not overwritten by the failing frame
    assert not result.asset_materializations_for_node("net_demand")


def test_another_landing_folder_is_refused_and_never_mixed_into_the_stored_partitions(conditioned, tmp_path,
                                                                                       monkeypatch):
    landing, settings, instance = conditioned
    other = tmp_path / "other_landing"
    shutil.copytree(landing, other)
    (other / "shipments" / "2026-11-09.csv").unlink()  # another dataset: one week less
    stored = _files(settings, "features", "north")
    monkeypatch.setenv("MLOPS_LANDING_DIR", str(other))
    with pytest.raises(RunFailed, match="holds tables and partitions built from the landing folder"):
        run_pipeline(other, train=False)
    # the daemon's way in, the tables job, refuses too, and publishes nothing
    moved = Settings.from_env()
    result = build_definitions(moved).resolve_job_def("tables").execute_in_process(
        instance=instance, raise_on_error=False)
    assert not result.success
    errors = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert errors and all("MLOPS_LANDING_DIR is now" in e for e in errors), errors
    assert _files(settings, "features", "north") == stored
    # a home of its own for the other folder takes it
    own = StorageResource(root=str(tmp_path / "other_home" / "storage"))
    own.claim_landing(other)
    with pytest.raises(ContractError):
        own.claim_landing(landing)


def test_two_trainings_of_one_region_cannot_both_promote(tmp_path):
    """The champion decision (read, compare, promote) is one step per region: two processes
    deciding at once for north each see the other's outcome, never the same champion."""
    from mlflow import MlflowClient

    from mlops_assets.registry.tracking import GATE_VERDICT, registered_name

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    name = registered_name("north")
    client.create_registered_model(name)
    for _ in range(2):
        version = client.create_model_version(name, source=str(tmp_path), run_id=None)
        client.set_model_version_tag(name, version.version, GATE_VERDICT, "passed")
    script = textwrap.dedent("""
        import json, sys, time
        from mlops_assets.registry.tracking import Registry
        registry = Registry(sys.argv[1], sys.argv[2])
        with registry.champion_decision("north"):
            seen = registry.champion("north")
            time.sleep(2)  # a gate comparison takes a while
            promoted = seen is None  # this test's rule: the first candidate serves
            if promoted:
                registry.promote("north", sys.argv[3], by="gate", reason="first candidate")
        print(json.dumps({"seen": seen.version if seen else None, "promoted": promoted}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, uri, str(tmp_path / "artifacts"), v],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for v in ("1", "2")]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(o["promoted"] for o in outcomes) == [False, True], outcomes
    winner = next(o for o in outcomes if o["promoted"])
    loser = next(o for o in outcomes if not o["promoted"])
    assert winner["seen"] is None and loser["seen"] is not None  # the second saw the first's promotion
    assert str(client.get_model_version_by_alias(name, "champion").version) == loser["seen"]


def test_retention_removes_old_holdouts_quarantine_and_model_folders_but_never_the_current(tmp_path):
    storage = StorageResource(root=str(tmp_path), retention_days=30, keep_models=2)
    now = time.time()
    day = 86400

    def touch(relative: str, age_days: float, folder: bool = False) -> Path:
        path = tmp_path / relative
        if folder:
            path.mkdir(parents=True)
            (path / "model.json").write_text("{}")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        os.utime(path, (now - age_days * day, now - age_days * day))
        return path

    touch("holdout_forecasts/north/old.parquet", 40)
    touch("holdout_forecasts/north/champion-run.parquet", 400)  # the serving champion's: the dashboard reads it
    touch("holdout_forecasts/north/new.parquet", 5)
    touch("quarantine/shipments/old.parquet", 31)
    touch("quarantine/shipments/new.parquet", 1)
    touch("net_demand/north/.2026-11-09.parquet.abc.tmp", 1)  # left by a killed write a day ago
    fresh_tmp = touch("net_demand/north/.2026-11-16.parquet.def.tmp", 0)  # a write in progress
    for i, age in enumerate([50, 40, 30, 3, 2]):
        touch(f"region_model/north/run{i}", age, folder=True)
    (tmp_path / "region_model/north/current.json").write_text(json.dumps({"version": "run0"}))

    removed = storage.housekeeping(now=now, keep_runs={"champion-run"})

    assert removed == {
        "interrupted writes": ["net_demand/north/.2026-11-09.parquet.abc.tmp"],
        "holdout forecasts": ["holdout_forecasts/north/old.parquet"],
        "quarantine": ["quarantine/shipments/old.parquet"],
        "model folders": ["region_model/north/run1", "region_model/north/run2"],
    }
    assert fresh_tmp.exists() and (tmp_path / "holdout_forecasts/north/champion-run.parquet").exists()
    kept = sorted(p.name for p in (tmp_path / "region_model/north").iterdir() if p.is_dir())
    assert kept == ["run0", "run3", "run4"]  # the newest two, and the current one however old

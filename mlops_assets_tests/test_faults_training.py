"""kill -9 of a scoring run and of a training run in the middle of their writes, then the rerun.

On a home where north is trained and its champion serves (a module of its own: its settings must
not mix with test_faults.py's home). Each run is `dagster asset materialize`, as an operator
would start it, in a process that SIGKILLs itself at the chosen write: no handler, no cleanup.
"""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.app.pipeline import run_pipeline
from mlops_assets.config import Settings
from mlops_assets.releases import registry_for
from mlops_assets.resources.storage import StorageResource, load_model
from mlops_assets_tests.conftest import isolated_home

pytestmark = pytest.mark.faults

SCORED = "north|2026-11-16"  # the week after the last delivery: what the run forecast
MATERIALIZE = ('import sys\nsys.argv = ["dagster", "asset", "materialize", "-m", "mlops_assets.definitions", '
               '"--select", "{asset}", "--partition", "{partition}"]\n'
               'from dagster._cli import main\nmain()\n')


@pytest.fixture(scope="module")
def trained(trainable_landing_template, tmp_path_factory):
    with isolated_home(trainable_landing_template, tmp_path_factory, "faults-trained") as landing:
        run_pipeline(landing, regions=["north"])
        yield Settings.from_env(), dg.DagsterInstance.get()


def _materialize(asset: str, partition: str, dying: str = "") -> subprocess.CompletedProcess:
    script = textwrap.dedent(dying) + MATERIALIZE.format(asset=asset, partition=partition)
    return subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), capture_output=True, text=True,
                          timeout=600)


def _latest_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    return instance.get_runs(limit=1)[0]


def _materialized(instance: dg.DagsterInstance, run_id: str) -> list:
    return list(instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION))


def test_a_scoring_run_killed_mid_write_keeps_the_last_scores_and_the_rerun_writes_them_whole(trained):
    settings, instance = trained
    scores = settings.storage_root / "scores" / "north" / "2026-11-16.parquet"
    before = scores.read_bytes()
    killed = _materialize("scores", SCORED, """
        import os, signal
        import pandas as pd
        original = pd.DataFrame.to_parquet
        def dying(frame, target, *a, **k):
            original(frame, target, *a, **k)  # the bytes are written, the file not yet renamed into place
            if "scores" in str(target):
                os.kill(os.getpid(), signal.SIGKILL)
        pd.DataFrame.to_parquet = dying
    """)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run = _latest_run(instance)
    assert not run.is_success and not _materialized(instance, run.run_id)
    assert scores.read_bytes() == before  # readers still find the last whole scores
    assert len(list(scores.parent.glob(".*.tmp"))) == 1  # the interrupted write, under a name no reader globs

    rerun = _materialize("scores", SCORED)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    run = _latest_run(instance)
    assert run.is_success
    assert [e.asset_materialization.partition for e in _materialized(instance, run.run_id)] == [SCORED]
    # the same champion forecasts the same rows: the rerun's file is whole and agrees
    pd.testing.assert_frame_equal(pd.read_parquet(scores), pd.read_parquet(io.BytesIO(before)))


def test_a_training_run_killed_mid_write_promotes_nothing_and_the_rerun_does(trained):
    """The model's folder is written before the champion decision: killed inside it, the run has
    promoted nothing, moved no pointer and recorded no materialization; its half folder is never
    loaded (no model.json). The rerun trains, passes its gates and serves."""
    settings, instance = trained
    registry = registry_for(settings)
    champion = registry.champion("north").version
    folder = settings.storage_root / "region_model" / "north"
    pointer = (folder / "current.json").read_text()
    killed = _materialize("region_model", "north", """
        import os, signal
        from mlops_assets.ml import embedding_net
        original = embedding_net.save
        def dying(net, path, *a, **k):
            original(net, path, *a, **k)
            if "region_model" in str(path):  # the storage's folder, not MLflow's temporary copy
                os.kill(os.getpid(), signal.SIGKILL)
        embedding_net.save = dying
    """)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run = _latest_run(instance)
    assert not run.is_success and not _materialized(instance, run.run_id)
    assert registry.champion("north").version == champion  # nothing promoted
    assert (folder / "current.json").read_text() == pointer
    half = folder / run.run_id
    assert (half / "network.npz").exists() and not (half / "model.json").exists()
    assert load_model(folder).version == json.loads(pointer)["version"]  # what downstream reads: whole

    rerun = _materialize("region_model", "north")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    run = _latest_run(instance)
    assert run.is_success and len(_materialized(instance, run.run_id)) == 1
    assert json.loads((folder / "current.json").read_text())["version"] == run.run_id
    assert registry.champion("north").tags.get("dagster_run_id") == run.run_id
    # the half folder is left to retention, like any old model folder; the current one stays
    removed = StorageResource(root=str(settings.storage_root), keep_models=1).housekeeping()
    assert f"region_model/north/{half.name}" in removed["model folders"]
    assert (folder / run.run_id / "model.json").exists()

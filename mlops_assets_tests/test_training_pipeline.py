"""Training and scoring through the Dagster graph, on a landing folder where every segment trains."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.config import Settings
from mlops_assets.location import repository_label
from mlops_assets.ml.ensemble import SEGMENTS, TrainConfig, train_region
from mlops_assets.offline import region_features
from mlops_assets.runner import report_json, run_new_weeks, run_pipeline
from mlops_assets_tests.conftest import isolated_home


@pytest.fixture(scope="module")
def trained(trainable_landing_template, tmp_path_factory):
    with isolated_home(trainable_landing_template, tmp_path_factory, "trained") as landing:
        # the two regions side by side in worker processes (one torch thread each), as at seed scale
        summary = run_pipeline(landing, workers=2)
        yield summary, Settings.from_env(), dg.DagsterInstance.get()


def _stored(settings, asset, region):
    files = sorted((settings.storage_root / asset / region).glob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_the_graph_builds_the_same_features_as_the_functions(trained):
    _, settings, _ = trained
    direct = region_features(settings.landing_dir, "north", extra_weeks=1)
    pd.testing.assert_frame_equal(_stored(settings, "features", "north"), direct)


def test_the_graph_trains_the_same_model_as_the_functions(trained):
    """Partition order, Parquet round trips, IO managers, a worker process and its single thread
    change nothing: same metrics, bit for bit, as training here with two threads."""
    summary, settings, _ = trained
    direct, _ = train_region(region_features(settings.landing_dir, "south", extra_weeks=1), "south",
                             TrainConfig())
    assert json.dumps(summary.models["south"]["evaluation"], sort_keys=True) == \
        json.dumps(direct.evaluation, sort_keys=True)


def test_run_reports_every_segment_of_every_region(trained):
    summary, _, _ = trained
    report = report_json(summary)
    assert set(report["regions"]) == {"north", "south"}
    for region in report["regions"].values():
        assert set(region["segments"]) == set(SEGMENTS)
        for segment in region["segments"].values():
            assert set(segment) == {"ensemble", "lasso", "nn", "baseline", "mape_reduction_vs_baseline"}
            assert set(segment["ensemble"]) == {"mape", "wape", "rmse0", "rmse", "bias"}
            assert 0 < segment["ensemble"]["mape"] < 1
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN tokens


def test_model_materialization_carries_plottable_metrics(trained):
    _, settings, instance = trained
    event = instance.get_latest_materialization_event(dg.AssetKey("region_model"))
    meta = event.asset_materialization.metadata
    assert event.asset_materialization.partition in {"north", "south"}
    # the key figures first, plottable; every segment and member in one table, not 70 charts
    assert list(meta)[:6] == ["ensemble MAPE", "baseline MAPE", "MAPE reduction vs baseline", "gate verdict",
                              "champion version", "registered version"]
    assert isinstance(meta["ensemble MAPE"], dg.FloatMetadataValue)
    assert meta["MAPE reduction vs baseline"].value == pytest.approx(
        1 - meta["ensemble MAPE"].value / meta["baseline MAPE"].value)
    numeric = [k for k, v in meta.items() if isinstance(v, (dg.FloatMetadataValue, dg.IntMetadataValue))]
    assert len(numeric) <= 6, numeric
    table = meta["metrics by segment"].value
    for segment in SEGMENTS:
        for member in ("ensemble", "lasso", "nn", "baseline"):
            assert f"| {segment} | {member} |" in table
    assert "| **region** | ensemble |" in table and "RMSE (actual = 0)" in table
    assert set(meta["hyperparameters"].value["segments"]) == set(SEGMENTS)
    assert meta["gate verdict"].value == "passed" and meta["promoted"].value is True
    gates = {"data_validation", "training_validation", "scoring_validation", "performance"}
    for region in ("north", "south"):
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="training", tags={"dagster/partition": region}))
        evaluations = [e.dagster_event.event_specific_data for e in
                       instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
        assert {e.check_name for e in evaluations} == gates
        # progress as it happened, per stage and member, in the run's log (the fitting threads' too)
        lines = [e.user_message for e in instance.all_logs(run.run_id) if e.user_message.startswith(f"{region} [")]
        assert sum("deployed fit (up to the as-of week): large/fast LASSO" in line for line in lines) == 1
        assert sum("choose (training weeks only): network early-stopped" in line for line in lines) == 1
        for evaluation in evaluations:
            assert evaluation.passed, evaluation.check_name
            # each result names its region: the check's history tells north from south
            assert evaluation.partition == region and evaluation.description.startswith(f"{region}: ")


def test_the_runs_belong_to_their_jobs_in_the_code_location(trained):
    """The UI's job pages, Overview timeline and sparklines select runs by code location: the
    CLI's runs (in worker processes too) carry the same origin as runs launched from the UI."""
    summary, _, instance = trained
    runs = instance.get_runs(filters=dg.RunsFilter(run_ids=summary.run_ids))
    assert len(runs) == len(summary.run_ids) > 8
    for run in runs:
        assert run.remote_job_origin.repository_origin.get_label() == repository_label() == "__repository__@mlops_assets"
        assert run.remote_job_origin.job_name == run.job_name
        assert run.remote_job_origin.location_name == "mlops_assets"
    # the filter the job's Runs tab uses
    by_job = instance.get_runs(filters=dg.RunsFilter(job_name="training", tags={".dagster/repository": repository_label()}))
    assert {r.tags["dagster/partition"] for r in by_job} >= {"north", "south"}


def test_the_dashboard_shows_every_region_with_its_lineage_and_plottable_key_figures(trained):
    """The monitoring_dashboard asset (refreshed by the alerting run at the end of mlops-assets
    run): three views, each region's figures linked to its model version, MLflow run and the
    Dagster run that trained it; one static page that fetches nothing."""
    summary, settings, instance = trained
    page = (settings.storage_root / "dashboard" / "index.html").read_text()
    for section in ('id="business"', 'id="data-science"', 'id="support"'):
        assert section in page
    assert "<script" not in page and 'src="http' not in page and "@import" not in page
    for region in ("north", "south"):
        model = summary.models[region]
        version = model["model_version"].rsplit("/", 1)[1]
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="training", tags={"dagster/partition": region}))
        assert f"/#/models/demand-forecast-{region}/versions/{version}" in page
        assert f"/runs/{model['mlflow_run_id']}" in page and f"/runs/{run.run_id}" in page
        assert f"{region}: forecast vs actual units per week" in page and f"{region}: MAPE per week" in page
        assert f"{region}: drift by column and week" in page
        for segment in SEGMENTS:
            assert f"{segment}: LASSO coefficients" in page and f"{segment}: permutation attribution" in page
    event = instance.get_latest_materialization_event(dg.AssetKey("monitoring_dashboard"))
    meta = event.asset_materialization.metadata
    assert meta["regions"].value == 2 and isinstance(meta["mean ensemble MAPE"], dg.FloatMetadataValue)
    mapes = [summary.models[r]["evaluation"]["region"]["ensemble"]["mape"] for r in ("north", "south")]
    assert meta["mean ensemble MAPE"].value == pytest.approx(np.mean(mapes))
    assert meta["served at"].value == "http://127.0.0.1:8765/"


def test_next_week_is_scored_by_the_champion(trained):
    summary, settings, instance = trained
    week = summary.models["north"]["scored_week"]
    assert week == "2026-11-16"  # the week after the last delivery
    scores = pd.read_parquet(settings.storage_root / "scores" / "north" / f"{week}.parquet")
    features = pd.read_parquet(settings.storage_root / "features" / "north" / f"{week}.parquet")
    assert len(scores) == len(features) > 0
    assert summary.models["north"]["champion_version"] == "1"
    assert set(scores["model_version"]) == {"demand-forecast-north/1"} == {summary.models["north"]["model_version"]}
    assert set(scores["mlflow_run_id"]) == {summary.models["north"]["mlflow_run_id"]}
    assert set(scores["model_age_days"]) == {7}  # trained up to 2026-11-09
    assert (scores["model"] == "ensemble").all()
    assert np.isfinite(scores["forecast"]).all() and (scores["forecast"] >= 0).all()
    mat = instance.get_latest_materialization_event(dg.AssetKey("scores")).asset_materialization
    assert mat.metadata["rows"].value == len(scores) or mat.partition.startswith("south")


def test_a_new_week_is_validated_conditioned_monitored_and_the_week_after_forecast(trained):
    """`mlops-assets run --new-weeks`: the runs the sensors make when a week lands, and nothing
    more. Last in this module: it delivers a week."""
    _, settings, instance = trained
    new_week, upcoming = "2026-11-16", "2026-11-23"
    last = settings.landing_dir / "shipments" / "2026-11-09.csv"
    (settings.landing_dir / "shipments" / f"{new_week}.csv").write_text(last.read_text().replace("2026-11-09", new_week))
    before = {r.run_id for r in instance.get_runs()}

    result = run_new_weeks(workers=1)

    assert (result.first_week, result.last_week) == (new_week, new_week)
    runs = [r for r in instance.get_runs() if r.run_id not in before]
    assert sorted(r.job_name for r in runs) == ["alerting", "observe_landing", "scoring", "scoring", "tables",
                                                "weekly", "weekly"]
    assert all(r.status == dg.DagsterRunStatus.SUCCESS and r.tags["mlops/trigger"] == "new_data" for r in runs)
    for region in ("north", "south"):
        features = pd.read_parquet(settings.storage_root / "features" / region / f"{new_week}.parquet")
        assert features["target"].notna().all()  # the week is observed now
        scores = pd.read_parquet(settings.storage_root / "scores" / region / f"{upcoming}.parquet")
        assert set(scores["model_version"]) == {f"demand-forecast-{region}/1"}
        # the week the full run forecast is evaluated now that its actuals are in
        accuracy = pd.read_parquet(settings.storage_root / "forecast_accuracy" / region / f"{new_week}.parquet")
        assert len(accuracy) > 0
        assert (settings.storage_root / "drift_metrics" / region / f"{upcoming}.parquet").exists()
    # only the new week was rebuilt
    starts = {r.tags["dagster/asset_partition_range_start"] for r in runs if r.job_name == "weekly"}
    assert starts == {f"north|{new_week}", f"south|{new_week}"}

    again = run_new_weeks(workers=1)
    assert again.first_week > again.last_week  # nothing new: validated, and nothing else run

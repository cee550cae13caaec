"""Training and scoring through the Dagster graph, on a landing folder where every segment trains."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.app.pipeline import run_new_weeks, run_pipeline
from mlops_assets.app.report import report_json
from mlops_assets.code_location import repository_label
from mlops_assets.config import REPO_ROOT, Settings
from mlops_assets.definitions import build_definitions
from mlops_assets.ml.ensemble import SEGMENTS
from mlops_assets.offline import region_features
from mlops_assets_tests.browsing import (
    ARTIFACTS,
    BIN,
    LAUNCH_BACKFILL,
    finished_backfill,
    free_port,
    graphql,
    open_page,
    serving,
)
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


def test_the_graph_trains_on_the_frame_the_functions_build(trained):
    """Partition order, Parquet round trips, IO managers and a worker process change nothing of
    what a model is trained on: the snapshot the run recorded is, digest for digest, the frame the
    functions build, and everything of the evaluation that no fit decides (rows, weeks, the naive
    forecasts' metrics) is the same. (The fitted members' floats are not compared: a worker with
    one torch thread and this process with two may round differently, on another machine too.)"""
    from mlops_assets.ml.featurize import KEY
    from mlops_assets.registry.lineage import frame_digest
    from mlops_assets.releases import registry_for

    summary, settings, _ = trained
    features = region_features(settings.landing_dir, "south", extra_weeks=1)
    evaluation = summary.models["south"]["evaluation"]
    observed = features[features["target"].notna()].sort_values(KEY, kind="stable").reset_index(drop=True)
    release = registry_for(settings).release("south", summary.models["south"]["model_version"].rsplit("/", 1)[1])
    assert release.tags["training_data_digest"] == frame_digest(observed)
    direct = _naive_evaluation(features, evaluation["holdout"]["first_week"])
    for name, report in evaluation["segments"].items():
        assert report["rows"]["holdout"] == direct[name]["rows"], name
        for member in ("baseline", "last_value"):
            assert report[member] == pytest.approx(direct[name][member], nan_ok=True), (name, member)


def _naive_evaluation(features, first_week):
    """The naive forecasts' metrics per segment on the holdout rows, as train_region computes them."""
    from mlops_assets.ml import metrics
    from mlops_assets.ml.ensemble import baseline_forecast, last_value_forecast
    from mlops_assets.ml.featurize import at_forecast_time

    holdout = at_forecast_time(features[features["target"].notna()
                                        & (features["week_start"] >= pd.Timestamp(first_week))])
    holdout = holdout.assign(_base=baseline_forecast(holdout), _last=last_value_forecast(holdout))
    out = {}
    for name, part in holdout.groupby("segment"):
        actual = part["target"].to_numpy(dtype=float)
        out[name] = {"rows": len(part), "baseline": metrics.summary(actual, part["_base"]),
                     "last_value": metrics.summary(actual, part["_last"])}
    return out


def test_run_reports_every_segment_of_every_region(trained):
    summary, _, _ = trained
    report = report_json(summary)
    assert set(report["regions"]) == {"north", "south"}
    for region in report["regions"].values():
        assert set(region["segments"]) == set(SEGMENTS)
        for segment in region["segments"].values():
            assert set(segment) == {"ensemble", "lasso", "nn", "baseline", "mape_reduction_vs_baseline", "quantiles"}
            assert set(segment["ensemble"]) == {"mape", "wape", "rmse0", "rmse", "bias", "bias_ratio"}
            assert 0 < segment["ensemble"]["mape"] < 1
            band = segment["quantiles"]  # the share of actuals below each quantile, and its pinball loss
            assert set(band) == {f"{kind}_{name}" for kind in ("below", "pinball") for name in ("p10", "p50", "p90")}
            assert 0 <= band["below_p10"] <= band["below_p50"] <= band["below_p90"] <= 1
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
    summary, settings, instance = trained
    runs = instance.get_runs(filters=dg.RunsFilter(run_ids=summary.run_ids))
    assert len(runs) == len(summary.run_ids) > 8
    for run in runs:
        label = run.remote_job_origin.repository_origin.get_label()
        assert label == repository_label() == "__repository__@mlops_assets"
        assert run.remote_job_origin.job_name == run.job_name
        assert run.remote_job_origin.location_name == "mlops_assets"
    # the filter the job's Runs tab uses
    by_job = instance.get_runs(filters=dg.RunsFilter(job_name="training",
                                                     tags={".dagster/repository": repository_label()}))
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
        assert f"{region}: level and bias signals (z / limit)" in page
        assert f"{region}: every signal by week (share of its limit)" in page
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
    # the scoring run's checks name their region and week
    [run] = instance.get_runs(filters=dg.RunsFilter(job_name="scoring", tags={"dagster/partition": f"north|{week}"}))
    checks = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data for e in
              instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)}
    assert {"champion_serves", "model_not_stale", "feature_drift", "prediction_drift"} <= set(checks)
    assert {c.partition for c in checks.values()} == {f"north|{week}"}


@pytest.mark.browser
def test_the_dagster_ui_shows_lineage_runs_under_their_job_checks_per_region_and_backfills(trained, browser, tmp_path):
    """In chromium, over this module's home: the issues a person met in the UI, each checked."""
    summary, settings, instance = trained
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # the webserver and the daemon, as `mlops-assets ui` starts them (the daemon runs UI backfills)
    cmd = [str(BIN / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    errors = []
    with serving(cmd, f"{base}/server_info", tmp_path / "dagster_dev.log"):
        # a backfill of all of north's weeks of net_demand, launched as the UI's dialog launches it
        # (the week after the last delivery and the week in progress have no shipments)
        keys = build_definitions(Settings.from_env()).resolve_assets_def("net_demand").partitions_def \
            .get_partition_keys(dynamic_partitions_store=instance)
        north = [k for k in keys if k.startswith("north|")]
        launched = graphql(base, LAUNCH_BACKFILL, {"p": {"partitionNames": north,
                                                         "assetSelection": [{"path": ["net_demand"]}]}})
        backfill_id = launched["launchPartitionBackfill"]["backfillId"]

        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # the asset graph: region_model between its features and the scores it serves
        open_page(page, f"{base}/assets/region_model?view=lineage", "region_model", "lineage_region_model")
        for node in ("features", "scores", "region_model"):  # the model, what it reads, what it serves
            assert page.get_by_text(node, exact=True).count() >= 1, node

        # the whole graph, every group expanded: each raw file beside the table validated from it
        open_page(page, f"{base}/asset-groups", "landing", "lineage_groups")
        page.mouse.click(1200, 300)
        page.keyboard.press("Alt+e")  # the graph's "Expand all groups"
        page.get_by_text("raw_shipments", exact=True).first.wait_for(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "lineage_expanded.png"))
        for node in ("raw_shipments", "shipments", "net_demand", "features", "region_model", "scores", "alerts"):
            assert page.get_by_text(node, exact=True).count() >= 1, node

        # scores count the weeks that could be scored, not every week of data (issue: "0% filled")
        scored = build_definitions(Settings.from_env()).resolve_assets_def("scores").partitions_def \
            .get_partition_keys(dynamic_partitions_store=instance)
        assert len(scored) < len(keys) / 10
        text = open_page(page, f"{base}/assets/scores?view=partitions", "Materialized", "scores_partitions")
        assert f"{len(scored)} Partitions Selected" in text and "Materialized (2)" in text, text[:1500]

        # the runs `mlops-assets run` launched are the training job's (issue: "No runs found")
        trained = instance.get_runs(filters=dg.RunsFilter(job_name="training"))
        assert len(trained) == 2
        text = open_page(page, f"{base}/locations/mlops_assets/jobs/training/runs", trained[0].run_id[:8],
                     "training_job_runs")
        assert "No runs found" not in text
        for run in trained:
            assert run.run_id[:8] in text

        # a gate check's history names the region of each evaluation
        text = open_page(page, f"{base}/assets/region_model?view=checks&checkDetail=performance", "performance",
                     "check_performance")
        history = page.get_by_text("Execution history", exact=True)
        history.first.click()
        page.get_by_text("north", exact=True).first.wait_for(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "check_performance_history.png"), full_page=True)
        text = page.inner_text("body")
        assert "north" in text and "south" in text

        # one week's partition of a range run shows its own figures, not the range's
        week = summary.last_week
        text = open_page(page, f"{base}/assets/net_demand?view=partitions&partition=north%7C{week}", "status",
                     "net_demand_partition")
        cells = {}
        for row in page.locator("tr").all():
            parts = [c.inner_text().strip() for c in row.locator("td").all()]
            if len(parts) >= 2:
                cells[parts[0]] = parts[1]
        assert (cells["region"], cells["week"], cells["status"]) == ("north", week, "built"), cells
        rows = len(pd.read_parquet(settings.storage_root / "net_demand" / "north" / f"{week}.parquet"))
        assert cells["rows"] == str(rows) and cells["run covered"].startswith("north ")

        # the backfill launched first, checked last: the daemon takes it up within 30 s
        state = finished_backfill(base, instance, backfill_id)
        assert state["numPartitions"] == len(north)
        [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert run.status == dg.DagsterRunStatus.SUCCESS  # one run for all 106 weeks, none failed
        text = open_page(page, f"{base}/runs/b/{backfill_id}?tab=partitions", f"{len(north)} partitions",
                     "backfill_all_weeks_north")
        for key in north:
            [record] = instance.fetch_materializations(dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("net_demand"), asset_partitions=[key]), limit=1).records
            assert record.run_id == run.run_id
            status = record.asset_materialization.metadata["status"].value
            if key.split("|")[1] > summary.last_week:  # no shipments yet
                assert status.startswith("skipped: no shipments have landed for this week yet"), key
            else:
                assert status == "built", key
    assert not errors, errors


@pytest.mark.browser
def test_the_dashboard_renders_its_three_views_without_errors(trained, browser, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with serving([str(BIN / "mlops-assets"), "dashboard", "--port", str(port)], url, tmp_path / "dashboard.log"):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        console, failed = [], []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: console.append(str(exc)))
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(url)
        page.wait_for_load_state("networkidle")
        for view in ("business", "data-science", "support"):
            section = page.locator(f"section#{view}")
            assert section.is_visible()
            assert section.locator("svg, table").count() >= 2, view
            section.screenshot(path=str(ARTIFACTS / f"dashboard_{view}.png"))
        # per region: two business charts, a drift map, a versions chart, two charts per segment
        assert page.locator("svg").count() >= 2 * (4 + 2 * 4)
        # lineage links on the figures: model versions (MLflow) and Dagster runs
        assert page.locator("a[href*='/#/models/demand-forecast-north/versions/']").count() >= 1
        assert page.locator("a[href*='/runs/']").count() >= 5
    assert not console and not failed, (console, failed)


def test_a_new_week_is_validated_conditioned_monitored_and_the_week_after_forecast(trained):
    """`mlops-assets run --new-weeks`: the runs the sensors make when a week lands, and nothing
    more. Last in this module: it delivers a week."""
    _, settings, instance = trained
    new_week, upcoming = "2026-11-16", "2026-11-23"
    last = settings.landing_dir / "shipments" / "2026-11-09.csv"
    (settings.landing_dir / "shipments" / f"{new_week}.csv").write_text(
        last.read_text().replace("2026-11-09", new_week))
    before = {r.run_id for r in instance.get_runs()}

    result = run_new_weeks(workers=1)

    assert (result.first_week, result.last_week) == (new_week, new_week)
    runs = [r for r in instance.get_runs() if r.run_id not in before]
    # per region: the new week conditioned, the coming week's inputs, its forecast, the new week
    # monitored; then the regions' new week compared, once, with both in
    assert sorted(r.job_name for r in runs) == ["alerting", "comparison", "monitoring", "monitoring",
                                                "observe_landing", "scoring", "scoring", "tables", "weekly", "weekly",
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
        # and compared with the other region's: each against its champion's reference year
        compared = pd.read_parquet(settings.storage_root / "regional_comparison" / region / f"{new_week}.parquet")
        assert set(compared["signal"]) == {"regional"} and set(compared["window"]) == {1, 2, 4}
        assert set(compared["model_version"]) == {f"demand-forecast-{region}/1"}
        # and names the other region's model, whose reference judged the week it was compared with
        other = {"north": "south", "south": "north"}[region]
        assert [json.loads(v) for v in set(compared["peer_versions"])] == [{other: f"demand-forecast-{other}/1"}]
        assert set(compared["peers"]) == {other} and compared["coefficient"].between(0, 1).all()
    [run] = [r for r in runs if r.job_name == "comparison"]
    [record] = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("regional_comparison"), asset_partitions=[new_week]), limit=1).records
    meta = record.asset_materialization.metadata
    assert meta["regions compared"].value == 2 and meta["pending"].value == "none"
    assert meta["models"].value == "north demand-forecast-north/1, south demand-forecast-south/1"
    flagged = {r for r in ("north", "south") if abs(meta[f"{r} z"].value) >= meta[f"{r} limit"].value}
    assert meta["verdict"].value == ("no region beyond its limit" if not flagged else
                                     "flagged: " + "; ".join(f"{r}: " + meta[f"{r} status"].value.removeprefix(
                                         "flagged: ") for r in sorted(flagged)))
    # only the new week was rebuilt
    starts = {(r.job_name, r.tags.get("dagster/asset_partition_range_start") or r.tags["dagster/partition"])
              for r in runs if r.job_name in ("weekly", "monitoring")}
    assert starts == {(job, f"{region}|{week}") for region in ("north", "south")
                      for job, week in (("weekly", new_week), ("weekly", upcoming), ("monitoring", new_week))}

    again = run_new_weeks(workers=1)
    assert again.first_week > again.last_week  # nothing new: validated, and nothing else run

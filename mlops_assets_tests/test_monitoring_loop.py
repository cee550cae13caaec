"""The monitoring loop on a realistic landing folder whose north region changes from one Monday on.

The change is made by editing copied landing files (not by the sample generator): from CHANGE on,
every shipment of a north store doubles and north's zip codes get 8 degrees warmer (an
acquisition, a feed from another place). `mlops-assets run --json` replays the
holdout weeks; the sensors then run against the same instance. The monitor's false-alarm rate
is set to 1 in 10,000 weeks per statistic here (a limit of z 4.6, where the change reaches about
7): the unchanged region's 13 weeks cross it with a probability under 1%, whatever the machine
or the seed (bench/drift_power.py measures the defaults' detection and false alarms, and the
README shows a change of 1.6 found on the bundled sample).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets import cli
from mlops_assets.automation import sensors
from mlops_assets.automation.jobs import FORECAST_INPUTS
from mlops_assets.automation.sensors import detect_changes
from mlops_assets.config import REPO_ROOT, Settings
from mlops_assets.definitions import build_definitions
from mlops_assets.monitoring.monitor import to_table
from mlops_assets.resources import LandingResource, StorageResource
from mlops_assets.resources.alerting import MonitoringResource
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource
from mlops_assets_tests.browsing import stop_group
from mlops_assets_tests.conftest import isolated_home
from mlops_assets_tests.servers import wait_alongside

CHANGE = "2026-09-21"  # a Monday inside the 13 holdout weeks (from 2026-08-17)
NEXT = "2026-09-28"


def change_north(landing):
    stores = pd.read_csv(landing / "stores.csv", dtype=str)
    north = stores[stores["region"] == "north"]
    for path in (landing / "shipments").glob("*.csv"):
        if path.stem >= CHANGE:
            frame = pd.read_csv(path, dtype=str)
            rows = frame["store_id"].isin(north["store_id"])
            frame.loc[rows, "units_shipped"] = (frame.loc[rows, "units_shipped"].astype(int) * 2).astype(str)
            frame.to_csv(path, index=False)
    for path in (landing / "weather").glob("*.csv"):
        frame = pd.read_csv(path, dtype=str)
        rows = frame["zip_code"].isin(north["zip_code"]) & (frame["date"] >= CHANGE)
        for column in ("temp_max_c", "temp_min_c"):
            frame.loc[rows, column] = (frame.loc[rows, column].astype(float) + 8).round(1).astype(str)
        frame.to_csv(path, index=False)


@pytest.fixture(scope="module")
def replayed(loop_landing_template, tmp_path_factory):
    with isolated_home(loop_landing_template, tmp_path_factory, "loop") as landing:
        change_north(landing)
        report = landing.parent / "report.json"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLOPS_MONITOR_FALSE_ALARM", "0.0001")
            mp.setenv("MLOPS_MONITOR_LEVEL_FALSE_ALARM", "0.0001")
            # the regions one after another in this process (test_training_pipeline runs them in two)
            assert cli.main(["run", "--landing", str(landing), "--json", str(report), "--workers", "1"]) == 0
            yield json.loads(report.read_text()), report.read_text(), Settings.from_env()


def _first_flagged(weeks: dict, signal_prefix: str) -> str | None:
    return next((w for w, v in sorted(weeks.items()) if any(s.startswith(signal_prefix) for s in v["signals"])), None)


def test_the_changed_region_is_flagged_from_its_week_and_the_other_is_not(replayed):
    report, _, _ = replayed
    levels, drift = report["levels"], report["drift"]
    assert len(levels["north"]) == len(levels["south"]) == 13
    # demand, once the change's first week is in: in that week or the next, and from then on
    assert _first_flagged(levels["north"], "demand") in (CHANGE, NEXT), levels["north"]
    assert all(v["flagged"] for w, v in levels["north"].items() if w >= NEXT)
    change = levels["north"][NEXT]["demand"]["change"]
    assert 0.6 < change < 1.4, change  # about +100%, as measured against each series' reference level
    # the warmer weather, named as such, when the weeks are forecast (the mean of two weeks)
    assert _first_flagged(drift["north"], "weather:temp_") in (CHANGE, NEXT), drift["north"]
    # nothing before the change, nothing in the unchanged region
    assert not any(v["flagged"] for w, v in {**levels["north"], **drift["north"]}.items() if w < CHANGE)
    assert not any(v["flagged"] for v in levels["south"].values()), levels["south"]
    assert not any(v["flagged"] for v in drift["south"].values()), drift["south"]


def test_only_the_changed_region_would_be_retrained_and_says_why(replayed):
    report, _, _ = replayed
    requests = report["retrain_requests"]
    north = {q["reason"]: q for q in requests if q["region"] == "north"}
    assert north["level_shift"]["week"] in (CHANGE, NEXT)
    assert "above its reference level since" in north["level_shift"]["detail"]
    assert "weather:temp_" in north["drift"]["detail"]
    # the other region's only reason is age: one model replays 13 weeks, 60 days pass in the same week
    assert {q["reason"] for q in requests if q["region"] == "south"} <= {"stale"}
    alerts = [a for a in report["alerts"] if a["region"] == "north" and a["kind"] == "level_shift"]
    assert alerts and alerts[0]["message"].startswith("north: demand ") and "% above its reference level since " \
        in alerts[0]["message"]


def test_the_changed_region_stands_out_against_the_other_region_and_alone(replayed):
    report, _, _ = replayed
    compared = report["regional"]
    assert len(compared["north"]) == len(compared["south"]) == 13
    assert _first_flagged(compared["north"], "regional") in (CHANGE, NEXT), compared["north"]
    assert not any(v["flagged"] for w, v in compared["north"].items() if w < CHANGE)
    # north's rise pulls south's comparison down; judged with that pull added back, south is not flagged
    assert not any(v["flagged"] for v in compared["south"].values()), compared["south"]
    assert compared["north"][NEXT]["regional"]["change"] > 0.5
    alerts = [a for a in report["alerts"] if a["kind"] == "regional_shift"]
    assert alerts and {a["region"] for a in alerts} == {"north"}
    assert "% above the other regions' (each against its reference level) since " in alerts[0]["message"]
    # what the replay compared with is not part of the report
    assert "demand_statistic" not in report["levels"]["north"] and "demand_calibration" not in report


def test_the_report_is_strict_json_with_realized_accuracy_and_bias(replayed):
    report, text, _ = replayed
    assert "NaN" not in text and "Infinity" not in text
    for region in ("north", "south"):
        weeks = report["accuracy"][region]
        assert len(weeks) == 13
        assert all(0 < w["mape"] < 1.5 and w["baseline_mape"] > 0 for w in weeks.values())
    # the model fit before the change under-forecasts north afterwards: its bias says so
    north = report["levels"]["north"]
    assert all(north[w]["bias"] < 0 for w in north if w >= NEXT)


def _sensor(defs, name):
    return defs.resolve_sensor_def(name)


def test_landing_sensor_resumes_from_its_cursor_and_revalidates_returning_content(replayed):
    _, _, settings = replayed
    defs = build_definitions(settings)
    sensor = _sensor(defs, "landing_files")
    landing = LandingResource(path=str(settings.landing_dir))
    instance = dg.DagsterInstance.get()
    with dg.build_sensor_context(instance=instance, definitions=defs, resources={"landing": landing}) as ctx:
        first = sensor(ctx)
    assert not first.run_requests  # `mlops-assets run` validated these very files
    cursor = first.cursor
    with dg.build_sensor_context(instance=instance, definitions=defs, resources={"landing": landing},
                                 cursor=cursor) as ctx:
        again = sensor(ctx)
    assert not again.run_requests and again.cursor == cursor
    # one new shipments file for north's next week
    week_file = settings.landing_dir / "shipments" / "2026-11-16.csv"
    original = sorted((settings.landing_dir / "shipments").glob("*.csv"))[-1].read_text()
    week_file.write_text(original.replace("2026-11-09", "2026-11-16"))
    with dg.build_sensor_context(instance=instance, definitions=defs, resources={"landing": landing},
                                 cursor=cursor) as ctx:
        new = sensor(ctx)
    assert [r.job_name for r in new.run_requests] == ["observe_landing", "tables"]
    tags = new.run_requests[1].tags
    assert tags["mlops/trigger"] == "new_data"
    assert json.loads(tags["mlops/affected"]) == {"north": ["2026-11-16", "2026-11-16"],
                                                  "south": ["2026-11-16", "2026-11-16"]}
    # removing it and putting it back: same content as a tick ago, validated again all the same
    week_file.unlink()
    with dg.build_sensor_context(instance=instance, definitions=defs, resources={"landing": landing},
                                 cursor=new.cursor) as ctx:
        gone = sensor(ctx)
    week_file.write_text(original.replace("2026-11-09", "2026-11-16"))
    with dg.build_sensor_context(instance=instance, definitions=defs, resources={"landing": landing},
                                 cursor=gone.cursor) as ctx:
        back = sensor(ctx)
    keys = [r.run_key for r in [*new.run_requests, *gone.run_requests, *back.run_requests]]
    assert len(back.run_requests) == 2 and len(set(keys)) == len(keys)
    # a reset cursor (or a lost one) starts a new key space: Dagster remembers run keys for good
    resets = []
    for _ in range(2):
        with dg.build_sensor_context(instance=instance, definitions=defs, resources={"landing": landing}) as ctx:
            resets += [r.run_key for r in sensor(ctx).run_requests]
    assert len(resets) == 4 and len(set(resets + keys)) == 4 + len(keys)
    week_file.unlink()


def test_unchanged_files_are_not_hashed_again(replayed, monkeypatch):
    _, _, settings = replayed
    state, changed, _ = detect_changes(settings.landing_dir, {})
    assert changed
    from mlops_assets.contract import validation

    monkeypatch.setattr(validation, "file_digest", lambda path: pytest.fail(f"hashed {path}"))
    assert detect_changes(settings.landing_dir, state) == (state, [], [])


def _flagged_partition(storage, asset, region, week, version, name, pending=()):
    """A stored monitor partition whose ``name`` signal flagged (z 5 at a limit of 3.3, its week's
    value 0.5 above its baseline), as the monitors write them; ``pending``: a regional comparison's
    regions whose week was still to come."""
    assessment = {"week": week, "stage": "forecast" if asset == "drift_metrics" else "realized", "signals": {
        name: {"value": 0.5, "windows": {1: {"mean": 0.5, "center": 0.0, "scale": 0.1, "z": 5.0, "limit": 3.3}},
               "flagged": True, "weeks": 1, "z": 5.0, "limit": 3.3, "change": 0.5, "status": "measured"}},
        "reasons": [], "flagged": True, "pending": list(pending)}
    table = to_table(assessment, region, version)
    if asset == "forecast_accuracy":
        table = table.assign(scope="signal")
    storage.write_parquet(f"{asset}/{region}/{week}.parquet", table)


def test_retrain_sensor_requests_each_cause_once_per_region(replayed, monkeypatch):
    _, _, settings = replayed
    defs = build_definitions(settings)
    sensor = _sensor(defs, "retrain_on_model_health")
    instance = dg.DagsterInstance.get()
    storage = StorageResource(root=str(settings.storage_root))
    from mlops_assets.releases import registry_for

    registry = registry_for(settings)
    versions = {r: f"demand-forecast-{r}/{registry.champion(r).version}" for r in ("north", "south")
                if registry.champion(r)}
    assert "south" in versions
    _flagged_partition(storage, "drift_metrics", "south", "2026-11-23", versions["south"], "weather:temp_max_c")

    resources = {"storage": storage, "mlflow": MlflowRegistryResource.from_settings(settings),
                 "monitoring": MonitoringResource.from_settings(settings)}

    def tick(cursor=None):
        with dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor, resources=resources) as ctx:
            return sensor(ctx)

    # the champions were trained on every week observed so far: drift waits for a newer week
    waiting = tick()
    assert not [r for r in waiting.run_requests if r.partition_key == "south"]
    assert sensors.learnable_through(storage, "south") == registry.champion("south").as_of_week
    # a week the champion has not seen lands, its features with their actuals: now the drift acts
    monkeypatch.setattr(sensors, "learnable_through", lambda storage, region: "2026-11-16")
    first = tick(waiting.cursor)
    drift = [r for r in first.run_requests if r.partition_key == "south"]
    assert [r.tags["mlops/trigger"] for r in drift] == ["drift"]
    assert "drift: weather:temp_max_c +0.5 against its recent weeks (z +5.0, limit 3.3)" in \
        drift[0].tags["mlops/reasons"]
    again = tick(first.cursor)
    assert not [r for r in again.run_requests if r.partition_key == "south"]  # no duplicate on re-evaluation
    # new model code: a second cause for the same champion, requested once
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sensors, "code_version", lambda: "0" * 12)
        code = tick(again.cursor)
        assert {r.partition_key: r.tags["mlops/trigger"] for r in code.run_requests} == {
            r: "code_version" for r in versions}
        assert not tick(code.cursor).run_requests
    (settings.storage_root / "drift_metrics" / "south" / "2026-11-23.parquet").unlink()

    # degraded accuracy: realized MAPE above the target in 2 of the last 5 weeks, the latest among them
    for week, mape in (("2026-11-16", 0.6), ("2026-11-23", 0.7)):
        storage.write_parquet(f"forecast_accuracy/south/{week}.parquet", pd.DataFrame(
            {"region": ["south"], "week_start": [pd.Timestamp(week)], "scope": ["region"], "mape": [mape],
             "holdout_mape": [0.2], "model_version": [versions["south"]]}))
    accuracy = tick(code.cursor)
    assert {r.partition_key: r.tags["mlops/trigger"] for r in accuracy.run_requests} == {"south": "accuracy"}
    assert "2 of the last" in accuracy.run_requests[0].tags["mlops/reasons"]
    for week in ("2026-11-16", "2026-11-23"):
        (settings.storage_root / "forecast_accuracy" / "south" / f"{week}.parquet").unlink()
    # a change of level once the week's actuals landed: its own cause, with the signal's reason
    _flagged_partition(storage, "forecast_accuracy", "south", "2026-11-23", versions["south"], "demand")
    shifted = tick(accuracy.cursor)
    assert {r.partition_key: r.tags["mlops/trigger"] for r in shifted.run_requests} == {"south": "level_shift"}
    assert "demand 65% above its reference level since 2026-11-23 (z +5.0, limit 3.3)" in \
        shifted.run_requests[0].tags["mlops/reasons"]
    (settings.storage_root / "forecast_accuracy" / "south" / "2026-11-23.parquet").unlink()
    # a change of level against the other regions' (regional_comparison): the same cause, its own
    # reason; not while the comparison is provisional (a region's week still to be evaluated)
    def causes():
        return sensors.retrain_causes(storage, registry.champion("south"), "south", settings.retrain,
                                      sensors.code_version())

    _flagged_partition(storage, "regional_comparison", "south", "2026-11-23", versions["south"], "regional",
                       pending=["north"])
    assert not [c for c in causes() if c["cause"] == "level_shift"]
    _flagged_partition(storage, "regional_comparison", "south", "2026-11-23", versions["south"], "regional")
    [level] = [c for c in causes() if c["cause"] == "level_shift"]
    assert level["detail"].startswith("demand 65% above the other regions' (each against its reference level) since "
                                      "2026-11-23"), level
    (settings.storage_root / "regional_comparison" / "south" / "2026-11-23.parquet").unlink()
    # staleness: the same champions, judged with a 5-day limit
    resources["monitoring"] = MonitoringResource(limits=settings.monitor.to_json(),
                                                 rules={**settings.retrain.to_json(), "stale_days": 5})
    stale = tick(shifted.cursor)
    assert {r.tags["mlops/trigger"] for r in stale.run_requests} == {"stale"}
    assert "days old" in stale.run_requests[0].tags["mlops/reasons"]


def _run_event(instance, run, event_type):
    [entry] = [e for e in instance.all_logs(run.run_id, of_type=event_type)]
    return entry.dagster_event


def test_a_promoting_training_run_rescores_the_coming_week(replayed):
    _, _, settings = replayed
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    sensor = _sensor(defs, "scoring_after_promotion")
    from mlops_assets.releases import registry_for

    # south: north's holdout holds its doubled demand, where "same as last week" is as good as a
    # model fit before the change, so north's first model rightly fails its gate
    champion = registry_for(settings).champion("south")
    run = instance.get_run_by_id(champion.tags["dagster_run_id"])
    with dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=_run_event(instance, run, dg.DagsterEventType.RUN_SUCCESS),
            dagster_instance=instance, dagster_run=run,
            resources={"mlflow": MlflowRegistryResource.from_settings(settings)}) as ctx:
        request = sensor(ctx)
    # the coming week's inputs built afresh, then (scoring_after_conditioning) its forecast
    assert (request.job_name, request.partition_key, request.tags["mlops/stage"]) == (
        "weekly", "south|2026-11-16", "forecast_inputs")
    assert request.asset_selection == FORECAST_INPUTS
    assert request.tags["mlops/trigger"] == "manual"  # the trigger of the training run it follows
    inputs = defs.resolve_job_def("weekly").execute_in_process(
        instance=instance, partition_key=request.partition_key, asset_selection=request.asset_selection,
        tags=request.tags)
    after = _sensor(defs, "scoring_after_conditioning")
    with dg.build_run_status_sensor_context(
            sensor_name=after.name, dagster_instance=instance, dagster_run=instance.get_run_by_id(inputs.run_id),
            dagster_event=_run_event(instance, instance.get_run_by_id(inputs.run_id),
                                     dg.DagsterEventType.RUN_SUCCESS),
            resources={"storage": StorageResource(root=str(settings.storage_root))}) as ctx:
        scoring = after(ctx)
    assert (scoring.job_name, scoring.partition_key, scoring.tags["mlops/trigger"]) == (
        "scoring", "south|2026-11-16", "manual")


def test_a_failed_run_is_an_open_alert_until_the_same_work_succeeds(replayed, capsys):
    _, _, settings = replayed
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    failed = defs.resolve_job_def("weekly").execute_in_process(
        instance=instance, partition_key="north|2026-11-23", raise_on_error=False,
        asset_selection=[dg.AssetKey("net_demand"), dg.AssetKey("weekly_events")])  # no shipments: refused
    assert not failed.success
    run = instance.get_run_by_id(failed.run_id)
    sensor = _sensor(defs, "alert_on_run_failure")
    storage = StorageResource(root=str(settings.storage_root))
    with dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=_run_event(instance, run, dg.DagsterEventType.RUN_FAILURE),
            dagster_instance=instance, dagster_run=run, resources={"storage": storage}).for_run_failure() as ctx:
        request = sensor(ctx)
    assert request.run_key == f"{run.run_id}-alerts"  # the alerts table is refreshed at once
    alerting = defs.resolve_job_def("alerting")
    alerting.execute_in_process(instance=instance)
    table = pd.read_parquet(settings.storage_root / "alerts.parquet")
    [alert] = table[table["kind"] == "run_failure"].to_dict("records")
    assert (alert["region"], alert["week"], alert["severity"]) == ("north", "2026-11-23", "ERROR")
    assert "weekly failed" in alert["message"] and alert["link"] == f"/runs/{run.run_id}"
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"{len(table)} open alerts:" in out and "run_failure" in out and "weekly failed" in out
    # the same job and partition succeeding later closes it
    defs.resolve_job_def("weekly").execute_in_process(instance=instance, partition_key="north|2026-11-23",
                                                     asset_selection=[dg.AssetKey("weekly_events")])
    alerting.execute_in_process(instance=instance)
    assert "run_failure" not in set(pd.read_parquet(settings.storage_root / "alerts.parquet")["kind"])


def test_a_champion_that_cannot_load_leaves_the_baseline_serving(replayed, monkeypatch):
    _, _, settings = replayed
    from mlops_assets.registry.tracking import Registry

    def broken(self, release):
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(Registry, "load_forecast_model", broken)
    defs = build_definitions(settings)
    defs.resolve_job_def("weekly").execute_in_process(  # the week's inputs first, as the sensors do
        instance=dg.DagsterInstance.get(), partition_key="south|2026-11-23", asset_selection=FORECAST_INPUTS)
    result = defs.resolve_job_def("scoring").execute_in_process(
        instance=dg.DagsterInstance.get(), partition_key="south|2026-11-23")
    assert result.success
    [check] = [e.asset_check_evaluation_data for e in result.all_events
               if e.event_type_value == "ASSET_CHECK_EVALUATION"
               and e.asset_check_evaluation_data.check_name == "champion_serves"]
    assert not check.passed and "could not be loaded: OSError" in check.description
    path = settings.storage_root / "scores" / "south" / "2026-11-23.parquet"
    assert set(pd.read_parquet(path)["model_version"]) == {"baseline"}
    path.unlink()  # the daemon test below waits for this week's scores


def test_validation_is_followed_by_conditioning_of_the_affected_weeks_and_the_year_after(replayed):
    _, _, settings = replayed
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    affected = {"north": ["2026-09-07", "2026-09-07"], "south": ["2026-11-16", "2026-11-22"]}
    tables = defs.resolve_job_def("tables").execute_in_process(
        instance=instance, tags={"mlops/trigger": "new_data", "mlops/affected": json.dumps(affected)})
    run = instance.get_run_by_id(tables.run_id)
    sensor = _sensor(defs, "conditioning_after_validation")
    with dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=_run_event(instance, run, dg.DagsterEventType.RUN_SUCCESS),
            dagster_instance=instance, dagster_run=run,
            resources={"storage": StorageResource(root=str(settings.storage_root)),
                       "mlflow": MlflowRegistryResource.from_settings(settings)}) as ctx:
        requests = {r.tags["mlops/region"]: r for r in sensor(ctx).run_requests}
    north, south = requests["north"], requests["south"]
    # a corrected old week: it and the weeks whose lags read it, up to the last delivered week
    assert (north.job_name, north.tags["dagster/asset_partition_range_start"],
            north.tags["dagster/asset_partition_range_end"]) == ("weekly", "north|2026-09-07", "north|2026-11-09")
    assert north.tags["mlops/stage"] == "observed_weeks" and not north.asset_selection
    # only the coming week changed (a new weather forecast): its inputs are built, then it is forecast
    assert (south.job_name, south.partition_key, south.tags["mlops/stage"]) == (
        "weekly", "south|2026-11-16", "forecast_inputs")
    assert south.asset_selection == FORECAST_INPUTS
    assert {r.tags["mlops/trigger"] for r in requests.values()} == {"new_data"}
    assert north.tags["mlops/score_week"] == "2026-11-16"  # what the scoring after it will forecast
    # a new weather forecast touches every region's coming week: an inputs run each, none lost to
    # a shared run key (the daemon keeps one request per key and tick)
    coming = {r: ["2026-11-16", "2026-11-22"] for r in ("north", "south")}
    tables = defs.resolve_job_def("tables").execute_in_process(
        instance=instance, tags={"mlops/trigger": "new_data", "mlops/affected": json.dumps(coming)})
    run = instance.get_run_by_id(tables.run_id)
    with dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=_run_event(instance, run, dg.DagsterEventType.RUN_SUCCESS),
            dagster_instance=instance, dagster_run=run,
            resources={"storage": StorageResource(root=str(settings.storage_root)),
                       "mlflow": MlflowRegistryResource.from_settings(settings)}) as ctx:
        both = sensor(ctx).run_requests
    assert sorted(r.partition_key for r in both) == ["north|2026-11-16", "south|2026-11-16"]
    assert len({r.run_key for r in both}) == 2


def _sensor_cursor(instance, name):
    for state in instance.all_instigator_state():
        if state.instigator_name == name and state.instigator_data is not None:
            return getattr(state.instigator_data, "cursor", None)
    return None


# a real daemon and about 14 run processes (100 CPU-seconds): with the deployment run, outside
# `make test`'s budget (make test-deployment runs both)
@pytest.mark.daemon
@pytest.mark.deployment
def test_the_daemon_conditions_monitors_and_scores_a_new_week(replayed, tmp_path):
    """The real dagster-daemon, its sensors on: a new week of shipments lands, and validation,
    conditioning, monitoring and the next week's scores follow, each run tagged new_data."""
    _, _, settings = replayed
    instance = dg.DagsterInstance.get()
    log = tmp_path / "daemon.log"
    env = {**os.environ, "MLOPS_AUTOMATION": "on", "MLOPS_SENSOR_INTERVAL": "3",
           # this home's north champion has the changed weeks in its reference: keep retraining out of this test
           "MLOPS_MONITOR_FALSE_ALARM": "1e-12", "MLOPS_MONITOR_LEVEL_FALSE_ALARM": "1e-12",
           "MLOPS_MONITOR_MIX_FLOOR": "1.01", "MLOPS_MONITOR_JS_FLOOR": "1.01", "MLOPS_STALE_DAYS": "365"}
    new_data = dg.RunsFilter(tags={"mlops/trigger": "new_data"})
    earlier = {r.run_id for r in instance.get_runs(filters=new_data)}  # the tests above made some
    # the two regions' runs side by side, as production takes them (four at most there,
    # deploy/dagster.prod.yaml); the template runs one at a time, for a laptop
    config = settings.dagster_home / "dagster.yaml"
    config.write_text(config.read_text().replace("max_concurrent_runs: 1", "max_concurrent_runs: 2"))
    daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run",
                               "-w", str(REPO_ROOT / "workspace.yaml")],
                              env=env, cwd=tmp_path, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_alongside(lambda: _sensor_cursor(instance, "landing_files"), 180, "the first landing_files tick", daemon,
                       log, every=2)
        assert not [r for r in instance.get_runs(filters=new_data) if r.run_id not in earlier]
        new_week, upcoming = "2026-11-16", "2026-11-23"
        last = settings.landing_dir / "shipments" / "2026-11-09.csv"
        (settings.landing_dir / "shipments" / f"{new_week}.csv").write_text(
            last.read_text().replace("2026-11-09", new_week))
        scores = [settings.storage_root / "scores" / r / f"{upcoming}.parquet" for r in ("north", "south")]
        wait_alongside(lambda: all(p.exists() for p in scores), 420, f"scores of {upcoming}", daemon, log, every=2)
        # a scoring run writes its scores before its drift step ends: wait until every run has finished
        wait_alongside(lambda: all(r.is_finished for r in instance.get_runs(filters=new_data)), 120,
                       "the end of the new_data runs", daemon, log, every=2)
        accuracy = settings.storage_root / "forecast_accuracy" / "north" / f"{new_week}.parquet"
        assert len(pd.read_parquet(accuracy)) > 0  # the week forecast by `run` is now evaluated
        runs = [r for r in instance.get_runs(filters=new_data) if r.run_id not in earlier]
        jobs = sorted(r.job_name for r in runs)
        assert {"observe_landing", "tables", "weekly", "scoring", "monitoring", "comparison"} <= set(jobs), jobs
        # per region: the new week conditioned, the coming week's inputs, its forecast, the new week
        # monitored, and then compared with the other region's
        assert (jobs.count("weekly"), jobs.count("scoring"), jobs.count("monitoring"), jobs.count("comparison")) \
            == (4, 2, 2, 2), jobs
        failed = [(r.job_name, r.status) for r in runs if r.job_name != "alerting"
                  and r.status != dg.DagsterRunStatus.SUCCESS]
        assert not failed, failed
        # each region's file says how its week compared with the other's, or why it did not: a week
        # the baseline forecast (north's, after the test above broke its champion) has no demand
        # statistic, and then the other region has no region to compare with
        compared = {region: pd.read_parquet(settings.storage_root / "regional_comparison" / region /
                                            f"{new_week}.parquet") for region in ("north", "south")}
        baseline = {r for r in compared if set(pd.read_parquet(settings.storage_root / "scores" / r /
                                                               f"{new_week}.parquet")["model_version"]) == {"baseline"}}
        for region, table in compared.items():
            # written last by the run queued after both regions' monitoring: no region still to come
            assert not table["flagged"].any() and (table["pending"] == "").all(), table
            if not baseline:
                assert set(table["signal"]) == {"regional"}, table
            else:
                assert list(table["signal"]) == ["status"], table
                assert table["detail"].iloc[0].startswith("not compared: " + (
                    "no demand statistic judged this week" if region in baseline else "no other region")), table
        ranges = {(r.job_name, r.tags.get("dagster/asset_partition_range_start") or r.tags["dagster/partition"])
                  for r in runs if r.job_name in ("weekly", "monitoring")}
        assert ranges == {(job, f"{region}|{week}") for region in ("north", "south")
                          for job, week in (("weekly", new_week), ("weekly", upcoming), ("monitoring", new_week))}
    finally:
        stop_group(daemon)

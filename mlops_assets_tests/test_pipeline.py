"""The asset graph end to end on a small landing folder, in a throwaway Dagster home."""

import json

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.app.execution import RunFailed, user_error
from mlops_assets.app.pipeline import run_pipeline
from mlops_assets.config import Settings
from mlops_assets.contract.validation import check_landing
from mlops_assets.definitions import build_definitions
from mlops_assets.resources import LandingResource
from mlops_assets_tests.conftest import SMALL, edit_csv, isolated_home
from mlops_assets_tests.servers import webhook_receiver


@pytest.fixture(scope="module")
def pipeline(small_landing_template, tmp_path_factory):
    with isolated_home(small_landing_template, tmp_path_factory, "pipeline") as landing:
        summary = run_pipeline(landing)
        yield summary, Settings.from_env(), dg.DagsterInstance.get()


def _keys(instance, asset):
    return instance.get_materialized_partitions(dg.AssetKey(asset))


def test_every_region_and_week_is_materialized(pipeline):
    summary, settings, instance = pipeline
    weeks = pd.date_range(end="2026-11-09", periods=SMALL["weeks"], freq="7D").strftime("%Y-%m-%d").tolist()
    assert (summary.first_week, summary.last_week) == (weeks[0], weeks[-1])
    assert set(summary.regions) == {"north", "south"}
    assert settings.first_week == weeks[0]  # taken from the data, recorded for `dagster dev`
    # scores and their monitors are partitioned from the first week forecast: "filled" counts the
    # weeks that could have been scored, not two years of history no model forecast
    assert settings.first_scored_week == "2026-11-16"
    defs = build_definitions(settings)
    for asset in ("scores", "drift_metrics", "forecast_accuracy"):
        scored = defs.resolve_assets_def(asset).partitions_def.get_partitions_def_for_dimension("week")
        assert scored.get_partition_keys()[0] == "2026-11-16", asset
    assert _keys(instance, "scores") == {"north|2026-11-16", "south|2026-11-16"}
    expected = {f"{r}|{w}" for r in ("north", "south") for w in weeks}
    assert _keys(instance, "net_demand") == expected
    # next week's forecast weather and events are conditioned too, for scoring; its demand is not
    assert _keys(instance, "weekly_weather") == expected | {"north|2026-11-16", "south|2026-11-16"}
    for w in weeks:
        assert (settings.storage_root / "net_demand" / "north" / f"{w}.parquet").exists()


def test_conditioned_demand_accounts_for_every_valid_shipment(pipeline):
    summary, settings, _ = pipeline
    landing = check_landing(settings.landing_dir)
    stores = landing["stores"].valid
    files = sorted((settings.storage_root / "net_demand" / "south").glob("*.parquet"))
    demand = pd.concat(pd.read_parquet(f) for f in files)
    south = landing["shipments"].valid.merge(stores[stores.region == "south"], on="store_id")
    assert demand["units_shipped"].sum() == south["units_shipped"].sum()
    assert (demand["net_demand"] >= 0).all() and set(demand["region"]) == {"south"}


def test_checks_and_data_versions_are_recorded(pipeline):
    _, settings, instance = pipeline
    for asset, check in [("shipments", "contract"), ("net_demand", "schema")]:
        evaluation = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey(asset), check))
        assert evaluation.status.value == "SUCCEEDED"
        assert evaluation.event.dagster_event.event_specific_data.passed
    record = instance.get_latest_data_version_record(dg.AssetKey("raw_shipments"))
    version = record.asset_observation.data_version
    assert version == LandingResource(path=str(settings.landing_dir)).data_version("shipments")


def test_a_backfill_of_all_weeks_builds_what_landed_and_names_what_it_skipped(pipeline, capsys):
    """`mlops-assets backfill north` runs what a UI backfill of all of north's weeks runs: one
    range run. Weeks without shipments (the week after the last delivery, the week in progress)
    are skipped with their reason, not failed with the rest, and never written as zeros."""
    from mlops_assets import cli

    _, settings, instance = pipeline
    assert cli.main(["backfill", "north", "--assets", "net_demand,features"]) == 0
    out = capsys.readouterr().out
    [run] = instance.get_runs(filters=dg.RunsFilter(tags={"mlops/trigger": "backfill"}), limit=1)
    assert run.status == dg.DagsterRunStatus.SUCCESS and f"run {run.run_id} succeeded" in out
    weeks = build_definitions(settings).resolve_assets_def("net_demand").partitions_def \
        .get_partitions_def_for_dimension("week").get_partition_keys()
    materialized = {}
    for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        m = event.dagster_event.event_specific_data.materialization
        materialized[(m.asset_key.to_user_string(), m.partition)] = {k: v.value for k, v in m.metadata.items()}
    demand = {k[1].split("|")[1]: meta for k, meta in materialized.items() if k[0] == "net_demand"}
    assert sorted(demand) == weeks  # every week of the region asked for, in one run
    undelivered = [w for w in weeks if w > "2026-11-09"]
    assert len(undelivered) >= 2
    for week, meta in demand.items():
        path = settings.storage_root / "net_demand" / "north" / f"{week}.parquet"
        assert meta["region"] == "north" and meta["week"] == week
        if week in undelivered:
            assert meta["status"].startswith("skipped: no shipments have landed for this week yet")
            assert meta["rows"] == 0 and not path.exists()
        else:  # each partition's own figures, not the run's
            assert meta["status"] == "built" and meta["rows"] == len(pd.read_parquet(path)) > 0
    assert len({meta["rows"] for meta in demand.values()}) > 2
    assert f"net_demand: {len(undelivered)} week(s) skipped: no shipments have landed" in out
    features = {k[1].split("|")[1]: meta["status"] for k, meta in materialized.items() if k[0] == "features"}
    assert features["2026-11-16"] == "built"  # the coming week: forecast inputs, no target
    assert all(features[w] == "built" for w in weeks if w <= "2026-11-09")
    # the monitors write nothing for a week they could not evaluate: an empty file would read
    # later as "the latest week had no drift" and close open alerts
    assert cli.main(["backfill", "north", "--assets", "drift_metrics,forecast_accuracy",
                     "--first", "2026-11-02"]) == 0
    for asset in ("drift_metrics", "forecast_accuracy", "regional_comparison"):
        for week in undelivered:
            assert not (settings.storage_root / asset / "north" / f"{week}.parquet").exists(), (asset, week)


def test_a_region_whose_last_week_has_not_landed_is_not_given_zero_demand(env):
    """Another region's deliveries say nothing of this one's: south's missing week is skipped."""
    last = env / "shipments" / "2026-11-09.csv"
    lines = last.read_text().splitlines()
    last.write_text("\n".join(line for line in lines if not line.split(",")[1].startswith("south")) + "\n")
    run_pipeline(env, ["north", "south"], train=False)
    settings = Settings.from_env()
    assert (settings.storage_root / "net_demand" / "north" / "2026-11-09.parquet").exists()
    assert not (settings.storage_root / "net_demand" / "south" / "2026-11-09.parquet").exists()
    [record] = dg.DagsterInstance.get().fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("net_demand"), asset_partitions=["south|2026-11-09"]), limit=1).records
    assert record.asset_materialization.metadata["status"].value == (
        "skipped: no shipments have landed for this week yet (latest delivered week: 2026-11-02)")


def test_bad_rows_are_quarantined_and_the_rest_flows_on(env):
    ship = sorted((env / "shipments").glob("*.csv"))[-1]
    row = ship.read_text().splitlines()[1].split(",")
    edit_csv(ship, 2, ",".join([*row[:3], "-4"]))
    summary = run_pipeline(env, ["north"])
    assert summary.tables["shipments"]["quarantined"] == 1
    settings = Settings.from_env()
    [quarantine] = list((settings.storage_root / "quarantine" / "shipments").glob("*.parquet"))
    bad = pd.read_parquet(quarantine)
    assert bad[["_file", "_row", "units_shipped", "_problems"]].values.tolist() == [
        [f"shipments/{ship.name}", 2, "-4", "units_shipped: must be >= 0"]]
    instance = dg.DagsterInstance.get()
    mat = instance.get_latest_materialization_event(dg.AssetKey("shipments")).asset_materialization
    assert mat.metadata["rows_quarantined"].value == 1
    key = dg.AssetCheckKey(dg.AssetKey("shipments"), "contract")
    check = instance.get_latest_asset_check_evaluation_record(key)
    assert not check.event.dagster_event.event_specific_data.passed  # a WARN the Checks tab shows


def _landing(env):
    """The sensors' resources: the landing folder, and the registry (which says a region is retired)."""
    from mlops_assets.resources.mlflow_registry import MlflowRegistryResource

    return {"landing": LandingResource(path=str(env)),
            "mlflow": MlflowRegistryResource.from_settings(Settings.from_env())}


def _sensor_context(instance, defs, env, cursor=None):
    """Entered with ``with``: a context left open keeps its instance as Dagster's current one
    after the instance is gone, and a later run in this process fails on the dead reference."""
    return dg.build_sensor_context(instance=instance, definitions=defs, resources=_landing(env), cursor=cursor)


def _tables_run(defs):
    return defs.resolve_job_def("tables").execute_in_process(instance=dg.DagsterInstance.get(), raise_on_error=False)


def test_an_unusable_master_fails_its_step_and_the_last_good_version_stays(env):
    run_pipeline(env, ["north"])
    settings = Settings.from_env()
    before = {name: pd.read_parquet(settings.storage_root / f"{name}.parquet") for name in ("stores", "shipments")}
    edit_csv(env / "stores.csv", 1, "store_id,region,format")  # the zip_code column is gone
    defs = build_definitions(settings)
    result = _tables_run(defs)
    assert not result.success
    messages = {e.step_key: user_error(e.event_specific_data.error) for e in result.all_events if e.is_step_failure}
    assert "stores.csv:1: zip_code: required column missing" in messages["stores"]
    assert "shipments" not in messages  # skipped: its upstream failed
    # run on its own, a dependant refuses to rebuild against an unusable store list
    # rather than quarantining every row as an unknown store
    alone = defs.resolve_job_def("tables").execute_in_process(
        instance=dg.DagsterInstance.get(), raise_on_error=False, asset_selection=[dg.AssetKey("shipments")])
    [failure] = [e for e in alone.all_events if e.is_step_failure]
    assert "not rebuilt because stores is unusable" in user_error(failure.event_specific_data.error)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(pd.read_parquet(settings.storage_root / f"{name}.parquet"), frame)
    # and `mlops-assets run` says why before starting anything
    with pytest.raises(RunFailed, match="stores.csv:1: zip_code: required column missing"):
        run_pipeline(env, ["north"])


def test_demand_of_an_undelivered_week_is_refused_not_zero(pipeline):
    _, settings, _ = pipeline
    defs = build_definitions(settings)
    result = defs.resolve_job_def("weekly").execute_in_process(
        instance=dg.DagsterInstance.get(), partition_key="north|2026-11-16", raise_on_error=False,
        asset_selection=[dg.AssetKey("net_demand")])
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert ("net_demand: nothing to build; north 2026-11-16: no shipments have landed for this week yet (latest "
            "delivered week: 2026-11-09)") in user_error(failure.event_specific_data.error)
    assert not (settings.storage_root / "net_demand" / "north" / "2026-11-16.parquet").exists()


def test_the_coming_week_is_forecast_even_before_its_weather_forecast_lands(env):
    """No forecast file for next week yet: its weather is built empty (never skipped), its
    features impute the weather, and the region is still forecast."""
    for forecast in (env / "weather").glob("forecast_*.csv"):
        forecast.unlink()
    summary = run_pipeline(env, ["north"])
    settings = Settings.from_env()
    week = summary.models["north"]["scored_week"]
    assert week == "2026-11-16"
    assert len(pd.read_parquet(settings.storage_root / "weekly_weather" / "north" / f"{week}.parquet")) == 0
    assert len(pd.read_parquet(settings.storage_root / "scores" / "north" / f"{week}.parquet")) > 0


def test_region_sensor_adds_regions_found_in_stores_and_reads_it_only_when_it_changes(env, monkeypatch):
    defs = build_definitions(Settings.from_env())
    sensor = defs.resolve_sensor_def("region_discovery")
    with dg.instance_for_test() as instance:
        with _sensor_context(instance, defs, env) as ctx:
            result = sensor(ctx)
        [request] = result.dynamic_partitions_requests
        assert list(request.partition_keys) == ["north", "south"]
        instance.add_dynamic_partitions("region", ["north", "south"])
        from mlops_assets.contract import validation

        monkeypatch.setattr(validation, "check_table", lambda *a, **k: pytest.fail("stores.csv read again"))
        with _sensor_context(instance, defs, env, result.cursor) as ctx:
            assert isinstance(sensor(ctx), dg.SkipReason)


def test_landing_sensor_requests_validation_once_per_change(env):
    defs = build_definitions(Settings.from_env())
    sensor = defs.resolve_sensor_def("landing_files")
    with dg.instance_for_test() as instance:
        with _sensor_context(instance, defs, env) as ctx:
            first = sensor(ctx)  # a new instance has validated nothing: every table is new
        assert [r.job_name for r in first.run_requests] == ["observe_landing", "tables"]
        assert json.loads(first.run_requests[1].tags["mlops/affected"]) == "all"
        with _sensor_context(instance, defs, env, first.cursor) as ctx:
            again = sensor(ctx)
        assert not again.run_requests and again.cursor == first.cursor
        (env / "events.csv").write_text((env / "events.csv").read_text() + "2026-11-12,north,promotion\n")
        with _sensor_context(instance, defs, env, first.cursor) as ctx:
            changed = sensor(ctx)
        assert changed.cursor != first.cursor
        assert changed.run_requests[0].run_key != first.run_requests[0].run_key
        assert changed.run_requests[1].tags["mlops/changed_files"] == "events.csv"


def test_weekly_schedules_score_and_retrain_every_region(env, monkeypatch):
    import datetime as dt

    defs = build_definitions(Settings.from_env())
    monday = dt.datetime(2026, 11, 16, 6, tzinfo=dt.timezone.utc)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("region", ["north", "south"])
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=monday) as ctx:
            scoring = list(defs.resolve_schedule_def("weekly_scoring")(ctx))
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=monday) as ctx:
            training = list(defs.resolve_schedule_def("weekly_retraining")(ctx))
    assert [r.partition_key for r in scoring] == ["north|2026-11-16", "south|2026-11-16"]
    # a run builds the week's inputs; its success (scoring_after_conditioning) forecasts the week
    assert {(r.job_name, r.tags["mlops/stage"], r.tags["mlops/score_week"]) for r in scoring} == {
        (None, "forecast_inputs", "2026-11-16")}
    assert defs.resolve_schedule_def("weekly_scoring").job_name == "weekly"
    assert all(r.asset_selection == [dg.AssetKey(k) for k in ("weekly_weather", "weekly_events", "features")]
               for r in scoring)
    assert [r.partition_key for r in training] == ["north", "south"]
    assert {r.tags["mlops/trigger"] for r in [*scoring, *training]} == {"schedule"}
    # off in dev, on in prod
    assert defs.resolve_schedule_def("weekly_scoring").default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_sensor_def("retrain_on_model_health").default_status == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv("MLOPS_ENV", "prod")
    prod = build_definitions(Settings.from_env())
    assert prod.resolve_schedule_def("weekly_retraining").default_status == dg.DefaultScheduleStatus.RUNNING
    assert prod.resolve_sensor_def("retrain_on_model_health").default_status == dg.DefaultSensorStatus.RUNNING


def test_a_region_without_champion_is_forecast_by_the_baseline_with_an_alert_delivered_at_least_once(env, monkeypatch):
    with webhook_receiver(refuse_first=1) as hook:  # down for its first call
        monkeypatch.setenv("MLOPS_ALERT_WEBHOOK", hook.url)
        run_pipeline(env, ["north"], train=False)  # conditioned and featurized, never trained
        settings = Settings.from_env()
        defs = build_definitions(settings)
        result = defs.resolve_job_def("scoring").execute_in_process(
            instance=dg.DagsterInstance.get(), partition_key="north|2026-11-16",
            asset_selection=[dg.AssetKey("scores")])
        assert result.success  # a missing champion is an alert, not a failed forecast
        undelivered = []
        for _ in range(3):  # refused, sent again and taken, then never again
            alerting = defs.resolve_job_def("alerting").execute_in_process(instance=dg.DagsterInstance.get())
            undelivered.append(alerting.asset_materializations_for_node("alerts")[0].metadata["undelivered"].value)
    scores = pd.read_parquet(settings.storage_root / "scores" / "north" / "2026-11-16.parquet")
    features = pd.read_parquet(settings.storage_root / "features" / "north" / "2026-11-16.parquet")
    assert len(scores) == len(features) > 0
    assert set(scores["model"]) == {"baseline"} and set(scores["model_version"]) == {"baseline"}
    assert scores["forecast"].tolist() == features["mean_52"].tolist()
    [check] = [e.asset_check_evaluation_data for e in result.all_events
               if e.event_type_value == "ASSET_CHECK_EVALUATION"
               and e.asset_check_evaluation_data.check_name == "champion_serves"]
    assert not check.passed and "has no champion" in check.description
    assert undelivered == [1, 0, 0]  # at least once: the failed delivery is retried by the next run
    [refused] = hook.refused
    [posted] = hook.received
    assert refused == posted
    [alert] = posted["alerts"]
    assert (alert["region"], alert["kind"], alert["severity"]) == ("north", "no_champion", "ERROR")
    assert alert["run_id"] == result.run_id


def test_an_appended_weather_file_touches_only_its_new_week_and_region(env):
    from mlops_assets.automation.sensors import affected_partitions, detect_changes

    weather = sorted((env / "weather").glob("observed_*.csv"))[-1]
    state, changed, _ = detect_changes(env, {})
    assert affected_partitions(env, changed, [], {}, state) == "all"  # masters are new too
    first = affected_partitions(env, [f"weather/{weather.name}"], [], {}, state)
    assert set(first) == {"north", "south"}  # a file never seen whole: every week in it
    stores = pd.read_csv(env / "stores.csv", dtype=str)
    north_zip = stores.loc[stores["region"] == "north", "zip_code"].iloc[0]
    with weather.open("a") as f:  # a delivery appends two days of one north zip code to the year's file
        f.write(f"2026-11-16,{north_zip},9.0,2.0,0.0,false\n2026-11-17,{north_zip},8.0,1.0,1.5,false\n")
    after, changed, removed = detect_changes(env, state)
    assert changed == [f"weather/{weather.name}"] and not removed
    assert affected_partitions(env, changed, removed, state, after) == {"north": ["2026-11-16", "2026-11-16"]}


def test_a_deployment_fed_by_sensors_alone_starts_at_the_landings_first_week(env):
    """No `mlops-assets run`, no MLOPS_FIRST_WEEK (compose and Helm set none): the first validated
    delivery says where the weeks begin, for the conditioning it starts and for every process
    that builds the definitions afterwards; never every week from 2001 for every region."""
    from mlops_assets.app.execution import prepare_environment
    from mlops_assets.config import recorded_weeks
    from mlops_assets.resources import StorageResource
    from mlops_assets.resources.mlflow_registry import MlflowRegistryResource

    settings = prepare_environment()  # the instance's home, nothing recorded in it
    assert settings.first_week == "2001-01-01" and not recorded_weeks(settings.home)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    sensor = defs.resolve_sensor_def("conditioning_after_validation")

    def validated_everything():
        """A tables run tagged as landing_files tags a delivery that touches every week, then the sensor."""
        tables = defs.resolve_job_def("tables").execute_in_process(
            instance=instance, tags={"mlops/trigger": "new_data", "mlops/affected": json.dumps("all")})
        run = instance.get_run_by_id(tables.run_id)
        [event] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
        with dg.build_run_status_sensor_context(
                sensor_name=sensor.name, dagster_event=event.dagster_event, dagster_instance=instance, dagster_run=run,
                resources={"storage": StorageResource(root=str(settings.storage_root)),
                           "mlflow": MlflowRegistryResource.from_settings(settings)}) as ctx:
            return sensor(ctx)

    result = validated_everything()
    first = min(pd.read_csv(p)["week_start"].min() for p in (env / "shipments").glob("*.csv"))
    starts = {r.tags["mlops/region"]: r.tags["dagster/asset_partition_range_start"] for r in result.run_requests}
    assert starts == {"north": f"north|{first}", "south": f"south|{first}"}
    assert recorded_weeks(settings.home)["first_week"] == first == Settings.from_env().first_week
    # a later delivery that touches every week (a master changed), seen by the same long-lived code
    # server, whose definitions still begin in 2001: the recorded week, not 2001, bounds it
    again = validated_everything()
    assert {r.tags["dagster/asset_partition_range_start"] for r in again.run_requests} == \
        {f"north|{first}", f"south|{first}"}

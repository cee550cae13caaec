"""Sensors: the loop that keeps every region forecast, monitored and retrained without a person.

- ``region_discovery``: a region named in stores.csv becomes a partition (reads stores only when
  that file changed);
- ``landing_files``: new or changed landing files (found by listing, size and mtime; only changed
  files are hashed) -> validation of the tables, tagged with the region x weeks they touch;
- ``conditioning_after_validation``: a successful validation -> conditioning and features of those
  weeks (and of the 52 weeks after them, whose lags read them), one run per region;
- ``scoring_after_conditioning``: then the coming week's inputs are built (weather forecast,
  events, features), and the new weeks monitored (drift, realized accuracy); once the inputs
  are built, the coming week is forecast and its drift measured (the scores and monitors are
  partitioned by the scored weeks, so each is a run of its own job);
- ``comparison_after_monitoring``: a region's weeks monitored -> those weeks of
  ``regional_comparison`` (each region's demand against the others', over every region);
- ``retrain_on_model_health``: a level shift (of a region's own demand, or against the other
  regions'), drift, degraded accuracy, staleness or new model code -> a training run per region,
  tagged with its cause;
- ``scoring_after_promotion``: a newly promoted champion re-forecasts the coming week;
- ``alert_on_run_failure``: a failed run becomes an alert (a row of ``alerts``, and the webhook);
- ``alerts_after_monitoring``: the ``alerts`` table is refreshed after each monitoring run.

Every run carries ``mlops/trigger``. Ticks stay cheap at seed scale: no table is read whole.
"""


import datetime as dt
import json
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_assets.automation.jobs import (
    FORECAST_INPUTS,
    alerting_job,
    comparison_job,
    monitoring_job,
    observe_landing_job,
    scoring_job,
    tables_job,
    training_job,
    weekly_job,
)
from mlops_assets.config import Settings, first_week_is_set, record_weeks, resolve_first_week
from mlops_assets.contract import schemas
from mlops_assets.contract import validation as contract
from mlops_assets.locations import source
from mlops_assets.ml import code_version
from mlops_assets.ml.featurize import HISTORY_WEEKS
from mlops_assets.monitoring import alerts as alerting
from mlops_assets.monitoring import rules
from mlops_assets.monitoring.monitor import stored_assessment
from mlops_assets.monitoring.regional import ASSET as REGIONAL
from mlops_assets.partitions import region_partitions, week_partitions, week_to_score
from mlops_assets.resources.alerting import MonitoringResource
from mlops_assets.resources.landing_folder import LandingResource
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource
from mlops_assets.resources.storage import StorageResource

TRIGGER, REASONS = rules.TRIGGER_TAG, rules.REASONS_TAG
AFFECTED = "mlops/affected"  # JSON {region: [first week, last week]} or "all"
REGION = "mlops/region"
SCORE_WEEK = "mlops/score_week"  # the week a conditioning run prepares the forecast of
# what a sensor-started weekly run is, so its success starts the right next run:
STAGE = "mlops/stage"
OBSERVED = "observed_weeks"  # new weeks conditioned -> the coming week's inputs, the new weeks monitored
INPUTS = "forecast_inputs"  # the coming week's inputs built -> it is forecast
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
ALL = "all"


# --- what changed in the landing folder --------------------------------------------------------


def file_stamps(landing: Path) -> dict[str, list[int]]:
    """{relative path: [size, mtime_ns]} of every landing file: one listing, no reads."""
    out = {}
    for table in contract.TABLES.values():
        for path, size, mtime in contract.table_stamps(landing, table):
            out[path.relative_to(landing).as_posix()] = [size, mtime]
    return out


def detect_changes(landing: Path, known: dict[str, list]) -> tuple[dict[str, list], list[str], list[str]]:
    """(state, changed, removed): a file whose size or mtime moved is hashed, and counts as changed
    only if its content differs from what was known; ``state`` maps path -> [size, mtime, sha256,
    and, once the file has changed, {region|week: digest of its rows}]."""
    state, changed = {}, []
    for rel, (size, mtime) in file_stamps(landing).items():
        before = known.get(rel)
        if before and before[0] == size and before[1] == mtime:
            state[rel] = before
            continue
        digest = contract.file_digest(landing / rel)
        state[rel] = [size, mtime, digest, *before[3:4]] if before else [size, mtime, digest]
        if not before or before[2] != digest:
            changed.append(rel)
    return state, sorted(changed), sorted(set(known) - set(state))


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    with source(path) as f:
        if path.suffix == ".parquet":
            return pd.read_parquet(f, columns=columns).astype(str)
        return pd.read_csv(f, usecols=columns, dtype=str, keep_default_na=False)


def _monday(dates: pd.Series) -> pd.Series:
    days = pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce")
    return (days - pd.to_timedelta(days.dt.weekday, unit="D")).dt.strftime("%Y-%m-%d")


def partition_digests(frame: pd.DataFrame, folder: str, region_of_store: dict, regions_of_zip: dict) -> dict:
    """{region|week: digest of that region's rows of that week} of one landing file: what tells
    which partitions a changed file really changed (rows in any order)."""
    if folder in ("shipments", "returns"):
        keys = pd.DataFrame({"region": frame["store_id"].map(region_of_store), "week": frame["week_start"]})
    else:  # weather: a zip code may serve stores of several regions
        keys = pd.DataFrame({"region": frame["zip_code"].map(lambda z: sorted(regions_of_zip.get(z, ()))),
                             "week": _monday(frame["date"])}).explode("region")
    rows = pd.util.hash_pandas_object(frame[sorted(frame.columns)], index=False).reindex(keys.index)
    keys = keys.assign(hash=rows.to_numpy()).dropna(subset=["region", "week"])
    sums = keys.groupby(["region", "week"])["hash"].sum()  # order-free: wraps around uint64
    return {f"{r}|{w}": format(int(h) & (2**64 - 1), "016x") for (r, w), h in sums.items()}


def affected_partitions(landing: Path, changed: list[str], removed: list[str], known: dict | None = None,
                        state: dict | None = None) -> dict | str:
    """The region x weeks the changed files touch, {region: [first, last]}: for a file seen change
    before, the partitions whose rows differ from last time; for a new file, all of its partitions.
    "all" when a master or the events changed, a file went away, or a file cannot be read
    (validation will say why). The new per-partition digests are recorded in ``state``."""
    if removed or any("/" not in rel for rel in changed):
        return ALL
    known, state = known or {}, state if state is not None else {}
    stores = _read(contract.table_files(landing, contract.TABLES["stores"])[0], ["store_id", "region", "zip_code"])
    region_of_store = dict(zip(stores["store_id"], stores["region"]))
    regions_of_zip = stores.groupby("zip_code")["region"].apply(set).to_dict()
    weeks: dict[str, set] = {}
    for rel in changed:
        try:
            digests = partition_digests(_read(landing / rel), rel.split("/", 1)[0], region_of_store, regions_of_zip)
        except (ValueError, KeyError, OSError):
            return ALL
        before = known.get(rel, [])[3] if len(known.get(rel, [])) > 3 else None
        touched = digests if before is None else {
            k for k in digests.keys() | before.keys() if digests.get(k) != before.get(k)}
        if rel in state:
            state[rel] = [*state[rel][:3], digests]
        for key in touched:
            region, week = key.split("|")
            weeks.setdefault(region, set()).add(week)
    return {r: [min(w), max(w)] for r, w in sorted(weeks.items())}


# --- reading the instance and the storage cheaply ------------------------------------------------


def delivered_weeks(instance: dg.DagsterInstance) -> tuple[str, str] | None:
    """The first and the latest week with shipments, from the ``shipments`` table's metadata (no
    table read); None before any."""
    event = instance.get_latest_materialization_event(dg.AssetKey("shipments"))
    meta = event.asset_materialization.metadata if event else {}
    return (meta["first_week"].value, meta["last_week"].value) if "last_week" in meta else None


def last_delivered_week(instance: dg.DagsterInstance) -> str | None:
    weeks = delivered_weeks(instance)
    return weeks[1] if weeks else None


def validated_regions(storage: StorageResource) -> list[str]:
    """Regions of the last validated stores table (a small file)."""
    if not storage.exists("stores.parquet"):
        return []
    return list(dict.fromkeys(storage.read_parquet("stores.parquet")["region"].tolist()))


def next_week(week: str) -> str:
    return (dt.date.fromisoformat(week) + dt.timedelta(weeks=1)).isoformat()


def stored_weeks(storage: StorageResource, asset: str, region: str, last: int | None = None) -> list[str]:
    weeks = storage.files(f"{asset}/{region}")
    return weeks[-last:] if last else weeks


def region_evidence(storage: StorageResource, region: str, version: str) -> tuple[list, list, list, list]:
    """(drift history, level history, accuracy history, regional history) of a region's recent
    weeks monitored against ``version``: the latest week assessed when it was forecast, the latest
    assessed once its actuals landed, the realized MAPE of the last five evaluated weeks, and the
    latest week its demand was compared with the other regions' (unless that comparison was
    provisional: a region whose week a champion forecast was not evaluated yet)."""
    drift, levels, accuracy, compared = [], [], [], []
    for asset, into in ((REGIONAL, compared), ("drift_metrics", drift)):
        for week in stored_weeks(storage, asset, region, last=1):
            found = stored_assessment(storage.read_parquet(f"{asset}/{region}/{week}.parquet"), version)
            if found and not found["pending"]:  # provisional: a region's week still to come (compared again then)
                into.append(found)
    for week in stored_weeks(storage, "forecast_accuracy", region, last=5):
        table = storage.read_parquet(f"forecast_accuracy/{region}/{week}.parquet")
        if not len(table) or "model_version" not in table:
            continue
        table = table[table["model_version"] == version]
        row = table[table["scope"] == "region"]
        if len(row):
            accuracy.append({"week": week, "mape": float(row["mape"].iloc[0]),
                             "holdout_mape": float(row["holdout_mape"].iloc[0])})
        found = stored_assessment(table)  # its rows are the version's already
        if found:
            levels.append(found)
    return drift, levels, accuracy, compared


def retrain_causes(storage: StorageResource, champion, region: str, rules_: rules.RetrainRules,
                   current_code: str) -> list[dict]:
    """Why ``region`` should be retrained, from its stored monitoring and its champion's tags
    (``retrain_decision`` says which causes can be acted on now)."""
    if champion is None:
        return []
    version = f"demand-forecast-{region}/{champion.version}"
    drift, levels, accuracy, compared = region_evidence(storage, region, version)
    weeks = stored_weeks(storage, "features", region, last=1)
    upcoming = weeks[-1] if weeks else dt.date.today().isoformat()
    found = [rules.level_cause(levels) or rules.level_cause(compared), rules.drift_cause(drift),
             rules.accuracy_cause(accuracy, rules_),
             rules.stale_cause(champion.as_of_week, upcoming, rules_),
             rules.code_cause(champion.tags.get("code_version"), current_code, upcoming)]
    return [c for c in found if c]


def learnable_through(storage: StorageResource, region: str) -> str | None:
    """The region's latest week whose features carry its actuals: the last week a training run
    would learn from now (a champion's ``as_of_week`` is the same thing, as of its training). Read
    from the features, not from net_demand: a weekly run writes net_demand first, and a week whose
    features failed their checks is not one a training can learn from."""
    for week in reversed(stored_weeks(storage, "features", region, last=2)):  # the coming week's has none
        if storage.read_parquet(f"features/{region}/{week}.parquet", columns=["target"])["target"].notna().any():
            return week
    return None


def retrain_decision(storage: StorageResource, champion, region: str, rules_: rules.RetrainRules,
                     current_code: str) -> tuple[list[dict], list[dict]]:
    """(causes to retrain ``region`` on now, causes waiting for a week the champion has not seen)."""
    causes = retrain_causes(storage, champion, region, rules_, current_code)
    if not causes:
        return [], []
    return rules.act_or_wait(causes, champion.as_of_week, learnable_through(storage, region))


def monitored_span(scored_weeks: list[str], first: str, last: str) -> tuple[str, str] | None:
    """The weeks ``first`` .. ``last`` that are scored-week partitions (first and last), if any:
    drift and realized accuracy exist from the first week a champion forecast on."""
    inside = [w for w in scored_weeks if first <= w <= last]
    return (inside[0], inside[-1]) if inside else None


def inputs_for(run, region: str, week: str, default_trigger: str) -> dg.RunRequest:
    """The weekly run that builds ``week``'s inputs of ``region`` after ``run``, once, with
    ``run``'s trigger; its success forecasts the week (``scoring_after_conditioning``)."""
    return dg.RunRequest(run_key=f"{run.run_id}-{region}-inputs", job_name=weekly_job.name,
                         partition_key=f"{region}|{week}",
                         asset_selection=FORECAST_INPUTS,
                         tags={TRIGGER: run.tags.get(TRIGGER, default_trigger), REGION: region, SCORE_WEEK: week,
                               STAGE: INPUTS})


# --- the sensors -----------------------------------------------------------------------------


@dg.sensor(
    name="region_discovery",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a region partition for every region found in stores.csv: onboarding is adding data. "
                "Reads stores.csv only when it changed.",
)
def region_discovery_sensor(context: dg.SensorEvaluationContext, landing: LandingResource,
                            mlflow: MlflowRegistryResource):
    files = contract.table_stamps(landing.root, contract.TABLES["stores"])
    stamp = json.dumps([[p.name, size, mtime] for p, size, mtime in files])
    known = set(context.instance.get_dynamic_partitions(region_partitions.name))
    if stamp == context.cursor:
        return dg.SkipReason(f"stores.csv unchanged ({len(known)} regions known)")
    stores = contract.check_table(landing.root, contract.TABLES["stores"], lambda extra: schemas.stores_schema()).valid
    found = [r for r in dict.fromkeys(stores["region"].tolist()) if r not in known]
    retired = [r for r in found if mlflow.registry.retired(r)]  # back only through `mlops-assets onboard`
    new = [r for r in found if r not in retired]
    if retired:
        context.log.warning(f"retired regions with stores again, not added: {', '.join(retired)} "
                            "(the alerts name them; `mlops-assets onboard REGION` takes one back)")
    if not new:
        return dg.SensorResult(skip_reason=f"no new regions ({len(known)} known)", cursor=stamp)
    context.log.info(f"new regions: {', '.join(new)}")
    return dg.SensorResult(dynamic_partitions_requests=[region_partitions.build_add_request(new)], cursor=stamp)


Status = dg.DefaultSensorStatus  # RUNNING in prod, STOPPED in dev


def build_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The environment's sensors: on in prod, off in dev (``MLOPS_AUTOMATION``), ticking every
    ``MLOPS_SENSOR_INTERVAL`` seconds; one factory each below."""
    status = dg.DefaultSensorStatus.RUNNING if settings.automation else dg.DefaultSensorStatus.STOPPED
    every = settings.sensor_interval
    scored = week_partitions(settings.first_scored_week or settings.first_week)  # its keys grow with time
    return [region_discovery_sensor,
            landing_files_sensor(status, every),
            conditioning_after_validation_sensor(settings, status, every),
            scoring_after_conditioning_sensor(scored, status, every),
            retrain_on_model_health_sensor(status, every),
            scoring_after_promotion_sensor(status, every),
            alert_on_run_failure_sensor(status, every),
            comparison_after_monitoring_sensor(status, every),
            alerts_after_monitoring_sensor(status, every)]


def landing_files_sensor(status: Status, every: int) -> dg.SensorDefinition:
    @dg.sensor(name="landing_files", jobs=[observe_landing_job, tables_job], minimum_interval_seconds=every,
               default_status=status,
               description="When landing files are added, changed or removed: record their hashes and validate the "
                           "tables, tagged with the region x weeks the files touch.")
    def landing_files(context: dg.SensorEvaluationContext, landing: LandingResource):
        # "id" is new whenever the cursor is (first tick, or a reset): with the sequence number it
        # makes run keys that no earlier cursor used, since Dagster remembers run keys for good
        state = json.loads(context.cursor) if context.cursor else {"id": uuid.uuid4().hex[:8], "seq": 0, "files": {}}
        files, changed, removed = detect_changes(landing.root, state["files"])
        if not state["files"]:
            # first tick: what `mlops-assets run` (or an earlier deployment) already validated is not new
            changed = _unvalidated(context.instance, landing, changed)
        if not changed and not removed:
            return dg.SensorResult(skip_reason="landing files unchanged",
                                   cursor=json.dumps({**state, "files": files}))
        # the sequence number, not the content hash, makes the run key: a folder that returns to
        # an earlier content is validated again
        seq = state["seq"] + 1
        scope = affected_partitions(landing.root, changed, removed, state["files"], files)
        tags = {TRIGGER: "new_data", AFFECTED: json.dumps(scope),
                "mlops/changed_files": ", ".join([*changed, *removed])[:500]}
        context.log.info(f"{len(changed)} changed and {len(removed)} removed landing files; affected: {scope}")
        key = f"{state['id']}-{seq}"
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"observe-{key}", job_name=observe_landing_job.name, tags=tags),
                          dg.RunRequest(run_key=f"tables-{key}", job_name=tables_job.name, tags=tags)],
            cursor=json.dumps({"id": state["id"], "seq": seq, "files": files}))

    return landing_files


def conditioning_after_validation_sensor(settings: Settings, status: Status, every: int) -> dg.SensorDefinition:
    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="conditioning_after_validation",
                          monitored_jobs=[tables_job], request_jobs=[weekly_job],
                          minimum_interval_seconds=every, default_status=status,
                          description="After new data is validated: condition and build features of exactly the "
                                      "affected region x weeks (one run per region).")
    def conditioning_after_validation(context: dg.RunStatusSensorContext, storage: StorageResource,
                                      mlflow: MlflowRegistryResource):
        run = context.dagster_run
        if run.tags.get(TRIGGER) != "new_data":
            return dg.SkipReason(f"run {run.run_id} was not started by new data")
        delivered = delivered_weeks(context.instance)
        if delivered is None:
            return dg.SkipReason("no shipments delivered yet")
        first_delivered, last = delivered
        # a deployment fed by sensors alone: its first delivery says where the weeks begin (as
        # `mlops-assets run` records it), not the 2001 floor of a home that recorded nothing
        # (read every tick: this code server's definitions may predate the recording)
        if first_week_is_set(settings.home):
            floor = resolve_first_week(settings.home)
        else:
            floor = first_delivered
            record_weeks(settings.home, first_week=first_delivered)
        # the regions of the stores just validated: one that region_discovery has not added yet is
        # added here, so its first delivery is not lost
        known = context.instance.get_dynamic_partitions(region_partitions.name)
        regions = list(dict.fromkeys([*known, *validated_regions(storage)]))
        # a retired region's stores are validated like any, but it comes back only when a person
        # onboards it (the alerts say its data landed)
        regions = [r for r in regions if r in known or not mlflow.registry.retired(r)]
        new_regions = [r for r in regions if r not in known]
        scope = json.loads(run.tags.get(AFFECTED, json.dumps(ALL)))
        if scope == ALL:
            scope = {r: [floor, next_week(last)] for r in regions}
        upcoming = week_to_score(last)  # the week to forecast once these weeks are conditioned
        requests = []
        for region, (first, end) in sorted(scope.items()):
            if region not in regions:
                continue
            tags = {TRIGGER: "new_data", REGION: region, SCORE_WEEK: upcoming}
            if first <= last:
                first = max(first, floor)
                # the features of the year after a changed week read it through their lags
                end = min(last, (dt.date.fromisoformat(end) + dt.timedelta(weeks=HISTORY_WEEKS)).isoformat())
                requests.append(dg.RunRequest(run_key=f"{run.run_id}-{region}", job_name=weekly_job.name,
                                              tags={**tags, STAGE: OBSERVED, RANGE_START: f"{region}|{first}",
                                                    RANGE_END: f"{region}|{end}"}))
            else:  # only the coming week changed (a new weather forecast, say): forecast it again
                requests.append(inputs_for(run, region, upcoming, "new_data"))
        if not requests:
            return dg.SkipReason("the changed files touch no known region")
        return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=(
            [region_partitions.build_add_request(new_regions)] if new_regions else []))

    return conditioning_after_validation


def scoring_after_conditioning_sensor(scored: dg.PartitionsDefinition, status: Status,
                                      every: int) -> dg.SensorDefinition:
    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="scoring_after_conditioning",
                          monitored_jobs=[weekly_job], request_jobs=[weekly_job, scoring_job, monitoring_job],
                          minimum_interval_seconds=every, default_status=status,
                          description="After a region's new weeks are conditioned: build its coming week's inputs and "
                                      "monitor the new weeks (drift, realized accuracy); once the inputs are built, "
                                      "forecast the coming week.")
    def scoring_after_conditioning(context: dg.RunStatusSensorContext, storage: StorageResource):
        run = context.dagster_run
        region, week, stage = run.tags.get(REGION), run.tags.get(SCORE_WEEK), run.tags.get(STAGE)
        if not region or not week or stage not in (OBSERVED, INPUTS):
            return dg.SkipReason(f"run {run.run_id} names no region and week to forecast (not started by a sensor)")
        trigger = {TRIGGER: run.tags.get(TRIGGER, "new_data"), REGION: region}
        if stage == INPUTS:
            return dg.RunRequest(run_key=f"{run.run_id}-score", job_name=scoring_job.name,
                                 partition_key=f"{region}|{week}", tags=trigger)
        requests = [inputs_for(run, region, week, "new_data")]
        # only weeks that were forecast have forecasts to monitor (a deployment fed by sensors alone
        # has scored partitions from its first week, and none of its history was forecast)
        forecast = set(stored_weeks(storage, "scores", region))
        span = monitored_span([w for w in scored.get_partition_keys() if w in forecast],
                              run.tags[RANGE_START].split("|")[1], run.tags[RANGE_END].split("|")[1])
        if span:
            requests.append(dg.RunRequest(run_key=f"{run.run_id}-monitor", job_name=monitoring_job.name, tags={
                **trigger, RANGE_START: f"{region}|{span[0]}", RANGE_END: f"{region}|{span[1]}"}))
        return requests

    return scoring_after_conditioning


def retrain_on_model_health_sensor(status: Status, every: int) -> dg.SensorDefinition:
    @dg.sensor(name="retrain_on_model_health", job=training_job, minimum_interval_seconds=every,
               default_status=status,
               description="Retrains a region whose demand or forecast bias shifted, whose champion drifted, lost "
                           "accuracy, went stale or was trained by "
                           "other model code; one request per region and cause for each champion, and for a cause "
                           "other than new code only once a week the champion has not seen has landed.")
    def retrain_on_model_health(context: dg.SensorEvaluationContext, storage: StorageResource,
                                mlflow: MlflowRegistryResource, monitoring: MonitoringResource):
        requested = json.loads(context.cursor) if context.cursor else {}
        registry, current_code = mlflow.registry, code_version()
        requests, waiting = [], []
        for region in context.instance.get_dynamic_partitions(region_partitions.name):
            champion = registry.champion(region)
            causes, wait = retrain_decision(storage, champion, region, monitoring.retrain_rules, current_code)
            if wait:
                waiting.append(f"{region} ({'+'.join(c['cause'] for c in wait)}: trained on every week observed, "
                               f"through {champion.as_of_week}; retrains once a newer week lands)")
            done = requested.get(region, {})
            new = [c for c in causes if done.get(c["cause"]) != champion.version]
            if not new:
                continue
            names = "+".join(c["cause"] for c in new)
            requests.append(dg.RunRequest(
                run_key=f"retrain-{region}-v{champion.version}-{names}", partition_key=region,
                tags={TRIGGER: rules.primary(new),
                      REASONS: "; ".join(f"{c['cause']}: {c['detail']}" for c in new)[:1000],
                      REGION: region}))
            requested[region] = {**done, **{c["cause"]: champion.version for c in new}}
            context.log.info(f"retrain {region}: " + "; ".join(f"{c['cause']} ({c['detail']})" for c in new))
        if waiting:
            context.log.info("waiting for new data: " + "; ".join(waiting))
        idle = ("no retrain now: " + "; ".join(waiting)) if waiting else \
            "every champion is healthy (or already retraining)"
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(requested, sort_keys=True),
                               skip_reason=None if requests else idle)

    return retrain_on_model_health


def scoring_after_promotion_sensor(status: Status, every: int) -> dg.SensorDefinition:
    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="scoring_after_promotion",
                          monitored_jobs=[training_job], request_job=weekly_job, minimum_interval_seconds=every,
                          default_status=status,
                          description="When a training run promoted a new champion, forecast the coming week with it "
                                      "(its inputs built afresh first).")
    def scoring_after_promotion(context: dg.RunStatusSensorContext, mlflow: MlflowRegistryResource):
        run = context.dagster_run
        region, last = run.tags.get("dagster/partition"), last_delivered_week(context.instance)
        champion = mlflow.registry.champion(region) if region else None
        if champion is None or champion.tags.get("dagster_run_id") != run.run_id or last is None:
            return dg.SkipReason(f"run {run.run_id} promoted no champion")
        return inputs_for(run, region, week_to_score(last), default_trigger="manual")

    return scoring_after_promotion


def alert_on_run_failure_sensor(status: Status, every: int) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name="alert_on_run_failure", minimum_interval_seconds=every, default_status=status,
                           request_job=alerting_job,
                           description="A failed run becomes an alert: a row of `alerts` (and so a webhook call) "
                                       "until a later run of the same job and partition succeeds.")
    def alert_on_run_failure(context: dg.RunFailureSensorContext, storage: StorageResource):
        run = context.dagster_run
        partition = run.tags.get("dagster/partition") or run.tags.get(RANGE_START, "")
        region = partition.split("|")[0] if partition else run.tags.get(REGION, "*")
        found = alerting.alert(region, partition.split("|")[1] if "|" in partition else "", "run_failure",
                               alerting.ERROR, None, None,
                               f"run of job {run.job_name} failed: {context.failure_event.message}", run.run_id)
        storage.write_text(f"alerts/failures/{run.run_id}.json", json.dumps(found) + "\n")
        if run.job_name == alerting_job.name:
            return None  # the alerts job failing must not request itself forever
        return dg.RunRequest(run_key=f"{run.run_id}-alerts", tags={TRIGGER: run.tags.get(TRIGGER, "manual")})

    return alert_on_run_failure


# one comparison run at a time (dagster.yaml's tag_concurrency_limits), in the order queued
COMPARISON_TAG = "mlops/comparison"


def comparison_after_monitoring_sensor(status: Status, every: int) -> dg.SensorDefinition:
    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="comparison_after_monitoring",
                          monitored_jobs=[monitoring_job], request_job=comparison_job,
                          minimum_interval_seconds=every, default_status=status,
                          description="After a region's weeks are monitored, compare every region's demand in those "
                                      "weeks (regional_comparison): a later region's run compares them again, with "
                                      "its own weeks in.")
    def comparison_after_monitoring(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        first = run.tags.get(RANGE_START) or run.tags.get("dagster/partition", "")
        last = run.tags.get(RANGE_END) or first
        if "|" not in first:
            return dg.SkipReason(f"run {run.run_id} names no region and week")
        return dg.RunRequest(run_key=f"{run.run_id}-compare", tags={
            TRIGGER: run.tags.get(TRIGGER, "manual"), RANGE_START: first.split("|")[1],
            RANGE_END: last.split("|")[1], COMPARISON_TAG: "weeks"})

    return comparison_after_monitoring


def alerts_after_monitoring_sensor(status: Status, every: int) -> dg.SensorDefinition:
    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="alerts_after_monitoring",
                          monitored_jobs=[scoring_job, monitoring_job, comparison_job], request_job=alerting_job,
                          minimum_interval_seconds=every, default_status=status,
                          description="Refresh the alerts table after new drift, accuracy or scores.")
    def alerts_after_monitoring(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        return dg.RunRequest(run_key=f"{run.run_id}-alerts", tags={TRIGGER: run.tags.get(TRIGGER, "manual")})

    return alerts_after_monitoring


def _unvalidated(instance: dg.DagsterInstance, landing: LandingResource, changed: list[str]) -> list[str]:
    """Of the files seen on a first tick, those of tables whose content differs from the data
    version last observed in this instance (all of them in a new instance)."""
    stale = []
    for name in contract.TABLES:
        record = instance.get_latest_data_version_record(dg.AssetKey(f"raw_{name}"))
        observed = record.asset_observation.data_version if record and record.asset_observation else None
        if observed != landing.data_version(name):
            stale.append(contract.TABLES[name])
    prefixes = tuple(t.pattern for t in stale)
    return [rel for rel in changed if rel.startswith(prefixes)]

"""Model health: ``drift_metrics`` and ``forecast_accuracy`` [region x week],
``regional_comparison`` [week] and ``alerts``.

The two monitors load their inputs, call ``mlops_assets.monitoring`` and record what they found
as metadata and asset check results (WARN or ERROR, never blocking: a drifting week still gets
its forecast). ``alerts`` gathers what is open now, over every region: the latest evaluated week
of each monitor, the latest forecast, and failed runs not yet followed by a success; it alone
POSTs to the webhook, and only alerts that were not open before.
"""


import datetime as dt
import json
from collections import Counter

import dagster as dg
import pandas as pd

from mlops_assets.ml.ensemble import BASELINE_VERSION
from mlops_assets.ml.featurize import at_forecast_time
from mlops_assets.monitoring import alerts as alerting
from mlops_assets.monitoring import monitor, regional
from mlops_assets.monitoring.accuracy import realized_accuracy, realized_rows
from mlops_assets.partitions import WEEK, latest_materializations, region_partitions, weeks_by_region
from mlops_assets.registry.tracking import RegistryError, Release
from mlops_assets.resources.alerting import MonitoringResource
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource
from mlops_assets.resources.storage import ALLOW_MISSING, SKIPPED, StorageResource

KEY = ["week_start", "store_id", "product_id"]
RANGE_START = "dagster/asset_partition_range_start"
FAILURES_KEPT = 50  # the newest failed-run alerts that are looked at
ALERT_KEY = ["region", "week", "kind", "severity"]


def _week(frame: pd.DataFrame, region: str, week: str) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[(frame["region"] == region) & (frame["week_start"] == pd.Timestamp(week))].reset_index(drop=True)


class _Models:
    """The registered versions a run needs, each loaded once: the version that scored a week, or
    the champion for a week not scored yet."""

    def __init__(self, mlflow: MlflowRegistryResource):
        self.registry = mlflow.registry
        self._champions: dict[str, Release | None] = {}
        self._loaded: dict = {}

    def champion(self, region: str) -> Release | None:
        if region not in self._champions:
            self._champions[region] = self.registry.champion(region)
        return self._champions[region]

    def load(self, release: Release):
        """The registered model of ``release``, loaded once per run."""
        key = (release.region, release.version)
        if key not in self._loaded:
            self._loaded[key] = self.registry.load_forecast_model(release)
        return self._loaded[key]

    def release_of(self, region: str, scores: pd.DataFrame) -> Release | None:
        version = str(scores["model_version"].iloc[0]) if len(scores) else ""
        if "/" in version:
            return self.registry.release(region, version.rsplit("/", 1)[1])
        return None if version == BASELINE_VERSION else self.champion(region)


def _json(value) -> dg.MetadataValue:
    return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))


def _weekly_monitor(name: str, partitions_def, checks: list, description: str) -> dict:
    """The asset arguments drift_metrics and forecast_accuracy share: a week's features and, where
    the week was scored, its scores."""
    return dict(name=name, partitions_def=partitions_def, backfill_policy=dg.BackfillPolicy.single_run(),
                # a week without features (its data has not landed) is skipped, and says so
                ins={"features": dg.AssetIn(metadata={ALLOW_MISSING: True}),
                     "scores": dg.AssetIn(metadata={ALLOW_MISSING: True})},
                group_name="monitoring", io_manager_key="parquet_io_manager",
                check_specs=[dg.AssetCheckSpec(check, asset=name, description=text, partitions_def=partitions_def)
                             for check, text in checks],
                description=description, kinds={"pandas", "parquet"})


def _weeks(context: dg.AssetExecutionContext, features: pd.DataFrame, scores: pd.DataFrame):
    """(region, week, the week's features, its scores) of every partition of the run, in order."""
    for region, weeks in sorted(weeks_by_region(context).items()):
        for week in sorted(weeks):
            yield region, week, _week(features, region, week), _week(scores, region, week)


HISTORY_WEEKS = 60  # earlier weeks a monitor reads back: the baselines look back 17, the scales further


def _history(storage: StorageResource, asset: str, region: str, week: str, version: str) -> list[dict]:
    """The stored assessments of ``region``'s weeks before ``week`` by model ``version``, oldest
    first (``monitoring.monitor.from_table``): what its baselines are made of."""
    found = (monitor.stored_assessment(storage.read_parquet(f"{asset}/{region}/{earlier}.parquet"), version)
             for earlier in [w for w in storage.files(f"{asset}/{region}") if w < week][-HISTORY_WEEKS:])
    return [f for f in found if f]


class _Assessor:
    """A run's assessments of one stage, week after week: each region's history read once from
    storage, then extended by the run's own weeks (a range run assesses its weeks in order)."""

    def __init__(self, storage: StorageResource, asset: str, limits: monitor.MonitorLimits):
        self.storage, self.asset, self.limits, self._history = storage, asset, limits, {}

    def assess(self, region: str, week: str, model, rows: pd.DataFrame, forecasts, actuals=None) -> dict:
        key = (region, model.version)
        if key not in self._history:
            self._history[key] = _history(self.storage, self.asset, region, week, model.version)
        history = self._history[key]
        found = monitor.assess_week(model.reference, rows, week, forecasts, actuals, self.limits, history)
        history.append(found)
        return found


def _serving(scored: pd.DataFrame, feats: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The week's rows as they were forecast, and the forecast that served each (NaN where none)."""
    rows = at_forecast_time(feats).reset_index(drop=True)
    forecasts = rows[KEY].merge(scored[[*KEY, "forecast"]], on=KEY, how="left")["forecast"]
    return rows, forecasts


def _plotted(assessment: dict, names: tuple[str, ...]) -> dict:
    """A partition's numbers the UI plots over weeks: each signal's z and limit."""
    out = {}
    for name in names:
        signal = assessment["signals"].get(name, {})
        if signal.get("z") is not None:
            out[f"{name} z"] = float(signal["z"])
            out[f"{name} limit"] = float(signal["limit"])
    return out


def _verdict(assessment: dict) -> str:
    if assessment.get("status") != "assessed":
        return assessment.get("status", "not assessed")
    out = "flagged: " + "; ".join(assessment["reasons"]) if assessment["flagged"] else "no signal beyond its limit"
    if assessment.get("unseen_time_of_year"):
        out += f"; demand and the forecasts not judged: {assessment['unseen_time_of_year']}"
    return out


def _unjudged(found: dict[str, dict]) -> str:
    """' (... not judged in N weeks ...)' for a check's description, or ''."""
    weeks = [k for k, a in found.items() if a.get("unseen_time_of_year")]
    return (f" ({len(weeks)} week(s) not judged: the reference year of their model does not hold their week of the "
            f"year)") if weeks else ""


LEVEL_SIGNALS = ("demand", "spread", "error")  # forecast_accuracy's signals, judged once a week's actuals land


def _unmeasured(found: dict[str, dict], names: tuple[str, ...]) -> str:
    """'; ...' for every week of ``found`` that was not assessed at all (its status, once per
    reason), and for each signal of ``names`` (under its ``monitor.LABELS`` name) an assessed
    week did not measure (why, once per reason: a model trained before the signal existed, too few
    stores or calibration weeks), each with how many of the weeks; '' where every signal was measured in
    every week. So a check that passes never reads as if it had judged what it could not. Weeks
    whose time of year the reference does not hold are ``_unjudged``'s for demand."""
    weeks = len(found)
    skipped = Counter(a.get("status") or "not assessed" for a in found.values() if not a.get("signals"))
    out = [f"; {n} of {weeks} week(s) not assessed: {status}" for status, n in skipped.items()]
    for name in names:
        why = Counter((a["signals"].get(name) or {}).get("status") or "not measured" for a in found.values()
                      if a.get("signals") and not (a["signals"].get(name) or {}).get("windows")
                      and not (name == "demand" and a.get("unseen_time_of_year")))
        out += [f"; {monitor.LABELS[name]}: {reason} ({n} of {weeks} week(s))" for reason, n in why.items()]
    return "".join(out)


def level_shift_description(found: dict[str, dict]) -> str:
    """The ``level_shift`` check's description of ``found`` ({'region|week': assessment}): the
    flagged weeks' reasons (the first five), else what was within its limits and what could not
    be judged."""
    shifted = {k: a for k, a in found.items() if a["flagged"]}
    if shifted:
        return "; ".join(f"{k}: {'; '.join(a['reasons'])}" for k, a in list(shifted.items())[:5])
    if not found:
        return "nothing assessed"
    *most, last = (monitor.LABELS[name] for name in LEVEL_SIGNALS)
    return (f"{', '.join(most)} and {last} within their limits where measured" + _unjudged(found)
            + _unmeasured(found, LEVEL_SIGNALS))


def build_drift_metrics(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(**_weekly_monitor(
        "drift_metrics", partitions_def,
        [("feature_drift", "The week's covariates (weather, demographics) and its mix of series (new, gone, per "
                           "category) within their limits."),
         ("prediction_drift", "The week's forecasts within their limit of what the serving model's forecasts of its "
                              "reference year say the week should look like.")],
        "When a week is forecast, against the reference saved with the model that serves it: the forecasts' level "
        "(each series against its own reference, a robust mean over series weighted by their steadiness), each "
        "covariate's weekly mean, and the mix of series. Each signal is judged against its own recent weeks, "
        "its limit from a stated false-alarm rate (monitoring/monitor.py). One row per signal and window."))
    def drift_metrics(context: dg.AssetExecutionContext, features: pd.DataFrame, scores: pd.DataFrame,
                      mlflow: MlflowRegistryResource, monitoring: MonitoringResource, storage: StorageResource):
        models = _Models(mlflow)
        assessor = _Assessor(storage, "drift_metrics", monitoring.monitor_limits)
        tables, found, status = [], {}, {}
        for region, week, feats, scored in _weeks(context, features, scores):
            key = f"{region}|{week}"
            release = models.release_of(region, scored)
            if release is None or feats.empty:
                status[key] = ("skipped: " + ("no features for this week (its data has not landed)"
                                             if feats.empty else "no champion to compare with"))
                context.log.warning(f"drift_metrics {region} {week}: {status[key]}")
                continue
            model = models.load(release)
            rows, forecasts = _serving(scored, feats)
            served = forecasts.to_numpy() if len(scored) and forecasts.notna().all() else None
            assessment = assessor.assess(region, week, model, rows, served)
            tables.append(monitor.to_table(assessment, region, model.version))
            found[key] = assessment
        out = pd.concat(tables, ignore_index=True) if tables else monitor.to_table(
            {"week": "2000-01-03", "stage": monitor.FORECAST_TIME, "signals": {}}, "", "").iloc[0:0]
        # a week with nothing assessed writes no file: an empty one would read as "nothing moved" later
        out.attrs[SKIPPED] = [key for key in map(str, context.partition_keys) if key not in found]
        for key in context.partition_keys:
            a = found.get(str(key))
            context.add_asset_metadata(
                {"status": status.get(str(key), "skipped")} if a is None else
                {"verdict": _verdict(a), "status": a["status"],
                 "flagged signals": ", ".join(n for n, s in a["signals"].items() if s["flagged"]) or "none",
                 **_plotted(a, ("forecast",)), "series": int(a.get("series", 0))}, partition_key=key)
        yield dg.Output(out)
        moved = {k: names for k, a in found.items()
                 for names in [[n for n, s in a["signals"].items() if s["flagged"] and n != "forecast"]] if names}
        predicted = [k for k, a in found.items() if a["signals"].get("forecast", {}).get("flagged")]
        yield dg.AssetCheckResult(
            check_name="feature_drift", passed=not moved, severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(f"{k}: {', '.join(v)}" for k, v in moved.items()) or
            ("covariates and mix within their limits" if found else "nothing assessed"),
            metadata={"partitions": ", ".join(found) or "none", "weeks_flagged": len(moved)})
        yield dg.AssetCheckResult(
            check_name="prediction_drift", passed=not predicted, severity=dg.AssetCheckSeverity.WARN,
            description=f"forecasts beyond their limit in {', '.join(predicted)}" if predicted else
            ("forecasts within their limit" + _unjudged(found) if found else "nothing assessed"),
            metadata={"partitions": ", ".join(found) or "none", "weeks_flagged": len(predicted)})

    return drift_metrics


def build_forecast_accuracy(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(**_weekly_monitor(
        "forecast_accuracy", partitions_def,
        [("realized_accuracy", "Realized MAPE within the 0.45 target (ERROR otherwise) and within the configured "
                               "factor of the model's holdout MAPE (WARN otherwise)."),
         ("level_shift", "The week's demand (each series against its reference level), the spread of its stores "
                         "(each store against the others) and the forecasts' bias within their limits, this week and "
                         "over the last 2 and 4 weeks.")],
        "Once a week's actuals land: realized MAPE (actual > 0), RMSE where actual = 0, RMSE and bias of the "
        "forecasts that served, per segment and for the region (scope rows); the historical-average baseline's on the "
        "same rows; the degradation ratio against the model's holdout MAPE; and the level signals (scope 'signal' "
        "rows: demand, the stores' spread and the forecasts' bias against their recent weeks, monitoring/monitor.py)."))
    def forecast_accuracy(context: dg.AssetExecutionContext, features: pd.DataFrame, scores: pd.DataFrame,
                          mlflow: MlflowRegistryResource, monitoring: MonitoringResource, storage: StorageResource):
        rules = monitoring.retrain_rules
        models = _Models(mlflow)
        assessor = _Assessor(storage, "forecast_accuracy", monitoring.monitor_limits)
        frames, found, evaluated, skipped, levels_found = [], [], {}, [], {}
        for region, week, feats, scored in _weeks(context, features, scores):
            rows = realized_rows(scored, feats) if len(scored) and len(feats) else pd.DataFrame()
            if rows.empty:
                skipped.append(f"{region}|{week}")
                continue
            release = models.release_of(region, scored)
            holdout = models.registry.holdout_mapes(release) if release else {}
            accuracy = realized_accuracy(rows, holdout)
            accuracy.insert(0, "region", region)
            accuracy.insert(1, "week_start", pd.Timestamp(week))
            accuracy["model_version"] = str(scored["model_version"].iloc[0])
            frames.append(accuracy)
            region_row = accuracy[accuracy["scope"] == "region"].iloc[0]
            evaluated[f"{region}|{week}"] = {k: float(region_row[k]) for k in
                                             ("mape", "baseline_mape", "degradation", "rows", "bias_ratio",
                                              "below_p10", "below_p50", "below_p90") if k in region_row}
            found += alerting.accuracy_alerts(region, week, accuracy, rules)
            if release is not None:  # the level signals: against the serving model's reference
                model = models.load(release)
                observed, forecasts = _serving(scored, feats)
                observed = observed[forecasts.notna() & observed["target"].notna()].reset_index(drop=True)
                served = forecasts[forecasts.notna() & at_forecast_time(feats).reset_index(drop=True)["target"].notna()]
                assessment = assessor.assess(region, week, model, observed, served.to_numpy(),
                                             observed["target"].to_numpy(dtype=float))
                frames.append(monitor.to_table(assessment, region, model.version).assign(scope="signal"))
                levels_found[f"{region}|{week}"] = assessment
                found += alerting.signal_alerts(region, week, assessment)
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            {"region": pd.Series(dtype=str), "week_start": pd.Series(dtype="datetime64[ns]")})
        # an unevaluated week writes no file: an empty one would read as the latest evaluation
        # (closing open accuracy alerts, hiding the retrain rules' evidence)
        out.attrs[SKIPPED] = skipped
        if skipped:
            context.log.info(f"forecast_accuracy: nothing to evaluate for {len(skipped)} partition(s) (not "
                             f"scored, or actuals not in yet): {', '.join(skipped[:5])}")
        for key in context.partition_keys:
            v, a = evaluated.get(str(key)), levels_found.get(str(key))
            context.add_asset_metadata(
                {"status": "not evaluated: the week was not scored, or its actuals are not in yet"} if v is None else
                {"status": "evaluated", **({"verdict": _verdict(a)} if a else {}),
                 "realized_mape": v["mape"], "baseline_mape": v["baseline_mape"],
                 "degradation": v["degradation"], "rows": int(v["rows"]),
                 # the band's realized calibration: the share of actuals below each quantile
                 **{k: v[k] for k in ("below_p10", "below_p50", "below_p90") if k in v},
                 **(_plotted(a, LEVEL_SIGNALS) if a else {}),
                 **({"bias": float(a["bias"])} if a and a.get("bias") is not None else {})}, partition_key=key)
        yield dg.Output(out)
        accuracy_found = [a for a in found if a["kind"] in ("accuracy", "worse_than_baseline")]
        errors = [a for a in accuracy_found if a["severity"] == alerting.ERROR]
        yield dg.AssetCheckResult(
            check_name="realized_accuracy", passed=not accuracy_found,
            severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
            description="; ".join(f"{a['region']} {a['week']}: {a['message']}" for a in accuracy_found[:5]) or
            (f"{len(evaluated)} week(s) within target" if evaluated else "no week to evaluate"),
            metadata={"partitions": ", ".join(evaluated) or "none", "target_mape": rules.mape_target})
        shifted = {k: a for k, a in levels_found.items() if a["flagged"]}
        yield dg.AssetCheckResult(
            check_name="level_shift", passed=not shifted, severity=dg.AssetCheckSeverity.WARN,
            description=level_shift_description(levels_found),
            metadata={"partitions": ", ".join(levels_found) or "none", "weeks_flagged": len(shifted)})

    return forecast_accuracy


REGIONAL = regional.ASSET


def _stored_demand(storage: StorageResource, region: str, week: str) -> tuple[float | None, float | None, str] | None:
    """(the region's ``demand`` statistic of ``week``, its z that week, the model version that
    assessed it) from its stored ``forecast_accuracy`` partition; None where the week was not
    evaluated. The statistic is None where the week was not judged (no champion served, too few
    series, a week of the year its reference does not hold): a value the monitor would not judge
    is not compared either."""
    if not storage.exists(f"forecast_accuracy/{region}/{week}.parquet"):
        return None
    table = storage.read_parquet(f"forecast_accuracy/{region}/{week}.parquet")
    rows = table[(table["scope"] == "signal") & (table["signal"] == "demand")] if "signal" in table else table.iloc[0:0]
    if rows.empty:  # evaluated, but not assessed against a champion (the baseline served)
        return None, None, ""
    version = str(rows["model_version"].iloc[0])
    week_row = rows[rows["window"] == 1]
    if week_row.empty or pd.isna(week_row["z"].iloc[0]) or pd.isna(week_row["value"].iloc[0]):
        return None, None, version
    return float(week_row["value"].iloc[0]), float(week_row["z"].iloc[0]), version


def _pending(storage: StorageResource, regions: list[str], evaluated: set[str], week: str) -> list[str]:
    """The regions whose ``week`` a champion forecast but whose ``forecast_accuracy`` is not in yet:
    their monitoring run is still to come (or their actuals)."""
    out = []
    for region in regions:
        if region in evaluated or not storage.exists(f"scores/{region}/{week}.parquet"):
            continue
        versions = storage.read_parquet(f"scores/{region}/{week}.parquet", columns=["model_version"])["model_version"]
        if len(versions) and (versions != BASELINE_VERSION).any():
            out.append(region)
    return out


def _demand_calibration(models: "_Models", region: str, version: str) -> dict[str, float] | None:
    """The ``demand`` statistic over the reference year of model ``version`` (``name/number``)."""
    try:
        release = models.registry.release(region, version.rsplit("/", 1)[1])
    except (RegistryError, IndexError):
        return None
    reference = models.load(release).reference if release else {}
    if reference.get("version") != monitor.MONITOR_VERSION:
        return None
    return reference["levels"]["calibration"]["demand"]


def build_regional_comparison(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=REGIONAL, partitions_def=partitions_def, backfill_policy=dg.BackfillPolicy.single_run(),
        # every region's forecast_accuracy of the same week
        deps=[dg.AssetDep("forecast_accuracy", partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
            partition_dimension_name=WEEK))],
        group_name="monitoring", kinds={"pandas", "parquet"},
        check_specs=[dg.AssetCheckSpec("regional_shift", asset=REGIONAL, partitions_def=partitions_def,
                                       description="Each region's demand within its limit of the other regions' in "
                                                   "the same week (each against its reference level).")],
        description="Per week, over every region: each region's demand statistic (forecast_accuracy's, against "
                    "its champion's reference) less its share of the other regions' mean, judged against its own "
                    "recent weeks like demand (monitoring/regional.py). What the whole chain shares (a promotion, a "
                    "holiday, the weather) moves every region and cancels; one region's own change stands out. One "
                    "file per region and week (regional_comparison/REGION/WEEK.parquet).")
    def regional_comparison(context: dg.AssetExecutionContext, mlflow: MlflowRegistryResource,
                            monitoring: MonitoringResource, storage: StorageResource):
        models, limits = _Models(mlflow), monitoring.monitor_limits
        regions = sorted(context.instance.get_dynamic_partitions(region_partitions.name))
        histories: dict[tuple[str, str], list[dict]] = {}
        calibrations: dict[tuple[str, str], dict | None] = {}
        flagged: dict[str, list[str]] = {}
        for week in sorted(map(str, context.partition_keys)):
            stored = {r: found for r in regions if (found := _stored_demand(storage, r, week)) is not None}
            versions = {r: v for r, (_, _, v) in stored.items()}
            # a comparison without a region whose week is still to be evaluated is provisional: shown
            # and alerted, not acted on by the retrain sensor (the next run compares it again)
            pending = _pending(storage, regions, set(stored), week)
            for r, v in versions.items():
                if v and (r, v) not in calibrations:
                    try:
                        calibrations[r, v] = _demand_calibration(models, r, v)
                    except Exception as exc:  # noqa: BLE001 - one region's broken model must not stop the others'
                        context.log.warning(f"{REGIONAL}: {v} could not be loaded ({type(exc).__name__}: {exc}); "
                                            f"{r} is not compared")
                        calibrations[r, v] = None
                    histories[r, v] = _history(storage, REGIONAL, r, week, v)
            found = regional.assess_week(
                week, {r: value for r, (value, _, _) in stored.items()},
                {r: calibrations.get((r, v)) for r, v in versions.items()},
                {r: histories.get((r, v), []) for r, v in versions.items()}, limits,
                {r: z for r, (_, z, _) in stored.items()})
            meta: dict = {"regions": len(stored), "regions compared": sum(a["status"] == "assessed"
                                                                          for a in found.values()),
                          "models": ", ".join(f"{r} {v or 'none (baseline served)'}" for r, v in versions.items())
                          or "none", "pending": ", ".join(pending) or "none"}
            for r, a in found.items():
                a["pending"] = pending
                # the models whose references judged the weeks it was compared with: a flag traces back
                # to every model behind it, not only the region's own
                a["peer_versions"] = {o: versions[o] for o in a.get("compared_with", [])}
                # every evaluated region's file says how it compared, or why not (no champion served:
                # model version ""); a compared week is read back as this signal's history
                storage.write_parquet(f"{REGIONAL}/{r}/{week}.parquet", monitor.to_table(a, r, versions[r]))
                if a["signals"]:
                    histories[r, versions[r]].append(a)
                signal = a["signals"].get(regional.SIGNAL, {})
                if signal.get("z") is not None:
                    meta[f"{r} z"], meta[f"{r} limit"] = float(signal["z"]), float(signal["limit"])
                    meta[f"{r} coefficient"] = round(float(a["coefficient"]), 3)  # its share of the others' mean
                meta[f"{r} status"] = _verdict(a)
                if a["flagged"]:
                    flagged.setdefault(week, []).append(f"{r}: {a['reasons'][0]}")
            meta["verdict"] = ("flagged: " + "; ".join(flagged[week])) if week in flagged else (
                "no region beyond its limit" if meta["regions compared"] else
                "nothing compared: fewer than two regions with a demand statistic this week" if len(stored) < 2
                else "nothing compared: see each region's status")
            if pending:
                meta["verdict"] += f" (provisional: {', '.join(pending)} not evaluated yet)"
            if not stored:
                context.log.warning(f"{REGIONAL} {week}: no region's forecast_accuracy for this week")
            context.add_asset_metadata(meta, partition_key=week)
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name="regional_shift", passed=not flagged, severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(f"{w}: {'; '.join(v)}" for w, v in list(flagged.items())[:5]) or
            "every region's demand within its limit of the others'",
            metadata={"weeks": ", ".join(map(str, context.partition_keys)), "weeks_flagged": len(flagged)})

    return regional_comparison


def _latest_files(storage: StorageResource, asset: str) -> list[tuple[str, str]]:
    """(region, week) of each region's latest stored partition: a listing, no reads. An alert is
    open while the latest evaluation raises it; a clean later week closes it."""
    root = storage.path / asset
    out = []
    if root.is_dir():
        for region_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            weeks = storage.files(f"{asset}/{region_dir.name}")
            if weeks:
                out.append((region_dir.name, weeks[-1]))
    return out


def _open_failures(storage: StorageResource, instance: dg.DagsterInstance) -> list[dict]:
    """Failed-run alerts whose job and partition have not succeeded since."""
    folder = storage.path / "alerts" / "failures"
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)[-FAILURES_KEPT:] if folder.is_dir() else []
    out = []
    for path in files:
        found = json.loads(path.read_text())
        failed = instance.get_run_by_id(found["run_id"])
        if failed is None:
            continue
        partition = {k: v for k, v in failed.tags.items() if k in ("dagster/partition", RANGE_START)}
        later = instance.get_runs(filters=dg.RunsFilter(job_name=failed.job_name, tags=partition,
                                                        statuses=[dg.DagsterRunStatus.SUCCESS],
                                                        created_after=_created(instance, failed)), limit=1)
        if not later:
            out.append(found)
    return out


def _created(instance: dg.DagsterInstance, run) -> dt.datetime:
    [record] = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run.run_id]), limit=1)
    return record.create_timestamp


def current_alerts(storage: StorageResource, instance: dg.DagsterInstance, monitoring: MonitoringResource,
                   stale_after_days: int) -> list[dict]:
    """Every alert open now: from each region's latest drift, accuracy and forecast, and failed runs."""
    rules = monitoring.retrain_rules
    found: list[dict] = []
    for asset in ("drift_metrics", "forecast_accuracy", REGIONAL):
        for region, week in _latest_files(storage, asset):
            table = storage.read_parquet(f"{asset}/{region}/{week}.parquet")
            if asset == "forecast_accuracy":
                accuracy = table[table["scope"] != "signal"] if "scope" in table else table
                if len(accuracy):
                    found += alerting.accuracy_alerts(region, week, accuracy, rules)
            assessment = monitor.stored_assessment(table)
            if assessment:
                found += alerting.stored_alerts(region, week, assessment)
    for region, week in _latest_files(storage, "scores"):
        scores = storage.read_parquet(f"scores/{region}/{week}.parquet")
        if len(scores) and (scores["model_version"] == BASELINE_VERSION).all():
            found.append(alerting.alert(region, week, "no_champion", alerting.ERROR, None, None,
                                        "no champion could serve: the week is forecast by the historical average"))
        elif len(scores):
            age = int(scores["model_age_days"].max())
            if age > stale_after_days:
                found.append(alerting.alert(region, week, "stale_model", alerting.WARN, age, stale_after_days,
                                            f"the champion is {age} days old at {week}"))
    return found + _open_failures(storage, instance)


def retired_region_alerts(storage: StorageResource, retired: dict[str, dict]) -> list[dict]:
    """An alert for each retired region whose stores were shipped to after it was retired: its data
    lands again, and only a person brings it back (``mlops-assets onboard``)."""
    if not retired or not storage.exists("shipments.parquet") or not storage.exists("stores.parquet"):
        return []
    stores = storage.read_parquet("stores.parquet", columns=["store_id", "region"])
    retired_stores = stores.loc[stores["region"].isin(list(retired)), "store_id"].tolist()
    shipments = storage.read_parquet("shipments.parquet", columns=["store_id", "week_start"],
                                     filters=[("store_id", "in", retired_stores)] if retired_stores else None)
    found = []
    for region, entry in sorted(retired.items()):
        day = pd.Timestamp(entry["at"]).tz_convert(None).normalize()
        since = day - pd.Timedelta(days=day.weekday())  # weeks from the retirement's week on
        mine = shipments[shipments["store_id"].isin(stores.loc[stores["region"] == region, "store_id"])]
        weeks = mine.loc[mine["week_start"] >= since, "week_start"]
        if len(weeks):
            week = weeks.max().strftime("%Y-%m-%d")
            found.append(alerting.alert(
                region, week, "retired_region_data", alerting.WARN, len(weeks), None,
                f"{region} was retired on {entry['at'][:10]} ({entry['reason']}), and {len(weeks)} shipment rows "
                f"up to week {week} landed for its stores: `mlops-assets onboard {region} --reason ...` takes it "
                "back; until then nothing trains or forecasts it"))
    return found


@dg.asset(
    deps=["drift_metrics", "forecast_accuracy", REGIONAL, "scores"],
    group_name="monitoring",
    description="Open alerts over every region: drift, realized accuracy, a region served by the baseline, stale "
                "champions and failed runs; one row each with region, week, kind, severity, value, threshold and "
                "the Dagster run that raised it. Alerts that were not open before are POSTed to "
                "MLOPS_ALERT_WEBHOOK. `mlops-assets status` lists them.",
    kinds={"pandas", "parquet"},
)
def alerts(context: dg.AssetExecutionContext, storage: StorageResource, monitoring: MonitoringResource,
           mlflow: MlflowRegistryResource) -> dg.MaterializeResult:
    registry = mlflow.registry
    try:
        retired = {r: entry for r in registry.regions() if (entry := registry.retired(r))}
    except Exception as exc:  # noqa: BLE001 - a store that is down must not stop the alerts about it
        context.log.warning(f"the MLflow store did not answer ({type(exc).__name__}): retired regions not checked")
        retired = {}
    found = [a for a in current_alerts(storage, context.instance, monitoring, mlflow.stale_after_days)
             if a["region"] not in retired]  # a retired region's old alerts are closed with it
    table = alerting.frame(found + retired_region_alerts(storage, retired))
    # link each alert to the run that wrote the partition it came from
    for asset in ("drift_metrics", "forecast_accuracy", "scores"):  # regional_comparison is partitioned by week
        rows = table["run_id"] == ""
        keys = sorted({f"{r}|{w}" for r, w in zip(table.loc[rows, "region"], table.loc[rows, "week"])})
        if keys:
            runs = {k: rec.run_id for k, rec in
                    latest_materializations(context.instance, dg.AssetKey(asset), keys).items()}
            table.loc[rows, "run_id"] = [runs.get(f"{r}|{w}", "") for r, w in
                                         zip(table.loc[rows, "region"], table.loc[rows, "week"])]
    table["link"] = ["/runs/" + r if r else "" for r in table["run_id"]]
    before = storage.read_parquet("alerts.parquet") if storage.exists("alerts.parquet") else table.iloc[0:0]
    if "delivered" not in before.columns:  # a table from before delivery was recorded: sent when it opened
        before = before.assign(delivered=True)
    keys = [tuple(k) for k in table[ALERT_KEY].astype(str).to_numpy()]
    delivered = {tuple(k) for k, done in zip(before[ALERT_KEY].astype(str).to_numpy(), before["delivered"]) if done}
    seen = set(map(tuple, before[ALERT_KEY].astype(str).to_numpy()))
    new = table[[k not in seen for k in keys]]
    # at least once: an open alert whose delivery failed (or had no webhook to go to) goes again
    # with the next alerting run, until one POST of it succeeds
    pending = table[[k not in delivered for k in keys]]
    sent = monitoring.notify(context.log, json.loads(pending.to_json(orient="records")))
    table["delivered"] = [sent or k in delivered for k in keys]
    storage.write_parquet("alerts.parquet", table)
    return dg.MaterializeResult(metadata={
        "open_alerts": len(table), "new_alerts": len(new), "undelivered": int((~table["delivered"]).sum()),
        "errors": int((table["severity"] == alerting.ERROR).sum()),
        "regions": ", ".join(sorted(set(table["region"]))) or "none",
        "alerts": dg.MetadataValue.md(table.drop(columns=["run_id", "delivered"]).head(30).to_markdown(index=False)
                                      if len(table) else "none")})


@dg.asset(
    group_name="monitoring",
    description="Storage retention, after every alerting run: removes the files interrupted writes left "
                "(`.*.tmp`, older than an hour), holdout forecasts and quarantined rows older than "
                "MLOPS_RETENTION_DAYS (90), and model folders beyond the newest MLOPS_KEEP_MODELS (10) per region "
                "(the current one always stays; the champion serves from the MLflow registry), and the training "
                "snapshots of models no longer kept.",
    kinds={"python"},
)
def housekeeping(context: dg.AssetExecutionContext, storage: StorageResource,
                 mlflow: MlflowRegistryResource) -> dg.MaterializeResult:
    # the champions' holdout forecasts (and their predecessors', for a rollback) stay: the
    # dashboard and the lineage of what serves read them
    registry, keep = mlflow.registry, set()
    for region in context.instance.get_dynamic_partitions(region_partitions.name):
        champion = registry.champion(region)
        if champion is not None:
            keep.add(champion.tags.get("dagster_run_id", ""))
            previous = champion.tags.get("previous_champion")
            try:
                if previous:
                    keep.add(registry.release(region, previous).tags.get("dagster_run_id", ""))
            except RegistryError:  # a predecessor deleted from the registry: nothing to keep for it
                context.log.warning(f"{region}: previous champion version {previous} is not in the registry")
    removed = storage.housekeeping(keep_runs=keep - {""})
    # the training snapshots of the models kept (their folders, the champion and its predecessor):
    # a lineage trace of any of them still rebuilds its frame; the rest go
    digests = set()
    for region in registry.regions():
        folders = {p.name for p in (storage.path / "region_model" / region).glob("*")}
        digests |= {v.tags.get("training_data_digest", "") for v in registry.versions(region)
                    if v.tags.get("dagster_run_id") in folders | keep}
    removed["training snapshots"] = storage.prune_snapshots(digests - {""})
    for kind, paths in removed.items():
        if paths:
            context.log.info(f"removed {len(paths)} {kind}: {', '.join(paths[:10])}" +
                             (f" (and {len(paths) - 10} more)" if len(paths) > 10 else ""))
    return dg.MaterializeResult(metadata={
        **{f"removed {kind}": len(paths) for kind, paths in removed.items()},
        "retention days": storage.retention_days, "model folders kept": storage.keep_models})

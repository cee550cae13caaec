"""Replay the holdout weeks as they would have happened live, week by week. Pure.

Each holdout week is forecast one week ahead by the model fit before the holdout (its forecasts
are the training run's holdout forecasts), assessed against that model's reference when it is
forecast and again once its actuals are in (``monitoring.monitor``), evaluated, and the retrain
rules are applied to what was known by then: which regions would have been retrained, in which
week, and why. One request per cause, as the sensor makes one per cause and champion.
"""

import math

import numpy as np
import pandas as pd

from mlops_assets.ml import quantiles
from mlops_assets.ml.featurize import at_forecast_time
from mlops_assets.monitoring import alerts as alerting
from mlops_assets.monitoring import regional, rules
from mlops_assets.monitoring.accuracy import realized_accuracy
from mlops_assets.monitoring.monitor import MonitorLimits, assess_week, summary

KEY = ["week_start", "store_id", "product_id"]


def _clean(value):
    """JSON without NaN tokens: a value that does not exist is None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    return value


def validation_mapes(evaluation: dict) -> dict[str, float]:
    """What the pre-holdout model expected of itself: each segment's MAPE on its validation weeks,
    and for the region their mean weighted by the segment's training rows (nothing of the holdout)."""
    out, weights = {}, {}
    for name, report in evaluation.get("segments", {}).items():
        if "skipped" not in report:
            out[name] = report["hyperparameters"]["validation_mape"]
            weights[name] = int(report["rows"]["train"])
    total = sum(weights.values())
    if total:
        out["region"] = sum(out[n] * w for n, w in weights.items()) / total
    return out


def replay_region(region: str, features: pd.DataFrame, holdout: pd.DataFrame, reference: dict, evaluation: dict,
                  as_of_week: str, limits: MonitorLimits, rules_: rules.RetrainRules) -> dict:
    """``features``: the region's features of the holdout weeks (with targets); ``holdout``: the
    training run's holdout forecasts; ``reference``: the pre-holdout model's reference.

    Returns per week the assessment when it was forecast (``drift``) and once its actuals were in
    (``levels``), the realized accuracy, the alerts and the retrain requests."""
    expected = validation_mapes(evaluation)
    out = {"drift": {}, "levels": {}, "accuracy": {}, "alerts": [], "retrain_requests": []}
    forecast_time, realized, accuracy_history, requested = [], [], [], set()
    if holdout.empty or not reference:
        return out  # every segment was skipped: the baseline served, nothing to replay
    # what ``replay_regions`` compares across regions (and then takes out of the result)
    out["demand_statistic"], out["demand_z"] = {}, {}
    out["demand_calibration"] = reference.get("levels", {}).get("calibration", {}).get("demand")
    for week, forecasts in holdout.groupby("week_start", sort=True):
        label = pd.Timestamp(week).strftime("%Y-%m-%d")
        band = [c for c in quantiles.NAMES if c in forecasts]
        rows = at_forecast_time(features[features["week_start"] == week]).merge(
            forecasts[[*KEY, "ensemble", "baseline", *band]], on=KEY).reset_index(drop=True)
        served = rows["ensemble"].to_numpy()
        ahead = assess_week(reference, rows, label, served, limits=limits, history=forecast_time)
        after = assess_week(reference, rows, label, served, rows["target"].to_numpy(dtype=float), limits=limits,
                            history=realized)
        forecast_time.append(ahead)
        realized.append(after)
        out["drift"][label], out["levels"][label] = summary(ahead), summary(after)
        judged = after["signals"].get("demand", {}).get("windows", {}).get(1)  # none where not judged
        out["demand_statistic"][label] = _clean(judged["mean"]) if judged else None
        out["demand_z"][label] = _clean(judged["z"]) if judged else None
        scored = rows.rename(columns={"target": "actual", "ensemble": "forecast"})
        accuracy = realized_accuracy(scored, expected)
        region_row = accuracy[accuracy["scope"] == "region"].iloc[0]
        out["accuracy"][label] = {k: _clean(float(region_row[k])) for k in (
            "mape", "baseline_mape", "degradation", "bias_ratio", *(f"below_{n}" for n in band)) if k in region_row}
        accuracy_history.append({"week": label, "mape": float(region_row["mape"]),
                                 "holdout_mape": float(region_row["holdout_mape"])})
        for found in (alerting.signal_alerts(region, label, ahead) + alerting.signal_alerts(region, label, after)
                      + alerting.accuracy_alerts(region, label, accuracy, rules_)):
            out["alerts"].append({k: _clean(found[k]) for k in ("region", "week", "kind", "severity", "value",
                                                                 "threshold", "message")})
        causes = [rules.level_cause(realized), rules.drift_cause(forecast_time),
                  rules.accuracy_cause(accuracy_history, rules_), rules.stale_cause(as_of_week, label, rules_)]
        for cause in filter(None, causes):
            if cause["cause"] not in requested:
                requested.add(cause["cause"])
                out["retrain_requests"].append({"region": region, "week": label, "reason": cause["cause"],
                                                "detail": cause["detail"]})
    return out


def replay_regions(replays: dict[str, dict], limits: MonitorLimits) -> None:
    """Each region's replayed weeks against the other regions' (``monitoring.regional``), in
    place: per region ``regional`` (each week's summary), its alerts, and a ``level_shift``
    request where the comparison flags before the region's own signals did. ``replays``:
    ``replay_region``'s results by region; what they kept for this comparison is taken out."""
    kept = {r: (out.pop("demand_statistic", None), out.pop("demand_z", None), out.pop("demand_calibration", None))
            for r, out in replays.items()}
    kept = {r: found for r, found in kept.items() if found[0] is not None}
    found = regional.replay({r: values for r, (values, _, _) in kept.items()},
                            {r: calibration for r, (_, _, calibration) in kept.items()}, limits,
                            {r: z for r, (_, z, _) in kept.items()})
    for region, weeks in found.items():
        out = replays[region]
        for week, assessed in weeks.items():
            out.setdefault("regional", {})[week] = summary(assessed)
            for alert in alerting.signal_alerts(region, week, assessed):
                out["alerts"].append({k: _clean(alert[k]) for k in ("region", "week", "kind", "severity", "value",
                                                                     "threshold", "message")})
            if not assessed["flagged"]:
                continue
            request = {"region": region, "week": week, "reason": "level_shift", "detail": assessed["reasons"][0]}
            earlier = [q for q in out["retrain_requests"] if q["reason"] == "level_shift"]
            if not earlier:
                out["retrain_requests"].append(request)
            elif earlier[0]["week"] > week:  # the comparison saw it first: one request, from that week
                out["retrain_requests"][out["retrain_requests"].index(earlier[0])] = request
    for out in replays.values():
        out["retrain_requests"].sort(key=lambda q: q["week"])

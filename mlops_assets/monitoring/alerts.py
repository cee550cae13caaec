"""Alerts: threshold crossings as rows a person (or a webhook) can act on. Pure."""

from __future__ import annotations

import math

import pandas as pd

from mlops_assets.monitoring.drift import DriftThresholds
from mlops_assets.monitoring.rules import RetrainRules, bad_week

COLUMNS = ["region", "week", "kind", "severity", "value", "threshold", "message", "run_id"]
WARN, ERROR = "WARN", "ERROR"


def alert(region: str, week: str, kind: str, severity: str, value, threshold, message: str,
          run_id: str = "") -> dict:
    value = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    threshold = float(threshold) if isinstance(threshold, (int, float)) else None
    return {"region": region, "week": week, "kind": kind, "severity": severity, "value": value,
            "threshold": threshold, "message": message, "run_id": run_id}


def drift_alerts(region: str, week: str, result: dict, thresholds: DriftThresholds) -> list[dict]:
    out = []
    if result["drifted"]:
        out.append(alert(region, week, "feature_drift", ERROR, result["share"], thresholds.share,
                         f"{len(result['features'])} of {len(result['monitored'])} monitored features drifted: "
                         f"{', '.join(result['features'])}"))
    elif result["features"]:
        out.append(alert(region, week, "feature_drift", WARN, result["share"], thresholds.share,
                         f"some features drifted: {', '.join(result['features'])}"))
    warned = [n for n, c in result["columns"].items() if c.get("psi_level") == "warn" and n not in result["features"]]
    if warned:
        out.append(alert(region, week, "psi_warn", WARN, max(result["columns"][n]["psi"] for n in warned),
                         thresholds.psi_warn, f"PSI between the warn and drift levels: {', '.join(warned)}"))
    if result["prediction_drift"]:
        column = next(c for n, c in result["columns"].items() if n not in result["monitored"])
        value = column.get("wasserstein", column.get("p_adjusted"))
        out.append(alert(region, week, "prediction_drift", ERROR, value,
                         thresholds.wasserstein if "wasserstein" in column else thresholds.p_value,
                         "the forecasts' distribution drifted from the model's reference"))
    return out


def accuracy_alerts(region: str, week: str, accuracy: pd.DataFrame, rules: RetrainRules) -> list[dict]:
    out = []
    if accuracy.empty:
        return out
    row = accuracy[accuracy["scope"] == "region"].iloc[0]
    if bad_week(row["mape"], row["holdout_mape"], rules):
        severity = ERROR if row["mape"] > rules.mape_target else WARN
        out.append(alert(region, week, "accuracy", severity, row["mape"], rules.mape_target,
                         f"realized MAPE {row['mape']:.3f} (target {rules.mape_target}, holdout "
                         f"{row['holdout_mape']:.3f}, degradation {row['degradation']:.2f}x)"))
    if row["mape"] >= row["baseline_mape"]:
        out.append(alert(region, week, "worse_than_baseline", WARN, row["mape"], row["baseline_mape"],
                         f"realized MAPE {row['mape']:.3f} not below the baseline's {row['baseline_mape']:.3f}"))
    return out


def frame(alerts: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(alerts, columns=COLUMNS)
    out["value"] = out["value"].astype(float)
    out["threshold"] = out["threshold"].astype(float)
    return out

"""Alerts: threshold crossings as rows a person (or a webhook) can act on. Pure."""

from __future__ import annotations

import math

import pandas as pd

from mlops_assets.monitoring.rules import RetrainRules, bad_week

COLUMNS = ["region", "week", "kind", "severity", "value", "threshold", "message", "run_id"]
WARN, ERROR = "WARN", "ERROR"


def alert(region: str, week: str, kind: str, severity: str, value, threshold, message: str,
          run_id: str = "") -> dict:
    value = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    threshold = float(threshold) if isinstance(threshold, (int, float)) else None
    return {"region": region, "week": week, "kind": kind, "severity": severity, "value": value,
            "threshold": threshold, "message": message, "run_id": run_id}


# a signal's alert kind and severity: a change of demand or of the forecasts' bias costs stock at
# once; a covariate or the mix moving is worth a look
KINDS = {"demand": ("level_shift", ERROR), "error": ("forecast_bias", ERROR), "forecast": ("prediction_drift", WARN),
         "mix": ("mix_change", WARN), "regional": ("regional_shift", ERROR), "spread": ("store_shift", ERROR)}


def signal_alerts(region: str, week: str, assessment: dict) -> list[dict]:
    """An alert per flagged signal of a week's assessment (``monitoring.monitor.assess_week``):
    the signal, the region, the week, the size ('north: demand 58% above its reference level
    since 2026-10-05 (...)')."""
    from mlops_assets.monitoring.monitor import describe

    out = []
    for name, signal in assessment.get("signals", {}).items():
        if name == "stores":
            out.append(_closed_alert(region, week, signal))
        if not signal.get("flagged"):
            continue
        kind, severity = KINDS.get(name, ("covariate_drift", WARN))
        value, limit = (signal.get("z"), signal.get("limit")) if name != "mix" else (signal["value"], None)
        out.append(alert(region, week, kind, severity, value, limit, f"{region}: {describe(name, signal, week)}"))
    return out


def _closed_alert(region: str, week: str, signal: dict) -> dict:
    """A week's closed stores (``monitoring.monitor``'s ``stores``): a person looks; nothing retrains."""
    return alert(region, week, "closed_stores", WARN, signal.get("value"), None, f"{region}: {signal['note']}")


def stored_alerts(region: str, week: str, assessment: dict) -> list[dict]:
    """Alerts of a stored assessment (``monitoring.monitor.from_table``): a flagged signal's reason."""
    out = []
    for name, signal in assessment.get("signals", {}).items():
        if name == "stores" and signal.get("note"):
            out.append(_closed_alert(region, week, signal))
        if signal.get("flagged"):
            kind, severity = KINDS.get(name, ("covariate_drift", WARN))
            out.append(alert(region, week, kind, severity, signal.get("z"), None, f"{region}: {signal['reason']}"))
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

"""Drift of a week's features and forecasts against a model's reference profile.

The test of a column is fixed by its type and the size of the reference, never by what the
week happens to look like:

- reference of more than ``small_reference`` rows (distances: with thousands of rows every
  p-value is tiny, so a significance test would flag any harmless wobble):
  - numeric: Wasserstein distance divided by the reference standard deviation (drift at
    >= ``wasserstein``), and the population stability index over the reference deciles
    (warn at >= ``psi_warn``, drift at >= ``psi_alert``);
  - categorical: Jensen-Shannon distance, base 2, between the value frequencies (drift at >= ``js``);
- reference of at most ``small_reference`` rows (tests): two-sample Kolmogorov-Smirnov for
  numeric and chi-square for categorical columns, with Holm's correction across the week's
  columns, drift at adjusted p < ``p_value``.

For distances, a column's threshold is the configured one or ``calibration`` x the 95th
percentile of the reference's own weekly distances, whichever is larger (see
``monitoring.profiles``): a week's rows share its weather and its promotions, so one week is
never a random sample of the year.

The dataset drifts when at least ``share`` of the monitored features drift; the forecasts are
tested the same way (prediction drift). Plain numpy/scipy; the unit tests check each
statistic against values computed by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mlops_assets.monitoring.profiles import check_version, monitored_values
from mlops_assets.monitoring.statistics import (bin_counts, chi_square_test, holm, js_distance, ks_test, psi,
                                                wasserstein_from_quantiles)


@dataclass(frozen=True)
class DriftThresholds:
    wasserstein: float = 0.1
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    js: float = 0.1
    p_value: float = 0.05
    small_reference: int = 1000
    share: float = 0.5
    calibration: float = 1.5

    def to_json(self) -> dict:
        return asdict(self)


# --- a week against a profile ------------------------------------------------------------------


def column_limits(spec: dict, thresholds: DriftThresholds) -> tuple[float, float, float]:
    """(Wasserstein, PSI warn, PSI alert) limits of a numeric column: the configured ones, raised to
    ``calibration`` x the reference's own weekly variation where that is larger."""
    cal = spec.get("calibration") or {}
    factor = thresholds.calibration
    return (max(thresholds.wasserstein, factor * cal.get("wasserstein", 0.0)),
            max(thresholds.psi_warn, factor * cal.get("psi", 0.0)),
            max(thresholds.psi_alert, factor * cal.get("psi", 0.0)))


def _column_drift(spec: dict, frame: pd.DataFrame, column: str, thresholds: DriftThresholds) -> dict | None:
    if spec.get("rows", 0) == 0 or column not in frame:
        return None
    small = spec["rows"] <= thresholds.small_reference
    if spec["kind"] == "numeric":
        values = monitored_values(frame, column, spec)
        if not len(values):
            return None
        if small:
            statistic, p = ks_test(spec["quantiles"], spec["rows"], values)
            return {"column": column, "kind": "numeric", "test": "ks", "statistic": statistic, "p_value": p,
                    "rows": int(len(values))}
        scale = spec["std"] if spec["std"] > 1e-9 else 1.0
        w = wasserstein_from_quantiles(spec["quantiles"], values) / scale
        index = psi(spec["counts"], bin_counts(spec["edges"], values))
        w_limit, psi_warn, psi_alert = column_limits(spec, thresholds)
        return {"column": column, "kind": "numeric", "test": "wasserstein+psi", "wasserstein": w, "psi": index,
                "wasserstein_limit": w_limit, "psi_limit": psi_alert,
                "psi_level": "alert" if index >= psi_alert else "warn" if index >= psi_warn else "ok",
                "drifted": bool(w >= w_limit or index >= psi_alert), "rows": int(len(values))}
    counts = frame[column].astype(str).value_counts().to_dict()
    if small:
        statistic, p = chi_square_test(spec["counts"], counts)
        return {"column": column, "kind": "categorical", "test": "chi2", "statistic": statistic, "p_value": p,
                "rows": int(sum(counts.values()))}
    distance = js_distance(spec["counts"], counts)
    return {"column": column, "kind": "categorical", "test": "jensen-shannon", "js": distance,
            "drifted": bool(distance >= thresholds.js), "rows": int(sum(counts.values()))}


def week_drift(profile: dict, features: pd.DataFrame, forecasts: np.ndarray | None = None,
               thresholds: DriftThresholds | None = None) -> dict:
    """One week's drift: per monitored column its statistics and verdict, the share of drifted
    features, the dataset verdict, and prediction drift (None when no forecasts are given)."""
    thresholds = thresholds or DriftThresholds()
    check_version(profile)
    frame = features.copy()
    prediction = profile.get("prediction")
    if forecasts is not None and prediction:
        frame[prediction] = np.asarray(forecasts, dtype=float)
    names = [*profile["features"], *([prediction] if prediction and forecasts is not None else [])]
    columns = {}
    for name in names:
        result = _column_drift(profile["columns"][name], frame, name, thresholds)
        if result is not None:
            columns[name] = result
    tested = {n: c["p_value"] for n, c in columns.items() if "p_value" in c}
    for name, adjusted in holm(tested).items():
        columns[name]["p_adjusted"] = adjusted
        columns[name]["drifted"] = bool(adjusted < thresholds.p_value)
    features_tested = [n for n in profile["features"] if n in columns]
    drifted = [n for n in features_tested if columns[n]["drifted"]]
    share = len(drifted) / len(features_tested) if features_tested else None
    prediction_drift = columns[prediction]["drifted"] if prediction in columns else None
    return {"drifted": bool(share is not None and share >= thresholds.share), "share": share,
            "features": drifted, "monitored": features_tested, "prediction_drift": prediction_drift,
            "rows": int(len(features)), "columns": columns, "thresholds": thresholds.to_json()}


def drift_table(result: dict, region: str, week: str) -> pd.DataFrame:
    """The per-column results as rows (what the ``drift_metrics`` partition stores)."""
    rows = []
    for name, c in result["columns"].items():
        rows.append({"region": region, "week_start": pd.Timestamp(week), "column": name,
                     "role": "prediction" if name not in result["monitored"] else "feature",
                     "kind": c["kind"], "test": c["test"], "rows": c["rows"],
                     "wasserstein": c.get("wasserstein"), "wasserstein_limit": c.get("wasserstein_limit"),
                     "psi": c.get("psi"), "psi_limit": c.get("psi_limit"), "psi_level": c.get("psi_level", ""),
                     "js": c.get("js"),
                     "statistic": c.get("statistic"), "p_value": c.get("p_value"),
                     "p_adjusted": c.get("p_adjusted"), "drifted": bool(c["drifted"])})
    columns = ["region", "week_start", "column", "role", "kind", "test", "rows", "wasserstein", "wasserstein_limit",
               "psi", "psi_limit", "psi_level", "js", "statistic", "p_value", "p_adjusted", "drifted"]
    frame = pd.DataFrame(rows, columns=columns)
    for c in ("wasserstein", "wasserstein_limit", "psi", "psi_limit", "js", "statistic", "p_value", "p_adjusted"):
        frame[c] = frame[c].astype(float)
    frame["rows"] = frame["rows"].astype("int64")
    frame["drifted"] = frame["drifted"].astype(bool)
    return frame


def result_from_table(table: pd.DataFrame, share: float) -> dict:
    """A week's result, as ``week_drift`` returned it, from its stored rows (``drift_table``)."""
    features = table[table["role"] == "feature"]
    prediction = table[table["role"] == "prediction"]
    drifted = features.loc[features["drifted"], "column"].tolist()
    fraction = len(drifted) / len(features) if len(features) else None
    columns = {r["column"]: {k: v for k, v in r.items() if v is not None and v == v}
               for r in table.to_dict("records")}
    return {"drifted": bool(fraction is not None and fraction >= share), "share": fraction, "features": drifted,
            "monitored": features["column"].tolist(), "columns": columns,
            "prediction_drift": bool(prediction["drifted"].any()) if len(prediction) else None}


def summarize(table: pd.DataFrame, share: float) -> dict:
    """A week's verdict from its stored rows."""
    result = result_from_table(table, share)
    return {k: result[k] for k in ("drifted", "share", "features", "prediction_drift")}

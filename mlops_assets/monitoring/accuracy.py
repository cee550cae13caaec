"""Realized accuracy: a week's forecasts against what happened, once its actuals land.

Per segment and for the region: MAPE (actual > 0), RMSE where actual = 0, RMSE and bias of the
forecasts that served (in units and as the share of demand), the same for the
historical-average baseline on exactly the same rows, the degradation ratio: realized MAPE over
the serving model's holdout MAPE (1 = as good as at training; 1.5 = half as bad again; a
sustained ratio above 1 is concept drift), and the band's realized calibration: the share of
actuals below P10, P50 and P90 and each one's pinball loss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.ml import metrics, quantiles
from mlops_assets.ml.ensemble import baseline_forecast

KEY = ["week_start", "store_id", "product_id"]


def realized_rows(scores: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The scored rows whose actual demand is known: forecast, model, actual and baseline."""
    known = features[features["target"].notna()]
    known = known[[*KEY, "target"]].assign(baseline=baseline_forecast(known))
    out = scores.merge(known, on=KEY, how="inner")
    return out.rename(columns={"target": "actual"})


def _row(scope: str, part: pd.DataFrame, holdout_mape: float | None) -> dict:
    model = metrics.summary(part["actual"], part["forecast"])
    base = metrics.summary(part["actual"], part["baseline"])
    ratio = (model["mape"] / holdout_mape
             if holdout_mape and np.isfinite(model["mape"]) and np.isfinite(holdout_mape) else float("nan"))
    band = (quantiles.summary(part["actual"], part[list(quantiles.NAMES)].to_numpy())
            if set(quantiles.NAMES) <= set(part.columns) else {})
    return {"scope": scope, "rows": model["rows"], "mape": model["mape"], "rmse0": model["rmse0"],
            "rmse": model["rmse"], "bias": model["bias"], "bias_ratio": model["bias_ratio"], **band,
            "baseline_mape": base["mape"],
            "baseline_rmse0": base["rmse0"], "baseline_rmse": base["rmse"],
            "reduction_vs_baseline": metrics.reduction(model["mape"], base["mape"]),
            "holdout_mape": float(holdout_mape) if holdout_mape is not None else float("nan"),
            "degradation": ratio}


def realized_accuracy(rows: pd.DataFrame, holdout_mape: dict[str, float]) -> pd.DataFrame:
    """One row for the region and one per segment; ``holdout_mape`` maps 'region' and each segment
    to the serving model's holdout MAPE."""
    if rows.empty:
        return pd.DataFrame(columns=list(_row("region", pd.DataFrame({"actual": [], "forecast": [],
                                                                         "baseline": []}), None)))
    out = [_row("region", rows, holdout_mape.get("region"))]
    for segment, part in rows.groupby("segment", sort=True):
        out.append(_row(segment, part, holdout_mape.get(segment)))
    return pd.DataFrame(out)


def holdout_mapes(evaluation: dict) -> dict[str, float]:
    """The ensemble's holdout MAPE per segment and for the region, from a model's evaluation."""
    out = {}
    if "region" in evaluation:
        out["region"] = evaluation["region"]["ensemble"]["mape"]
    for name, report in evaluation.get("segments", {}).items():
        if "skipped" not in report:
            out[name] = report["ensemble"]["mape"]
    return out

"""Forecast accuracy metrics, as the business reads them."""

from __future__ import annotations

import numpy as np

METRICS = ("mape", "wape", "rmse0", "rmse", "bias", "bias_ratio")  # what ``summary`` reports besides the row count


def mape(actual, forecast) -> float:
    """Mean absolute percentage error over weeks with actual > 0 (a zero week has no percentage)."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    mask = actual > 0
    if not mask.any():
        return float("nan")
    return float(np.mean(np.abs(forecast[mask] - actual[mask]) / actual[mask]))


def rmse(actual, forecast) -> float:
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    return float(np.sqrt(np.mean((forecast - actual) ** 2))) if len(actual) else float("nan")


def rmse_zero(actual, forecast) -> float:
    """RMSE over weeks whose actual demand is 0: how much is shipped to shelves that sell nothing."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    mask = actual == 0
    return rmse(actual[mask], forecast[mask]) if mask.any() else float("nan")


def wape(actual, forecast) -> float:
    """Weighted absolute percentage error: total absolute error over total demand (zero weeks count)."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    total = actual.sum()
    return float(np.abs(forecast - actual).sum() / total) if total > 0 else float("nan")


def bias(actual, forecast) -> float:
    """Mean forecast minus actual: > 0 over-forecasts."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    return float(np.mean(forecast - actual)) if len(actual) else float("nan")


def bias_ratio(actual, forecast) -> float:
    """Total forecast over total demand, less 1: what a planner shipping the forecast over- or
    under-ships (-0.39: 39% less than sold)."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    total = actual.sum()
    return float(forecast.sum() / total - 1) if total > 0 else float("nan")


def summary(actual, forecast) -> dict[str, float]:
    return {"mape": mape(actual, forecast), "wape": wape(actual, forecast), "rmse0": rmse_zero(actual, forecast),
            "rmse": rmse(actual, forecast), "bias": bias(actual, forecast), "bias_ratio": bias_ratio(actual, forecast),
            "rows": int(len(actual)), "rows0": int(np.sum(np.asarray(actual, dtype=float) == 0))}


def reduction(model_mape: float, baseline_mape: float) -> float:
    """Relative MAPE reduction against the baseline: 0.4 means 40% lower."""
    if not np.isfinite(model_mape) or not np.isfinite(baseline_mape) or baseline_mape == 0:
        return float("nan")
    return float(1 - model_mape / baseline_mape)

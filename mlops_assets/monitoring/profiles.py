"""Reference profiles: what a model's training data looked like, per column, without its rows.

A profile is saved with every model version (``reference.json`` in the model folder), so
drift can be computed from a week's features alone, without reloading training data:

- numeric column: row count, mean and standard deviation, 101 quantiles (0%, 1%, .. 100%), the
  edges of ten equal-frequency bins and the reference's count in each (for PSI);
- categorical column: the count of each value.

Demand-like columns are profiled as ``log1p`` (their spread spans orders of magnitude).
Seasonal columns are profiled after removing an annual harmonic fitted on the reference
(``a + b sin + c cos`` of the week of year), so that a July week is compared with what July
should look like, not with a whole year's mix; the harmonic is stored and applied to the
current week the same way. It is fitted only when the reference spans most of a year.

Each numeric column is also *calibrated*: every reference week is compared with the whole
reference, and the 95th percentile of those weekly distances is stored. A week's rows are not
a random sample of the year: a region's stores share one week's weather, a promotion lifts
every product at once. The drift test's threshold is the configured one or that week-to-week
variation (times a factor), whichever is larger, so a column only drifts when the week is
further from the reference than the reference's own weeks were from it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.monitoring.statistics import QUANTILES, bin_counts, psi, wasserstein_from_quantiles

PSI_BINS = 10
CALIBRATION_QUANTILE = 0.95
YEAR_WEEKS = 52.18
MIN_WEEKS_FOR_SEASON = 40  # distinct weeks of year a reference needs before a harmonic is fitted
PROFILE_VERSION = 1

# column -> transform applied before profiling; the monitored model inputs (docs in README)
LOG_COLUMNS = ("lag_1", "lag_2", "lag_3", "lag_4", "mean_4", "mean_13", "nonzero_mean_13", "forecast", "target")
NUMERIC_FEATURES = ("lag_1", "lag_2", "lag_3", "lag_4", "mean_4", "mean_13", "nonzero_mean_13", "zero_share_13",
                    "temp_max_c", "temp_min_c", "precip_mm")
CATEGORICAL_FEATURES = ("segment",)
# zero-inflated or bounded columns keep their point masses: a harmonic would smear them across bins
SEASONAL = {"lag_1", "lag_2", "lag_3", "lag_4", "mean_4", "mean_13", "nonzero_mean_13", "temp_max_c", "temp_min_c",
            "forecast", "target"}
PREDICTION = "forecast"


def transform_of(column: str) -> str:
    return "log1p" if column in LOG_COLUMNS else "none"


def _values(frame: pd.DataFrame, column: str, transform: str) -> np.ndarray:
    v = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return np.log1p(np.clip(v, 0, None)) if transform == "log1p" else v


def _harmonics(week_of_year: np.ndarray) -> np.ndarray:
    angle = 2 * np.pi * np.asarray(week_of_year, dtype=float) / YEAR_WEEKS
    return np.column_stack([np.sin(angle), np.cos(angle)])


def fit_season(values: np.ndarray, week_of_year: np.ndarray) -> list[float] | None:
    """[b, c] of the annual harmonic ``b sin + c cos`` by least squares, or None when the
    reference does not span enough of a year to tell season from level."""
    ok = np.isfinite(values)
    if len(np.unique(week_of_year[ok])) < MIN_WEEKS_FOR_SEASON:
        return None
    X = np.column_stack([np.ones(ok.sum()), _harmonics(week_of_year[ok])])
    coef, *_ = np.linalg.lstsq(X, values[ok], rcond=None)
    return [float(coef[1]), float(coef[2])]


def deseasonalize(values: np.ndarray, week_of_year: np.ndarray, season: list[float] | None) -> np.ndarray:
    if season is None:
        return values
    return values - _harmonics(week_of_year) @ np.asarray(season)


def monitored_values(frame: pd.DataFrame, column: str, spec: dict) -> np.ndarray:
    """A column of ``frame`` as the profile ``spec`` measured it (transformed, de-seasonalized),
    finite values only."""
    raw = _values(frame, column, spec["transform"])  # as the profile measured it, whatever the code says now
    values = deseasonalize(raw, frame["week_of_year"].to_numpy(dtype=float), spec.get("season"))
    return values[np.isfinite(values)]


def numeric_profile(values: np.ndarray, season: list[float] | None = None, weeks: np.ndarray | None = None) -> dict:
    """``weeks`` (one label per value) calibrates the profile on its own week-to-week variation."""
    keep = np.isfinite(values)
    values = values[keep]
    if not len(values):
        return {"kind": "numeric", "rows": 0}
    quantiles = np.quantile(values, QUANTILES)
    edges = np.unique(np.quantile(values, np.arange(1, PSI_BINS) / PSI_BINS))  # interior deciles
    counts = bin_counts(edges, values)
    std = float(values.std())
    profile = {"kind": "numeric", "rows": int(len(values)), "mean": float(values.mean()), "std": std,
               "quantiles": quantiles.tolist(), "edges": edges.tolist(), "counts": counts.tolist(),
               "season": season, "calibration": None}
    if weeks is not None:
        weeks = np.asarray(weeks)[keep]
        distances, indices = [], []
        for week in np.unique(weeks):
            part = values[weeks == week]
            distances.append(wasserstein_from_quantiles(quantiles, part) / (std if std > 1e-9 else 1.0))
            indices.append(psi(counts, bin_counts(edges, part)))
        if len(distances) >= 4:
            profile["calibration"] = {"weeks": len(distances), "quantile": CALIBRATION_QUANTILE,
                                      "wasserstein": float(np.quantile(distances, CALIBRATION_QUANTILE)),
                                      "psi": float(np.quantile(indices, CALIBRATION_QUANTILE))}
    return profile


def categorical_profile(values: pd.Series) -> dict:
    counts = values.astype(str).value_counts().sort_index()
    return {"kind": "categorical", "rows": int(counts.sum()), "counts": {k: int(v) for k, v in counts.items()}}


def build_profile(frame: pd.DataFrame, forecast: np.ndarray | None = None,
                  numeric=NUMERIC_FEATURES, categorical=CATEGORICAL_FEATURES) -> dict:
    """The reference profile of ``frame`` (a features frame) and, when given, of the model's
    forecasts for the same rows."""
    frame = frame.copy()
    if forecast is not None:
        frame[PREDICTION] = np.asarray(forecast, dtype=float)
    woy = frame["week_of_year"].to_numpy(dtype=float)
    weeks = frame["week_start"].to_numpy() if "week_start" in frame else None
    columns: dict[str, dict] = {}
    for column in [*numeric, *([PREDICTION] if forecast is not None else [])]:
        if column not in frame:
            continue
        raw = _values(frame, column, transform_of(column))
        season = fit_season(raw, woy) if column in SEASONAL else None
        columns[column] = {**numeric_profile(deseasonalize(raw, woy, season), season, weeks),
                           "transform": transform_of(column)}
    for column in categorical:
        if column in frame:
            columns[column] = categorical_profile(frame[column])
    weeks = pd.to_datetime(frame["week_start"]) if "week_start" in frame else pd.Series(dtype="datetime64[ns]")
    return {"version": PROFILE_VERSION, "rows": int(len(frame)),
            "first_week": weeks.min().strftime("%Y-%m-%d") if len(weeks) else None,
            "last_week": weeks.max().strftime("%Y-%m-%d") if len(weeks) else None,
            "features": [c for c in [*numeric, *categorical] if c in columns],
            "prediction": PREDICTION if PREDICTION in columns else None,
            "columns": columns}


def check_version(profile: dict) -> None:
    if profile.get("version") != PROFILE_VERSION:
        raise ValueError(f"reference profile version {profile.get('version')} is not {PROFILE_VERSION}: the model "
                         "was trained by other monitoring code; retrain it (its code version differs too)")


def reference_rows(observed: pd.DataFrame, as_of_week: str, weeks: int = 52) -> pd.DataFrame:
    """The rows a reference is built from: the last ``weeks`` observed weeks up to ``as_of_week``
    (a full year, so every season is in it)."""
    end = pd.Timestamp(as_of_week)
    start = end - pd.Timedelta(weeks=weeks - 1)
    return observed[(observed["week_start"] >= start) & (observed["week_start"] <= end)]

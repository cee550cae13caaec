"""P10, P50 and P90 beside every point forecast, and how well they are calibrated.

The region's network has a head per level, trained with the level's quantile (pinball) loss on
log demand. What serves is the heads' spread around the ensemble's point forecast (each head
less the P50 head, added to the log of the point): the band moves with the forecast, and where
the heads and the point disagree on a level (they are fit by different losses and, for the
LASSO's share, by different models) the point wins. The band is then calibrated on the
validation weeks, which no fit had seen (conformalized quantile regression): per segment, the
shift in log units that puts exactly the level's share of the validation weeks' actuals below
each quantile. A row the baseline serves
(no trained segment) gets the quantiles of a Poisson count around the historical average: the
least spread a count has.
"""

from __future__ import annotations

import numpy as np

LEVELS = (0.1, 0.5, 0.9)
NAMES = ("p10", "p50", "p90")


def anchored(point_log: np.ndarray, quantile_log: np.ndarray) -> np.ndarray:
    """The heads' log quantiles (rows x levels) moved so that the P50 head sits on ``point_log``
    (log1p of the point forecast): the spread of the heads, around the point."""
    quantile_log = np.asarray(quantile_log, dtype=float)
    median = quantile_log[:, [LEVELS.index(0.5)]]
    return np.asarray(point_log, dtype=float)[:, None] + quantile_log - median


def calibration_shift(actual: np.ndarray, quantile_log: np.ndarray) -> list[float]:
    """Per level, the shift of the predicted log quantile (rows x levels) that puts the level's
    share of ``actual`` below it: the level's empirical quantile of log1p(actual) - quantile."""
    residual = np.log1p(np.clip(np.asarray(actual, dtype=float), 0, None))[:, None] - quantile_log
    return [float(np.quantile(residual[:, k], level)) if len(residual) else 0.0 for k, level in enumerate(LEVELS)]


def from_log(quantile_log: np.ndarray, shift: list[float] | None) -> np.ndarray:
    """Units (rows x levels) from predicted log quantiles and their calibration shift: never
    negative, never decreasing along a row."""
    shifted = quantile_log + (np.asarray(shift) if shift is not None else 0.0)
    return np.sort(np.clip(np.expm1(shifted), 0, None), axis=1)


def poisson(mean: np.ndarray) -> np.ndarray:
    """The levels' quantiles (rows x levels) of a Poisson count with each row's mean."""
    from scipy import stats

    mean = np.clip(np.nan_to_num(np.asarray(mean, dtype=float)), 0, None)
    return np.column_stack([stats.poisson.ppf(level, mean) for level in LEVELS]).astype(float)


def pinball(actual, quantile, level: float) -> float:
    """The mean quantile (pinball) loss of ``quantile`` at ``level``, in units."""
    d = np.asarray(actual, dtype=float) - np.asarray(quantile, dtype=float)
    return float(np.mean(np.maximum(level * d, (level - 1) * d))) if len(d) else float("nan")


def summary(actual, quantiles: np.ndarray) -> dict[str, float]:
    """Per level, the share of actuals below the quantile (nominal: the level) and the pinball
    loss; ``quantiles``: rows x levels, in the order of ``LEVELS``."""
    actual = np.asarray(actual, dtype=float)
    quantiles = np.asarray(quantiles, dtype=float).reshape(len(actual), len(LEVELS))
    out = {}
    for k, (name, level) in enumerate(zip(NAMES, LEVELS)):
        out[f"below_{name}"] = float(np.mean(actual < quantiles[:, k])) if len(actual) else float("nan")
        out[f"pinball_{name}"] = pinball(actual, quantiles[:, k], level)
    return out

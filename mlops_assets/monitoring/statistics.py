"""The drift statistics, plain numpy/scipy; the unit tests check each against hand-computed values."""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

QUANTILES = np.linspace(0.0, 1.0, 101)
EPS = 1e-4  # floor of a bin's share in PSI: an empty bin would make it infinite


def wasserstein_from_quantiles(reference_quantiles, current: np.ndarray) -> float:
    """W1 between the distribution whose quantile function is ``reference_quantiles`` (at
    QUANTILES) and the sample ``current``: the area between the two quantile functions."""
    ref = np.asarray(reference_quantiles, dtype=float)
    cur = np.quantile(np.asarray(current, dtype=float), QUANTILES)
    return float(np.trapezoid(np.abs(ref - cur), QUANTILES))


def psi(reference_counts, current_counts) -> float:
    """Population stability index: sum over bins of (cur - ref) * ln(cur / ref), shares floored at EPS."""
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    p, q = np.maximum(ref / ref.sum(), EPS), np.maximum(cur / cur.sum(), EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def bin_counts(edges, values: np.ndarray) -> np.ndarray:
    """Counts in the bins (-inf, e0], (e0, e1], .. (e_last, inf): the profile's PSI bins."""
    return np.bincount(np.searchsorted(np.asarray(edges, dtype=float), values, side="left"),
                       minlength=len(edges) + 1)


def js_distance(reference_counts: dict, current_counts: dict) -> float:
    """Jensen-Shannon distance (base 2: 0 identical, 1 disjoint) between two value counts."""
    keys = sorted(set(reference_counts) | set(current_counts))
    p = np.array([reference_counts.get(k, 0) for k in keys], dtype=float)
    q = np.array([current_counts.get(k, 0) for k in keys], dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def reference_cdf(reference_quantiles, x: np.ndarray) -> np.ndarray:
    """The reference CDF, linear between its quantiles (ties collapse to their largest level)."""
    q = np.asarray(reference_quantiles, dtype=float)
    levels = np.asarray(QUANTILES)
    # for tied quantiles keep the highest level, so a point mass gets its whole probability
    unique, last = np.unique(q[::-1], return_index=True)
    lv = levels[::-1][last]
    return np.interp(x, unique, lv, left=0.0, right=1.0)


def ks_test(reference_quantiles, reference_rows: int, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value, the reference given by
    its quantiles and row count (as scipy's ``ks_2samp(method='asymp')`` computes the p-value)."""
    cur = np.sort(np.asarray(current, dtype=float))
    m = len(cur)
    points = np.unique(np.concatenate([cur, np.asarray(reference_quantiles, dtype=float)]))
    ref = reference_cdf(reference_quantiles, points)
    # the sample's CDF is a step function: compare both its value at and just before each point
    after, before = np.searchsorted(cur, points, side="right") / m, np.searchsorted(cur, points, side="left") / m
    d = float(max(np.max(np.abs(ref - after)), np.max(np.abs(ref - before))))
    n_eff = reference_rows * m / (reference_rows + m)
    return d, float(stats.kstwo.sf(d, np.round(n_eff)))


def chi_square_test(reference_counts: dict, current_counts: dict) -> tuple[float, float]:
    """Chi-square test of homogeneity of two value counts: (statistic, p-value)."""
    keys = sorted(set(reference_counts) | set(current_counts))
    table = np.array([[reference_counts.get(k, 0) for k in keys], [current_counts.get(k, 0) for k in keys]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    statistic, p, _, _ = stats.chi2_contingency(table, correction=False)
    return float(statistic), float(p)


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (family-wise error), in the order given."""
    names = sorted(p_values, key=lambda k: p_values[k])
    m, running, out = len(names), 0.0, {}
    for i, name in enumerate(names):
        running = max(running, min(1.0, (m - i) * p_values[name]))
        out[name] = running
    return {k: out[k] for k in p_values}



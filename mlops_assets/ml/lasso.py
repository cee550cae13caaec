"""LASSO on log demand, regularisation chosen by time-ordered cross-validation.

Coordinate descent at the smallest alphas is nearly unregularized least squares, and on a
segment's first folds (a few hundred rows, about a hundred partly collinear columns) it
converges slowly: 20,000 iterations left duality gaps up to 30x the tolerance on the bundled
sample. The path runs from the largest alpha down, each fit warm-started from the one before,
with up to ``MAX_ITER`` iterations (cheap: on the Gram matrix an iteration costs columns
squared, whatever the rows). A fit that still stops early is reported (``Convergence``), in
the training log line of its segment, instead of scikit-learn's warning on stderr.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

ALPHAS = np.logspace(-4, -0.5, 16)
MAX_ITER = 200_000
TOL = 1e-4  # scikit-learn's: the duality gap relative to the sum of squares of the centred target


@dataclass
class Convergence:
    """How coordinate descent ended over some fits: ``stopped`` of ``fits`` reached ``MAX_ITER``
    with the duality gap still above the tolerance (the largest such gap and its tolerance)."""

    fits: int = 0
    stopped: int = 0
    gap: float = 0.0
    tolerance: float = 0.0

    def add(self, iterations: int, gap: float, tolerance: float) -> None:
        self.fits += 1
        if iterations >= MAX_ITER and gap > tolerance:
            self.stopped += 1
            if gap / tolerance > (self.gap / self.tolerance if self.tolerance else 0.0):
                self.gap, self.tolerance = gap, tolerance

    def note(self) -> str:
        """'' when every fit converged, else what to put in the segment's log line."""
        if not self.stopped:
            return ""
        return (f"; coordinate descent stopped at {MAX_ITER:,} iterations in {self.stopped} of {self.fits} "
                f"fits (duality gap up to {self.gap:.3g}, tolerance {self.tolerance:.3g})")


def _quiet() -> None:
    """scikit-learn's ConvergenceWarning goes to stderr; ``Convergence`` reports the same gap in
    the training log instead. A filter, not ``catch_warnings``: fits run in two threads at once."""
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning, module=r"sklearn\.linear_model\._coordinate_descent")


def time_folds(weeks: np.ndarray, n_folds: int = 4, min_train_weeks: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds by week: train on weeks before a cut, validate on the weeks after it."""
    unique = np.unique(weeks)
    n_val = max(1, (len(unique) - min_train_weeks) // n_folds)
    folds = []
    for k in range(n_folds):
        start = len(unique) - (n_folds - k) * n_val
        if start < min_train_weeks:
            continue
        cut, end = unique[start], unique[min(start + n_val, len(unique)) - 1]
        train = np.flatnonzero(weeks < cut)
        val = np.flatnonzero((weeks >= cut) & (weeks <= end))
        if len(train) and len(val):
            folds.append((train, val))
    return folds


def design(numeric: np.ndarray, category_onehot: np.ndarray, interact: np.ndarray | None = None,
           dtype=np.float64) -> np.ndarray:
    """The numeric features, the category, and the category times ``interact`` (seasonality,
    weather, events): categories peak in different seasons and react to heat and holidays
    differently, which a linear model only sees through these products. Filled into one array
    of ``dtype`` (no intermediate copies: at seed scale this matrix is hundreds of MB)."""
    n, k = len(numeric), category_onehot.shape[1]
    m = interact.shape[1] if interact is not None and category_onehot.shape[1] else 0
    out = np.empty((n, numeric.shape[1] + k + k * m), dtype=dtype)
    out[:, :numeric.shape[1]] = numeric
    out[:, numeric.shape[1]:numeric.shape[1] + k] = category_onehot
    start = numeric.shape[1] + k
    for j in range(k):  # category j times every interaction column, in the order (category, column)
        out[:, start + j * m:start + (j + 1) * m] = category_onehot[:, j:j + 1] * interact
    return out


def choose_alpha(X: np.ndarray, y: np.ndarray, weeks: np.ndarray, report: Convergence | None = None) -> float:
    """The alpha of ``ALPHAS`` with the least mean squared error over the time folds (what
    scikit-learn's ``LassoCV`` chooses); how the path's fits converged goes into ``report``."""
    report = report if report is not None else Convergence()
    folds = time_folds(weeks)
    if len(folds) < 2:
        return float(ALPHAS[len(ALPHAS) // 2])
    from sklearn.linear_model import lasso_path  # here: importing scikit-learn costs a second

    _quiet()
    alphas = np.sort(ALPHAS)[::-1]  # largest first: each fit starts from the previous solution
    mse = np.empty((len(alphas), len(folds)))
    for k, (train, val) in enumerate(folds):
        x_mean, y_mean = X[train].mean(axis=0), y[train].mean()
        centred, target = X[train] - x_mean, y[train] - y_mean
        # precompute: coordinate descent on the Gram matrix (features x features), not the rows:
        # the same solution, and at seed scale (10^5 rows per fold) several times faster
        _, coefs, gaps, iterations = lasso_path(centred, target, alphas=alphas, precompute=True, max_iter=MAX_ITER,
                                                tol=TOL, return_n_iter=True)
        tolerance = TOL * float(target @ target)
        for gap, n in zip(gaps, iterations):
            report.add(n, gap * len(train), tolerance)  # lasso_path returns the gap divided by the rows
        del centred
        residual = X[val] @ coefs + (y_mean - x_mean @ coefs) - y[val][:, None]
        mse[:, k] = np.mean(residual ** 2, axis=0)
    return float(alphas[int(np.argmin(mse.mean(axis=1)))])


def fit(X: np.ndarray, y: np.ndarray, alpha: float, report: Convergence | None = None) -> dict:
    """The LASSO at ``alpha`` on every row; how it converged goes into ``report``."""
    from sklearn.linear_model import Lasso

    _quiet()
    model = Lasso(alpha=alpha, max_iter=MAX_ITER, tol=1e-5, precompute=True).fit(X, y)
    if report is not None:
        centred = y - y.mean()
        report.add(model.n_iter_, model.dual_gap_ * len(y), 1e-5 * float(centred @ centred))
    return {"coef": model.coef_.astype(np.float64), "intercept": np.array([model.intercept_]),
            "alpha": np.array([alpha])}


def predict_log(params: dict, X: np.ndarray) -> np.ndarray:
    return X @ params["coef"] + params["intercept"][0]

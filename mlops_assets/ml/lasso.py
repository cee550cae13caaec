"""LASSO on log demand, regularisation chosen by time-ordered cross-validation."""

from __future__ import annotations

import numpy as np

ALPHAS = np.logspace(-4, -0.5, 16)


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


def choose_alpha(X: np.ndarray, y: np.ndarray, weeks: np.ndarray) -> float:
    folds = time_folds(weeks)
    if len(folds) < 2:
        return float(ALPHAS[len(ALPHAS) // 2])
    # precompute: coordinate descent on the Gram matrix (features x features), not the rows: the
    # same solution, and at seed scale (10^5 rows per fold) several times faster
    from sklearn.linear_model import LassoCV  # here: importing scikit-learn costs a second

    cv = LassoCV(alphas=ALPHAS, cv=folds, max_iter=20000, tol=1e-4, precompute=True).fit(X, y)
    return float(cv.alpha_)


def fit(X: np.ndarray, y: np.ndarray, alpha: float) -> dict:
    from sklearn.linear_model import Lasso

    model = Lasso(alpha=alpha, max_iter=20000, tol=1e-5, precompute=True).fit(X, y)
    return {"coef": model.coef_.astype(np.float64), "intercept": np.array([model.intercept_]),
            "alpha": np.array([alpha])}


def predict_log(params: dict, X: np.ndarray) -> np.ndarray:
    return X @ params["coef"] + params["intercept"][0]

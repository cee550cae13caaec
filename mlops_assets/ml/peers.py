"""Plain peers of the region ensemble, scored on exactly its holdout rows (``bench/peers.py``).

Each peer forecasts a holdout row one week ahead from what was known before that week (the
row's own lags), and the fitted ones are fit once, on the weeks before the holdout, across all
series and regions:

- ``historical_average``: the trailing 52-week mean (the project's baseline);
- ``last_value``: last week's demand;
- ``seasonal_naive``: the demand 52 weeks earlier;
- ``lasso_lags``: one LASSO on the log lags and trailing means, and the row's events (alpha by
  time-ordered CV);
- ``lightgbm``: gradient-boosted trees on the same inputs (needs the ``bench`` extra);
- ``lightgbm_quantile``: the same trees, one model per level with LightGBM's ``quantile``
  objective (P10, P50, P90; its point forecast is its P50).

Bands (P10 / P50 / P90), where a method has one: the ensemble's own, the quantile peer's, and
for the historical average a Poisson count around it (as the baseline serves them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LassoCV
from sklearn.preprocessing import StandardScaler

from mlops_assets.ml import lasso, metrics, quantiles
from mlops_assets.ml.ensemble import naive_forecast
from mlops_assets.ml.featurize import impute_history
from mlops_assets.ml.preprocess import event_indicators, model_events

LAG_INPUTS = ["lag_1", "lag_2", "lag_3", "lag_4", "lag_52", "mean_4", "mean_13", "mean_52", "nonzero_mean_13"]
OTHER_INPUTS = ["zero_share_13"]
NAIVE = {"historical_average": "mean_52", "last_value": "lag_1", "seasonal_naive": "lag_52"}


def inputs(frame: pd.DataFrame, events: list[str] = ()) -> np.ndarray:
    """Log lags and means (unobserved history imputed from the pair's own, as the models do;
    what stays missing, for a pair with no history, is 0), the zero share, and a 0/1 column per
    event of ``events`` (holidays, and promotions where the landing lists them): the models see
    the same events."""
    frame = impute_history(frame)
    logged = np.log1p(np.clip(frame[LAG_INPUTS].to_numpy(dtype=float), 0, None))
    return np.nan_to_num(np.column_stack([logged, frame[OTHER_INPUTS].to_numpy(dtype=float),
                                          event_indicators(frame, list(events))]))


def fit_lag_lasso(train: pd.DataFrame, events: list[str] = ()):
    """(scaler, LassoCV) on log1p demand, alpha by expanding-window folds over the weeks."""
    X, y = inputs(train, events), np.log1p(train["target"].to_numpy(dtype=float))
    scaler = StandardScaler().fit(X)
    folds = lasso.time_folds(train["week_start"].to_numpy())
    model = LassoCV(alphas=lasso.ALPHAS, cv=folds, max_iter=20000).fit(scaler.transform(X), y)
    return scaler, model


def fit_lightgbm(train: pd.DataFrame, seed: int = 0, events: list[str] = (), **objective):
    """Trees on log1p demand: least squares by default; ``objective="quantile", alpha=level`` for
    a quantile (a quantile of log1p demand is log1p of the quantile of demand)."""
    import lightgbm  # the bench extra: pip install -e '.[bench]'

    model = lightgbm.LGBMRegressor(n_estimators=400, learning_rate=0.05, num_leaves=31, min_child_samples=20,
                                   subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed,
                                   n_jobs=2, verbose=-1, **objective)
    return model.fit(inputs(train, events), np.log1p(train["target"].to_numpy(dtype=float)))


def peer_forecasts(train: pd.DataFrame, holdout: pd.DataFrame, with_lightgbm: bool = True) -> pd.DataFrame:
    """One column per peer, one row per holdout row (same order)."""
    # historical_average: mean_52, the baseline's own column, falls back exactly as the baseline does
    out = pd.DataFrame({name: naive_forecast(holdout, column) for name, column in NAIVE.items()},
                       index=holdout.index)
    events = model_events(train)
    X = inputs(holdout, events)
    scaler, model = fit_lag_lasso(train, events)
    out["lasso_lags"] = np.clip(np.expm1(model.predict(scaler.transform(X))), 0, None)
    if with_lightgbm:
        out["lightgbm"] = np.clip(np.expm1(fit_lightgbm(train, events=events).predict(X)), 0, None)
        band = np.column_stack([np.expm1(fit_lightgbm(train, events=events, objective="quantile",
                                                      alpha=level).predict(X))
                                for level in quantiles.LEVELS])
        band = np.sort(np.clip(band, 0, None), axis=1)  # separately fit quantiles may cross
        for k, name in enumerate(quantiles.NAMES):
            out[f"lightgbm_quantile_{name}"] = band[:, k]
        out["lightgbm_quantile"] = out["lightgbm_quantile_p50"]
    base = quantiles.poisson(out["historical_average"].to_numpy())
    for k, name in enumerate(quantiles.NAMES):
        out[f"historical_average_{name}"] = base[:, k]
    return out


def band_columns(frame: pd.DataFrame, method: str) -> list[str] | None:
    """The columns of ``method``'s P10 / P50 / P90 in ``frame`` (the ensemble's are ``p10`` ...)."""
    names = list(quantiles.NAMES) if method == "ensemble" else [f"{method}_{n}" for n in quantiles.NAMES]
    return names if all(c in frame for c in names) else None


def level_matched(frame: pd.DataFrame, method: str, by: str | None = "region") -> np.ndarray:
    """``method``'s forecast scaled, per ``by`` group, so that it totals the group's demand: an
    oracle (it reads the holdout's own total), never a forecast. It compares methods at the same
    bias: a forecast of skewed demand can trade bias for MAPE (forecasting low wins MAPE), and a
    method that is best only because it forecasts lower than its peers is not best once all are
    unbiased."""
    forecast, actual = frame[method].to_numpy(dtype=float).copy(), frame["target"].to_numpy(dtype=float)
    groups = frame.groupby(by, sort=False).indices.values() if by else [np.arange(len(frame))]
    for index in groups:
        total = forecast[index].sum()
        if total > 0:
            forecast[index] *= actual[index].sum() / total
    return forecast


def compare(frame: pd.DataFrame, methods: list[str], reference: str = "historical_average",
            by: str | None = "region") -> pd.DataFrame:
    """Each method's metrics on every row pooled, and per ``by`` group, with the MAPE and WAPE
    reductions against ``reference`` on the same rows, and its MAPE and WAPE at zero bias
    (``level_matched``: scaled per group to total the demand)."""
    matched = frame.assign(**{f"{m}__matched": level_matched(frame, m, by) for m in methods})
    groups = [("pooled", matched)] + (list(matched.groupby(by, sort=True)) if by else [])
    rows = []
    for scope, part in groups:
        actual = part["target"].to_numpy(dtype=float)
        base = metrics.summary(actual, part[reference])
        for method in methods:
            s = metrics.summary(actual, part[method])
            band = band_columns(part, method)
            rows.append({"scope": scope, "method": method, **s,
                         "mape_reduction": metrics.reduction(s["mape"], base["mape"]),
                         "wape_reduction": metrics.reduction(s["wape"], base["wape"]),
                         "mape_unbiased": metrics.mape(actual, part[f"{method}__matched"]),
                         "wape_unbiased": metrics.wape(actual, part[f"{method}__matched"]),
                         **(quantiles.summary(actual, part[band].to_numpy()) if band else {})})
    return pd.DataFrame(rows)

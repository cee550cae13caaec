"""What drives a segment's forecasts: the LASSO's coefficients and permutation attributions of both members.

The LASSO reads standardized inputs, so its coefficients on them are comparable effects on log
demand. The network has no coefficients: each input column is shuffled across the rows (breaking
its link to everything else while keeping its distribution) and the mean absolute change of the
member's log forecast is that input's attribution. The LASSO gets the same treatment, so the two
members are compared on one scale. Shuffling a numeric input also shuffles its interactions with
the category, since they are built from it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.ml import embedding_net, lasso
from mlops_assets.ml.ensemble import SEGMENTS, SegmentModel
from mlops_assets.ml.preprocess import Preprocessor

CATEGORICAL = ("store_id", "product_id", "category", "week_of_year")  # the network's embeddings, in order


def lasso_coefficients(model: SegmentModel) -> pd.Series:
    """The LASSO's coefficient on each standardized numeric input (log demand per standard deviation);
    the category and interaction columns are left out."""
    names = model.pre.feature_names
    return pd.Series(np.asarray(model.lasso["coef"])[:len(names)], index=names, name="coefficient")


def _lasso_log(model: SegmentModel, numeric: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    design = lasso.design(numeric, onehot, model.pre.interaction_columns(numeric))
    return lasso.predict_log(model.lasso, design)


def _nn_log(model: SegmentModel, pre: Preprocessor, numeric: np.ndarray, onehot: np.ndarray,
            cat: np.ndarray) -> np.ndarray:
    design = lasso.design(numeric, onehot, pre.interaction_columns(numeric), np.float32)
    return embedding_net.predict_log(model.net, design, cat)


def permutation_attribution(model: SegmentModel, frame: pd.DataFrame, seed: int = 0,
                            max_rows: int = 2000) -> pd.DataFrame:
    """Per input and member: the mean absolute change in log forecast when that input is shuffled,
    on up to ``max_rows`` rows of ``frame`` (the segment's recent features). One row per input,
    columns ``lasso`` and ``nn``, sorted by the larger of the two."""
    rng = np.random.default_rng(seed)
    if len(frame) > max_rows:
        frame = frame.iloc[np.sort(rng.choice(len(frame), max_rows, replace=False))]
    frame = frame.reset_index(drop=True)
    nn_pre = model.nn_pre or model.pre
    pooled = model.nn_pre is not None
    l_num, l_hot = model.pre.numeric_matrix(frame).astype(np.float64), model.pre.category_onehot(frame)
    n_num, n_hot = nn_pre.numeric_matrix(frame), nn_pre.category_onehot(frame)
    cat = nn_pre.categorical_matrix(frame)
    if pooled:
        index = {name: i + 1 for i, name in enumerate(SEGMENTS)}
        cat = np.column_stack([cat, frame["segment"].map(index).fillna(0).to_numpy(dtype=np.int64)])
    base_l = _lasso_log(model, l_num, l_hot)
    base_n = _nn_log(model, nn_pre, n_num, n_hot, cat)
    order = rng.permutation(len(frame))
    rows = {}
    for j, name in enumerate(model.pre.feature_names):
        shuffled = l_num.copy()
        shuffled[:, j] = shuffled[order, j]
        rows[name] = {"lasso": float(np.mean(np.abs(_lasso_log(model, shuffled, l_hot) - base_l)))}
    for j, name in enumerate(nn_pre.feature_names):
        shuffled = n_num.copy()
        shuffled[:, j] = shuffled[order, j]
        rows.setdefault(name, {})["nn"] = float(np.mean(np.abs(_nn_log(model, nn_pre, shuffled, n_hot, cat) - base_n)))
    for j, name in enumerate(CATEGORICAL):
        shuffled = cat.copy()
        shuffled[:, j] = shuffled[order, j]
        rows.setdefault(f"{name} (embedding)", {})["nn"] = float(
            np.mean(np.abs(_nn_log(model, nn_pre, n_num, n_hot, shuffled) - base_n)))
    out = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=["lasso", "nn"])
    out.index.name = "input"
    return out.loc[out.max(axis=1).sort_values(ascending=False).index]

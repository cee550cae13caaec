"""The features' history columns as they were first computed: week by week, window by window.

The reference the vectorized ``featurize.history_features`` is held to (test_features.py); it
is not used by the package.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlops_assets.ml.featurize import HISTORY_WEEKS, KEY, LAGS, WINDOWS, _panel, velocity_table


def history_by_week(demand: pd.DataFrame, weeks: Sequence[str], products: pd.DataFrame) -> pd.DataFrame:
    panel, panel_weeks = _panel(demand)
    values = panel.to_numpy(dtype=float)
    col = {w: i for i, w in enumerate(panel_weeks)}
    listed = demand.groupby("week_start")[["store_id", "product_id"]].apply(
        lambda f: pd.MultiIndex.from_frame(f)) if len(demand) else {}

    frames = []
    for week in pd.DatetimeIndex(pd.to_datetime(list(weeks))).sort_values():
        observed = [w for w in listed.index if w <= week] if len(demand) else []
        if not observed:
            continue  # nothing delivered yet for this region: no rows to forecast
        rows = listed[max(observed)]
        idx = panel.index.get_indexer(rows)
        frame = rows.to_frame(index=False)
        frame.insert(0, "week_start", week)
        target_col = col.get(week)
        frame["target"] = values[idx, target_col] if target_col is not None and week in listed.index else np.nan
        # history: columns strictly before this week
        for lag in LAGS:
            c = col.get(week - pd.Timedelta(weeks=lag))
            frame[f"lag_{lag}"] = values[idx, c] if c is not None else np.nan
        for window in WINDOWS:
            cols = [col[w] for w in (week - pd.Timedelta(weeks=k) for k in range(1, window + 1)) if w in col]
            block = values[idx][:, cols] if cols else np.full((len(idx), 0), np.nan)
            listed_weeks = (~np.isnan(block)).sum(axis=1)
            # the mean over the weeks the pair was listed; unknown (NaN) when none was
            frame[f"mean_{window}"] = np.where(listed_weeks > 0, np.nansum(block, axis=1) / np.maximum(listed_weeks, 1),
                                               np.nan)
        # intermittent demand (Croston's idea): how much sells when anything sells, and how often nothing does
        cols13 = [col[w] for w in (week - pd.Timedelta(weeks=k) for k in range(1, 14)) if w in col]
        block = values[idx][:, cols13] if cols13 else np.full((len(idx), 0), np.nan)
        selling = np.nan_to_num(block) > 0
        listed13 = (~np.isnan(block)).sum(axis=1)
        frame["nonzero_mean_13"] = np.where(
            selling.sum(axis=1) > 0, np.where(selling, block, 0).sum(axis=1) / np.maximum(selling.sum(axis=1), 1),
            np.where(listed13 > 0, 0.0, np.nan))  # listed and never sold: 0; never listed: unknown
        frame["zero_share_13"] = np.where(listed13 > 0, (listed13 - selling.sum(axis=1)) / np.maximum(listed13, 1),
                                          np.nan)
        # weeks listed among the last 52: a fixed window, so batching runs never changes a feature
        hist_cols = [col[w] for w in (week - pd.Timedelta(weeks=k) for k in range(1, HISTORY_WEEKS + 1)) if w in col]
        frame["weeks_listed"] = (~np.isnan(values[idx][:, hist_cols])).sum(axis=1).astype(float) if hist_cols else 0.0
        vel = velocity_table(products, panel, week)
        frame = frame.merge(vel, on="product_id", how="left")
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*KEY, "target"])
    return pd.concat(frames, ignore_index=True)


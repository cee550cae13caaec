"""Features for one-week-ahead demand forecasting, built only from what was known before the week.

One row per active store x product for the target week: the target (net demand,
missing for a week not yet observed), lags 1-4 and 52, trailing means over 4, 13
and 52 weeks, the mean of selling weeks and the share of zero weeks among the last 13,
weeks listed among the last 52, week of year, the week's events, the
week's weather (observed, else forecast), demographics, format, velocity and the
categorical ids. Every history feature of week w reads weeks < w only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LAGS = (1, 2, 3, 4, 52)
WINDOWS = (4, 13, 52)
HISTORY_WEEKS = 52  # how far back a feature looks
KEY = ["week_start", "store_id", "product_id"]
WEATHER = ["temp_max_c", "temp_min_c", "precip_mm"]
CATEGORICAL = ["store_id", "product_id", "category", "week_of_year"]
# the week's weather as it was forecast before the week (the observation where no forecast landed)
FORECAST_WEATHER = [f"forecast_{c}" for c in WEATHER]
HISTORY = ["lag_1", "lag_2", "lag_3", "lag_4", "lag_52", "mean_4", "mean_13", "mean_52", "nonzero_mean_13"]


def impute_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Demand history with unobserved values filled from the pair's own observed history: a lag
    from the nearest trailing mean, a trailing mean from the next window, lag 52 from the 52-week
    mean. Values stay missing only where the pair has no observed week at all (a new pair, or
    every week absent). Adds ``history_missing``: the share of history values that were missing."""
    out = frame.copy()
    hist = out[HISTORY].astype(float)
    out["history_missing"] = hist.isna().mean(axis=1)
    recent = hist["mean_4"].fillna(hist["mean_13"]).fillna(hist["mean_52"])
    for c in ("lag_1", "lag_2", "lag_3", "lag_4", "nonzero_mean_13"):
        out[c] = hist[c].fillna(recent)
    out["mean_4"] = recent
    out["mean_13"] = hist["mean_13"].fillna(hist["mean_52"]).fillna(hist["mean_4"])
    out["mean_52"] = hist["mean_52"].fillna(hist["mean_13"]).fillna(hist["mean_4"])
    out["lag_52"] = hist["lag_52"].fillna(out["mean_52"])
    return out


def at_forecast_time(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as they were known before their week: its weather is the forecast where one
    landed. Scores and holdout evaluations forecast from this, never from the observed weather
    of the week being forecast."""
    out = frame.copy()
    if set(FORECAST_WEATHER) <= set(out.columns):
        for c in WEATHER:
            out[c] = out[f"forecast_{c}"].where(out[f"forecast_{c}"].notna(), out[c])
        out["weather_forecast_share"] = out["forecast_weather_share"].fillna(out["weather_forecast_share"])
    return out


def _panel(demand: pd.DataFrame) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """Demand as a dense pairs x weeks matrix (NaN before a pair's first delivery or for unloaded weeks)."""
    weeks = pd.DatetimeIndex(sorted(demand["week_start"].unique()))
    if len(weeks):
        weeks = pd.date_range(weeks[0], weeks[-1], freq="7D")
    panel = demand.pivot_table(index=["store_id", "product_id"], columns="week_start", values="net_demand",
                               aggfunc="sum").reindex(columns=weeks)
    return panel, weeks


def velocity_table(products: pd.DataFrame, panel: pd.DataFrame, upto: pd.Timestamp) -> pd.DataFrame:
    """fast/slow per product: the products file's value, else derived from the trailing 52-week
    sales rate before ``upto``: fast when a product's mean weekly demand per store is at least
    the median across the region's products. The source of each value is recorded."""
    window = panel.loc[:, (panel.columns < upto) & (panel.columns >= upto - pd.Timedelta(weeks=HISTORY_WEEKS))]
    rate = window.mean(axis=1).groupby(level="product_id").mean().dropna()
    derived = pd.Series(np.where(rate >= rate.median(), "fast", "slow"), index=rate.index) if len(rate) else \
        pd.Series(dtype=object)
    given = products.set_index("product_id")["velocity"] if "velocity" in products else \
        pd.Series(index=products["product_id"], dtype=object)
    given = given.where(given.isin(["fast", "slow"]))
    out = pd.DataFrame({"velocity": given.combine_first(derived)})
    out["velocity_source"] = np.where(given.reindex(out.index).notna(), "products file", "derived")
    out.loc[out["velocity"].isna(), ["velocity", "velocity_source"]] = ["slow", "no sales yet"]
    return out.rename_axis("product_id").reset_index()


def build_features(
    demand: pd.DataFrame,
    weeks: Sequence[str],
    stores: pd.DataFrame,
    products: pd.DataFrame,
    demographics: pd.DataFrame,
    weather: pd.DataFrame,
    events: pd.DataFrame,
) -> pd.DataFrame:
    """Features for each of ``weeks`` (one region's), from ``demand`` covering up to 52 weeks before them.

    ``demand`` is the conditioned net demand (weeks not yet observed are simply absent).
    A week's rows are the store x products listed for it in ``demand``, or, for a week
    not observed yet, those of the latest observed week before it.
    """
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
    # History that was not observed (before a pair's first delivery, or a week whose net demand
    # is absent) stays missing: it is never read as zero demand (``impute_history`` fills it).
    out = pd.concat(frames, ignore_index=True)

    out["week_of_year"] = out["week_start"].dt.isocalendar().week.astype("int64")
    out = out.merge(stores[["store_id", "region", "format", "zip_code"]], on="store_id", how="left")
    out = out.merge(products[["product_id", "category"]], on="product_id", how="left")
    demo = demographics.rename(columns={c: f"demo_{c}" for c in demographics.columns if c != "store_id"})
    out = out.merge(demo, on="store_id", how="left")
    weather = weather.reindex(columns=["week_start", "zip_code", *WEATHER, *FORECAST_WEATHER, "days_forecast",
                                       "days_with_forecast"])
    out = out.merge(weather, on=["week_start", "zip_code"], how="left")
    out["weather_forecast_share"] = out.pop("days_forecast") / 7.0
    out["forecast_weather_share"] = out.pop("days_with_forecast") / 7.0
    ev = (events.groupby("week_start")["event"].apply(lambda s: ";".join(sorted(set(s)))).rename("events")
          if len(events) else pd.Series(dtype=object, name="events"))
    out = out.merge(ev.reset_index(), on="week_start", how="left") if len(ev) else out.assign(events="")
    out["events"] = out["events"].fillna("")
    out["segment"] = out["format"] + "/" + out["velocity"]
    out = out.drop(columns=["zip_code"])
    lead = ["region", "week_start", "store_id", "product_id", "category", "format", "velocity",
            "velocity_source", "segment", "target"]
    return out[lead + [c for c in out.columns if c not in lead]].sort_values(KEY).reset_index(drop=True)

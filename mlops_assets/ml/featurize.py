"""Features for one-week-ahead demand forecasting, built only from what was known before the week.

One row per active store x product for the target week: the target (net demand,
missing for a week not yet observed), lags 1-4 and 52, trailing means over 4, 13
and 52 weeks, the mean of selling weeks and the share of zero weeks among the last 13,
weeks listed among the last 52, week of year, the events of the row's week (its region's, its
store's, its product's), the week's weather (observed, else forecast), demographics, format,
velocity and the categorical ids. Every history feature of week w reads weeks < w only.
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
    return frame.assign(**imputed_history(frame))


def imputed_history(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """``impute_history``'s columns alone (the history and ``history_missing``), without copying
    the rest of the frame."""
    hist = frame[HISTORY].astype(float)
    out = {"history_missing": hist.isna().mean(axis=1)}
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
    return velocity_from_rates(products, window.mean(axis=1).groupby(level="product_id").mean().dropna())


def velocity_from_rates(products: pd.DataFrame, rate: pd.Series) -> pd.DataFrame:
    """``velocity_table`` from each product's mean weekly demand per store (products without
    any history left out)."""
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
    return finish_features(history_features(demand, weeks, products), stores, products, demographics, weather,
                           events)


def history_features(demand: pd.DataFrame, weeks: Sequence[str], products: pd.DataFrame) -> pd.DataFrame:
    """The rows of every week (see ``build_features``) with target, lags, trailing means, the
    intermittency features, weeks listed and velocity, all weeks at once: every window is a
    difference of cumulative sums along the weeks of the store x product panel."""
    if not len(demand):
        return pd.DataFrame(columns=[*KEY, "target"])
    panel, panel_weeks = _panel(demand)
    listed_weeks = pd.DatetimeIndex(np.sort(demand["week_start"].unique()))
    targets = pd.DatetimeIndex(pd.to_datetime(list(weeks))).sort_values()
    source = np.searchsorted(listed_weeks, targets, side="right") - 1  # the latest listed week <= it
    targets, source = targets[source >= 0], source[source >= 0]
    if not len(targets):
        return pd.DataFrame(columns=[*KEY, "target"])

    # the rows of each listed week, as positions in the panel
    rows_of = {}
    demand_rows = panel.index.get_indexer(pd.MultiIndex.from_frame(demand[["store_id", "product_id"]]))
    for week, idx in demand.groupby("week_start").indices.items():
        rows_of[pd.Timestamp(week)] = demand_rows[idx]
    pairs = [rows_of[listed_weeks[s]] for s in source]
    pair = np.concatenate(pairs)
    # week positions from the panel's first week; weeks after it are unobserved (NaN) columns
    first = panel_weeks[0]
    at = ((targets - first).days // 7).to_numpy()
    n_cols = max(len(panel_weeks), int(at.max()) + 1)
    values = np.full((len(panel), n_cols), np.nan)
    values[:, :len(panel_weeks)] = panel.to_numpy(dtype=float)
    row_at = np.repeat(at, [len(p) for p in pairs])
    observed_target = np.repeat(listed_weeks[source] == targets, [len(p) for p in pairs])

    def cumulative(matrix: np.ndarray) -> np.ndarray:  # column j: the sum of columns < j
        out = np.zeros((matrix.shape[0], matrix.shape[1] + 1))
        np.cumsum(matrix, axis=1, out=out[:, 1:])
        return out

    known = ~np.isnan(values)
    filled = np.where(known, values, 0.0)
    sells = filled > 0
    count, total = cumulative(known), cumulative(filled)
    selling, selling_total = cumulative(sells), cumulative(np.where(sells, filled, 0.0))

    def window(cum: np.ndarray, length: int) -> np.ndarray:  # the weeks w-length .. w-1 of each row
        return cum[pair, row_at] - cum[pair, np.maximum(row_at - length, 0)]

    frame = pd.DataFrame({"week_start": np.repeat(targets.to_numpy(), [len(p) for p in pairs]),
                          "store_id": panel.index.get_level_values(0).to_numpy()[pair],
                          "product_id": panel.index.get_level_values(1).to_numpy()[pair]})
    frame["target"] = np.where(observed_target, values[pair, np.minimum(row_at, n_cols - 1)], np.nan)
    for lag in LAGS:
        frame[f"lag_{lag}"] = np.where(row_at - lag >= 0, values[pair, np.maximum(row_at - lag, 0)], np.nan)
    for length in WINDOWS:
        n = window(count, length)
        frame[f"mean_{length}"] = np.where(n > 0, window(total, length) / np.maximum(n, 1), np.nan)
    n13, sold13 = window(count, 13), window(selling, 13)
    frame["nonzero_mean_13"] = np.where(sold13 > 0, window(selling_total, 13) / np.maximum(sold13, 1),
                                        np.where(n13 > 0, 0.0, np.nan))
    frame["zero_share_13"] = np.where(n13 > 0, (n13 - sold13) / np.maximum(n13, 1), np.nan)
    frame["weeks_listed"] = window(count, HISTORY_WEEKS)

    # velocity per target week: each pair's mean over its 52 weeks before it, by product
    unique_at = np.unique(at)
    stop = np.minimum(unique_at, len(panel_weeks))
    start = np.maximum(unique_at - HISTORY_WEEKS, 0)
    pair_count = count[:, stop] - count[:, np.minimum(start, stop)]
    pair_total = total[:, stop] - total[:, np.minimum(start, stop)]
    pair_rate = pd.DataFrame(np.where(pair_count > 0, pair_total / np.maximum(pair_count, 1), np.nan),
                             index=panel.index)
    product_rate = pair_rate.groupby(level="product_id").mean()
    tables = []
    for j, position in enumerate(unique_at):
        table = velocity_from_rates(products, product_rate[j].dropna())
        tables.append(table.assign(week_start=first + pd.Timedelta(weeks=int(position))))
    return frame.merge(pd.concat(tables, ignore_index=True), on=["week_start", "product_id"], how="left")


EVENT_SCOPES = (["week_start"], ["week_start", "store_id"], ["week_start", "product_id"],
                ["week_start", "store_id", "product_id"])
EVENT_BITS = 62  # event names per int64 word of a row's event mask


def row_events(rows: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Each row's events, ``;``-joined and sorted: the week's events of the whole region, and those
    limited to the row's store, its product or both (``weekly_events``: "" = every one).

    A row's events are a bit mask over the event names (set with one vectorized ``bitwise_or``
    per word), and each distinct mask is joined into text once: a region at seed scale has a
    million rows and, with promotions listed, hundreds of thousands of matches, but few distinct
    combinations of events."""
    events = events.reindex(columns=["week_start", "event", "store_id", "product_id"])
    for column in ("store_id", "product_id"):  # a partition conditioned before events had a scope: every one
        events[column] = events[column].fillna("").astype(str)
    keys = rows[KEY].assign(_row=np.arange(len(rows)))
    matched = []
    for on in EVENT_SCOPES:
        given = np.logical_and.reduce([(events[c] != "").to_numpy() if c in on else (events[c] == "").to_numpy()
                                       for c in ("store_id", "product_id")])
        if given.any():
            matched.append(keys.merge(events.loc[given, [*on, "event"]].drop_duplicates(), on=on)[["_row", "event"]])
    out = np.full(len(rows), "", dtype=object)
    found = pd.concat(matched, ignore_index=True) if matched else pd.DataFrame(columns=["_row", "event"])
    if len(found):
        names = np.sort(found["event"].astype(str).unique())
        code = np.searchsorted(names, found["event"].astype(str).to_numpy())
        row = found["_row"].to_numpy(dtype=np.int64)
        words = [np.zeros(len(rows), dtype=np.int64) for _ in range(-(-len(names) // EVENT_BITS))]
        for word, mask in enumerate(words):
            at = code // EVENT_BITS == word
            np.bitwise_or.at(mask, row[at], np.left_shift(np.int64(1), (code[at] % EVENT_BITS).astype(np.int64)))
        # up to EVENT_BITS names: a 1-d unique, several times faster than one over rows
        distinct, inverse = (np.unique(words[0], return_inverse=True) if len(words) == 1 else
                             np.unique(np.column_stack(words), axis=0, return_inverse=True))
        distinct = distinct.reshape(len(distinct), len(words))
        cells = np.array([";".join(name for i, name in enumerate(names)
                                   if (int(m[i // EVENT_BITS]) >> (i % EVENT_BITS)) & 1) for m in distinct],
                         dtype=object)
        out = cells[np.asarray(inverse).reshape(-1)]
    return pd.Series(out, index=rows.index, dtype=object)


def finish_features(out: pd.DataFrame, stores: pd.DataFrame, products: pd.DataFrame, demographics: pd.DataFrame,
                    weather: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The history rows joined with calendar, store, product, demographics, weather and events."""
    if not len(out):
        return pd.DataFrame(columns=[*KEY, "target"])
    # History that was not observed (before a pair's first delivery, or a week whose net demand
    # is absent) stays missing: it is never read as zero demand (``impute_history`` fills it).
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
    out["events"] = row_events(out, events)
    out["segment"] = out["format"] + "/" + out["velocity"]
    out = out.drop(columns=["zip_code"])
    lead = ["region", "week_start", "store_id", "product_id", "category", "format", "velocity",
            "velocity_source", "segment", "target"]
    return out[lead + [c for c in out.columns if c not in lead]].sort_values(KEY).reset_index(drop=True)

"""Level signals of a panel of demand series: each series against its own reference. Pure.

A region's rows are a panel: hundreds of store x product series whose sizes differ by three
orders of magnitude. Pooled into one distribution, a change of every series' level by 60%
moves the distribution by a fraction of its width. Here every series is compared with
itself, and a region's statistic is a robust weighted mean over its series of log ratios
(``robust_level``), which a change of level moves by the log of its size, whatever the
series' sizes. Each series weighs by how steady it was in the reference year (1 / its spread
squared: a series selling a thousand a week says more about the region's level than one
selling one or two), and none moves the mean by more than ``CLIP`` of its own spreads (a
promotion or a bulk order is one series' week, not the region's):

- ``forecast`` (when the week is forecast): the forecast against what the reference says the
  series sells that week: its reference level, plus its category's annual season and the lift
  its category showed in the reference at the row's events (its week's, its store's, its
  product's), all three fitted together to the reference year's log demand by least squares
  (``expectation_model``). Prediction drift: the forecasts moved away from what the week should
  look like.
- ``demand`` (once the week's actuals land): the actual demand against the same expectation.
- ``error`` (then too): the log ratio of actual to forecast: the forecasts' bias.

- ``spread`` (then too): whether some of the region's stores moved away from the rest, a change
  the region's mean carries only in part (a third of the stores 30% up moves it 10%). Each
  store's week is its own robust level less the region's (``store_departures``); each store is
  judged against its own baseline of such weeks, in its own spread over the reference year, and
  the week's statistic is the mean of the stores' squared z, standardized by its cube root for
  the number of stores judged (``store_spread``: Wilson-Hilferty). It rises when
  stores move apart, whichever way each moves; it is judged one way, up, over the mean of 2 and 4
  weeks (one store's odd week, a delivery booked twice or half a week's data missing, is not the
  stores moving apart).

A store that sold nothing at all in a week, though it usually sells at least
``CLOSED_MIN_UNITS`` a week, was closed (or its data did not come): its series are left out of
that week's ``demand`` and ``error`` (and of the reference's fit and calibration), and the week
names it (``closed_stores``). One closed store of eight reads, in a region's robust mean, as
demand 10-15% down; it is no change of the region's level, and no retrain brings it back.

Each statistic is judged against its own recent past: the mean of the ``BASELINE`` weeks that
end ``GUARD`` weeks before the week judged (so a change is measured against what came before it
for ``GUARD`` weeks, while a model's slowly wandering seasonal bias, or a trend, is followed),
scaled by how far weeks fell from such a baseline over the calibration weeks: the reference year
for ``demand``; for ``error`` weeks the model's forecasts had not seen (the training run's
holdout, or for the model fit before it, its validation weeks); for ``forecast`` those weeks
too, forecast unseen, with the reference year's fitted weeks before them as their baselines
(where a model has too few such weeks, the whole reference year). Once a model serves, its own
weeks extend the calibration. A week's series share weather, holidays and
promotions nobody listed, so the variation across weeks, not across series, is the noise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_assets.ml.featurize import KEY
from mlops_assets.ml.preprocess import event_indicators, event_vocabulary

LIFT_T = 2.0  # a lift smaller than this many of its own standard errors is noise: dropped
CLIP = 3.0  # a series moves its week's level by at most this many of its own spreads (Huber)
MIN_SPREAD = 0.2  # the least spread (log units) a series is credited with: a few steady series do not outweigh the rest
MIN_SPREAD_WEEKS = 8  # reference weeks a series needs for its own spread; with fewer it gets the median series'
MAX_ITERATIONS = 2000  # of robust_level's fixed point; heavy-tailed weeks need up to a few hundred
MIN_SERIES = 10  # series with a reference level a week needs before its statistics mean anything
MIN_WEEKS = 4  # calibration weeks a statistic needs before it can be standardized
GUARD = 4  # the baseline of a week ends this many weeks before it
BASELINE = 13  # weeks in the baseline (a quarter: long enough to be precise, short enough to follow a trend)
YEAR_WEEKS = 52.18
# distinct weeks of the year a season needs: fitted on less, it is extrapolated into the weeks monitored
MIN_WEEKS_FOR_SEASON = 50
# a store that usually sells at least this many units a week, all its products together, and sold
# none is closed that week: by chance alone (Poisson) that happens in e^-5 < 1% of its weeks
CLOSED_MIN_UNITS = 5.0
MIN_STORES = 3  # stores with a level a week needs before their spread means anything
MIN_STORE_SERIES = 3  # series with a reference level a store needs for a level of its own
MIN_STORE_SCALE = 0.01  # the least spread (log units) of a store's departures: a store's z stays finite
LEVEL_VERSION = 5


def series_of(frame: pd.DataFrame) -> pd.Series:
    """The series a row belongs to: 'store|product'."""
    return frame["store_id"].astype(str) + "|" + frame["product_id"].astype(str)


def log_units(values) -> np.ndarray:
    return np.log1p(np.clip(np.asarray(values, dtype=float), 0, None))


def series_weights(spreads) -> np.ndarray:
    """Each series' weight in its week's level: 1 / spread^2 (0 for a spread that is missing or not
    positive: a series without one does not count)."""
    spreads = np.asarray(spreads, dtype=float)
    ok = np.isfinite(spreads) & (spreads > 0)
    return np.where(ok, 1.0 / np.square(np.where(ok, spreads, 1.0)), 0.0)


def robust_level(values, spreads) -> float:
    """The level ``m`` of a week's series log ratios: each weighted by 1 / spread^2, each
    departure from ``m`` clipped at ``CLIP`` spreads (Huber's M-estimate of location, found by
    iterating from the median until a step moves it less than 1e-10). With equal spreads and
    nothing clipped it is the plain mean; nine series at 0 and one at 100, all of spread 1, give
    m = (9 x 0 + (m + 3)) / 10 = 1/3."""
    values, spreads = np.asarray(values, dtype=float), np.asarray(spreads, dtype=float)
    weights = series_weights(spreads)
    ok = np.isfinite(values) & (weights > 0)
    values, spreads, weights = values[ok], spreads[ok], weights[ok]
    if not len(values):
        return float("nan")
    level = float(np.median(values))
    for _ in range(MAX_ITERATIONS):
        moved = level + np.clip(values - level, -CLIP * spreads, CLIP * spreads)
        new = float(np.sum(weights * moved) / np.sum(weights))
        if abs(new - level) < 1e-10:
            break
        level = new
    return new


def store_units(rows: pd.DataFrame, units) -> dict[str, float]:
    """Each store's usual weekly units, all its products together: the mean over the weeks it sold
    anything (a closure does not lower it)."""
    totals = pd.Series(np.asarray(units, dtype=float)).groupby(
        [rows["store_id"].astype(str).to_numpy(), week_labels(rows)]).sum()
    usual = totals[totals > 0].groupby(level=0).mean()
    return {str(k): round(float(v), 3) for k, v in usual.items()}


def closed(rows: pd.DataFrame, units, usual: dict[str, float]) -> np.ndarray:
    """Per row: whether its store was closed in its week: it sold nothing at all (``units``, one
    per row, summed over the store's rows of the week) though it usually sells at least
    ``CLOSED_MIN_UNITS`` (``usual``: ``store_units``)."""
    units = np.nan_to_num(np.asarray(units, dtype=float), nan=0.0)
    store = rows["store_id"].astype(str).to_numpy()
    total = pd.Series(units).groupby([store, week_labels(rows)]).transform("sum").to_numpy()
    return (total <= 0) & (pd.Series(store).map(usual).fillna(0.0).to_numpy() >= CLOSED_MIN_UNITS)


def week_labels(frame: pd.DataFrame) -> np.ndarray:
    """Each row's week as its label, 'YYYY-MM-DD'."""
    return pd.to_datetime(frame["week_start"]).dt.strftime("%Y-%m-%d").to_numpy()


def harmonics(week_of_year) -> np.ndarray:
    angle = 2 * np.pi * np.asarray(week_of_year, dtype=float) / YEAR_WEEKS
    return np.column_stack([np.sin(angle), np.cos(angle)])


def _indicators(frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Each row's events as 0/1 columns, one per event name in ``frame``: (names, rows x names)."""
    names = event_vocabulary(frame)
    return names, event_indicators(frame, names)


def _lift_terms(lifts: dict[str, dict[str, float]], category: np.ndarray,
                events: tuple[list[str], np.ndarray]) -> np.ndarray:
    """Each row's sum of its category's lifts at its events (0 for an event its category never had)."""
    names, matrix = events
    out = np.zeros(len(category))
    if not names:
        return out
    for cat, by_event in lifts.items():
        at = category == cat
        out[at] = matrix[at] @ np.array([by_event.get(name, 0.0) for name in names])
    return out


def _within(values: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``values`` (rows, or rows x columns) less their series' mean."""
    frame = pd.DataFrame(values)
    return (frame - frame.groupby(key).transform("mean")).to_numpy()


def _category_terms(values: np.ndarray, key: np.ndarray, woy: np.ndarray, week: np.ndarray, names: list[str],
                    matrix: np.ndarray) -> tuple[list[float] | None, dict[str, float], dict[str, int]]:
    """One category's season ([b, c] of ``b sin + c cos`` of the week of year; None where its rows
    span fewer than ``MIN_WEEKS_FOR_SEASON`` weeks of the year), its lift at each event it had, and
    the weeks each lift was seen in, fitted together with a level per series: least squares on the
    rows with each series' mean taken out (Frisch-Waugh-Lovell: the same terms as fitting every
    level with them). Events that always coincide share their joint lift (the least-norm solution).

    A lift seen in k weeks holds those weeks' noise: the category's weekly level wanders by s (the
    standard deviation of its weeks' mean residuals), so the lift is known to about s / sqrt(k).
    A lift within ``LIFT_T`` of those of 0 is no lift the data can tell from noise: it is dropped
    and the rest fitted again. On orange juice, where a week's level moves by 0.15, most of its
    holidays seen once are dropped and Memorial Day's deals (+0.46 national brands, -0.45 premium)
    kept; on the sample Thanksgiving's +0.7 for bakery is kept. A kept lift still holds the noise of
    its few weeks: ``lift_uncertainty``."""
    has_season = len(np.unique(woy)) >= MIN_WEEKS_FOR_SEASON
    used = matrix.any(axis=0)
    y = _within(values, key).ravel()
    while True:  # fit, drop the lifts noise explains, fit again (each pass drops one or more)
        columns = ([harmonics(woy)] if has_season else []) + ([matrix[:, used]] if used.any() else [])
        if not columns:
            return None, {}, {}
        design = _within(np.column_stack(columns), key)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        lifts = coef[2:] if has_season else coef
        weekly = pd.Series(y - design @ coef).groupby(week).mean()
        noise = float(weekly.std()) if len(weekly) > 2 else 0.0
        seen = np.array([len(np.unique(week[matrix[:, j] > 0])) for j in np.flatnonzero(used)])
        keep = np.abs(lifts) >= LIFT_T * noise / np.sqrt(np.maximum(seen, 1))
        if keep.all():
            break
        used[np.flatnonzero(used)[~keep]] = False
    season = [float(coef[0]), float(coef[1])] if has_season else None
    chosen = np.asarray(names)[used]
    return (season, {name: round(float(b), 6) for name, b in zip(chosen, lifts)},
            {name: int(k) for name, k in zip(chosen, seen)})


def spreads_of(model: dict, frame: pd.DataFrame) -> np.ndarray:
    """Each row's series spread in an expectation model (the median series' for a series it
    never saw; 1 for every series of a model saved before spreads were: equal weights)."""
    series = model["series"]
    if "spread" not in series:
        return np.ones(len(frame))
    known = pd.Series(series["spread"], index=series["key"]).reindex(series_of(frame).to_numpy())
    return known.fillna(model["median_spread"]).to_numpy(dtype=float)


def _spreads(deviation: np.ndarray, key: np.ndarray) -> tuple[pd.Series, float]:
    """Each series' spread: the standard deviation of its deviations from its expectation over
    the reference year, at least ``MIN_SPREAD``; the median series' for one seen in fewer than
    ``MIN_SPREAD_WEEKS`` weeks."""
    grouped = pd.Series(deviation).groupby(key)
    spread, weeks = grouped.std(), grouped.count()
    steady = spread[(weeks >= MIN_SPREAD_WEEKS) & spread.notna()]
    median = float(max(steady.median(), MIN_SPREAD)) if len(steady) else 1.0
    return spread.where(weeks >= MIN_SPREAD_WEEKS, median).fillna(median).clip(lower=MIN_SPREAD), median


def expected(model: dict, frame: pd.DataFrame) -> np.ndarray:
    """What an expectation model (``expectation_model``) says each row's series sells in its week,
    in log units (NaN for a series it never saw)."""
    key = series_of(frame)
    level = pd.Series(model["series"]["level"], index=model["series"]["key"]).reindex(key.to_numpy())
    category = frame["category"].astype(str).to_numpy()
    out = level.to_numpy(dtype=float) + season_of(model, category, frame["week_of_year"].to_numpy(dtype=float))
    lifts = model.get("lifts", {})
    return out + _lift_terms(lifts, category, _indicators(frame)) if lifts else out


def expectation_model(rows: pd.DataFrame, values: np.ndarray) -> dict:
    """Each series' level, its category's annual season and its category's lift at each event,
    fitted together on ``rows`` (the reference year) to ``values`` (log units): the least-squares
    fit of level + season + lifts (``_category_terms``, then each level the mean of what season
    and lifts leave). Fitted one after the other, a series' level would hold its weeks' events
    (a product in promotion one week in three looks higher in every week) and each event's lift
    the lifts of the events it coincides with. Then each series' spread around that expectation
    (``_spreads``)."""
    key = series_of(rows).to_numpy()
    woy = rows["week_of_year"].to_numpy(dtype=float)
    category = rows["category"].astype(str).to_numpy()
    values = np.asarray(values, dtype=float)
    names, matrix = _indicators(rows)
    week = week_labels(rows)
    seasons, lifts, seen = {}, {}, {}
    for cat in np.unique(category):
        at = (category == cat) & np.isfinite(values)
        if not at.any():
            continue
        season, lift, weeks = _category_terms(values[at], key[at], woy[at], week[at], names, matrix[at])
        if season is not None:
            seasons[str(cat)] = season
        if lift:
            lifts[str(cat)], seen[str(cat)] = lift, weeks
    model = {"season": seasons, "lifts": lifts, "lift_weeks": seen}
    terms = season_of(model, category, woy) + _lift_terms(lifts, category, (names, matrix))
    level = pd.Series(values - terms).groupby(key).mean().round(6)
    model["series"] = {"key": level.index.tolist(), "level": level.tolist()}
    spread, median = _spreads(values - level.reindex(key).to_numpy() - terms, key)  # what expected() gives
    model["series"]["spread"] = spread.reindex(level.index).round(6).tolist()
    model["median_spread"] = round(median, 6)
    return model


def lift_uncertainty(model: dict, frame: pd.DataFrame, spreads: np.ndarray) -> float:
    """How much of a week's own noise the expectation of ``frame`` (one week's rows, their series
    ``spreads``) carries from its lifts, as a share of a week's variance: each lift seen in k
    reference weeks holds 1/k of their noise; an event whose lifts reach a share w of the week's
    weight (1 / spread^2) adds w^2 / k (w times the k-weighted sum of its categories' shares: they
    share a week's noise). A national holiday seen once, lifted in every category: 1, the week's
    expectation is as uncertain as the week itself."""
    seen = model.get("lift_weeks") or {}
    if not seen:
        return 0.0
    names, matrix = _indicators(frame)
    if not names:
        return 0.0
    weights = series_weights(spreads)  # as in the week's level (robust_level)
    category = frame["category"].astype(str).to_numpy()
    total = float(weights.sum())
    if total <= 0:
        return 0.0
    out = 0.0
    for j, name in enumerate(names):  # a week's categories share its noise: an event's shares add up
        parts = [(float(weights[(category == cat) & (matrix[:, j] > 0)].sum()) / total, by_event[name])
                 for cat, by_event in seen.items() if name in by_event]
        out += sum(w for w, _ in parts) * sum(w / max(k, 1) for w, k in parts)
    return out


def season_of(reference: dict, category, woy) -> np.ndarray:
    """The reference's seasonal term for each row (0 for a category without one)."""
    category = np.asarray(category).astype(str)
    out = np.zeros(len(category))
    terms = harmonics(woy)
    for cat, coef in reference["season"].items():
        at = category == cat
        out[at] = terms[at] @ np.asarray(coef)
    return out


def weekly(frame: pd.DataFrame, values: np.ndarray, spreads: np.ndarray) -> pd.Series:
    """Each week's ``robust_level`` of ``values`` (one per row of ``frame``, series ``spreads`` in
    the same order) over at least ``MIN_SERIES`` series, by week (label 'YYYY-MM-DD')."""
    labels = week_labels(frame)
    values, spreads = np.asarray(values, dtype=float), np.asarray(spreads, dtype=float)
    out = {}
    for label, at in pd.Series(np.arange(len(labels))).groupby(labels).indices.items():
        if np.isfinite(values[at]).sum() >= MIN_SERIES:
            out[label] = round(robust_level(values[at], spreads[at]), 6)
    return pd.Series(out, dtype=float).sort_index()


def store_departures(frame: pd.DataFrame, values: np.ndarray, spreads: np.ndarray) -> dict[str, dict[str, float]]:
    """Per week, each store's ``robust_level`` of ``values`` (one per row of ``frame``: a series'
    log ratio to its expectation; not finite where not counted) less the region's, over the same
    rows: {week: {store: departure}}. A store needs ``MIN_STORE_SERIES`` counted series, a week
    ``MIN_SERIES``."""
    labels, stores = week_labels(frame), frame["store_id"].astype(str).to_numpy()
    values, spreads = np.asarray(values, dtype=float), np.asarray(spreads, dtype=float)
    counted = np.isfinite(values) & (series_weights(spreads) > 0)
    out = {}
    for label, at in pd.Series(np.arange(len(labels))).groupby(labels).indices.items():
        at = at[counted[at]]
        if len(at) < MIN_SERIES:
            continue
        region = robust_level(values[at], spreads[at])
        week = {}
        for store, rows in pd.Series(at).groupby(stores[at]).indices.items():
            if len(rows) >= MIN_STORE_SERIES:
                week[str(store)] = round(robust_level(values[at[rows]], spreads[at[rows]]) - region, 6)
        out[label] = week
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Spread:
    values: dict[str, float]  # each week's statistic (weeks with ``MIN_STORES`` judged stores)
    changes: pd.DataFrame  # week x store: each store's departure less its baseline and the stores' median
    z: pd.DataFrame  # week x store: that in the store's own scale
    scale: pd.Series  # per store: that scale, as z divides by it (NaN: too few calibration weeks)


def centers(weeks: np.ndarray, values: np.ndarray, usable: np.ndarray, at: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline of week number ``at``, for each column of ``values`` (weeks x columns, in the
    order of ``weeks``; not finite where a column has no value that week): (count, mean) of its
    ``BASELINE`` ``usable`` weeks ending ``GUARD`` weeks before; where those are fewer than 2 (a
    gap longer than the baseline, a change flagged for months and kept out), of its latest usable
    weeks before then (up to ``BASELINE``): a change is still measured against what came before it.
    A mean is only a baseline with a count of 2 or more (NaN with none)."""
    before = usable & (weeks <= at - GUARD)
    part = values[before & (weeks >= at - GUARD - BASELINE + 1)]
    count = np.isfinite(part).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.nansum(part, axis=0) / np.maximum(count, 1), np.nan)
    for j in np.flatnonzero(count < 2):
        latest = values[before, j]
        latest = latest[np.isfinite(latest)][-BASELINE:]
        count[j], mean[j] = len(latest), float(latest.mean()) if len(latest) else np.nan
    return count, mean


def _store_baselines(values: np.ndarray, weeks: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per week and store (``values``: weeks x stores), the store's baseline of that week
    (``centers``: as a region's statistic's), over the ``usable`` weeks; NaN with fewer than 2."""
    base = np.full(values.shape, np.nan)
    for i, w in enumerate(weeks):
        count, mean = centers(weeks, values, usable, int(w))
        base[i] = np.where(count >= 2, mean, np.nan)
    return base


def chi_square_z(mean_square, k) -> np.ndarray:
    """A chi-square with ``k`` degrees of freedom, given as ``mean_square`` (its value / k), as a
    nearly standard normal z: Wilson and Hilferty's cube root, (m^(1/3) - (1 - 2 / 9k)) /
    sqrt(2 / 9k). m = 200 / 3 at k = 3: (4.055 - 0.926) / 0.272 = 11.5."""
    spread = 2.0 / (9.0 * np.maximum(np.asarray(k, dtype=float), 1.0))
    return (np.cbrt(np.asarray(mean_square, dtype=float)) - (1.0 - spread)) / np.sqrt(spread)


def store_spread(departures: dict[str, dict[str, float]], calibration: set[str] | frozenset,
                 excluded: frozenset = frozenset()) -> Spread:
    """The ``spread`` statistic of every week of ``departures`` ({week: {store: departure}},
    ``store_departures``). Each store's week less its baseline (``_store_baselines``, leaving out
    ``excluded`` weeks), less the median of that over the week's stores (what the stores moved
    together, and the pull of the stores that moved on the region's level: a third of the stores
    60% up leave the others at 0, not at -20%), divided by the root mean square of that over the
    ``calibration`` weeks (at least ``MIN_SPREAD_WEEKS`` of them; ``MIN_STORE_SCALE`` at least):
    the store's z. The week's value: the mean of its k stores' z squared (k at least
    ``MIN_STORES``), a chi-square / k were the z's standard normal, standardized by Wilson and
    Hilferty's cube root, (m^(1/3) - (1 - 2 / 9k)) / sqrt(2 / 9k): nearly standard normal, whatever
    the number of stores judged (a week with 3 of a region's 8 stores spreads as far as one with 8;
    ``chi_square_z``). Three stores at z 10, -10 and 0: m = 200 / 3, (4.055 - 0.926) / 0.272 = 11.5."""
    if not departures:
        return Spread({}, pd.DataFrame(), pd.DataFrame(), pd.Series(dtype=float))
    table = pd.DataFrame.from_dict(departures, orient="index").sort_index()
    values = table.to_numpy(dtype=float)
    base = _store_baselines(values, _week_numbers(table.index), ~table.index.isin(list(excluded)))
    change = values - base
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a week without a store judged: its median is nan
        change = change - np.nanmedian(change, axis=1, keepdims=True)
    reference = change[table.index.isin(list(calibration))]
    count = np.isfinite(reference).sum(axis=0)
    scale = np.where(count >= MIN_SPREAD_WEEKS,
                     np.sqrt(np.nansum(np.square(reference), axis=0) / np.maximum(count, 1)), np.nan)
    scale = np.maximum(scale, MIN_STORE_SCALE)
    z = change / scale
    judged = np.isfinite(z).sum(axis=1)
    standard = chi_square_z(np.nansum(np.square(z), axis=1) / np.maximum(judged, 1), judged)
    week_values = {str(w): round(float(v), 6) for w, v, n in zip(table.index, standard, judged) if n >= MIN_STORES}
    index, columns = table.index.astype(str), table.columns.astype(str)
    return Spread(week_values, pd.DataFrame(change, index=index, columns=columns),
                  pd.DataFrame(z, index=index, columns=columns), pd.Series(scale, index=columns))


def build_level_reference(rows: pd.DataFrame, forecasts: np.ndarray, out_of_sample: pd.DataFrame | None) -> dict:
    """The level reference saved with a model: an expectation model of demand and one of the
    model's own forecasts, and each statistic's weekly values over its calibration weeks.

    ``rows``: the reference year's observed rows (week_start, store_id, product_id, category,
    week_of_year, events, target), as they were forecast; ``forecasts``: the model's forecasts of
    them; ``out_of_sample``: rows (week_start, store_id, product_id, actual, forecast) the model
    forecast without having seen them, to calibrate ``error``. A closed store's weeks (``closed``)
    are left out of demand's fit and of both calibrations."""
    usual = store_units(rows, rows["target"])
    y, f = log_units(rows["target"]), log_units(forecasts)
    y = np.where(closed(rows, rows["target"], usual), np.nan, y)
    demand, forecast = expectation_model(rows, y), expectation_model(rows, f)
    departures = y - expected(demand, rows)
    calibration = {"demand": weekly(rows, departures, spreads_of(demand, rows)).to_dict(),
                   "store_departures": store_departures(rows, departures, spreads_of(demand, rows)),
                   "forecast": weekly(rows, f - expected(forecast, rows), spreads_of(forecast, rows)).to_dict(),
                   "error": {}}
    if out_of_sample is not None and len(out_of_sample):
        errors = log_units(out_of_sample["actual"]) - log_units(out_of_sample["forecast"])
        errors = np.where(closed(out_of_sample, out_of_sample["actual"], usual), np.nan, errors)
        calibration["error"] = weekly(out_of_sample, errors, spreads_of(demand, out_of_sample)).to_dict()
        unseen = _unseen_forecast_weeks(rows, forecast, out_of_sample)
        calibration["forecast"].update(unseen)
    else:
        unseen = {}
    return {"version": LEVEL_VERSION, "demand": demand, "forecast": forecast, "calibration": calibration,
            "unseen_forecast_weeks": sorted(unseen), "store_units": usual}


def _unseen_forecast_weeks(rows: pd.DataFrame, forecast: dict, out_of_sample: pd.DataFrame) -> dict[str, float]:
    """The ``forecast`` statistic of the weeks the model forecast unseen. A served week is forecast
    unseen too, and such forecasts wander farther from the reference than the model's fitted
    values of the weeks it trained on: calibrated on the fitted values, the signal's scale is too
    small and it flags weeks where nothing changed. Where both exist, these weeks win, and only
    they (and the weeks the model serves) set the signal's scale; the fitted weeks before them
    are its baselines (``Series``' ``scaled``)."""
    described = rows[[c for c in (*KEY, "category", "week_of_year", "events") if c in rows]].assign(
        week_start=pd.to_datetime(rows["week_start"]))
    unseen = out_of_sample[[*KEY, "forecast"]].assign(week_start=pd.to_datetime(out_of_sample["week_start"]))
    unseen = unseen.merge(described, on=KEY, how="inner")
    if unseen.empty:
        return {}
    return weekly(unseen, log_units(unseen["forecast"]) - expected(forecast, unseen),
                  spreads_of(forecast, unseen)).to_dict()


def week_statistics(reference: dict, rows: pd.DataFrame, forecasts: np.ndarray | None = None,
                    actuals: np.ndarray | None = None) -> dict:
    """A week's statistics (None where one cannot be computed): ``forecast`` with the forecasts,
    ``demand``, ``error``, each store's departure from the region (``store_departures``: {store:
    log ratio}) and the planner's ``bias`` (total forecast / total actual - 1) with the actuals
    too, and the stores that were closed (``closed_stores``: left out of ``demand`` and
    ``error``, never of ``bias``: a planner's stock went there too). ``rows``: the week's
    features, one per series; the arrays in the same order. ``uncertainty``: what the demand and
    forecast expectations of the week carry from their lifts (``lift_uncertainty``)."""
    expectation, spreads = expected(reference["demand"], rows), spreads_of(reference["demand"], rows)
    known = np.isfinite(expectation)
    out = {"series": int(len(rows)), "series_in_reference": int(known.sum()),
           "stores": int(rows["store_id"].nunique()), "closed_stores": [],
           "forecast": None, "demand": None, "error": None, "bias": None, "store_departures": None,
           "uncertainty": {"demand": lift_uncertainty(reference["demand"], rows[known], spreads[known]),
                           "forecast": 0.0}}
    enough = known.sum() >= MIN_SERIES
    if forecasts is not None and enough:
        forecast_spreads = spreads_of(reference["forecast"], rows)[known]
        out["forecast"] = robust_level((log_units(forecasts) - expected(reference["forecast"], rows))[known],
                                       forecast_spreads)
        out["uncertainty"]["forecast"] = lift_uncertainty(reference["forecast"], rows[known], forecast_spreads)
    if actuals is not None:
        actual = np.asarray(actuals, dtype=float)
        seen = np.isfinite(actual)
        shut = closed(rows, actual, reference.get("store_units") or {})
        out["closed_stores"] = sorted(set(rows.loc[shut, "store_id"].astype(str)))
        kept = seen & ~shut
        if enough and (kept & known).sum() >= MIN_SERIES:
            ratios = np.where(kept & known, log_units(actual) - expectation, np.nan)
            out["demand"] = robust_level(ratios[kept & known], spreads[kept & known])
            out["store_departures"] = next(iter(store_departures(rows, ratios, spreads).values()), None)
        if forecasts is not None and seen.sum() >= MIN_SERIES:
            forecast = np.asarray(forecasts, dtype=float)
            if kept.sum() >= MIN_SERIES:
                out["error"] = robust_level(log_units(actual[kept]) - log_units(forecast[kept]), spreads[kept])
            out["bias"] = float(forecast[seen].sum() / max(actual[seen].sum(), 1e-9) - 1)
    return out


@dataclass(frozen=True)
class Baseline:
    center: float  # what the week was expected to be: the mean of its baseline weeks
    scale: float  # how far weeks fell from their baselines over the calibration weeks (root mean square)
    weeks: int  # baseline weeks behind ``center``
    served: int  # of them, weeks the model served (the rest are calibration weeks)
    residuals: int  # calibration weeks behind ``scale``


def _week_numbers(labels) -> np.ndarray:
    return (pd.to_datetime(list(labels)).to_numpy().astype("datetime64[D]").astype(np.int64) // 7).astype(np.int64)


class Series:
    """A statistic's weekly values (calibration weeks, then the weeks a model served), sorted.
    ``excluded`` weeks count in a recent window but never in a baseline (a change still flagged).
    ``scaled``: the calibration weeks whose departures from their baselines set the scale (with
    the weeks served); None: all of them, and all of them too while the chosen ones and the weeks
    served give fewer than ``MIN_WEEKS`` departures."""

    def __init__(self, calibration: dict[str, float], served: dict[str, float], excluded: frozenset = frozenset(),
                 scaled: frozenset | None = None):
        dated = {w: float(v) for w, v in {**calibration, **served}.items() if v is not None and np.isfinite(v)}
        labels = sorted(dated)
        self.labels = labels
        self.week = _week_numbers(labels) if labels else np.zeros(0, dtype=np.int64)
        self.value = np.array([dated[w] for w in labels], dtype=float)
        self.usable = np.array([w not in excluded for w in labels], dtype=bool)
        self.scaled = np.array([scaled is None or w in scaled or w in served for w in labels], dtype=bool)
        self.served = _week_numbers(sorted(set(served) - set(excluded))) if served else np.zeros(0, dtype=np.int64)
        # cumulative sums: the mean of any span of weeks in O(1)
        self._sum = np.concatenate([[0.0], np.cumsum(self.value)])
        self._base_sum = np.concatenate([[0.0], np.cumsum(np.where(self.usable, self.value, 0.0))])
        self._base_count = np.concatenate([[0], np.cumsum(self.usable)])

    def _bounds(self, first: int, last: int) -> tuple[int, int]:
        return int(np.searchsorted(self.week, first, "left")), int(np.searchsorted(self.week, last, "right"))

    def baseline_of(self, week: int) -> tuple[int, float]:
        """(count, mean) of the ``BASELINE`` weeks ending ``GUARD`` weeks before ``week``."""
        i, j = self._bounds(week - GUARD - BASELINE + 1, week - GUARD)
        n = int(self._base_count[j] - self._base_count[i])
        return n, (float(self._base_sum[j] - self._base_sum[i]) / n if n else float("nan"))

    def recent(self, week: int, weeks: int) -> float | None:
        """The mean of the ``weeks`` weeks ending with ``week``, or None if one is missing."""
        i, j = self._bounds(week - weeks + 1, week)
        return float(self._sum[j] - self._sum[i]) / (j - i) if j - i == weeks else None


def _departures(series: Series, chosen: np.ndarray, weeks: int) -> list[float]:
    """Each ``chosen`` week's mean of ``weeks`` weeks less its baseline, where it has both."""
    out = []
    for w in series.week[chosen]:
        n, mean = series.baseline_of(int(w))
        recent = series.recent(int(w), weeks)
        if n >= 2 and recent is not None:
            out.append(recent - mean)
    return out


def baseline(series: Series, week: str, weeks: int = 1) -> Baseline | None:
    """The baseline of the mean of the ``weeks`` weeks ending with ``week``, and the scale of such
    a mean's departure from its baseline, measured the same way over every earlier week (at least
    ``GUARD`` weeks earlier, so a change's own weeks do not widen its scale) that has one. None
    without enough of either."""
    at = int(_week_numbers([week])[0])
    counts, means = centers(series.week, series.value[:, None], series.usable, at)
    count, center = int(counts[0]), float(means[0])
    earlier = (series.week <= at - GUARD) & series.usable
    residuals = _departures(series, earlier & series.scaled, weeks)
    if len(residuals) < MIN_WEEKS and not series.scaled.all():  # too few chosen weeks: every week, as before
        residuals = _departures(series, earlier, weeks)
    if count < 2 or len(residuals) < MIN_WEEKS:
        return None
    served = int(np.sum((series.served > at - GUARD - BASELINE) & (series.served <= at - GUARD)))
    scale = float(max(np.sqrt(np.mean(np.square(residuals))), 1e-6))
    return Baseline(center, scale, count, served, len(residuals))


def ratio(log_value: float | None) -> float | None:
    """A log ratio as a relative change: 0.47 -> +60%."""
    return None if log_value is None else float(np.expm1(log_value))

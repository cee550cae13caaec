"""A region's week against its model's reference: which signal moved, by how much, and why. Pure.

When a week is forecast (``drift_metrics``):

- ``forecast``: the forecasts against what the model's own forecasts of the reference year say
  the week should look like (``monitoring.levels``): prediction drift;
- ``weather:<column>`` and ``demographics:<column>``: a covariate's weekly mean over the
  region's rows (weather de-seasonalized) against its own recent weeks: a weather feed that runs
  5 C warm moves the mean by 5 C, where the weeks move by about one;
- ``mix``: the week's series against the reference's: the share the reference never saw (a new
  product line), the share of its active series that are gone (a third of the products
  delisted), and the Jensen-Shannon distance of the rows per category.

Once its actuals land (``forecast_accuracy``):

- ``demand``: each series' demand against its reference level, season and event lifts
  (``monitoring.levels``): a change of level, this week or over the last 2 or 4 weeks;
- ``error``: the forecasts' bias, the same way;
- ``spread``: some stores' demand moved away from the rest of the region's (each store against
  the region, in its own baseline and scale, ``levels.store_spread``), a change the region's
  mean carries only in part; judged one way (stores moving apart) over 2 and 4 weeks, the
  stores named;
- ``stores``: the stores that sold nothing at all though they usually sell (closed, or their data
  did not come, ``levels.closed``): named, left out of ``demand`` and ``error``, never flagged: a
  closed store is no change of the region's demand, and no retrain brings it back. Its alert
  asks a person to look.

Once every region's week is in (``regional_comparison``, ``monitoring.regional``):

- ``regional``: a region's ``demand`` statistic less its share of the other regions' in the same
  week, judged like ``demand``: what the whole chain shares cancels.

A week is flagged when any signal is: the verdict never needs half of all columns, and names
what it saw. Limits follow from a stated false-alarm rate per statistic and week
(``MonitorLimits``), with Student's t quantile where few calibration weeks stand behind a
scale; each statistic is judged against its own recent weeks (``levels.baseline``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mlops_assets.monitoring import levels
from mlops_assets.monitoring.statistics import js_distance

WEATHER = ("temp_max_c", "temp_min_c", "precip_mm")
SCALE_FLOOR = 0.01  # a covariate's scale is at least this share of its level (demographics barely move)
CHURN_WEEKS = 13  # the reference's own churn of series is measured over this many weeks
ACTIVE_WEEKS = 4  # a reference series is active when listed in its last weeks
REFERENCE_WEEKS = 52  # a year: every season is in the reference
# a store named as one that moved: this many of its own scales from its baseline (by chance alone,
# one store in a few hundred a week)
NAMED_STORE_Z = 3.0
UPWARD = frozenset({"spread"})  # signals only a rise flags (their z below 0 is no change; their plots one-sided)
# the level signals as the dashboard (in this order) and the asset checks name them
LABELS = {"demand": "demand", "regional": "vs other regions", "spread": "stores apart", "error": "bias",
          "forecast": "forecasts"}
WINDOWS = (1, 2, 4)  # a level is judged over this week, and the mean of the last 2 and 4 weeks
# the forecasts and a covariate over the mean of the last 2 and 4 weeks: one odd week (a storm, a
# holiday the reference year saw a week earlier) is no drift, a feed that runs 5 C warm is there the
# week after too
SLOW_WINDOWS = (2, 4)
FORECAST_TIME = "forecast"  # the stage of drift_metrics
REALIZED = "realized"  # the stage of forecast_accuracy
MONITOR_VERSION = 5


@dataclass(frozen=True)
class MonitorLimits:
    """When a signal flags a week.

    ``false_alarm``: the share of unchanged weeks allowed across one statistic's limit
    (two-sided, shared by its windows); ``level_false_alarm``, the same for ``demand``, the
    signal a change of level is found by. ``mix_floor``: the least share of new or gone series
    that is a change of mix, raised to twice the reference's own churn where that is larger; the
    category distance limit is ``js_factor`` times the reference's 95th percentile of weekly
    distances, at least ``js_floor``. Measured on the bundled sample and on real orange-juice
    demand by ``bench/drift_power.py``."""

    false_alarm: float = 0.002
    level_false_alarm: float = 0.005
    mix_floor: float = 0.10
    js_floor: float = 0.10
    js_factor: float = 1.5

    def z_limit(self, weeks: int, tests: int = 1, false_alarm: float | None = None) -> float:
        """|z| a statistic must reach, given ``weeks`` calibration weeks behind its scale, when
        ``tests`` statistics share the false-alarm rate (Bonferroni)."""
        from scipy import stats  # here: every process that loads the settings would pay half a second

        tail = 1 - (false_alarm or self.false_alarm) / 2 / tests
        return float(stats.t.ppf(tail, df=max(weeks - 1, 1)) if weeks < 60 else stats.norm.ppf(tail))

    def to_json(self) -> dict:
        return asdict(self)


# --- the reference ---------------------------------------------------------------------------


def reference_rows(observed: pd.DataFrame, as_of_week: str, weeks: int = REFERENCE_WEEKS) -> pd.DataFrame:
    """The rows a reference is built from: the last ``weeks`` observed weeks up to ``as_of_week``."""
    end = pd.Timestamp(as_of_week)
    start = end - pd.Timedelta(weeks=weeks - 1)
    return observed[(observed["week_start"] >= start) & (observed["week_start"] <= end)]


def covariates(frame: pd.DataFrame) -> list[str]:
    """The covariates monitored: the weather and every demographics column."""
    return [*(c for c in WEATHER if c in frame), *sorted(c for c in frame.columns if c.startswith("demo_"))]


def _covariate_reference(rows: pd.DataFrame, column: str) -> dict | None:
    values = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(values)
    if ok.sum() < levels.MIN_SERIES:
        return None
    woy = rows["week_of_year"].to_numpy(dtype=float)
    season = None
    if column in WEATHER and len(np.unique(woy[ok])) >= levels.MIN_WEEKS_FOR_SEASON:
        design = np.column_stack([np.ones(ok.sum()), levels.harmonics(woy[ok])])
        coef, *_ = np.linalg.lstsq(design, values[ok], rcond=None)
        season = [float(coef[1]), float(coef[2])]
    weekly = pd.Series(_deseasonalized(values, woy, season)).groupby(levels.week_labels(rows)).mean().dropna().round(6)
    return {"season": season, "calibration": weekly.to_dict()} if len(weekly) >= levels.MIN_WEEKS else None


def _deseasonalized(values: np.ndarray, woy: np.ndarray, season: list[float] | None) -> np.ndarray:
    return values - levels.harmonics(woy) @ np.asarray(season) if season else values


def _category_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["category"].astype(str).value_counts().items()}


def _mix_reference(rows: pd.DataFrame) -> dict:
    labels = levels.week_labels(rows)
    weeks = sorted(set(labels))
    series = levels.series_of(rows).to_numpy()
    by_week = {w: set(series[labels == w]) for w in weeks}
    active = set().union(*(by_week[w] for w in weeks[-ACTIVE_WEEKS:])) if weeks else set()
    # the reference's own churn over CHURN_WEEKS: the share of a week's series gone that many weeks
    # later, and of a week's series, the share never listed before
    new, gone, seen = [], [], set()
    for i, w in enumerate(weeks):
        if i >= CHURN_WEEKS:
            before = by_week[weeks[i - CHURN_WEEKS]]
            gone.append(len(before - by_week[w]) / max(len(before), 1))
            new.append(len(by_week[w] - seen) / max(len(by_week[w]), 1))
        seen |= by_week[w]
    counts = _category_counts(rows)
    distances = [js_distance(counts, _category_counts(rows[labels == w])) for w in weeks]
    distances = [d for d in distances if np.isfinite(d)]
    return {"active": sorted(active), "categories": counts,
            "churn": {"new": float(max(new, default=0.0)), "gone": float(max(gone, default=0.0))},
            "js_95": float(np.quantile(distances, 0.95)) if distances else None}


def build_reference(rows: pd.DataFrame, forecasts: np.ndarray, out_of_sample: pd.DataFrame | None) -> dict:
    """What a model is monitored against, saved with it: ``rows`` are the reference year's
    observed rows as they were forecast, ``forecasts`` the model's forecasts of them, and
    ``out_of_sample`` rows it forecast unseen (week_start, store_id, product_id, actual, forecast)."""
    found = {c: _covariate_reference(rows, c) for c in covariates(rows)}
    return {"version": MONITOR_VERSION,
            "first_week": pd.Timestamp(rows["week_start"].min()).strftime("%Y-%m-%d"),
            "last_week": pd.Timestamp(rows["week_start"].max()).strftime("%Y-%m-%d"),
            "rows": int(len(rows)),
            "levels": levels.build_level_reference(rows, forecasts, out_of_sample),
            "covariates": {c: spec for c, spec in found.items() if spec},
            "mix": _mix_reference(rows)}


def reference_profile(observed: pd.DataFrame, as_of_week: str, predict, out_of_sample: pd.DataFrame) -> dict:
    """The reference a model is monitored against (``ml.ensemble.train_region``'s ``profiler``): its
    last year of observed rows up to ``as_of_week`` (as they were forecast), ``predict``'s
    forecasts of them, and ``out_of_sample``: forecasts of weeks the model had not seen."""
    rows = reference_rows(observed, as_of_week).reset_index(drop=True)
    return build_reference(rows, predict(rows), out_of_sample) if len(rows) else {}


# --- a week ------------------------------------------------------------------------------------


def _served(history: list[dict], name: str, key: str = "value") -> tuple[dict, frozenset]:
    """A signal's stored ``key`` in each earlier week of ``history`` that has one ({week: it}), and
    the weeks the signal flagged."""
    found = [(h["week"], h.get("signals", {}).get(name) or {}) for h in history]
    return ({week: signal[key] for week, signal in found if signal.get(key) is not None},
            frozenset(week for week, signal in found if signal.get("flagged")))


def _signal(name: str, value: float | None, calibration: dict[str, float], week: str, history: list[dict],
            limit: tuple[MonitorLimits, float], windows: tuple[int, ...] = (1,), floor: float = 0.0,
            scaled: frozenset | None = None, least: dict[int, float] | None = None,
            uncertainty: float = 0.0, upward: bool = False) -> dict:
    """A statistic against its baseline (``levels.baseline``: from the calibration weeks and the
    weeks this model served, but those the signal flagged): for each window (this week, or the
    mean of the last 2 or 4), its mean, its z against the baseline and its limit; flagged when a z
    crosses its limit. The windows share the false-alarm rate ``limit[1]``. A window's scale is at
    least ``floor`` times its baseline's size and at least ``least[window]``; then widened by what
    its weeks' expectations carry from lifts seen in few reference weeks (``uncertainty``, this
    week's, as a share of one week's variance, ``levels.lift_uncertainty``): an n-week mean adds
    the 1-week scale squared times their sum / n^2. ``upward``: only a z above the limit flags
    (a statistic that only a change raises; the limit stays the two-sided one)."""
    limits, false_alarm = limit
    # a week the signal flagged stays out of its baselines: a change is measured against what came
    # before it for as long as it lasts, not absorbed as the new normal while nobody acted on it
    served, flagged = _served(history, name)
    # which way each of them moved: a change stays "since" its first week only while it goes one way
    directions = {h["week"]: _direction(h["signals"][name]) for h in history if h["week"] in flagged}
    if value is None or not np.isfinite(value):
        return {"value": None, "flagged": False, "status": "not measured"}
    uncertain = {h["week"]: h["signals"][name].get("uncertainty") or 0.0 for h in history
                 if name in h.get("signals", {})}
    uncertain[week] = uncertainty
    series = levels.Series(calibration, {**served, week: value}, flagged, scaled)
    out = {"value": float(value), "windows": {}, "flagged": False, "status": "measured"}
    if uncertainty:
        out["uncertainty"] = float(uncertainty)
    at = int(levels._week_numbers([week])[0])
    one = None  # the 1-week scale, only where a window carries a lift's noise (demand and forecasts at events)
    for weeks in windows:
        spec, mean = levels.baseline(series, week, weeks), series.recent(at, weeks)
        if spec is None or mean is None:
            continue
        scale = max(spec.scale, floor * abs(spec.center), (least or {}).get(weeks, 0.0))
        carried = sum(uncertain.get(since(week, n + 1), 0.0) for n in range(weeks))
        if carried:
            if one is None:
                found = levels.baseline(series, week, 1)
                one = max(found.scale if found else 0.0, (least or {}).get(1, 0.0))
            scale = float(np.sqrt(scale ** 2 + one ** 2 * carried / weeks ** 2))
        z, bound = float((mean - spec.center) / scale), limits.z_limit(spec.residuals, len(windows), false_alarm)
        out["windows"][weeks] = {"mean": mean, "center": spec.center, "scale": scale, "z": z, "limit": bound,
                                 "flagged": (z if upward else abs(z)) >= bound,
                                 "baseline_weeks": spec.weeks, "calibration_weeks": spec.residuals}
    if not out["windows"]:
        out["status"] = "too few calibration weeks"
        return out
    crossed = [n for n, w in out["windows"].items() if w["flagged"]]
    lead = out["windows"][crossed[0] if crossed else min(out["windows"])]
    out.update(flagged=bool(crossed), weeks=crossed[0] if crossed else min(out["windows"]), z=lead["z"],
               limit=lead["limit"], change=lead["mean"] - lead["center"])
    if crossed:  # since when: the start of the window, or of the run of weeks this signal flagged before it
        out["direction"] = _direction(out)
        out["since"] = min(since(week, out["weeks"]), _onset(directions, week, out["direction"]))
    return out


def demand_scales(calibration: dict[str, float], week: str, windows: tuple[int, ...]) -> dict[int, float]:
    """The scale of demand's departures from its baselines over the reference year, per window
    (``levels.baseline``; none for a window without enough weeks): the least scale of the
    ``forecast`` signal. A model's forecasts follow the demand its lags give it, so they wander as
    far as demand does; the quarter of weeks it forecast unseen rarely shows how far that is (on
    the sample, with another seed, forecasts 12% below expectation for a month in a region where
    nothing changed read z -5.2 on their own scale, -3.7 at most on demand's)."""
    series = levels.Series(calibration, {})
    found = {weeks: levels.baseline(series, week, weeks) for weeks in windows}
    return {weeks: spec.scale for weeks, spec in found.items() if spec is not None}


def _direction(signal: dict) -> int:
    """+1 or -1: which way a flagged signal moved (its flagged window's z)."""
    return int(signal.get("direction") or np.sign(signal.get("z") or 0.0))


def _onset(directions: dict[str, int], week: str, direction: int) -> str:
    """The first week of the unbroken run of weeks flagged in the same ``direction`` that ends the
    week before ``week`` (``week`` itself where the week before was not: a fall then a rise is two
    changes)."""
    onset = pd.Timestamp(week)
    while directions.get((onset - pd.Timedelta(weeks=1)).strftime("%Y-%m-%d")) == direction:
        onset -= pd.Timedelta(weeks=1)
    return onset.strftime("%Y-%m-%d")


def _closed_stores(stores: list[str], of: int) -> dict:
    """The week's closed stores: a note, never a flag."""
    shown = ", ".join(stores[:5]) + (f" and {len(stores) - 5} more" if len(stores) > 5 else "")
    note = (f"{len(stores)} of {of} stores sold nothing this week ({shown}): closed, or their data did not come; "
            f"left out of the demand and error signals (the planner's bias still counts them)")
    return {"value": len(stores) / max(of, 1), "flagged": False, "status": "measured", "closed": stores,
            "note": note}


def _spread(departures: dict[str, float] | None, reference: dict | None, week: str, history: list[dict],
            limits: MonitorLimits) -> dict:
    """The ``spread`` signal: the week's stores against the region, each in its own baseline and
    scale (``levels.store_spread``, over the reference's weeks, the weeks this model served and this
    one; weeks it flagged stay out of the stores' baselines), judged up only (at ``demand``'s limit,
    so at most half its false-alarm rate), over the mean of 2 and 4 weeks (on orange juice, one
    store's odd week, 80% up or 58% down, crossed the 1-week limit in 2 of 78 unchanged
    region-weeks). Keeps the week's ``departures`` (later weeks' baselines) and the stores that
    moved furthest over the window that crossed (this week's, else), with how far (``moved``: each
    store's mean change and z over those weeks; ``named`` where its z is at least
    ``NAMED_STORE_Z``; where none is, the furthest one, not named)."""
    if not reference:
        return {"value": None, "flagged": False, "status": "not measured: the model's reference has no stores' "
                                                           "levels (trained before them): retrain it"}
    if not departures:
        return {"value": None, "flagged": False, "status": "not measured: no store levels this week"}
    served, flagged = _served(history, "spread", "departures")
    served = {w: stores for w, stores in served.items() if stores}
    found = levels.store_spread({**reference, **served, week: departures}, frozenset(reference), flagged)
    value = found.values.get(week)
    if value is None:
        out = {"value": None, "flagged": False,
               "status": f"not measured: fewer than {levels.MIN_STORES} stores with a baseline and a scale"}
    else:
        out = _signal("spread", value, {w: v for w, v in found.values.items() if w in reference}, week, history,
                      (limits, limits.level_false_alarm), SLOW_WINDOWS, upward="spread" in UPWARD)
    window = [w for w in (since(week, n + 1) for n in range(out["weeks"] if out.get("flagged") else 1))
              if w in found.z.index]
    z, change = found.z.loc[window].mean(), found.changes.loc[window].mean()
    z = z[z.notna()]
    order = sorted(z.index, key=lambda store: -abs(z[store]))
    named = [s for s in order if abs(z[s]) >= NAMED_STORE_Z]
    out.update(departures=departures, stores=int(len(z)),
               moved=[{"store": s, "change": float(change[s]), "z": float(z[s]), "named": s in named}
                      for s in (named or order[:1])])
    return out


def _mix(spec: dict, known: set, rows: pd.DataFrame, limits: MonitorLimits) -> dict:
    series = set(levels.series_of(rows))
    active = set(spec["active"])
    new = len(series - known) / max(len(series), 1)
    gone = len(active - series) / max(len(active), 1) if active else 0.0
    distance = js_distance(spec["categories"], _category_counts(rows)) if len(rows) else float("nan")
    parts = {"new": (new, max(limits.mix_floor, 2 * spec["churn"]["new"])),
             "gone": (gone, max(limits.mix_floor, 2 * spec["churn"]["gone"])),
             "category": (distance if np.isfinite(distance) else None,
                          max(limits.js_floor, limits.js_factor * (spec.get("js_95") or 0.0)))}
    crossed = [k for k, (v, lim) in parts.items() if v is not None and v >= lim]
    return {"parts": {k: {"value": v, "limit": lim, "flagged": k in crossed} for k, (v, lim) in parts.items()},
            "value": new, "flagged": bool(crossed), "status": "measured"}


def assess_week(reference: dict, rows: pd.DataFrame, week: str, forecasts: np.ndarray | None = None,
                actuals: np.ndarray | None = None, limits: MonitorLimits | None = None,
                history: list[dict] | None = None) -> dict:
    """A region's ``week``: ``rows`` its features as they were forecast (one row per series),
    ``forecasts`` and, once they landed, ``actuals`` in the same order; ``history`` the same
    model's earlier assessments of the same stage (oldest first). Without actuals, the stage when
    the week is forecast (forecasts, covariates, mix); with them, demand and the forecasts' bias.
    Returns every signal, and the verdict with its reasons."""
    limits, history = limits or MonitorLimits(), history or []
    stage = REALIZED if actuals is not None else FORECAST_TIME
    out: dict = {"week": week, "stage": stage, "rows": int(len(rows)), "signals": {}, "reasons": [],
                 "flagged": False}
    if reference.get("version") != MONITOR_VERSION:
        out["status"] = f"the model has no reference of monitor version {MONITOR_VERSION}: retrain it"
        return out
    if len(rows) < levels.MIN_SERIES:
        out["status"] = f"only {len(rows)} series this week: too few to judge"
        return out
    found = levels.week_statistics(reference["levels"], rows, forecasts, actuals)
    out.update(series=found["series"], series_in_reference=found["series_in_reference"], bias=found["bias"])
    unjudged = unseen_time_of_year(reference, week)
    if unjudged:
        out["unseen_time_of_year"] = unjudged
    calibration = reference["levels"]["calibration"]
    usual = (limits, limits.false_alarm)
    if stage == REALIZED:
        out["signals"]["demand"] = _signal("demand", found["demand"], calibration["demand"], week, history,
                                           (limits, limits.level_false_alarm), WINDOWS,
                                           uncertainty=found["uncertainty"]["demand"])
        out["signals"]["error"] = _signal("error", found["error"], calibration["error"], week, history, usual,
                                          WINDOWS)
        out["signals"]["spread"] = _spread(found["store_departures"], calibration.get("store_departures"), week,
                                           history, limits)
        if found["closed_stores"]:
            out["signals"]["stores"] = _closed_stores(found["closed_stores"], found["stores"])
    else:
        # the weeks the model forecast unseen set the scale (every week where a reference has none),
        # at least demand's: a model's forecasts follow the demand its lags give it
        unseen = frozenset(reference["levels"].get("unseen_forecast_weeks") or ()) or None
        out["signals"]["forecast"] = _signal("forecast", found["forecast"], calibration["forecast"], week, history,
                                             usual, SLOW_WINDOWS, scaled=unseen,
                                             least=demand_scales(calibration["demand"], week, (1, *SLOW_WINDOWS)),
                                             uncertainty=found["uncertainty"]["forecast"])
        woy = rows["week_of_year"].to_numpy(dtype=float)
        for column, spec in reference.get("covariates", {}).items():
            if column not in rows:
                continue
            values = _deseasonalized(pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float), woy,
                                     spec["season"])
            mean = float(np.nanmean(values)) if np.isfinite(values).any() else None
            out["signals"][covariate_signal(column)] = _signal(covariate_signal(column), mean, spec["calibration"],
                                                               week, history, usual, SLOW_WINDOWS,
                                                               floor=SCALE_FLOOR)
        out["signals"]["mix"] = _mix(reference["mix"], set(reference["levels"]["demand"]["series"]["key"]), rows,
                                     limits)
    if unjudged:  # demand and the forecasts are judged against the reference's season and events:
        # their values are kept (later weeks' windows and baselines run through these weeks), not judged
        for name in ("demand", "forecast"):
            if name in out["signals"] and found[name] is not None:
                out["signals"][name] = {"value": float(found[name]), "flagged": False,
                                        "status": f"not judged: {unjudged}"}
    out["reasons"] = [describe(name, s, week) for name, s in out["signals"].items() if s["flagged"]]
    out["flagged"] = bool(out["reasons"])
    out["status"] = "assessed"
    return out


def unseen_time_of_year(reference: dict, week: str) -> str | None:
    """Why ``week`` cannot be judged against the reference's season and event lifts, or None: a
    reference year shorter than a year (a region with less history) may not hold the week of the
    year ``week`` falls in, and what the reference says of it is then an extrapolation (the
    sample's November, judged by a reference that began in December, read as demand 20-25% up
    in every region)."""
    first, last = pd.Timestamp(reference["first_week"]), pd.Timestamp(reference["last_week"])
    if (last - first).days >= 7 * (REFERENCE_WEEKS - 1):
        return None  # a whole year: every week of the year is in it

    def of_year(day) -> int:
        return min(int(day.isocalendar().week), 52)  # a 53rd week is the 52nd's neighbour

    if of_year(pd.Timestamp(week)) in {of_year(d) for d in pd.date_range(first, last, freq="7D")}:
        return None
    weeks = (last - first).days // 7 + 1
    return (f"the reference year holds {weeks} weeks ({first:%Y-%m-%d} to {last:%Y-%m-%d}), none of this week of "
            f"the year: its season and events cannot say what this week should be")


def covariate_signal(column: str) -> str:
    return f"weather:{column}" if column in WEATHER else f"demographics:{column.removeprefix('demo_')}"


def since(week: str, weeks: int) -> str:
    """The first week of a window of ``weeks`` weeks ending with ``week``."""
    return (pd.Timestamp(week) - pd.Timedelta(weeks=weeks - 1)).strftime("%Y-%m-%d")


def named_stores(spread: dict) -> list[dict]:
    """The stores a ``spread`` signal names as moved (its ``moved`` entries at least ``NAMED_STORE_Z``
    out; every entry of one stored before entries said so)."""
    return [m for m in spread.get("moved") or [] if m.get("named", True)]


def describe(name: str, signal: dict, week: str) -> str:
    """One line a person reads: what moved, by how much, since when, against which limit."""
    if name == "mix":
        p = signal["parts"]
        text = [f"{p['new']['value']:.0%} of this week's series are new (limit {p['new']['limit']:.0%})",
                f"{p['gone']['value']:.0%} of the reference's active series are gone (limit {p['gone']['limit']:.0%})"]
        if p["category"]["value"] is not None:
            text.append(f"rows per category {p['category']['value']:.2f} from the reference's (Jensen-Shannon, "
                        f"limit {p['category']['limit']:.2f})")
        return "mix: " + "; ".join(text)
    weeks = signal["weeks"]
    how = f"z {signal['z']:+.1f}, limit {signal['limit']:.1f}"
    if weeks > 1:
        how = f"mean of {weeks} weeks, {how}"
    if name == "spread":
        moved = signal.get("moved") or []
        named = named_stores(signal)
        over = f"over the {weeks} weeks, " if weeks > 1 else ""
        shown = ", ".join(f"{m['store']} {levels.ratio(m['change']):+.0%}" for m in named[:5])
        more = f" and {len(named) - 5} more" if len(named) > 5 else ""
        text = (f"{len(named)} of {signal.get('stores', '?')} stores moved away from the rest of the region "
                f"({shown}{more} against the others, {over}each against its own recent weeks)") if named else \
            (f"the stores' levels spread apart, none of them {NAMED_STORE_Z:g} of its own scales out"
             + (f" (the furthest: {moved[0]['store']} {levels.ratio(moved[0]['change']):+.0%})" if moved else ""))
        return f"stores apart: {text} since {signal.get('since') or since(week, weeks)} (stores' spread {how})"
    if name.startswith(("weather:", "demographics:")):
        return f"{name} {signal['change']:+.3g} against its recent weeks ({how})"
    change = levels.ratio(signal["change"])
    what = {"demand": "demand", "error": "actual demand against the forecasts", "forecast": "the forecasts",
            "regional": "demand"}[name]
    direction = "above" if change >= 0 else "below"
    reference = {"demand": "its reference level", "error": "what the forecasts said",
                 "forecast": "what the reference says for the week",
                 "regional": "the other regions' (each against its reference level)"}[name]
    text = f"{what} {abs(change):.0%} {direction} {reference}" if name != "error" else \
        f"actual demand {abs(change):.0%} {direction} the forecasts, more than usual"
    return f"{text} since {signal.get('since') or since(week, weeks)} ({how})"


# --- stored form -----------------------------------------------------------------------------

TABLE_COLUMNS = ["region", "week_start", "stage", "signal", "window", "value", "mean", "center", "scale", "z", "limit",
                 "flagged", "detail", "uncertainty", "model_version", "pull", "peers", "pending", "departures",
                 "coefficient", "peer_versions"]


def to_table(assessment: dict, region: str, model_version: str) -> pd.DataFrame:
    """An assessment as rows (what a monitor partition stores): per signal and window its mean,
    baseline centre and scale, z and limit; a mix part as value and limit; ``detail`` holds the
    reason line of a flagged signal (on its window 1 row, or its first row), else its status. A
    regional comparison's rows also hold the pull added back to its value (``pull``), the regions
    it was compared with (``peers``), the model version whose reference judged each of their weeks
    (``peer_versions``, JSON {region: version}: the region's own is ``model_version``), its
    coefficient on their mean (``coefficient``) and the regions whose week was still to come
    (``pending``); a
    ``spread`` signal's, each store's departure from the region that week (``departures``, JSON)."""
    rows = []
    base = {"region": region, "week_start": pd.Timestamp(assessment["week"]), "stage": assessment["stage"],
            "model_version": model_version, "peers": ",".join(assessment.get("compared_with", [])),
            "pending": ",".join(assessment.get("pending", [])), "coefficient": assessment.get("coefficient"),
            "peer_versions": json.dumps(assessment["peer_versions"], sort_keys=True)
            if assessment.get("peer_versions") else ""}
    for name, s in assessment["signals"].items():
        detail = describe(name, s, assessment["week"]) if s["flagged"] else s.get("note") or s["status"]
        if name == "mix":
            for part, p in s["parts"].items():
                rows.append({**base, "signal": f"mix:{part}", "window": 1, "value": p["value"], "limit": p["limit"],
                             "flagged": p["flagged"], "detail": detail})
            continue
        stores = json.dumps(s["departures"], sort_keys=True) if s.get("departures") else ""
        if not s.get("windows"):
            rows.append({**base, "signal": name, "window": 1, "value": s["value"], "flagged": False, "detail": detail,
                         "departures": stores})
            continue
        for i, (n, w) in enumerate(sorted(s["windows"].items())):
            rows.append({**base, "signal": name, "window": n, "value": s["value"], "mean": w["mean"],
                         "center": w["center"], "scale": w["scale"], "z": w["z"], "limit": w["limit"],
                         "flagged": w.get("flagged", abs(w["z"]) >= w["limit"]), "detail": detail if i == 0 else "",
                         "uncertainty": s.get("uncertainty", 0.0), "pull": s.get("pull", 0.0),
                         "departures": stores if i == 0 else ""})
    if not rows:  # nothing measured: one row says why
        rows.append({**base, "signal": "status", "window": 1, "flagged": False,
                     "detail": assessment.get("status", "")})
    frame = pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)
    for c in ("value", "mean", "center", "scale", "z", "limit", "uncertainty", "pull", "coefficient"):
        frame[c] = frame[c].astype(float)
    for c in ("peers", "pending", "departures", "peer_versions"):
        frame[c] = frame[c].fillna("").astype(str)
    frame["window"] = frame["window"].astype("int64")
    frame["flagged"] = frame["flagged"].fillna(False).astype(bool)
    frame["detail"] = frame["detail"].fillna("").astype(str)
    return frame


def from_table(table: pd.DataFrame) -> dict:
    """A stored assessment, as much of it as later weeks and the rules read: per signal its
    week's value, whether it flagged, and the reasons."""
    if table.empty:
        return {"signals": {}, "flagged": False, "reasons": []}
    first = table.iloc[0]
    signals = {}
    for name, part in table.groupby("signal", sort=False):
        if name == "status":
            continue
        signal = name.split(":")[0] if name.startswith("mix:") else name
        entry = signals.setdefault(signal, {"value": None, "flagged": False})
        if not name.startswith("mix:"):
            value = part["value"].iloc[0]
            entry["value"] = float(value) if pd.notna(value) else None
            if "uncertainty" in part and pd.notna(part["uncertainty"].iloc[0]) and part["uncertainty"].iloc[0]:
                entry["uncertainty"] = float(part["uncertainty"].iloc[0])
            ones = part[part["window"] == part["window"].min()]  # this week's, or the shortest window's
            if len(ones) and pd.notna(ones["z"].iloc[0]):
                entry["z"] = float(ones["z"].iloc[0])
            crossed = part.loc[part["flagged"] & part["z"].notna(), "z"]
            if len(crossed):  # the way it moved: the first flagged window's z (window 1's may point elsewhere)
                entry["direction"] = int(np.sign(crossed.iloc[0]))
        entry["flagged"] = bool(entry["flagged"] or part["flagged"].any())
        if signal == "stores":
            entry["note"] = next((d for d in part["detail"] if d), "")
        stored = [d for d in part["departures"] if isinstance(d, str) and d] if "departures" in part else []
        if stored:
            entry["departures"] = json.loads(stored[0])
        if entry["flagged"]:
            entry["reason"] = next(d for d in part["detail"] if d)
    reasons = [s["reason"] for s in signals.values() if s["flagged"]]

    def listed(column: str) -> list[str]:  # a regional comparison's regions (older tables have none)
        value = first.get(column) if column in table else None
        return [r for r in str(value).split(",") if r] if isinstance(value, str) else []

    out = {"week": pd.Timestamp(first["week_start"]).strftime("%Y-%m-%d"), "stage": first["stage"],
           "signals": signals, "flagged": any(s["flagged"] for s in signals.values()), "reasons": reasons,
           "model_version": first["model_version"], "compared_with": listed("peers"), "pending": listed("pending")}
    if isinstance(first.get("peer_versions"), str) and first["peer_versions"]:
        out["peer_versions"] = json.loads(first["peer_versions"])
    if pd.notna(first.get("coefficient", np.nan)):
        out["coefficient"] = float(first["coefficient"])
    return out


def stored_assessment(table: pd.DataFrame, version: str | None = None) -> dict | None:
    """The assessment a stored monitor partition holds (``drift_metrics``, ``forecast_accuracy``'s
    signal rows, ``regional_comparison``), as ``from_table`` reads it; None where it holds no
    signal rows, or, given ``version``, where they are another model version's."""
    if "signal" not in table:
        return None
    table = table[table["signal"].notna()]
    if not len(table) or (version is not None and not (table["model_version"] == version).all()):
        return None
    return from_table(table)


def summary(assessment: dict) -> dict:
    """What the replay and ``--json`` show of a week: the verdict, the signals that flagged and
    why, and each level statistic's week value (as a relative change) and z."""
    out = {"flagged": assessment["flagged"], "signals": sorted(n for n, s in assessment["signals"].items()
                                                             if s["flagged"]),
           "reasons": assessment["reasons"]}
    if assessment.get("status") and assessment["status"] != "assessed":
        out["status"] = assessment["status"]
    for name in ("forecast", "demand", "error", "regional"):
        s = assessment["signals"].get(name)
        if s and s.get("windows"):
            out[name] = {"change": levels.ratio(s["change"]), "z": s["z"], "limit": s["limit"],
                         "weeks": s["weeks"]}
    spread = assessment["signals"].get("spread")
    if spread and spread.get("windows"):  # a statistic of z's, no change of level: the stores it names
        out["spread"] = {"z": spread["z"], "limit": spread["limit"], "weeks": spread["weeks"],
                         "stores": {m["store"]: levels.ratio(m["change"]) for m in named_stores(spread)}}
    if assessment.get("bias") is not None:
        out["bias"] = assessment["bias"]
    if assessment.get("unseen_time_of_year"):
        out["not_judged"] = assessment["unseen_time_of_year"]
    if "stores" in assessment["signals"]:
        # a stored assessment keeps the note, not the list (``from_table``)
        out["closed_stores"] = assessment["signals"]["stores"].get("closed", [])
    return json.loads(json.dumps(out, default=float))

"""A region's demand against the other regions' in the same week: the ``regional`` signal. Pure.

Each region's ``demand`` statistic (``monitoring.levels``: its series against their reference
levels, seasons and event lifts) carries what the whole chain shares: a price change, a national
promotion, a cold month, the weeks a reference year's holidays fell on. On real orange-juice demand
that common movement is most of the statistic's noise (``bench/demand_signal.py --noise``: the
smallest rise one look finds in 95% of trials within 2 weeks is +47-57% on a region's own level,
+11-17% on this comparison). Taken out, a region's own change stands clear of it:

    comparison(r, week) = demand(r, week) - beta_r * mean over the other regions of demand(o, week)

``beta_r`` is the region's least-squares coefficient on the other regions' mean over the weeks of
its reference year the others' references also hold (clipped to 0-1: the share of the chain's
weekly movement the region shares). The comparison of those weeks is the signal's calibration;
each week is judged like ``demand`` (``monitor._signal``: this week, the mean of the last 2 and 4,
against its own recent weeks, at the ``level_false_alarm`` rate).

A region that moves pulls every other region's comparison the other way, by its share of their
comparison level (1 / (regions - 1)) times their coefficient. So each week the region whose
comparison moved furthest (in any window; with two regions, whose comparisons move alike, the
largest comparison |z| plus the region's own ``demand`` |z|: only its own level tells which one
moved) is judged as it is, and every other region with that pull added back to its week's value,
which is stored so: a 60% jump in one region flags that region, not the others, for as long as it
lasts.

With one region there is nothing to compare with, and the signal says so: the region's own
``demand`` signal is what judges it then (and a change the whole chain shares, which this signal
takes out by design).
"""

from __future__ import annotations

import numpy as np

from mlops_assets.monitoring.monitor import WINDOWS, MonitorLimits, _signal, describe

SIGNAL = "regional"
ASSET = "regional_comparison"  # the asset that stores it: <asset>/<region>/<week>.parquet
COMMON_WEEKS = 13  # reference weeks every compared region must hold: a coefficient fit on fewer is noise
STAGE = "regional"  # the stage of regional_comparison's rows (``monitor.to_table``)


def coefficient(own: dict[str, float], common: dict[str, float]) -> float:
    """The least-squares slope of ``own`` on ``common`` over their shared weeks, clipped to 0-1 (0
    where ``common`` does not move)."""
    weeks = [w for w in own if w in common]
    x = np.array([common[w] for w in weeks], dtype=float)
    y = np.array([own[w] for w in weeks], dtype=float)
    if len(weeks) < 2:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    return float(np.clip((x @ y) / (x @ x), 0.0, 1.0)) if x @ x > 0 else 0.0


def _unmeasured(week: str, status: str) -> dict:
    return {"week": week, "stage": STAGE, "signals": {}, "reasons": [], "flagged": False, "status": status}


def _moved(signal: dict) -> float:
    """A signal's furthest window departure from its baseline (log units; 0 where it has none)."""
    return max((w["mean"] - w["center"] for w in signal.get("windows", {}).values()), key=abs, default=0.0)


def _furthest_z(signal: dict) -> float:
    """The largest |z| of a signal's windows (0 where it has none)."""
    return max((abs(w["z"]) for w in signal.get("windows", {}).values()), default=0.0)


def assess_week(week: str, values: dict[str, float | None], calibrations: dict[str, dict[str, float] | None],
                histories: dict[str, list[dict]] | None = None, limits: MonitorLimits | None = None,
                own: dict[str, float | None] | None = None) -> dict[str, dict]:
    """Every region's ``regional`` signal in ``week``: ``values`` each region's ``demand``
    statistic of the week (None where it has none: no champion, no actuals, too few series, a week
    its reference could not judge), ``calibrations`` the same statistic over its champion's
    reference year (``levels``' calibration of ``demand``), ``histories`` each region's earlier
    assessments of this signal, oldest first, and ``own`` each region's ``demand`` z of the week
    (window 1), which tells which region moved where the comparisons cannot (two regions move
    each other's comparison as far as their own).

    One set of regions and one set of reference weeks for every comparison: the weeks every
    compared region's reference holds (at least ``COMMON_WEEKS``; a region whose reference shares
    fewer is left out, the shortest first, and says so). The region whose comparison moved
    furthest (with two regions: largest window |z| plus |own z|) is judged as it is; every other
    region's week is its comparison plus the pull the leader put on it (its coefficient / (regions
    - 1) times the leader's 1-week departure), and that corrected value is what it stores: a lasting
    change in one region never settles into the others' baselines as a level they then depart from.

    Returns per region an assessment shaped like ``monitor.assess_week``'s (stage ``regional``):
    the signal, the verdict and its reason, or the status that says why it was not measured."""
    limits, histories, own = limits or MonitorLimits(), histories or {}, own or {}
    judged = sorted(r for r, v in values.items()
                    if v is not None and np.isfinite(v) and calibrations.get(r))
    out = {}
    for region in values:
        if region not in judged:
            why = ("no demand statistic judged this week (no champion, no actuals, too few series, or a week "
                   "of the year its reference does not hold)"
                   if values[region] is None or not np.isfinite(values[region]) else
                   "no demand calibration from the model that assessed its week (a reference of another "
                   "monitor version, or a model that could not be loaded)")
            out[region] = _unmeasured(week, f"not compared: {why}")
    while len(judged) >= 2:  # the reference weeks every compared region holds
        common = sorted(set.intersection(*(set(calibrations[r]) for r in judged)))
        if len(common) >= COMMON_WEEKS:
            break
        shortest = min(judged, key=lambda r: (len(calibrations[r]), r))
        out[shortest] = _unmeasured(week, f"not compared: the regions' reference years share {len(common)} weeks "
                                          f"(at least {COMMON_WEEKS}); its own is the shortest "
                                          f"({len(calibrations[shortest])} weeks)")
        judged.remove(shortest)
    if len(judged) < 2:
        for region in judged:
            out[region] = _unmeasured(week, "not compared: no other region has a demand statistic this week; its "
                                            "own demand signal judges it")
        return out
    found = {}
    for region in judged:
        others = [o for o in judged if o != region]
        mean = {w: float(np.mean([calibrations[o][w] for o in others])) for w in common}
        beta = coefficient({w: calibrations[region][w] for w in common}, mean)
        calibration = {w: calibrations[region][w] - beta * mean[w] for w in common}
        value = values[region] - beta * float(np.mean([values[o] for o in others]))
        found[region] = (calibration, value, others, beta)

    def judge(region: str, value: float) -> dict:
        calibration = found[region][0]
        return _signal(SIGNAL, value, calibration, week, histories.get(region, []),
                       (limits, limits.level_false_alarm), WINDOWS)

    first = {r: judge(r, v) for r, (_, v, _, _) in found.items()}
    measured = [r for r, s in first.items() if s.get("windows")]
    if len(judged) == 2:  # each moved the other's comparison as far as its own: its own level tells
        lead = max(measured, key=lambda r: (_furthest_z(first[r]) + abs(own.get(r) or 0.0), r), default=None)
    else:  # the comparison that moved furthest (a region's own level carries what the chain shares)
        lead = max(measured, key=lambda r: (abs(_moved(first[r])), r), default=None)
    departure = 0.0
    if lead is not None and 1 in first[lead]["windows"]:
        window = first[lead]["windows"][1]
        departure = window["mean"] - window["center"]
    share = 1.0 / (len(judged) - 1)
    for region, (_, value, others, beta) in found.items():
        signal, pull = first[region], 0.0
        if lead is not None and region != lead:
            pull = beta * share * departure
            signal = judge(region, value + pull)
            signal["pull"] = pull
        reasons = [describe(SIGNAL, signal, week)] if signal.get("flagged") else []
        out[region] = {"week": week, "stage": STAGE, "rows": len(judged), "signals": {SIGNAL: signal},
                       "reasons": reasons, "flagged": bool(reasons),
                       "status": "assessed" if signal.get("windows") else signal.get("status", "not measured"),
                       "coefficient": beta, "compared_with": others, "furthest": lead == region}
    return out


def replay(values: dict[str, dict[str, float | None]], calibrations: dict[str, dict[str, float] | None],
           limits: MonitorLimits | None = None,
           own: dict[str, dict[str, float | None]] | None = None) -> dict[str, dict[str, dict]]:
    """``assess_week`` over every week any region has, in order, each region's history its own
    earlier assessments: what ``regional_comparison`` does week after week. ``values``: per region,
    its ``demand`` statistic per week; ``own``: its ``demand`` z per week. Returns per region and
    week its assessment."""
    histories: dict[str, list[dict]] = {region: [] for region in values}
    out: dict[str, dict[str, dict]] = {region: {} for region in values}
    for week in sorted(set().union(*values.values())):
        present = {region: weeks[week] for region, weeks in values.items() if week in weeks}
        found = assess_week(week, present, {r: calibrations.get(r) for r in present}, histories, limits,
                            {r: (own or {}).get(r, {}).get(week) for r in present})
        for region, assessed in found.items():
            if assessed["signals"]:
                histories[region].append(assessed)
            out[region][week] = assessed
    return out

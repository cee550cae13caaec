"""Benchmark in minutes: the demand signal alone, without models, against level shifts.

    .venv/bin/python bench/demand_signal.py                       # the bundled sample
    .venv/bin/python bench/demand_signal.py --landing /tmp/oj     # bench/real_data.py
    [--span 26] [--earlier 0 13 22] [--peer [median|others|fitted]] [--noise] [--cache FILE]
    [--json FILE]

``bench/drift_power.py`` trains every region's model and replays every signal (20 minutes a
landing); this replays one: ``demand``, the level signal, which needs no model. Per region and
span (``--earlier N``: the span ending N weeks before the last), the reference year before the
span is built as a model's reference builds it (``monitoring.levels.build_level_reference``),
each week's demand statistic is computed from the landing, and the weeks are replayed through the
monitor's ``demand`` signal with its default limits. A change of level by a factor f is then added
to the statistic (log f, exactly what it adds to every series' log ratio, less the rounding of small
counts) from each week of the last span (2 weeks in to 5 before its end), and the replay is run
again: detection within 2 and 4 weeks, and in how many trials another region was flagged in those
4 weeks (here only by its own false alarms: its statistic is not touched). False alarms: the
weeks flagged in the unchanged spans.

``--peer``: the same, for each region's statistic less the median of every region's in the same
week (a control for what the whole chain shares: its promotions, a holiday, the weather), and how
often a region that did not change was flagged because one that did moved the median.
``--peer others``: less the mean of the other regions' (a design probe), taking out of each
region's comparison the pull of the region that moved furthest that week (``flags``). ``--peer
fitted``: the monitor's ``regional`` signal itself (``monitoring.regional``: less that mean times
the region's coefficient on it over the reference year, 0-1, judged week by week over every region
as the ``regional_comparison`` asset judges). ``--peer monitor``: the loop's ``level_shift``, that
signal or the region's own ``demand``.

``--noise``: the noise the signal faces, and what it allows. Per region, the root mean square of
what the signal judges over the unchanged served weeks (each 1-, 2- and 4-week mean less its
baseline, ``levels.baseline``), and the smallest rise and fall of level a single look of a detector
reading one such departure could find in 95% (2 weeks) or 80% (4 weeks) of trials while flagging
2% of unchanged region-weeks, were that noise Gaussian and its scale known:
|log f| >= (z_0.99 + z_power) x RMS. A yardstick for this statistic, not the monitor's figure: the
monitor spends its 2% over three windows and five signals, takes two or four looks, and learns its
scale from the reference year. With ``--peer``, the same for the comparison.

``--cache FILE`` keeps the statistics (two minutes a landing) for the next run, keyed by the
landing's files, the spans and the level statistic's version.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

FACTORS = (0.6, 0.85, 1.15, 1.3, 1.6)


def statistics(landing: Path, span: int, earlier: int) -> dict[str, dict]:
    """{region: {"calibration": {week: value}, "served": {week: value}, "uncertainty": {week: value},
    "stores": {"calibration": {week: {store: departure}}, "served": {...}}}}: the demand statistic of
    the reference year's weeks and of the span's, and each store's departure from the region
    (``levels.store_departures``, what the ``spread`` signal judges; ``bench/store_spread.py``)."""
    from mlops_assets.contract.validation import check_landing, require_clean
    from mlops_assets.ml.featurize import at_forecast_time, build_features
    from mlops_assets.monitoring import levels
    from mlops_assets.monitoring.monitor import reference_rows
    from mlops_assets.offline import region_inputs

    checked = require_clean(check_landing(landing), landing)
    out = {}
    for name in dict.fromkeys(checked["stores"].valid["region"]):
        features = build_features(**region_inputs(landing, name, checked=checked))
        weeks = sorted(features.loc[features["target"].notna(), "week_start"].dt.strftime("%Y-%m-%d").unique())
        weeks = weeks[:len(weeks) - earlier]
        monitored, as_of = weeks[-span:], weeks[-span - 1]
        observed = at_forecast_time(features[features["target"].notna() & (features["week_start"] <= as_of)])
        rows = reference_rows(observed, as_of).reset_index(drop=True)
        reference = levels.build_level_reference(rows, rows["target"].to_numpy(), None)
        later = at_forecast_time(features[features["week_start"].dt.strftime("%Y-%m-%d").isin(monitored)])
        served, uncertainty, stores = {}, {}, {}
        for week, part in later.groupby(later["week_start"].dt.strftime("%Y-%m-%d")):
            part = part.reset_index(drop=True)
            found = levels.week_statistics(reference, part, None, part["target"].to_numpy(float))
            if found["demand"] is not None:
                served[week], uncertainty[week] = found["demand"], found["uncertainty"]["demand"]
            if found["store_departures"]:
                stores[week] = found["store_departures"]
        out[name] = {"calibration": reference["calibration"]["demand"], "served": served, "uncertainty": uncertainty,
                     "stores": {"calibration": reference["calibration"]["store_departures"], "served": stores}}
    return out


def replay(calibration: dict, served: dict, uncertainty: dict | None = None) -> list[dict]:
    """Each served week's ``demand`` signal, judged in order as the monitor does."""
    from mlops_assets.monitoring.monitor import WINDOWS, MonitorLimits, _signal

    limits, history = MonitorLimits(), []
    for week, value in served.items():
        found = _signal("demand", value, calibration, week, history, (limits, limits.level_false_alarm), WINDOWS,
                        uncertainty=(uncertainty or {}).get(week, 0.0))
        history.append({"week": week, "signals": {"demand": found}})
    return [h["signals"]["demand"] for h in history]


def relative(found: dict[str, dict], control: str = "median") -> dict[str, dict]:
    """Each region's statistic less the median of every region's in the same week (``median``),
    less the mean of the other regions' (``others``), or less that mean times the region's
    coefficient on it over the calibration weeks (``fitted``)."""
    out = {name: {} for name in found}
    common = {}
    for part in ("calibration", "served"):
        weeks = sorted(set.intersection(*(set(v[part]) for v in found.values())))
        for name, v in found.items():
            if control == "median":
                common[name, part] = {w: float(np.median([u[part][w] for u in found.values()])) for w in weeks}
            else:  # with no other region, nothing to take out: the region's own level
                common[name, part] = {w: float(np.mean([u[part][w] for o, u in found.items() if o != name]
                                                       or [0.0])) for w in weeks}
    from mlops_assets.monitoring.regional import coefficient

    for name, v in found.items():
        beta = coefficient(v["calibration"], common[name, "calibration"]) if control == "fitted" else 1.0
        for part in ("calibration", "served"):
            out[name][part] = {w: v[part][w] - beta * c for w, c in common[name, part].items()}
        out[name]["beta"] = beta
    for name in out:  # the common level carries the same holidays' lifts
        out[name]["uncertainty"] = {}
    return out


CORROBORATION = 0.0  # --peer others/fitted: the own-level z a flag needs (1.0 measured: fewer found on orange juice)


def flags(found: dict[str, dict], control: str | None, corroboration: float = CORROBORATION) -> dict[str, list[bool]]:
    """Per region, each served week's verdict: the region's own statistic (``control`` None), less
    the regions' median (``median``), or (``others``) less the other regions' mean; ``fitted``: less
    the others' mean times the region's least-squares coefficient on it over the reference year
    (clipped to 0-1: the share of the chain's weekly movement the region shares). A region that
    moves pulls the others' comparisons the other way (by its weight in their comparison level,
    times their coefficient), so with ``others`` and ``fitted`` the region whose comparison moved
    furthest that week, in any window, is judged as it is, and each other region with that pull
    taken out of its comparison, window by window. With ``corroboration`` > 0, a flag also needs
    the region's own level to have moved the same way by that many of its scales in the window."""
    if control in ("fitted", "monitor"):  # the monitor's own regional signal (and its demand signal)
        return _monitored(found, with_own=control == "monitor")

    def judged(of):  # {region: {week: the signal}}
        return {name: dict(zip(v["served"], replay(v["calibration"], v["served"], v["uncertainty"])))
                for name, v in of.items()}

    def aligned(verdicts):  # each region's verdicts in the order of its own served weeks
        return {name: [verdicts[name].get(w, False) for w in v["served"]] for name, v in found.items()}

    compared = found if control is None else relative(found, control)
    rel = judged(compared)
    if control in (None, "median"):  # each region judged alone
        return aligned({name: {w: f["flagged"] for w, f in weeks.items()} for name, weeks in rel.items()})
    own = judged(found) if corroboration > 0 else {}  # "others" and "fitted"
    betas = {name: v["beta"] for name, v in compared.items()}
    share = 1.0 / max(len(rel) - 1, 1)  # a region's weight in another's comparison level
    out = {name: {} for name in rel}

    def moved(signal, w=None):  # a window's departure from its baseline (the furthest, without w)
        windows = signal.get("windows", {})
        if w is not None:
            return windows[w]["mean"] - windows[w]["center"] if w in windows else 0.0
        return max((x["mean"] - x["center"] for x in windows.values()), key=abs, default=0.0)

    for week in next(iter(rel.values())):  # the weeks every region has
        # the region whose comparison moved furthest this week, in any window, is judged as it is; the
        # others with the pull it puts on their comparison level taken out, window by window
        lead = max(rel, key=lambda name: abs(moved(rel[name][week])))
        for name, weeks in rel.items():
            r = weeks[week]
            for w, window in r.get("windows", {}).items():
                departure = window["mean"] - window["center"]
                if name != lead:
                    departure += betas[name] * share * moved(rel[lead][week], w)
                z = departure / window["scale"]
                if abs(z) < window["limit"]:
                    continue
                mine = own.get(name, {}).get(week, {}).get("windows", {}).get(w)
                if corroboration <= 0 or (mine is not None and np.sign(mine["z"]) == np.sign(z)
                                          and abs(mine["z"]) >= corroboration):
                    out[name][week] = True
                    break
    return aligned(out)


def _monitored(found: dict[str, dict], with_own: bool) -> dict[str, list[bool]]:
    """Per region, each served week's verdict of the monitor's ``regional`` signal
    (``monitoring.regional.assess_week``, week by week over every region, as the
    ``regional_comparison`` asset judges), or with ``with_own`` that or the region's own ``demand``
    signal: the loop's ``level_shift``."""
    from mlops_assets.monitoring import regional

    own = {name: dict(zip(v["served"], replay(v["calibration"], v["served"], v["uncertainty"])))
           for name, v in found.items()}
    compared = regional.replay({name: v["served"] for name, v in found.items()},
                               {name: v["calibration"] for name, v in found.items()},
                               own={name: {w: (s.get("windows", {}).get(1) or {}).get("z") for w, s in weeks.items()}
                                    for name, weeks in own.items()})
    out = {name: {w: a["flagged"] for w, a in weeks.items()} for name, weeks in compared.items()}
    if with_own:
        for name, weeks in own.items():
            for week, signal in weeks.items():
                out[name][week] = out[name].get(week, False) or signal["flagged"]
    return {name: [out[name].get(w, False) for w in v["served"]] for name, v in found.items()}


def shifted(found: dict[str, dict], region: str, start: int, factor: float) -> dict[str, dict]:
    served = found[region]["served"]
    moved = {w: x + (np.log(factor) if i >= start else 0.0) for i, (w, x) in enumerate(served.items())}
    return {**found, region: {**found[region], "served": moved}}


Z_FALSE_ALARM = 2.326  # two-sided, 2% of unchanged region-weeks
Z_POWER = {2: 1.645, 4: 0.842}  # the aims: 95% within 2 weeks, 80% within 4


def noise(spans: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Per region: the RMS of what the signal judges, each 1-, 2- and 4-week mean less its baseline
    (``levels.baseline``), over every unchanged span, and the smallest rise and fall of level a
    single look of a Gaussian detector with that known scale finds at the aims' rates."""
    out = {}
    for name in next(iter(spans.values())):
        departures = {1: [], 2: [], 4: []}
        for found in spans.values():
            v = found[name]
            for signal in replay(v["calibration"], v["served"], v["uncertainty"]):
                for w, window in signal.get("windows", {}).items():
                    departures[int(w)].append(window["mean"] - window["center"])
        rms = {w: float(np.sqrt(np.mean(np.square(d)))) if d else float("nan") for w, d in departures.items()}
        out[name] = {"rms": rms, "weeks": len(departures[1]),
                     "rise": {w: float(np.expm1((Z_FALSE_ALARM + z) * rms[w])) for w, z in Z_POWER.items()},
                     "fall": {w: float(-np.expm1(-(Z_FALSE_ALARM + z) * rms[w])) for w, z in Z_POWER.items()}}
    return out


def run(landing: Path, span: int, earlier: list[int], peer: str | None, cache: Path | None = None,
        corroboration: float = CORROBORATION) -> dict:
    from mlops_assets.monitoring.levels import LEVEL_VERSION

    files = sorted(p for p in landing.resolve().rglob("*") if p.is_file())
    key = {"landing": str(landing.resolve()), "span": span, "earlier": earlier, "level_version": LEVEL_VERSION,
           "files": [[str(p.relative_to(landing.resolve())), p.stat().st_size, p.stat().st_mtime_ns] for p in files]}
    kept = json.loads(cache.read_text()) if cache and cache.exists() else {}
    if kept.get("key") == key:
        spans = {int(n): found for n, found in kept["spans"].items()}
    else:  # none kept, or kept for another landing or other spans
        spans = {n: statistics(landing, span, n) for n in earlier}
        if cache:
            cache.write_text(json.dumps({"key": key, "spans": spans}))
    alarms, weeks, flagged = 0, 0, []
    for found in spans.values():
        for name, verdicts in flags(found, peer, corroboration).items():
            alarms, weeks = alarms + sum(verdicts), weeks + len(verdicts)
            flagged += [f"{name} {w}" for w, f in zip(found[name]["served"], verdicts) if f]
    last = spans[min(earlier)]
    detection = {}
    for factor in FACTORS:
        within2 = within4 = trials = others = 0
        for name, v in last.items():
            for start in range(2, len(v["served"]) - 4):
                verdicts = flags(shifted(last, name, start, factor), peer, corroboration)
                within2 += any(verdicts[name][start:start + 2])
                within4 += any(verdicts[name][start:start + 4])
                trials += 1
                others += any(any(verdicts[o][start:start + 4]) for o in verdicts if o != name)
        detection[f"x{factor}"] = {"within_2": within2 / trials, "within_4": within4 / trials, "trials": trials,
                                   "other_regions_flagged": others}
    common = (lambda found: relative(found, "fitted" if peer == "monitor" else peer)) if peer else (lambda found: found)
    return {"false_alarms": alarms, "region_weeks": weeks, "flagged": flagged, "detection": detection,
            "noise": noise({n: common(f) for n, f in spans.items()}),
            "coefficients": {name: v.get("beta") for name, v in common(last).items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "sample")
    parser.add_argument("--span", type=int, default=26)
    parser.add_argument("--earlier", type=int, nargs="+", default=[0])
    parser.add_argument("--peer", nargs="?", const="median", choices=["median", "others", "fitted", "monitor"])
    parser.add_argument("--noise", action="store_true", help="the bound any detector of a region's own level meets")
    parser.add_argument("--corroboration", type=float, default=CORROBORATION,
                        help="--peer others/fitted: the own-level z a flag needs (0: none)")
    parser.add_argument("--cache", type=Path, help="the statistics: read if there, else computed and written")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    found = run(args.landing, args.span, args.earlier, args.peer, args.cache, args.corroboration)
    what = {None: "each region's own statistic", "median": "each region less the median of all",
            "others": "each region less the others' mean",
            "fitted": "the monitor's regional signal: each region less its share of the others' mean",
            "monitor": "the monitor's level_shift: its own demand signal or the regional one",
            }[args.peer] + (f", corroborated by its own level (z {args.corroboration:g})"
                            if args.peer in ("others", "fitted") and args.corroboration > 0 else "")
    print(f"{args.landing} ({what}), spans ending {args.earlier} weeks before the last, "
          f"{time.perf_counter() - started:.0f} s")
    print(f"unchanged region-weeks flagged: {found['false_alarms']} of {found['region_weeks']} "
          f"({found['false_alarms'] / max(found['region_weeks'], 1):.1%}): {', '.join(found['flagged']) or '-'}")
    print("| level | within 2 weeks | within 4 weeks | trials | trials with another region flagged (within 4 weeks) |")
    print("|---|---|---|---|---|")
    for label, d in found["detection"].items():
        print(f"| {label} | {d['within_2']:.0%} | {d['within_4']:.0%} | {d['trials']} | {d['other_regions_flagged']} |")
    if args.peer in ("fitted", "monitor"):
        print("coefficients on the others' mean (last span):",
              ", ".join(f"{name} {beta:.2f}" for name, beta in found["coefficients"].items()))
    if args.noise:
        print("| region | weeks | RMS of 1 / 2 / 4-week means less their baselines (log) "
              "| smallest rise / fall found in 95% within 2 weeks | in 80% within 4 weeks |")
        print("|---|---|---|---|---|")
        for name, d in found["noise"].items():
            r = d["rms"]
            print(f"| {name} | {d['weeks']} | {r[1]:.3f} / {r[2]:.3f} / {r[4]:.3f} "
                  f"| {d['rise'][2]:+.0%} / {-d['fall'][2]:.0%} | {d['rise'][4]:+.0%} / {-d['fall'][4]:.0%} |")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

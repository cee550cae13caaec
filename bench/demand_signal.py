"""Benchmark in seconds: the demand signal alone, without models, against level shifts.

    .venv/bin/python bench/demand_signal.py                       # the bundled sample
    .venv/bin/python bench/demand_signal.py --landing /tmp/oj     # bench/real_data.py
    [--span 26] [--earlier 0 13 22] [--peer] [--json FILE]

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
often a region that did not change was flagged because one that did moved the median. A design
probe, not a signal the monitor has.
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
    """{region: {"calibration": {week: value}, "served": {week: value}}}: the demand statistic of
    the reference year's weeks and of the span's."""
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
        served, uncertainty = {}, {}
        for week, part in later.groupby(later["week_start"].dt.strftime("%Y-%m-%d")):
            part = part.reset_index(drop=True)
            found = levels.week_statistics(reference, part, None, part["target"].to_numpy(float))
            if found["demand"] is not None:
                served[week], uncertainty[week] = found["demand"], found["uncertainty"]["demand"]
        out[name] = {"calibration": reference["calibration"]["demand"], "served": served, "uncertainty": uncertainty}
    return out


def replay(calibration: dict, served: dict, uncertainty: dict | None = None) -> list[bool]:
    """Each served week's verdict of the ``demand`` signal, judged in order as the monitor does."""
    from mlops_assets.monitoring.monitor import WINDOWS, MonitorLimits, _signal

    limits, history, flags = MonitorLimits(), [], []
    for week, value in served.items():
        found = _signal("demand", value, calibration, week, history, (limits, limits.level_false_alarm), WINDOWS,
                        uncertainty=(uncertainty or {}).get(week, 0.0))
        history.append({"week": week, "signals": {"demand": found}})
        flags.append(found["flagged"])
    return flags


def relative(found: dict[str, dict]) -> dict[str, dict]:
    """Each region's statistic less the median of every region's in the same week."""
    out = {name: {} for name in found}
    for part in ("calibration", "served"):
        weeks = sorted(set.intersection(*(set(v[part]) for v in found.values())))
        median = {w: float(np.median([v[part][w] for v in found.values()])) for w in weeks}
        for name, v in found.items():
            out[name][part] = {w: v[part][w] - median[w] for w in weeks}
    for name in out:  # the median carries the same holidays' lifts
        out[name]["uncertainty"] = {}
    return out


def shifted(found: dict[str, dict], region: str, start: int, factor: float) -> dict[str, dict]:
    served = found[region]["served"]
    moved = {w: x + (np.log(factor) if i >= start else 0.0) for i, (w, x) in enumerate(served.items())}
    return {**found, region: {**found[region], "served": moved}}


def run(landing: Path, span: int, earlier: list[int], peer: bool) -> dict:
    judged = relative if peer else (lambda found: found)
    spans = {n: statistics(landing, span, n) for n in earlier}
    alarms, weeks, flagged = 0, 0, []
    for found in spans.values():
        for name, v in judged(found).items():
            flags = replay(v["calibration"], v["served"], v["uncertainty"])
            alarms, weeks = alarms + sum(flags), weeks + len(flags)
            flagged += [f"{name} {w}" for w, f in zip(v["served"], flags) if f]
    last = spans[min(earlier)]
    detection = {}
    for factor in FACTORS:
        within2 = within4 = trials = others = 0
        for name, v in last.items():
            for start in range(2, len(v["served"]) - 4):
                found = judged(shifted(last, name, start, factor))
                flags = replay(found[name]["calibration"], found[name]["served"], found[name]["uncertainty"])
                within2 += any(flags[start:start + 2])
                within4 += any(flags[start:start + 4])
                trials += 1
                others += sum(any(replay(found[o]["calibration"], found[o]["served"], found[o]["uncertainty"])
                                  [start:start + 4])
                              for o in found if o != name)
        detection[f"x{factor}"] = {"within_2": within2 / trials, "within_4": within4 / trials, "trials": trials,
                                   "other_regions_flagged": others}
    return {"false_alarms": alarms, "region_weeks": weeks, "flagged": flagged, "detection": detection}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "sample")
    parser.add_argument("--span", type=int, default=26)
    parser.add_argument("--earlier", type=int, nargs="+", default=[0])
    parser.add_argument("--peer", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    found = run(args.landing, args.span, args.earlier, args.peer)
    what = "each region less the median of all" if args.peer else "each region's own statistic"
    print(f"{args.landing} ({what}), spans ending {args.earlier} weeks before the last, "
          f"{time.perf_counter() - started:.0f} s")
    print(f"unchanged region-weeks flagged: {found['false_alarms']} of {found['region_weeks']} "
          f"({found['false_alarms'] / max(found['region_weeks'], 1):.1%}): {', '.join(found['flagged']) or '-'}")
    print("| level | within 2 weeks | within 4 weeks | trials | other regions flagged (within 4 weeks) |")
    print("|---|---|---|---|---|")
    for label, d in found["detection"].items():
        print(f"| {label} | {d['within_2']:.0%} | {d['within_4']:.0%} | {d['trials']} | {d['other_regions_flagged']} |")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark in minutes: the stores' spread signal alone, without models, against changes in some stores.

    .venv/bin/python bench/store_spread.py                                 # the bundled sample
    .venv/bin/python bench/store_spread.py --landing /tmp/oj_plain         # bench/real_data.py
    [--span 26] [--earlier 0 13 22] [--share 0.33] [--trials 4] [--seed 0] [--oracle-false-alarm 0.02]
    [--cache FILE] [--json FILE]

``bench/drift_power.py`` trains every region's model and replays every signal; this replays one,
``spread`` (``monitoring.monitor``: each store's level against the region's, in its own baseline and
scale), which needs no model. Per region and span (``--earlier N``: the span ending N weeks before
the last), the reference year before the span is built as a model's reference builds it, and each
week's store departures are computed from the landing (``bench/demand_signal.py``'s
``statistics``). The weeks are replayed through the monitor's own function with its default limits:
the weeks flagged in the unchanged spans, with the stores each names. Then a change of level by a
factor f in a random ``--share`` of a region's stores (at least one) is added to those stores'
departures (log f: a store's robust level moves by exactly that when all its series do, less the
rounding of small counts) from each week of the last span (2 weeks in to 5 before its end),
``--trials`` draws of stores per start week, and the replay is run again: detection within 2 and 4
weeks.

Beside the monitor, two tests that are told what no monitor knows (``--oracle-false-alarm``, 2%:
item 2's limit on flagged region-weeks, spent here on one test per trial instead of every week),
on the same z's (``levels.store_spread``: each store's departure less its baseline and the
stores' median, in its own scale) and the same trials; their limits are the quantile of the same
statistic over every unchanged span, start week and (for the first) draw of stores, so real
stores' own wandering sets them, not a normal table:

- **told the stores, the week and the way**: the changed stores' z over the weeks since the
  change, each weighted by 1 / its store's scale (a change of log f moves a store's z by log f /
  its scale), summed, / the root of the weights' squares, signed the way they moved; its limit
  is taken for each way apart. With independent normal z's the most powerful test there is
  (Neyman-Pearson): near the most any test can find at that rate.
- **told the week**: each store's z summed over the weeks since the change, / sqrt(weeks),
  squared, over the stores (``_chi``, Wilson-Hilferty as ``store_spread``): a plain chi-square
  for a change in any stores, either way, its limit pooled over every region and span (the
  monitor's follow each region's own recent weeks). A peer, not a bound: it can find less than
  the monitor does.

The sample plants store events of its own (``mlops_assets/sample.py``: closures, remodels x1.15-1.4,
competitors x0.6-0.85, for good): a flag there may be a true one, and the stores it names say which.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demand_signal import FACTORS, statistics  # noqa: E402


def replay(stores: dict, served: dict[str, dict[str, float]]) -> list[dict]:
    """Each served week's ``spread`` signal, judged in order as the monitor does."""
    from mlops_assets.monitoring.monitor import MonitorLimits, _spread

    limits, history = MonitorLimits(), []
    for week, departures in served.items():
        found = _spread(departures, stores["calibration"], week, history, limits)
        history.append({"week": week, "signals": {"spread": found}})
    return [h["signals"]["spread"] for h in history]


ORACLE_WINDOWS = (2, 4)  # weeks since the change the told tests read: "within 2 / 4 weeks"
NULL_DRAWS = 20  # draws of stores per unchanged start week for the told-the-stores test's limit


def _draw(names: list[str], share: float, rng) -> list[str]:
    """A random ``share`` of ``names``: the nearest whole number of them, at least one."""
    return list(rng.choice(names, size=max(1, int(round(len(names) * share))), replace=False))


def _z(stores: dict, served: dict[str, dict[str, float]]) -> tuple:
    """The served weeks' store z's (weeks x stores), as the monitor's ``spread`` computes them over
    the reference and those weeks (no week left out of the baselines: the told tests flag nothing),
    and each store's weight, 1 / its scale (``Spread.scale``, as its z divides by it)."""
    from mlops_assets.monitoring import levels

    calibration = stores["calibration"]
    found = levels.store_spread({**calibration, **served}, frozenset(calibration))
    return found.z.loc[list(served)], 1.0 / found.scale


def _told_stores(z, weights, start: int, weeks: int, chosen: list[str], sign: float) -> float:
    """The changed stores' z over ``weeks`` from ``start``, each weighted by its store's weight,
    summed, / the root of the weights' squares, signed."""
    part = z.iloc[start:start + weeks][chosen].to_numpy(dtype=float)
    w = np.broadcast_to(weights[chosen].to_numpy(dtype=float), part.shape)
    ok = np.isfinite(part) & np.isfinite(w)
    return float(sign * (w[ok] * part[ok]).sum() / np.sqrt((w[ok] ** 2).sum())) if ok.any() else float("nan")


def _chi(z, start: int, weeks: int) -> float:
    """Each store's z summed over ``weeks`` from ``start``, / sqrt(weeks), squared and averaged
    over the stores, standardized by Wilson-Hilferty's cube root (``levels.chi_square_z``, as
    ``levels.store_spread``)."""
    from mlops_assets.monitoring import levels

    part = z.iloc[start:start + weeks]
    sums = part.sum(min_count=weeks).to_numpy(dtype=float) / np.sqrt(weeks)
    sums = sums[np.isfinite(sums)]
    if len(sums) < levels.MIN_STORES:
        return float("nan")
    return float(levels.chi_square_z(np.mean(np.square(sums)), len(sums)))


WAYS = {"up": 1.0, "down": -1.0}


def oracle_limits(spans: dict, share: float, false_alarm: float, rng) -> dict:
    """The told tests' limits: each one's (1 - ``false_alarm``) quantile over every unchanged span,
    region and start week (the told-the-stores one over ``NULL_DRAWS`` draws of stores a start,
    each way apart)."""
    told = {way: {n: [] for n in ORACLE_WINDOWS} for way in WAYS}
    chi = {n: [] for n in ORACLE_WINDOWS}
    for found in spans.values():
        for v in found.values():
            served = v["stores"]["served"]
            z, weights = _z(v["stores"], served)
            names = list(z.columns)
            for start in range(len(served) - max(ORACLE_WINDOWS) + 1):
                for n in ORACLE_WINDOWS:
                    chi[n].append(_chi(z, start, n))
                for _ in range(NULL_DRAWS):
                    chosen = _draw(names, share, rng)
                    for n in ORACLE_WINDOWS:
                        for way, sign in WAYS.items():
                            told[way][n].append(_told_stores(z, weights, start, n, chosen, sign))
    q = 1.0 - false_alarm
    return {"told_stores": {way: {n: float(np.nanquantile(by[n], q)) for n in ORACLE_WINDOWS}
                            for way, by in told.items()},
            "told_week": {n: float(np.nanquantile(chi[n], q)) for n in ORACLE_WINDOWS},
            "null_tests": {"told_stores": len(told["up"][max(ORACLE_WINDOWS)]),
                           "told_week": len(chi[max(ORACLE_WINDOWS)])}}


def moved(served: dict[str, dict[str, float]], start: int, chosen: list[str], factor: float) -> dict:
    shift = float(np.log(factor))
    return {w: {s: d + (shift if i >= start and s in chosen else 0.0) for s, d in departures.items()}
            for i, (w, departures) in enumerate(served.items())}


def run(landing: Path, span: int, earlier: list[int], share: float, trials: int, seed: int,
        cache: Path | None = None, oracle_false_alarm: float = 0.02) -> dict:
    from mlops_assets.monitoring.levels import LEVEL_VERSION

    key = {"landing": str(landing.resolve()), "span": span, "earlier": earlier, "level_version": LEVEL_VERSION}
    kept = json.loads(cache.read_text()) if cache and cache.exists() else {}
    if kept.get("key") == key:
        spans = {int(n): found for n, found in kept["spans"].items()}
    else:
        spans = {n: statistics(landing, span, n) for n in earlier}
        if cache:
            cache.write_text(json.dumps({"key": key, "spans": spans}))
    weeks, flagged = 0, []
    for n, found in spans.items():
        for name, v in found.items():
            served = v["stores"]["served"]
            for week, signal in zip(served, replay(v["stores"], served)):
                weeks += 1
                if signal["flagged"]:
                    flagged.append({"region": name, "week": week, "z": signal["z"], "limit": signal["limit"],
                                    "stores": {m["store"]: float(np.expm1(m["change"])) for m in signal["moved"]}})
    rng = np.random.default_rng(seed)
    limits = oracle_limits(spans, share, oracle_false_alarm, np.random.default_rng(seed + 1))
    last, detection = spans[min(earlier)], {}
    for factor in FACTORS:
        within2 = within4 = count = 0
        told = {key: {n: 0 for n in ORACLE_WINDOWS} for key in ("told_stores", "told_week")}
        way = "up" if factor > 1 else "down"
        for name, v in last.items():
            served = v["stores"]["served"]
            names = sorted({s for d in served.values() for s in d})
            for start in range(2, len(served) - 4):
                for _ in range(trials):
                    chosen = _draw(names, share, rng)
                    changed = moved(served, start, chosen, factor)
                    verdicts = [s["flagged"] for s in replay(v["stores"], changed)]
                    within2 += any(verdicts[start:start + 2])
                    within4 += any(verdicts[start:start + 4])
                    count += 1
                    z, weights = _z(v["stores"], changed)
                    for n in ORACLE_WINDOWS:
                        told["told_stores"][n] += (_told_stores(z, weights, start, n, chosen, WAYS[way])
                                                   > limits["told_stores"][way][n])
                        told["told_week"][n] += _chi(z, start, n) > limits["told_week"][n]
        detection[f"x{factor}"] = {"within_2": within2 / count, "within_4": within4 / count, "trials": count,
                                   **{f"{key}_within_{n}": hits / count
                                      for key, by in told.items() for n, hits in by.items()}}
    stores = {name: len({s for d in v["stores"]["served"].values() for s in d}) for name, v in last.items()}
    return {"region_weeks": weeks, "flagged": flagged, "detection": detection, "stores": stores,
            "oracle": {"false_alarm": oracle_false_alarm, **limits}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "sample")
    parser.add_argument("--span", type=int, default=26)
    parser.add_argument("--earlier", type=int, nargs="+", default=[0])
    parser.add_argument("--share", type=float, default=1 / 3, help="the share of a region's stores that change")
    parser.add_argument("--trials", type=int, default=4, help="draws of the changed stores per start week")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oracle-false-alarm", type=float, default=0.02,
                        help="the told tests' false-alarm rate, one test per trial (the limits' quantile)")
    parser.add_argument("--cache", type=Path, help="the statistics: read if there, else computed and written")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not 0 < args.oracle_false_alarm < 1:
        parser.error("--oracle-false-alarm must lie between 0 and 1")
    found = run(args.landing, args.span, args.earlier, args.share, args.trials, args.seed, args.cache,
                args.oracle_false_alarm)
    print(f"{args.landing}: the stores' spread, spans ending {args.earlier} weeks before the last; stores per region "
          f"{found['stores']}; {time.perf_counter() - started:.0f} s")
    flags = found["flagged"]
    print(f"unchanged region-weeks flagged: {len(flags)} of {found['region_weeks']} "
          f"({len(flags) / max(found['region_weeks'], 1):.1%})")
    for f in flags:
        named = ", ".join(f"{s} {c:+.0%}" for s, c in f["stores"].items())
        print(f"  {f['region']} {f['week']} (z {f['z']:+.1f}, limit {f['limit']:.1f}): {named}")
    oracle = found["oracle"]
    print(f"told tests at {oracle['false_alarm']:.1%} a test, limits from {oracle['null_tests']['told_stores']} / "
          f"{oracle['null_tests']['told_week']} unchanged tests: told the stores "
          + "; ".join(f"{way} " + ", ".join(f"{n} wk {v:.2f}" for n, v in by.items())
                      for way, by in oracle["told_stores"].items()) + "; told the week "
          + ", ".join(f"{n} wk {v:.2f}" for n, v in oracle["told_week"].items()))
    print(f"| level, {args.share:.0%} of the stores | monitor: within 2 / 4 weeks | told the stores, the week "
          f"and the way | told the week | trials |")
    print("|---|---|---|---|---|")
    for label, d in found["detection"].items():
        print(f"| {label} | {d['within_2']:.0%} / {d['within_4']:.0%} | {d['told_stores_within_2']:.0%} / "
              f"{d['told_stores_within_4']:.0%} | {d['told_week_within_2']:.0%} / {d['told_week_within_4']:.0%} | "
              f"{d['trials']} |")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

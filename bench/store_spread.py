"""Benchmark in minutes: the stores' spread signal alone, without models, against changes in some stores.

    .venv/bin/python bench/store_spread.py                                 # the bundled sample
    .venv/bin/python bench/store_spread.py --landing /tmp/oj_plain         # bench/real_data.py
    [--span 26] [--earlier 0 13 22] [--share 0.33] [--trials 4] [--seed 0] [--cache FILE] [--json FILE]

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


def moved(served: dict[str, dict[str, float]], start: int, chosen: list[str], factor: float) -> dict:
    shift = float(np.log(factor))
    return {w: {s: d + (shift if i >= start and s in chosen else 0.0) for s, d in departures.items()}
            for i, (w, departures) in enumerate(served.items())}


def run(landing: Path, span: int, earlier: list[int], share: float, trials: int, seed: int,
        cache: Path | None = None) -> dict:
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
    last, detection = spans[min(earlier)], {}
    for factor in FACTORS:
        within2 = within4 = count = 0
        for name, v in last.items():
            served = v["stores"]["served"]
            names = sorted({s for d in served.values() for s in d})
            for start in range(2, len(served) - 4):
                for _ in range(trials):
                    chosen = list(rng.choice(names, size=max(1, int(round(len(names) * share))), replace=False))
                    verdicts = [s["flagged"] for s in replay(v["stores"], moved(served, start, chosen, factor))]
                    within2 += any(verdicts[start:start + 2])
                    within4 += any(verdicts[start:start + 4])
                    count += 1
        detection[f"x{factor}"] = {"within_2": within2 / count, "within_4": within4 / count, "trials": count}
    stores = {name: len({s for d in v["stores"]["served"].values() for s in d}) for name, v in last.items()}
    return {"region_weeks": weeks, "flagged": flagged, "detection": detection, "stores": stores}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "sample")
    parser.add_argument("--span", type=int, default=26)
    parser.add_argument("--earlier", type=int, nargs="+", default=[0])
    parser.add_argument("--share", type=float, default=1 / 3, help="the share of a region's stores that change")
    parser.add_argument("--trials", type=int, default=4, help="draws of the changed stores per start week")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="the statistics: read if there, else computed and written")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    found = run(args.landing, args.span, args.earlier, args.share, args.trials, args.seed, args.cache)
    print(f"{args.landing}: the stores' spread, spans ending {args.earlier} weeks before the last; stores per region "
          f"{found['stores']}; {time.perf_counter() - started:.0f} s")
    flags = found["flagged"]
    print(f"unchanged region-weeks flagged: {len(flags)} of {found['region_weeks']} "
          f"({len(flags) / max(found['region_weeks'], 1):.1%})")
    for f in flags:
        named = ", ".join(f"{s} {c:+.0%}" for s, c in f["stores"].items())
        print(f"  {f['region']} {f['week']} (z {f['z']:+.1f}, limit {f['limit']:.1f}): {named}")
    print(f"| level, {args.share:.0%} of the stores | within 2 weeks | within 4 weeks | trials |")
    print("|---|---|---|---|")
    for label, d in found["detection"].items():
        print(f"| {label} | {d['within_2']:.0%} | {d['within_4']:.0%} | {d['trials']} |")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

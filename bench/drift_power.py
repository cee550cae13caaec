"""Benchmark: does the monitor see a real change, how soon, and how often does it cry wolf?

    .venv/bin/pip install -e '.[bench]'     # Evidently, the peer (bench only)
    .venv/bin/python bench/drift_power.py                                  # the bundled sample
    .venv/bin/python bench/drift_power.py --landing /tmp/oj --name "orange juice"   # bench/real_data.py
    [--trials 12] [--span 26] [--earlier 0] [--seed 0] [--evidently-trials N | --no-evidently] [--json FILE]

Per region, a model is trained as the pipeline trains it (``train_region``), as of the week
before the last ``--span`` weeks (``--earlier N``: a span that ends N weeks before the last,
for more unchanged weeks than one span holds), and its reference is built as the ``region_model`` asset
builds it. The monitored span is then replayed week by week: the week's features as they were
forecast, the model's forecasts, the actuals once in, and ``monitoring.monitor.assess_week``;
then every region's week together through ``monitoring.regional.assess_week`` (each region's demand
against the other regions', the ``regional_comparison`` asset), judged again in every trial: the
shifted region's demand moves the others' comparisons, and "only the shifted region" counts that.

Shifts are injected into one region's conditioned data from a random week of the span (at
least 2 weeks in and 5 before its end), independent of the sample generator's own drift:

- demand level x0.6, x0.85, x1.15, x1.3, x1.6, in every store, and separately in a random
  third of the region's stores (the nearest whole number: 3 of 8); units scaled with random
  rounding, so small counts move too;
- a covariate: the region's weather feed 5 C warmer (observed and forecast; data with weather);
- the mix: a new product line (a third of the products again under new ids, each selling
  0.5-1.5x the product it copies), and a third of the products delisted.

Prints, per shift: detection within 1, 2 and 4 weeks (1 = in the week the shift begins: its
actuals, or the next week's lags) and the 95% interval of the 4-week rate (12 trials pin a rate
down to about +-20 points), the median delay of the detected, whether the shifted region
alone was flagged in those weeks (and whether any other region was flagged in a week it was not
flagged in on the unchanged data: its own false alarms aside), and which signal flagged it; and the false alarms per
region-week on the unchanged data, with their interval and their weeks, and the weeks in which
the monitor named closed stores (stores that sold nothing: left out of demand and bias). The same for
Evidently's data-drift preset with its defaults (dataset drift when half of the columns drift;
Wasserstein and Jensen-Shannon at 0.1 on thousands of rows), on the same weeks, columns and
reference rows: every trial, or the first ``--evidently-trials`` of each shift (a report per week
costs more than the project's whole replay).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry off (there is no network anyway)

KEY = ["week_start", "store_id", "product_id"]
LEVELS = (0.6, 0.85, 1.15, 1.3, 1.6)
EVIDENTLY_NUMERIC = ["lag_1", "lag_2", "lag_3", "lag_4", "mean_4", "mean_13", "nonzero_mean_13", "zero_share_13",
                     "temp_max_c", "temp_min_c", "precip_mm", "forecast"]
EVIDENTLY_CATEGORICAL = ["segment", "category"]


@dataclass
class Region:
    name: str
    inputs: dict           # build_features' keyword arguments, unchanged
    weeks: list[str]       # the monitored span
    model: object
    reference: dict        # monitoring.monitor.build_reference
    reference_rows: pd.DataFrame  # for Evidently


def prepare(landing: Path, span: int, regions: list[str] | None, earlier: int = 0) -> list[Region]:
    from mlops_assets.contract.validation import check_landing, require_clean
    from mlops_assets.ml.ensemble import TrainConfig, train_region
    from mlops_assets.ml.featurize import at_forecast_time, build_features
    from mlops_assets.monitoring.monitor import reference_profile, reference_rows
    from mlops_assets.offline import region_inputs

    checked = require_clean(check_landing(landing), landing)
    names = regions or list(dict.fromkeys(checked["stores"].valid["region"]))
    out = []
    for name in names:
        started = time.perf_counter()
        inputs = region_inputs(landing, name, checked=checked)
        features = build_features(**inputs)
        weeks = sorted(features.loc[features["target"].notna(), "week_start"].dt.strftime("%Y-%m-%d").unique())
        weeks = weeks[:len(weeks) - earlier]
        monitored, as_of = weeks[-span:], weeks[-span - 1]
        model, holdout = train_region(features, name, TrainConfig(), as_of_week=as_of, profiler=reference_profile)
        observed = at_forecast_time(features[features["target"].notna() & (features["week_start"] <= as_of)])
        rows = reference_rows(observed, as_of)
        out.append(Region(name, inputs, monitored, model, model.reference,
                          rows.assign(forecast=model.predict(rows)["forecast"].to_numpy())))
        print(f"  {name}: trained as of {as_of} in {time.perf_counter() - started:.0f} s "
              f"({len(model.segments)} segments)", file=sys.stderr)
    return out


# --- shifts --------------------------------------------------------------------------------


def _scale(units: pd.Series, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Units times ``factor``, rounded at random (unbiased: 1 unit x 1.15 is 2 in 15% of weeks)."""
    scaled = units.to_numpy(dtype=float) * factor
    return np.floor(scaled + rng.random(len(scaled))).astype("int64")


def _third(ids, rng: np.random.Generator) -> np.ndarray:
    """A random third of ``ids``: the nearest whole number to a third (3 of 8 stores, not 2, a
    quarter), at least one."""
    return rng.choice(ids, size=max(1, round(len(ids) / 3)), replace=False)


def shifted(inputs: dict, kind: str, size: float, start: str, rng: np.random.Generator) -> dict:
    """``inputs`` with one change from week ``start`` on."""
    out = dict(inputs)
    demand = inputs["demand"].copy()
    after = demand["week_start"] >= pd.Timestamp(start)
    if kind in ("level", "level_third"):
        rows = after
        if kind == "level_third":
            rows = after & demand["store_id"].isin(_third(demand["store_id"].unique(), rng))
        demand.loc[rows, "net_demand"] = _scale(demand.loc[rows, "net_demand"], size, rng)
    elif kind == "weather":
        weather = inputs["weather"].copy()
        later = weather["week_start"] >= pd.Timestamp(start)
        for column in ("temp_max_c", "temp_min_c", "forecast_temp_max_c", "forecast_temp_min_c"):
            if column in weather:
                weather.loc[later, column] = weather.loc[later, column] + size
        out["weather"] = weather
    elif kind == "new_products":
        products = inputs["products"]
        chosen = _third(demand["product_id"].unique(), rng)
        copies = demand[after & demand["product_id"].isin(chosen)].copy()
        factor = dict(zip(chosen, rng.uniform(0.5, 1.5, len(chosen))))
        copies["net_demand"] = _scale(copies["net_demand"] * copies["product_id"].map(factor), 1.0, rng)
        copies["product_id"] = copies["product_id"] + "_new"
        demand = pd.concat([demand, copies], ignore_index=True)
        new = products[products["product_id"].isin(chosen)].assign(product_id=lambda f: f["product_id"] + "_new")
        out["products"] = pd.concat([products, new], ignore_index=True)
    elif kind == "delisted":
        chosen = _third(demand["product_id"].unique(), rng)
        demand = demand[~(after & demand["product_id"].isin(chosen))]
    out["demand"] = demand
    return out


MIX_PRODUCTS = 3  # products a region needs before a third of them is a change of its mix, not all of it


def shift_kinds(has_weather: bool, products: int = MIX_PRODUCTS) -> list[tuple[str, float, str]]:
    """(kind, size, label). The mix changes only where every region sells ``MIX_PRODUCTS`` products
    or more: a third of one product is that product, and delisting it ends the region's data."""
    kinds = [("level", s, f"demand x{s} (all stores)") for s in LEVELS]
    kinds += [("level_third", s, f"demand x{s} (a third of the stores)") for s in LEVELS]
    if has_weather:
        kinds.append(("weather", 5.0, "weather feed +5 C"))
    if products >= MIX_PRODUCTS:
        kinds += [("new_products", 1.0, "mix: a new product line"),
                  ("delisted", 1.0, "mix: a third of products delisted")]
    return kinds


# --- monitoring ----------------------------------------------------------------------------


def monitor(region: Region, inputs: dict, weeks: list[str]) -> dict[str, dict]:
    """The project's assessment of each of ``weeks``, in order (each week judged against the weeks before it)."""
    from mlops_assets.ml.featurize import at_forecast_time, build_features
    from mlops_assets.monitoring.monitor import assess_week

    features = at_forecast_time(build_features(**{**inputs, "weeks": weeks}))
    forecast_time, realized, out = [], [], {}
    for week in weeks:
        rows = features[features["week_start"] == pd.Timestamp(week)].reset_index(drop=True)
        forecasts = region.model.predict(rows)["forecast"].to_numpy()
        # when the week is forecast, then once its actuals land (the end of the same week)
        ahead = assess_week(region.reference, rows, week, forecasts, history=forecast_time)
        after = assess_week(region.reference, rows, week, forecasts, rows["target"].to_numpy(dtype=float),
                            history=realized)
        forecast_time.append(ahead)
        realized.append(after)
        by = sorted(n for found in (ahead, after) for n, s in found["signals"].items() if s["flagged"])
        out[week] = {"flagged": bool(by), "own": bool(by), "by": by, "rows": rows.assign(forecast=forecasts),
                     # what regional_comparison reads of the week: demand's value and z, where judged
                     "demand": (after["signals"].get("demand", {}).get("windows", {}).get(1) or {}).get("mean"),
                     "demand_z": (after["signals"].get("demand", {}).get("windows", {}).get(1) or {}).get("z"),
                     "closed": after["signals"].get("stores", {}).get("closed", [])}
    return out


def compared(prepared: list[Region], found: dict[str, dict[str, dict]]) -> dict[str, dict[str, bool]]:
    """Each region's ``regional`` verdict per week (``monitoring.regional``: its demand statistic
    against the other regions' in the same week, judged week by week over every region as the
    ``regional_comparison`` asset judges), from ``monitor``'s weeks of every region."""
    from mlops_assets.monitoring import regional

    calibrations = {r.name: r.reference["levels"]["calibration"]["demand"] for r in prepared}
    found = regional.replay({name: {w: v["demand"] for w, v in weeks.items()} for name, weeks in found.items()},
                            calibrations, own={name: {w: v["demand_z"] for w, v in weeks.items()}
                                               for name, weeks in found.items()})
    return {name: {w: a["flagged"] for w, a in weeks.items()} for name, weeks in found.items()}


def with_regional(weeks: dict[str, dict], verdicts: dict[str, bool]) -> dict[str, dict]:
    """``monitor``'s weeks of a region with the regional verdicts added (the loop's level_shift is
    either signal)."""
    out = {}
    for week, found in weeks.items():
        by = sorted([*found["by"], "regional"]) if verdicts.get(week) else found["by"]
        out[week] = {**found, "flagged": bool(by), "by": by}
    return out


def evidently_flags(region: Region, weeks: dict[str, dict]) -> dict[str, bool]:
    """Evidently's dataset drift verdict (defaults) of each week, on the project's reference rows."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = region.reference_rows
    numeric = [c for c in EVIDENTLY_NUMERIC if c in reference and reference[c].notna().any()]
    columns = [*numeric, *EVIDENTLY_CATEGORICAL]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=EVIDENTLY_CATEGORICAL)
    ref = Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition)
    out = {}
    for week, found in weeks.items():
        current = Dataset.from_pandas(found["rows"][columns].reset_index(drop=True), data_definition=definition)
        metrics = Report([DataDriftPreset()]).run(current_data=current, reference_data=ref).dict()["metrics"]
        [count] = [m for m in metrics if m["metric_name"].startswith("DriftedColumnsCount")]
        out[week] = bool(count["value"]["share"] >= 0.5)
    return out


def run(landing: Path, name: str, trials: int, span: int, seed: int, evidently: int,
        regions: list[str] | None, earlier: int = 0) -> dict:
    """``evidently``: how many of each shift's trials Evidently judges too (the first ones: the
    same weeks and rows; 0: none)."""
    started = time.perf_counter()
    print(f"{name}: training {landing}", file=sys.stderr)
    prepared = prepare(landing, span, regions, earlier)
    # the unchanged span of every region: false alarms, and "only the shifted region" in a trial
    unchanged = {r.name: monitor(r, r.inputs, r.weeks) for r in prepared}
    regional = compared(prepared, unchanged)
    unchanged = {name: with_regional(weeks, regional[name]) for name, weeks in unchanged.items()}
    peer_unchanged = {r.name: evidently_flags(r, unchanged[r.name]) for r in prepared} if evidently else {}
    has_weather = all(r.inputs["weather"]["temp_max_c"].notna().any() for r in prepared)
    products = min(r.inputs["demand"]["product_id"].nunique() for r in prepared)
    if products < MIX_PRODUCTS:
        print(f"{name}: {products} product(s) in a region: no mix shifts", file=sys.stderr)
    rng = np.random.default_rng(seed)
    rows = []
    for kind, size, label in shift_kinds(has_weather, products):
        for trial in range(trials):
            region = prepared[trial % len(prepared)]
            start = region.weeks[int(rng.integers(2, len(region.weeks) - 5))]
            window = [w for w in region.weeks if w >= start][:4]
            found = monitor(region, shifted(region.inputs, kind, size, start, rng), region.weeks)
            # the shifted region's demand moves every other region's comparison: judged again, all of them
            regional = compared(prepared, {**unchanged, region.name: found})
            found = with_regional(found, regional[region.name])
            others = [o for o in prepared if o is not region]
            record = {"shift": label, "kind": kind, "region": region.name, "start": start}
            before = {o.name: {w: unchanged[o.name][w]["flagged"] for w in window} for o in others}
            record["project"] = _detection(found, window, {o.name: {w: unchanged[o.name][w]["own"] or
                                                                    regional[o.name].get(w, False) for w in window}
                                                           for o in others}, before)
            signals = [found[w]["by"] for w in window if found[w]["flagged"]]
            record["project"]["signals"] = signals[0] if signals else []
            if trial < evidently:
                peer = evidently_flags(region, {w: found[w] for w in window})
                record["evidently"] = _detection({w: {"flagged": v} for w, v in peer.items()}, window,
                                                 {o.name: {w: peer_unchanged[o.name][w] for w in window}
                                                  for o in others})
            rows.append(record)
        print(f"  {label}: {trials} trials ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    false_alarms = {"project": _false_alarms({r: {w: v["flagged"] for w, v in weeks.items()}
                                              for r, weeks in unchanged.items()}),
                    "by_signal": _by_signal(unchanged),
                    "weeks": [{"region": r, "week": w, "signals": v["by"]}
                              for r, weeks in unchanged.items() for w, v in weeks.items() if v["flagged"]],
                    # named by the monitor, left out of demand and bias, never flagged (monitoring.levels.closed)
                    "closed_stores": [{"region": r, "week": w, "stores": v["closed"]}
                                      for r, weeks in unchanged.items() for w, v in weeks.items() if v["closed"]]}
    if evidently:
        false_alarms["evidently"] = _false_alarms(peer_unchanged)
    return {"name": name, "landing": str(landing), "regions": [r.name for r in prepared], "span_weeks": span,
            "span": [prepared[0].weeks[0], prepared[0].weeks[-1]] if prepared else None,
            "trials_per_shift": trials, "evidently_trials_per_shift": min(evidently, trials), "trials": rows,
            "false_alarms": false_alarms,
            "seconds": time.perf_counter() - started}


def _detection(found: dict, window: list[str], others: dict[str, dict[str, bool]],
               unchanged: dict[str, dict[str, bool]] | None = None) -> dict:
    """The shifted region's delay, whether any other region was flagged in the trial's weeks, and
    which: ``new`` are the flags the other region did not have on the unchanged data (the shift's
    pull, or a borderline week tipped over), the rest its own false alarms in those weeks."""
    delay = next((i for i, w in enumerate(window) if found[w]["flagged"]), None)
    flagged = [[o, w] for o, weeks in others.items() for w, f in weeks.items() if f]
    new = [[o, w] for o, w in flagged if not (unchanged or others)[o].get(w)]
    return {"delay": delay, "only_shifted": not flagged, "no_new_flag": not new, "others_flagged": flagged,
            "others_new": new}


def _false_alarms(flags: dict[str, dict[str, bool]]) -> dict:
    values = [v for weeks in flags.values() for v in weeks.values()]
    return {"region_weeks": len(values), "flagged": int(sum(values)),
            "rate": sum(values) / len(values) if values else float("nan")}


def _by_signal(unchanged: dict[str, dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for weeks in unchanged.values():
        for found in weeks.values():
            for name in found["by"]:
                out[name] = out.get(name, 0) + 1
    return out


def interval(hits: int, trials: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate of ``hits`` in ``trials``: with 12 trials a shift
    found in 9 (75%) is known only to lie between 47% and 91%."""
    from scipy import stats

    found = stats.binomtest(hits, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return float(found.low), float(found.high)


def table(result: dict, who: str, only: str | None = None) -> pd.DataFrame:
    """``who``'s rows per shift, over the trials it judged (``only``: those ``only`` judged too)."""
    records = []
    frame = pd.DataFrame([t for t in result["trials"] if who in t and (only is None or only in t)])
    for label, part in frame.groupby("shift", sort=False):
        delays = [t[who]["delay"] for t in part.to_dict("records")]
        detected = [d for d in delays if d is not None]
        row = {"shift": label, "trials": len(part)}
        for within in (1, 2, 4):
            row[f"within {within} wk"] = float(np.mean([d is not None and d < within for d in delays]))
        low, high = interval(sum(d is not None and d < 4 for d in delays), len(delays))
        row["within 4 wk, 95% interval"] = f"{low:.2f}-{high:.2f}"
        row["median delay (wk)"] = float(np.median(detected)) if detected else float("nan")
        row["only shifted region"] = float(np.mean([t[who]["only_shifted"] for t in part.to_dict("records")]))
        # another region flagged only in weeks it was flagged anyway (its own false alarms) counts here
        row["no new flag elsewhere"] = float(np.mean([t[who].get("no_new_flag", t[who]["only_shifted"])
                                                      for t in part.to_dict("records")]))
        if who == "project":
            names = [s.split(":")[0] for t in part.to_dict("records") for s in t["project"]["signals"]]
            row["flagged by"] = ", ".join(f"{n} {names.count(n)}" for n in dict.fromkeys(names)) or "-"
        records.append(row)
    return pd.DataFrame(records)


def report(result: dict) -> None:
    """Prints a landing's tables: the project's; where Evidently judged fewer trials, the project's
    over those; and Evidently's."""
    name, peer, trials = result["name"], result["evidently_trials_per_shift"], result["trials_per_shift"]
    views = [("project", None)]  # (whose table, over the trials of whom: None for all its own)
    if 0 < peer < trials:
        views.append(("project", "evidently"))
    if peer:
        views.append(("evidently", None))
    for who, only in views:
        count = trials if who == "project" and not only else peer
        of = f"the first {count} trials per shift of the {trials}" if count < trials else f"{count} trials per shift"
        print(f"\n{name} ({', '.join(result['regions'])}; {result['span_weeks']} monitored weeks per region, "
              f"{' to '.join(result['span'] or [])}, {of}) - {who}{' (the trials Evidently judged)' if only else ''}")
        print(table(result, who, only).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        if only:
            continue
        fa = result["false_alarms"][who]
        low, high = interval(fa["flagged"], fa["region_weeks"]) if fa["region_weeks"] else (math.nan, math.nan)
        by = ""
        if who == "project":
            weeks = ", ".join(f"{f['region']} {f['week']} ({', '.join(f['signals'])})"
                              for f in result["false_alarms"]["weeks"])
            by = f"; by signal: {result['false_alarms']['by_signal']}" + (f"; in {weeks}" if weeks else "")
        print(f"false alarms on the unchanged data: {fa['flagged']} of {fa['region_weeks']} region-weeks "
              f"({fa['rate']:.1%}, 95% interval {low:.1%}-{high:.1%}){by}")
        closures = result["false_alarms"]["closed_stores"]
        if who == "project" and closures:
            print(f"closed stores named in the unchanged data (not flagged): {len(closures)} region-weeks: "
                  + ", ".join(f"{c['region']} {c['week']} ({', '.join(c['stores'])})" for c in closures))


def main() -> int:
    from mlops_assets.config import SAMPLE_LANDING_DIR

    parser = argparse.ArgumentParser()
    parser.add_argument("--landing", action="append", help="a landing folder (repeatable); default the sample")
    parser.add_argument("--name", action="append", help="its name in the tables (one per --landing)")
    parser.add_argument("--regions", help="only these regions, comma-separated")
    parser.add_argument("--trials", type=int, default=12, help="trials per shift (spread over the regions)")
    parser.add_argument("--span", type=int, default=26, help="monitored weeks after the model's as-of week")
    parser.add_argument("--earlier", type=int, default=0,
                        help="end the monitored span this many weeks before the landing's last week")
    parser.add_argument("--seed", type=int, default=0)
    peers = parser.add_mutually_exclusive_group()
    peers.add_argument("--evidently-trials", type=int,
                       help="judge only the first N trials of each shift with Evidently too (default: all; trials "
                            "go to the regions in turn, so a multiple of the regions keeps them even)")
    peers.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.evidently_trials is not None and args.evidently_trials < 0:
        parser.error("--evidently-trials must be 0 or more")
    landings = args.landing or [str(SAMPLE_LANDING_DIR)]
    names = args.name or [Path(p).name for p in landings]
    started = time.perf_counter()
    results = []
    for landing, name in zip(landings, names):
        peer = 0 if args.no_evidently else args.trials if args.evidently_trials is None else args.evidently_trials
        result = run(Path(landing), name, args.trials, args.span, args.seed, peer,
                     args.regions.split(",") if args.regions else None, args.earlier)
        results.append(result)
        report(result)
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.0f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.json:
        def clean(value):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value
        Path(args.json).write_text(json.dumps(results, default=clean, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

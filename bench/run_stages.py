"""Benchmark: every stage of `mlops-assets run` (validation, conditioning, features, training, scoring),
and the weekly increment.

    .venv/bin/python bench/run_stages.py [--regions 3] [--stores-per-region 8] [--products 24]
                                         [--weeks 104] [--landing DIR] [--keep DIR]
    .venv/bin/python bench/run_stages.py --keep DIR --increment

Full cycle: generates a landing folder with `mlops-assets sample`'s generator (the defaults are
the bundled sample's size; seed scale is `--regions 14 --stores-per-region 200 --products 30
--weeks 156`), one week longer than asked, holds that last week's deliveries back (its shipments
file, its rows of the returns and observed-weather files, the forecast file that came with it)
and runs the whole graph on the rest in a Dagster home under the work folder.

`--increment` then lands the held-back week in that same work folder (what a week's delivery
is: a new shipments file, returns and observations appended to the year's files, a new weather
forecast) and runs what the sensors run for it (`app.pipeline.run_new_weeks`): validation, per region
the new week's conditioning, features, drift and realized accuracy, the coming week's forecast
and its drift, then the alerts.

Prints per stage: seconds, rows/s of the region's shipments, and the peak resident memory
during that stage (sampled every 20 ms from /proc, so it is the stage's own peak, not the
process's so far). Then totals per kind of stage. `--landing DIR` runs an existing folder instead.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


class RssSampler:
    """The process's resident memory, sampled in a thread; ``peak`` since the last ``reset``."""

    def __init__(self, every: float = 0.02):
        self.every, self.peak, self.overall, self._stop = every, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        """This process's resident memory plus its descendants' (the worker processes of regions)."""
        total, pids = 0, [os.getpid()]
        while pids:
            pid = pids.pop()
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        pids.extend(int(c) for c in f.read().split())
            except (FileNotFoundError, ProcessLookupError):
                continue  # it ended meanwhile
        return total

    def _run(self):
        while not self._stop.wait(self.every):
            now = self.rss()
            self.peak, self.overall = max(self.peak, now), max(self.overall, now)

    def reset(self):
        self.peak = self.rss()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


DEFAULT_END_WEEK = "2026-11-16"  # the generated weeks end here; the landing one week earlier


def _split_rows(path: Path, column: str, first_day: pd.Timestamp) -> pd.DataFrame | None:
    """The rows of a CSV from ``first_day`` on (None if none), written back without them."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    late = pd.to_datetime(frame[column]) >= first_day
    if not late.any():
        return None
    frame[~late].to_csv(path, index=False)
    return frame[late]


def hold_back_last_week(generated: Path, landing: Path, held: Path) -> str:
    """Copy ``generated`` to ``landing`` without its last week's deliveries; ``held`` gets the files
    as that week's delivery will leave them (``land_held_week``). Returns the week."""
    shutil.rmtree(landing, ignore_errors=True)
    shutil.rmtree(held, ignore_errors=True)
    shutil.copytree(generated, landing)
    week = sorted(p.stem for p in (landing / "shipments").glob("*.csv"))[-1]
    monday = pd.Timestamp(week)
    for sub in ("shipments", "returns", "weather"):
        (held / sub).mkdir(parents=True, exist_ok=True)
    shutil.move(landing / "shipments" / f"{week}.csv", held / "shipments" / f"{week}.csv")
    for path in sorted((landing / "returns").glob("*.csv")):
        shutil.copy(path, held / "returns" / path.name)
        if _split_rows(path, "week_start", monday) is None:
            (held / "returns" / path.name).unlink()
    for path in sorted((landing / "weather").glob("observed_*.csv")):
        shutil.copy(path, held / "weather" / path.name)
        if _split_rows(path, "date", monday) is None:
            (held / "weather" / path.name).unlink()
    # the forecast that came with the week is new; the forecast of the week itself (made before
    # it, in the archive) was the landing's current forecast, and stays where it landed
    for path in sorted((landing / "weather").glob("forecast_2*.csv")):
        shutil.move(path, held / "weather" / path.name)
    before = []
    for path in sorted((landing / "weather").glob("forecast_archive_*.csv")):
        rows = _split_rows(path, "date", monday)
        if rows is not None:
            before.append(rows)
    if before:
        sunday = (monday - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        pd.concat(before).to_csv(landing / "weather" / f"forecast_{sunday}.csv", index=False)
    return week


def land_held_week(landing: Path, held: Path) -> str:
    if not held.is_dir() or not any(held.rglob("*.csv")):
        raise SystemExit(f"nothing held back in {held}: run the full cycle with this --keep first "
                         "(or it was landed already)")
    week = sorted(p.stem for p in (held / "shipments").glob("*.csv"))[-1]
    for path in sorted(held.rglob("*.csv")):
        shutil.move(path, landing / path.relative_to(held))
    return week


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--regions", default="3", help="a count, or names a,b,c")
    parser.add_argument("--stores-per-region", type=int, default=8)
    parser.add_argument("--products", type=int, default=24)
    parser.add_argument("--weeks", type=int, default=104)
    parser.add_argument("--landing", help="run this landing folder instead of generating one")
    parser.add_argument("--keep", help="work in this folder and keep it")
    parser.add_argument("--workers", type=int, help="regions at a time (mlops-assets run --workers)")
    parser.add_argument("--reuse-landing", action="store_true",
                        help="run the landing folder an earlier full cycle generated in --keep's folder again")
    parser.add_argument("--increment", action="store_true",
                        help="land the week held back in --keep's folder and run what the sensors run for it")
    args = parser.parse_args()
    if args.increment and not args.keep:
        parser.error("--increment needs --keep: the work folder of an earlier full cycle")

    work = Path(args.keep or tempfile.mkdtemp(prefix="mlops-bench-"))
    os.environ.update(MLOPS_HOME=str(work / "home"), DAGSTER_HOME=str(work / "home" / "dagster"))
    for name in ("MLOPS_FIRST_WEEK", "MLOPS_FIRST_SCORED_WEEK", "MLOPS_STORAGE_ROOT", "MLOPS_ENV"):
        os.environ.pop(name, None)

    from mlops_assets.app.pipeline import run_new_weeks, run_pipeline
    from mlops_assets.contract.validation import check_landing
    from mlops_assets.resources.landing_folder import forget_checked
    from mlops_assets.sample import SampleSpec, generate, parse_regions

    stages: list[tuple[str, float, int]] = []
    with RssSampler() as sampler:
        @contextmanager
        def stage(label):
            sampler.reset()
            started = time.perf_counter()
            yield
            stages.append((label, time.perf_counter() - started, sampler.peak))

        if args.increment:
            landing = work / "landing"
            with stage("land the held-back week"):
                week = land_held_week(landing, work / "held")
            print(f"landed week {week} in {landing}")
        elif args.landing:
            landing = Path(args.landing)
        elif args.reuse_landing:
            landing = work / "landing"
            shutil.rmtree(work / "home", ignore_errors=True)
            print(f"reusing {landing} (a week held back in {work / 'held'}); a fresh home")
        else:
            landing = work / "landing"
            spec = SampleSpec(out_dir=work / "generated", regions=parse_regions(args.regions),
                              stores_per_region=args.stores_per_region, products=args.products,
                              weeks=args.weeks + 1, end_week=DEFAULT_END_WEEK)
            with stage("generate"):
                generate(spec)
                week = hold_back_last_week(work / "generated", landing, work / "held")
            print(f"generated {args.weeks + 1} weeks; week {week} held back for --increment")
        with stage("validate (contract, all tables)"):
            checked = check_landing(landing)
        shipments = checked["shipments"].valid
        stores = checked["stores"].valid
        rows_by_region = shipments.merge(stores[["store_id", "region"]], on="store_id").groupby("region").size()
        print(f"data: {landing}: {stores['region'].nunique()} regions, {len(stores)} stores, "
              f"{shipments['product_id'].nunique()} products, {shipments['week_start'].nunique()} weeks, "
              f"{len(shipments)} shipment rows")
        if args.increment:
            rows_by_region = shipments[shipments["week_start"] == shipments["week_start"].max()].merge(
                stores[["store_id", "region"]], on="store_id").groupby("region").size()
        del checked, shipments
        forget_checked()  # hand the check's memory back: the run below is measured, not this

        sampler.overall = sampler.rss()  # the run's own peak, not the generator's
        started = time.perf_counter()
        if args.increment:
            summary = run_new_weeks(landing, on_stage=stage, workers=args.workers)
        else:
            summary = run_pipeline(landing, on_stage=stage, workers=args.workers)
        total = time.perf_counter() - started
        peak_all = sampler.overall
    # stages run in worker processes: their own seconds, and the worker's own peak memory so far
    stages.extend((f"{label} [worker]", seconds, peak) for label, seconds, peak in summary.stages)

    print(f"\n{'stage':40s} {'seconds':>8s} {'rows/s':>9s} {'peak RSS MiB':>13s}")
    kinds: dict[str, list[float]] = defaultdict(list)
    for label, seconds, peak in stages:
        region = next((r for r in rows_by_region.index if re.search(rf"\b{re.escape(r)}\b", label)), None)
        rate = f"{rows_by_region[region] / seconds:9.0f}" if region and "next week" not in label else ""
        print(f"{label:40s} {seconds:8.1f} {rate:>9s} {peak / 2**20:13.0f}")
        kind = label.split(" ")[0] + (" next week" if "next week" in label else "") + \
            (" [worker]" if label.endswith("[worker]") else "")
        kinds[kind].append(seconds)
        kinds[kind + " peak"].append(peak)
    print(f"\n{'per kind of stage':40s} {'total s':>8s} {'mean s':>9s} {'peak RSS MiB':>13s}")
    for kind, values in kinds.items():
        if kind.endswith(" peak"):
            continue
        peak = max(kinds[kind + " peak"])
        print(f"{kind:40s} {sum(values):8.1f} {sum(values) / len(values):9.1f} {peak / 2**20:13.0f}")
    label = "weekly increment, total" if args.increment else "mlops-assets run, total"
    print(f"{label:40s} {total:8.1f} {rows_by_region.sum() / total:9.0f} {peak_all / 2**20:13.0f}")
    print("(peak RSS of a total: this process and its worker processes together, sampled every 20 ms)")
    for region, model in summary.models.items():
        ev = model["evaluation"].get("region", {})
        if ev:
            print(f"{region}: ensemble MAPE {ev['ensemble']['mape']:.3f}, baseline {ev['baseline']['mape']:.3f}, "
                  f"reduction {ev['mape_reduction_vs_baseline']:.0%}")
    print(f"work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

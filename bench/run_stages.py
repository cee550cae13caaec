"""Benchmark: every stage of `mlops-assets run` (conditioning, features, training, scoring).

    .venv/bin/python bench/run_stages.py [--regions 3] [--stores-per-region 8] [--products 24]
                                         [--weeks 104] [--landing DIR] [--keep DIR]

Generates a landing folder with `mlops-assets sample`'s generator (the defaults are
the bundled sample's size; `--regions 14` is the 14-region set), runs the whole
graph in a throwaway Dagster home, and prints per stage: seconds, rows/s of the
region's shipments, and the peak resident memory during that stage (sampled every
20 ms from /proc, so it is the stage's own peak, not the process's so far).
Then totals per kind of stage. `--landing DIR` runs an existing folder instead.
"""

import argparse
import os
import re
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path


class RssSampler:
    """The process's resident memory, sampled in a thread; ``peak`` since the last ``reset``."""

    def __init__(self, every: float = 0.02):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.rss())

    def reset(self):
        self.peak = self.rss()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--regions", default="3", help="a count, or names a,b,c")
    parser.add_argument("--stores-per-region", type=int, default=8)
    parser.add_argument("--products", type=int, default=24)
    parser.add_argument("--weeks", type=int, default=104)
    parser.add_argument("--landing", help="run this landing folder instead of generating one")
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()

    work = Path(args.keep or tempfile.mkdtemp(prefix="mlops-bench-"))
    os.environ.update(MLOPS_HOME=str(work / "home"), DAGSTER_HOME=str(work / "home" / "dagster"))
    for name in ("MLOPS_FIRST_WEEK", "MLOPS_STORAGE_ROOT", "MLOPS_ENV"):
        os.environ.pop(name, None)

    from mlops_assets.contract.validation import check_landing
    from mlops_assets.runner import run_pipeline
    from mlops_assets.sample import SampleSpec, generate, parse_regions

    stages: list[tuple[str, float, int]] = []
    with RssSampler() as sampler:
        @contextmanager
        def stage(label):
            sampler.reset()
            started = time.perf_counter()
            yield
            stages.append((label, time.perf_counter() - started, sampler.peak))

        if args.landing:
            landing = Path(args.landing)
        else:
            landing = work / "landing"
            spec = SampleSpec(out_dir=landing, regions=parse_regions(args.regions),
                              stores_per_region=args.stores_per_region, products=args.products,
                              weeks=args.weeks)
            with stage("generate"):
                generate(spec)
        with stage("validate (contract, all tables)"):
            checked = check_landing(landing)
        shipments = checked["shipments"].valid
        stores = checked["stores"].valid
        rows_by_region = shipments.merge(stores[["store_id", "region"]], on="store_id").groupby("region").size()
        print(f"data: {landing}: {stores['region'].nunique()} regions, {len(stores)} stores, "
              f"{shipments['product_id'].nunique()} products, {shipments['week_start'].nunique()} weeks, "
              f"{len(shipments)} shipment rows")

        started = time.perf_counter()
        summary = run_pipeline(landing, on_stage=stage)
        total = time.perf_counter() - started

    print(f"\n{'stage':40s} {'seconds':>8s} {'rows/s':>9s} {'peak RSS MiB':>13s}")
    kinds: dict[str, list[float]] = defaultdict(list)
    for label, seconds, peak in stages:
        region = next((r for r in rows_by_region.index if re.search(rf"\b{re.escape(r)}\b", label)), None)
        rate = f"{rows_by_region[region] / seconds:9.0f}" if region and "next week" not in label else ""
        print(f"{label:40s} {seconds:8.1f} {rate:>9s} {peak / 2**20:13.0f}")
        kind = label.split(" ")[0] + (" next week" if "next week" in label else "")
        kinds[kind].append(seconds)
        kinds[kind + " peak"].append(peak)
    print(f"\n{'per kind of stage':40s} {'total s':>8s} {'mean s':>9s} {'peak RSS MiB':>13s}")
    for kind, values in kinds.items():
        if kind.endswith(" peak"):
            continue
        peak = max(kinds[kind + " peak"])
        print(f"{kind:40s} {sum(values):8.1f} {sum(values) / len(values):9.1f} {peak / 2**20:13.0f}")
    print(f"{'mlops-assets run, total':40s} {total:8.1f} {len(shipments) / total:9.0f} "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:13.0f}")
    for region, model in summary.models.items():
        ev = model["evaluation"].get("region", {})
        if ev:
            print(f"{region}: ensemble MAPE {ev['ensemble']['mape']:.3f}, baseline {ev['baseline']['mape']:.3f}, "
                  f"reduction {ev['mape_reduction_vs_baseline']:.0%}")
    print(f"work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

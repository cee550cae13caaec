"""Benchmark: validate and condition a long history (issue 2: 15 years x 20 stores).

    .venv/bin/python bench/conditioning.py [--years 15] [--regions 2] [--stores-per-region 10]
                                           [--products 30] [--keep DIR]

Generates a landing folder, then times each stage of `mlops-assets run` in a
throwaway home and prints seconds, rows/s and the process's peak RSS after each
stage. Dagster's SQLite event log is part of what is measured: every week
partition of every asset is one materialization event.
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--years", type=int, default=15)
    parser.add_argument("--regions", type=int, default=2)
    parser.add_argument("--stores-per-region", type=int, default=10)
    parser.add_argument("--products", type=int, default=30)
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()

    work = Path(args.keep or tempfile.mkdtemp(prefix="mlops-bench-"))
    os.environ.update(MLOPS_HOME=str(work / "home"), DAGSTER_HOME=str(work / "home" / "dagster"))
    os.environ.pop("MLOPS_FIRST_WEEK", None)

    from mlops_assets.app.pipeline import run_pipeline
    from mlops_assets.contract.validation import check_landing
    from mlops_assets.sample import SampleSpec, generate, parse_regions

    weeks = 52 * args.years
    spec = SampleSpec(out_dir=work / "landing", regions=parse_regions(str(args.regions)),
                      stores_per_region=args.stores_per_region, products=args.products, weeks=weeks)
    t = time.perf_counter()
    counts = generate(spec)
    rows = sum(counts.values())
    print(f"data: {args.regions} regions x {args.stores_per_region} stores x {args.products} products x "
          f"{weeks} weeks; {counts['shipments']} shipment rows, {rows} rows in all")
    print(f"{'stage':32s} {'seconds':>8s} {'rows/s':>10s} {'peak RSS MiB':>13s}")
    print(f"{'generate':32s} {time.perf_counter() - t:8.1f} {'':>10s} {peak_mib():13.0f}")

    t = time.perf_counter()
    check_landing(spec.out_dir)
    took = time.perf_counter() - t
    print(f"{'validate (contract, all tables)':32s} {took:8.1f} {rows / took:10.0f} {peak_mib():13.0f}")

    t = time.perf_counter()
    summary = run_pipeline(spec.out_dir, train=False)  # conditioning only; bench/run_stages.py trains
    total = time.perf_counter() - t
    for label, seconds in summary.timings:
        print(f"{'run: ' + label:32s} {seconds:8.1f} {'':>10s} {peak_mib():13.0f}")
    print(f"{'run: total (incl. checks, setup)':32s} {total:8.1f} {rows / total:10.0f} {peak_mib():13.0f}")
    partitions = sum(1 for _ in (Path(os.environ["MLOPS_HOME"]) / "storage").rglob("*.parquet"))
    print(f"{partitions} Parquet files written; work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

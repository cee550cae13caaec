"""Benchmark: the region ensemble against plain peers, on exactly the same holdout rows.

    .venv/bin/pip install -e '.[bench]'      # LightGBM, for the peer only
    .venv/bin/python bench/peers.py [--landing DIR] [--regions a,b] [--holdout-weeks 13]
                                    [--no-lightgbm] [--json FILE]

For every region of the landing folder (default: the bundled sample) it builds the features
and runs the project's evaluation (``train_region``: choices on the training weeks, the last
13 weeks forecast one week ahead). The peers (``mlops_assets/ml/peers.py``) are fit once, on
the weeks before the holdout, across all regions, and forecast the same holdout rows. Prints
MAPE (actual > 0), WAPE, RMSE where actual = 0, RMSE and bias (total forecast / total demand
- 1), pooled and per region, for the ensemble, each member and each peer, with the reduction
against the historical average; for the methods with a P10 / P50 / P90 band (the ensemble,
LightGBM's quantile objective, a Poisson count around the historical average) the share of
actuals below each quantile and its pinball loss; and seconds and peak memory.
"""

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import pandas as pd

KEY = ["week_start", "store_id", "product_id"]
MEMBERS = ["ensemble", "lasso", "nn"]
BAND = ("_p10", "_p50", "_p90")  # a peer's band columns, not methods of their own


def main() -> int:
    from mlops_assets.config import SAMPLE_LANDING_DIR
    from mlops_assets.contract.validation import check_landing, require_clean
    from mlops_assets.ml.ensemble import TrainConfig, train_region
    from mlops_assets.ml.peers import NAIVE, compare, peer_forecasts
    from mlops_assets.offline import region_features

    parser = argparse.ArgumentParser()
    parser.add_argument("--landing", default=str(SAMPLE_LANDING_DIR))
    parser.add_argument("--regions", help="only these regions, comma-separated")
    parser.add_argument("--holdout-weeks", type=int, default=13)
    parser.add_argument("--no-lightgbm", action="store_true")
    parser.add_argument("--json", help="write the table to this file (strict JSON)")
    parser.add_argument("--rows", help="write every holdout row's forecasts (each method, each band) to this "
                                       "Parquet file")
    args = parser.parse_args()

    landing = Path(args.landing)
    checked = require_clean(check_landing(landing), landing)
    stores = checked["stores"].valid
    regions = args.regions.split(",") if args.regions else list(dict.fromkeys(stores["region"]))
    config = TrainConfig(holdout_weeks=args.holdout_weeks)
    started = time.perf_counter()
    train_rows, holdout_rows = [], []
    for region in regions:
        t = time.perf_counter()
        features = region_features(landing, region, extra_weeks=1, checked=checked)
        model, holdout = train_region(features, region, config)
        first = pd.Timestamp(model.evaluation["holdout"]["first_week"])
        warm = sorted(features.loc[features["target"].notna(), "week_start"].unique())[config.warmup_weeks]
        train_rows.append(features[features["target"].notna() & (features["week_start"] >= warm)
                                   & (features["week_start"] < first)])
        # the ensemble's holdout rows (trained segments), with the lags the peers read
        holdout_rows.append(holdout.merge(features.drop(columns=["target", "region", "segment"]), on=KEY))
        print(f"{region}: ensemble evaluated in {time.perf_counter() - t:.1f} s, {len(holdout)} holdout rows",
              file=sys.stderr)
    train, rows = pd.concat(train_rows, ignore_index=True), pd.concat(holdout_rows, ignore_index=True)
    t = time.perf_counter()
    peers = peer_forecasts(train, rows, with_lightgbm=not args.no_lightgbm)
    print(f"peers fit on {len(train)} rows before the holdout in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    rows = pd.concat([rows, peers.drop(columns=[c for c in peers if c in rows])], axis=1)
    rows["historical_average"] = peers["historical_average"]
    methods = [*MEMBERS, *[c for c in peers.columns if not c.endswith(BAND)]]
    table = compare(rows, methods)
    if args.rows:
        rows[["region", *KEY, "segment", "target", *methods,
              *[c for c in rows if c.endswith(BAND) or c in ("p10", "p50", "p90")]]].to_parquet(args.rows)

    print(f"\n{landing}: {len(regions)} regions, {len(rows)} holdout rows ({args.holdout_weeks} weeks, one week "
          f"ahead); peers fit once on {len(train)} earlier rows")
    for scope, part in table.groupby("scope", sort=False):
        print(f"\n{scope}")
        shown = part.drop(columns="scope").set_index("method")
        print(shown.to_string(float_format=lambda v: f"{v:.3f}"))
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.1f} s, {len(rows) / seconds:.0f} holdout rows/s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.json:
        records = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                   for r in table.to_dict("records")]
        Path(args.json).write_text(json.dumps({"landing": str(landing), "rows": len(rows), "table": records},
                                              indent=2, allow_nan=False) + "\n")
    unknown = set(NAIVE) - set(methods)
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())

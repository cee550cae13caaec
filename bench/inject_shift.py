"""A copy of a landing folder with one region's demand and weather changed from a given week on.

    .venv/bin/python bench/inject_shift.py data/sample /tmp/inj --region south --start 2026-10-05 \\
        --factor 1.6 --warmer 8
    MLOPS_HOME=/tmp/inj_home .venv/bin/mlops-assets run --landing /tmp/inj --json /tmp/inj.json
    [--stores north_s01,north_s02]    # only these stores' demand (--warmer still moves the region's weather)

The files are edited as delivered, not regenerated: every shipment of the region's stores (or of
``--stores``) in the weekly files from ``--start`` on is multiplied by ``--factor`` (rounded to
whole units), and every weather row (observed and forecast) of the region's zip codes from that
date on is ``--warmer`` degrees warmer. The README's replay table comes from the commands above.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd


def inject(source: Path, target: Path, region: str, start: str, factor: float, warmer: float,
           only: list[str] | None = None) -> dict:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    stores = pd.read_csv(target / "stores.csv", dtype=str)
    ours = stores[stores["region"] == region]
    if ours.empty:
        raise SystemExit(f"{source / 'stores.csv'}: no store in region {region!r}")
    if only:
        unknown = sorted(set(only) - set(ours["store_id"]))
        if unknown:
            raise SystemExit(f"{source / 'stores.csv'}: no store {', '.join(unknown)} in region {region!r}")
        changed_stores = list(only)
    else:
        changed_stores = list(ours["store_id"])
    changed = {"shipment rows": 0, "weather rows": 0}
    for path in sorted((target / "shipments").glob("*.csv")):
        if path.stem < start:  # weekly files are named by their week
            continue
        frame = pd.read_csv(path, dtype=str)
        rows = frame["store_id"].isin(changed_stores)
        frame.loc[rows, "units_shipped"] = (frame.loc[rows, "units_shipped"].astype(int) * factor).round() \
            .astype(int).astype(str)
        frame.to_csv(path, index=False)
        changed["shipment rows"] += int(rows.sum())
    for path in sorted((target / "weather").glob("*.csv")) if (target / "weather").exists() else []:
        frame = pd.read_csv(path, dtype=str)
        rows = frame["zip_code"].isin(ours["zip_code"]) & (frame["date"] >= start)
        for column in ("temp_max_c", "temp_min_c"):
            frame.loc[rows, column] = (frame.loc[rows, column].astype(float) + warmer).round(1).astype(str)
        frame.to_csv(path, index=False)
        changed["weather rows"] += int(rows.sum())
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a landing folder (e.g. data/sample)")
    parser.add_argument("target", type=Path, help="where the edited copy goes (replaced)")
    parser.add_argument("--region", required=True)
    parser.add_argument("--start", required=True, help="first changed week, YYYY-MM-DD")
    parser.add_argument("--factor", type=float, default=1.6, help="demand multiplier")
    parser.add_argument("--warmer", type=float, default=0.0, help="degrees C added to the region's weather")
    parser.add_argument("--stores", help="only these of the region's stores' demand, comma-separated")
    args = parser.parse_args()
    only = args.stores.split(",") if args.stores else None
    changed = inject(args.source, args.target, args.region, args.start, args.factor, args.warmer, only)
    which = f" ({', '.join(only)})" if only else ""
    print(f"{args.target}: {args.region}{which} from {args.start}: demand x{args.factor}, weather +{args.warmer} C "
          f"({changed['shipment rows']:,} shipment rows, {changed['weather rows']:,} weather rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

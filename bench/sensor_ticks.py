"""Benchmark: what the sensors do in one tick, at seed scale (a tick must stay far under 60 s).

    .venv/bin/python bench/sensor_ticks.py [--regions 14] [--stores-per-region 200] [--products 30]
                                           [--weeks 156] [--keep DIR]

Writes a landing folder of that size in the contract's layout (one shipments file per week,
random counts: the sensors read file listings and key columns, not demand), then times:

- landing_files, first tick: every file listed and hashed (once per deployment);
- landing_files, a tick with nothing new: listing and stat only;
- landing_files, a new week's file: that file hashed and read, the affected region x weeks computed;
- landing_files, a yearly weather file that grows by a week: on its first change every week in it is
  touched; later only the new week (per-partition digests in the cursor);
- region_discovery: stores.csv checked against the contract (only when it changed);
- retrain_on_model_health's evidence: per region, the latest drift, accuracy and regional
  comparison partitions read and the rules applied (the MLflow champion look-up is not included: one query per region).

Prints seconds, files or rows per second, and the peak resident memory.
"""

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def write_landing(root: Path, regions: int, stores: int, products: int, weeks: int) -> int:
    rng = np.random.default_rng(0)
    (root / "shipments").mkdir(parents=True, exist_ok=True)
    (root / "weather").mkdir(exist_ok=True)
    store_ids = [f"r{r:02d}_s{s:03d}" for r in range(regions) for s in range(stores)]
    zips = [f"{10000 + i:05d}" for i in range(len(store_ids))]
    pd.DataFrame({"store_id": store_ids, "region": [s.split("_")[0] for s in store_ids],
                  "format": np.where(rng.random(len(store_ids)) < 0.4, "large", "small"),
                  "zip_code": zips}).to_csv(root / "stores.csv", index=False)
    product_ids = [f"p{i:03d}" for i in range(products)]
    pd.DataFrame({"product_id": product_ids, "category": [f"c{i % 8}" for i in range(products)],
                  "velocity": ""}).to_csv(root / "products.csv", index=False)
    pd.DataFrame({"store_id": store_ids, "population": 40000, "median_income": 60000}).to_csv(
        root / "demographics.csv", index=False)
    end = dt.date(2026, 11, 9)
    mondays = [end - dt.timedelta(weeks=k) for k in range(weeks)][::-1]
    pd.DataFrame({"date": [m.isoformat() for m in mondays[::8]], "region": "*", "event": "promotion"}).to_csv(
        root / "events.csv", index=False)
    pairs = pd.MultiIndex.from_product([store_ids, product_ids]).to_frame(index=False, name=["store_id", "product_id"])
    rows = 0
    for monday in mondays:
        frame = pairs.assign(week_start=monday.isoformat(), units_shipped=rng.poisson(20, len(pairs)))
        frame[["week_start", "store_id", "product_id", "units_shipped"]].to_csv(
            root / "shipments" / f"{monday.isoformat()}.csv", index=False)
        rows += len(frame)
    days = pd.date_range(mondays[0], end + dt.timedelta(days=6), freq="D").strftime("%Y-%m-%d")
    for year, part in pd.Series(days).groupby(pd.Series(days).str[:4]):
        grid = pd.MultiIndex.from_product([part, zips]).to_frame(index=False, name=["date", "zip_code"])
        grid.assign(temp_max_c=15.0, temp_min_c=5.0, precip_mm=0.0, is_forecast="false").to_csv(
            root / "weather" / f"observed_{year}.csv", index=False)
    return rows


def timed(label: str, fn, unit: str = "", count: int | None = None):
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    rate = f"{count / seconds:12.0f} {unit}/s" if count else ""
    print(f"{label:58s} {seconds:8.2f} s {rate}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--regions", type=int, default=14)
    parser.add_argument("--stores-per-region", type=int, default=200)
    parser.add_argument("--products", type=int, default=30)
    parser.add_argument("--weeks", type=int, default=156)
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()

    from mlops_assets.automation.sensors import affected_partitions, detect_changes, file_stamps, retrain_causes
    from mlops_assets.contract import schemas
    from mlops_assets.contract.validation import TABLES, check_table
    from mlops_assets.monitoring.monitor import to_table
    from mlops_assets.monitoring.rules import RetrainRules
    from mlops_assets.registry.tracking import Release
    from mlops_assets.resources.storage import StorageResource

    work = Path(args.keep or tempfile.mkdtemp(prefix="mlops-sensors-"))
    landing = work / "landing"
    rows = timed("write the landing folder", lambda: write_landing(
        landing, args.regions, args.stores_per_region, args.products, args.weeks))
    files = len(file_stamps(landing))
    size = sum((landing / rel).stat().st_size for rel in file_stamps(landing))
    print(f"landing: {files} files, {size / 2**20:.0f} MiB, {rows} shipment rows")

    from mlops_assets.resources.landing_folder import LandingResource

    def first_tick():  # every file hashed, and each table's data version compared with the instance's
        found = detect_changes(landing, {})
        [LandingResource(path=str(landing)).data_version(t) for t in TABLES]
        return found

    state, changed, _ = timed("landing_files, first tick (hash every file twice)", first_tick, "files", files)
    timed("landing_files, nothing new (list and stat)", lambda: detect_changes(landing, state), "files", files)
    newest = sorted((landing / "shipments").glob("*.csv"))[-1]
    new_week = (dt.date.fromisoformat(newest.stem) + dt.timedelta(weeks=1)).isoformat()
    (landing / "shipments" / f"{new_week}.csv").write_text(newest.read_text().replace(newest.stem, new_week))

    def new_file_tick():
        _, changed, removed = detect_changes(landing, state)
        return affected_partitions(landing, changed, removed)

    scope = timed("landing_files, one new week file (hash and read it)", new_file_tick)
    print(f"  affected: {len(scope)} regions, weeks {sorted({tuple(v) for v in scope.values()})}")
    state, _, _ = detect_changes(landing, state)
    weather = sorted((landing / "weather").glob("observed_*.csv"))[-1]
    zips = pd.read_csv(landing / "stores.csv", dtype=str)["zip_code"]

    def grow_weather(days):
        rows = [f"{d},{z},15.0,5.0,0.0,false" for d in days for z in zips]
        with weather.open("a") as f:
            f.write("\n".join(rows) + "\n")

    def weather_tick():
        nonlocal state
        new_state, changed, removed = detect_changes(landing, state)
        scope = affected_partitions(landing, changed, removed, state, new_state)
        state = new_state
        return scope

    grow_weather(pd.date_range(new_week, periods=7).strftime("%Y-%m-%d"))
    first_growth = timed(f"landing_files, {weather.name} grows by a week (first change)", weather_tick)
    grow_weather(pd.date_range(pd.Timestamp(new_week) + pd.Timedelta(weeks=1), periods=7).strftime("%Y-%m-%d"))
    later = timed(f"landing_files, {weather.name} grows by a week (later)", weather_tick)
    print(f"  weeks touched: first change {len({w for v in first_growth.values() for w in v})} bounds over "
          f"{len(first_growth)} regions; later {sorted({tuple(v) for v in later.values()})}")
    timed("region_discovery, stores.csv changed (check it)",
          lambda: check_table(landing, TABLES["stores"], lambda extra: schemas.stores_schema()),
          "stores", args.regions * args.stores_per_region)

    storage = StorageResource(root=str(work / "storage"))
    regions = sorted({r for r in scope})
    for region in regions:
        version = f"demand-forecast-{region}/1"
        calm = {"value": 0.0, "windows": {2: {"mean": 0.0, "center": 0.0, "scale": 1.0, "z": 0.0, "limit": 3.5}},
                "flagged": False, "status": "measured"}
        for week in ("2026-11-09", "2026-11-16"):
            storage.write_parquet(f"drift_metrics/{region}/{week}.parquet", to_table(
                {"week": week, "stage": "forecast", "signals": {"forecast": calm, "weather:temp_max_c": calm}},
                region, version))
        for k in range(5):
            week = (dt.date(2026, 10, 19) + dt.timedelta(weeks=k)).isoformat()
            signals = to_table({"week": week, "stage": "realized", "signals": {"demand": calm, "error": calm}},
                               region, version).assign(scope="signal")
            storage.write_parquet(f"forecast_accuracy/{region}/{week}.parquet", pd.concat([pd.DataFrame(
                {"scope": ["region"], "mape": [0.3], "holdout_mape": [0.2], "model_version": [version]}), signals]))
            storage.write_parquet(f"regional_comparison/{region}/{week}.parquet", to_table(
                {"week": week, "stage": "regional", "signals": {"regional": calm}}, region, version))
        for k in range(args.weeks + 1):
            week = (dt.date(2026, 11, 16) - dt.timedelta(weeks=k)).isoformat()
            path = storage.path / "features" / region / f"{week}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    champion = {r: Release(r, "1", "run", {"as_of_week": "2026-11-09", "code_version": "x"}) for r in regions}
    found = timed("retrain_on_model_health, evidence of every region", lambda: {
        r: retrain_causes(storage, champion[r], r, RetrainRules(), "x") for r in regions},
        "regions", len(regions))
    print(f"  causes found: {sum(len(v) for v in found.values())} (expected none: healthy champions)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; work folder {work}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MLOPS_HOME", tempfile.mkdtemp(prefix="mlops-sensors-home-"))
    sys.exit(main())

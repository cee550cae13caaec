"""The sample generator: reproducible, contract-valid, and demand with learnable structure."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.config import SAMPLE_LANDING_DIR
from mlops_assets.contract.validation import check_landing
from mlops_assets.sample import SampleSpec, generate


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _demand(folder: Path) -> pd.DataFrame:
    ship = pd.concat([pd.read_csv(p) for p in (folder / "shipments").glob("*.csv")])
    return ship.merge(pd.read_csv(folder / "stores.csv"), on="store_id").merge(
        pd.read_csv(folder / "products.csv"), on="product_id")


def test_bundled_sample_is_reproducible_from_the_documented_command(tmp_path):
    generate(SampleSpec(out_dir=tmp_path))  # = mlops-assets sample data/sample (its defaults)
    assert _digest(tmp_path) == _digest(SAMPLE_LANDING_DIR)
    assert sum(p.stat().st_size for p in SAMPLE_LANDING_DIR.rglob("*") if p.is_file()) < 5_000_000


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    spec = dict(regions=("north",), stores_per_region=3, products=6, weeks=20)
    generate(SampleSpec(out_dir=tmp_path / "a", seed=1, **spec))
    generate(SampleSpec(out_dir=tmp_path / "b", seed=1, **spec))
    generate(SampleSpec(out_dir=tmp_path / "c", seed=2, **spec))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_generated_data_passes_the_contract_and_has_structure(small_landing):
    results = check_landing(small_landing)
    assert not [p for r in results.values() for p in r.problems]
    demand = _demand(small_landing)
    # large stores sell more than small ones, fast movers more than slow ones
    by_format = demand.groupby("format")["units_shipped"].mean()
    assert by_format["large"] > 1.5 * by_format["small"]
    velocity = demand[demand.velocity.notna()].groupby("velocity")["units_shipped"].mean()
    assert velocity["fast"] > 3 * velocity["slow"]
    # returns exist, forecasts exist and overlap observed days (to be superseded)
    weather = results["weather"].valid
    forecast_days = set(weather[weather.is_forecast].date)
    assert forecast_days & set(weather[~weather.is_forecast].date)
    assert max(forecast_days) > weather[~weather.is_forecast].date.max()
    assert len(results["returns"].valid) > 0
    assert {"*"} < set(results["events"].valid.region)


def test_slow_movers_are_intermittent(small_landing):
    demand = _demand(small_landing)
    weeks = demand.week_start.nunique()
    slow = demand[demand.velocity == "slow"]
    rows_per_pair = slow.groupby(["store_id", "product_id"]).size()
    assert (rows_per_pair < weeks).mean() > 0.5  # most slow pairs miss some weeks (zero demand)


def test_drift_changes_one_region_from_its_week_on(tmp_path):
    spec = dict(regions=("north", "south"), stores_per_region=3, products=8, weeks=40, seed=5)
    generate(SampleSpec(out_dir=tmp_path / "base", **spec))
    generate(SampleSpec(out_dir=tmp_path / "drift", drift={"north": "2026-08-03"}, **spec))
    base, drift = _demand(tmp_path / "base"), _demand(tmp_path / "drift")

    def ice_cream_ratio(frame, region, after):
        f = frame[(frame.region == region) & (frame.category == "ice_cream")]
        f = f[(f.week_start >= "2026-08-03") == after]
        return f.units_shipped.sum()

    assert ice_cream_ratio(drift, "north", True) > 1.3 * ice_cream_ratio(base, "north", True)
    assert ice_cream_ratio(drift, "north", False) == ice_cream_ratio(base, "north", False)
    assert ice_cream_ratio(drift, "south", True) == ice_cream_ratio(base, "south", True)

    def temp(folder, zip_prefix):
        w = pd.concat([pd.read_csv(p, dtype={"zip_code": str}) for p in (folder / "weather").glob("observed_*.csv")])
        w = w[w.zip_code.str.startswith(zip_prefix) & (w.date >= "2026-08-03")]
        return w.temp_max_c.mean()

    assert np.isclose(temp(tmp_path / "drift", "100") - temp(tmp_path / "base", "100"), 6.0, atol=0.01)

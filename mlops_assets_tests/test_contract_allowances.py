"""Every delivery the data contract allows runs end to end (docs/DATA_CONTRACT.md, line by line).

Each test turns a small valid landing folder into one the contract allows but the bundled
sample does not exercise, runs ``mlops-assets run`` on it in a home of its own, and asserts what
a user relies on: the run succeeds, every region gets a forecast for the week after its last
delivery, and no valid row was quarantined.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from mlops_assets.cli import main
from mlops_assets.config import Settings
from mlops_assets.sample import SampleSpec, generate
from mlops_assets_tests.conftest import SEED, isolated_env

# one region (a run's Dagster runs are per region). These deliveries test what reads, conditions and
# forecasts the data: on 22 weeks no segment has enough rows to train, and the baseline serves; a
# folder without weather, which changes what the models read, trains every segment (56 weeks)
BASE = dict(regions=("north",), stores_per_region=4, products=8, weeks=22, end_week="2026-11-09", seed=11 + SEED,
            realism=False)
TRAINABLE = {**BASE, "stores_per_region": 5, "products": 10, "weeks": 56}
NEXT_WEEK = "2026-11-16"
TEXT_IDS = ("store_id", "product_id", "zip_code", "region", "format", "category", "velocity", "event")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("allowances")
    for name, spec in (("small", BASE), ("trainable", TRAINABLE)):
        generate(SampleSpec(out_dir=root / name, **spec))
    return root


@pytest.fixture
def landing(bases, tmp_path):
    out = tmp_path / "landing"
    shutil.copytree(bases / "small", out)
    return out


@pytest.fixture
def trainable_landing(bases, tmp_path):
    out = tmp_path / "landing"
    shutil.copytree(bases / "trainable", out)
    return out


def _run(landing, tmp_path, monkeypatch, capsys) -> tuple[dict, Settings, str]:
    """``mlops-assets run --json`` on ``landing`` in a fresh home; the report, settings and output."""
    isolated_env(monkeypatch, tmp_path, landing)
    code = main(["run", "--landing", str(landing), "--json", str(tmp_path / "report.json")])
    out, err = capsys.readouterr()
    assert code == 0, (out + err)[-4000:]
    return json.loads((tmp_path / "report.json").read_text()), Settings.from_env(), out


def _forecast_every_region(settings: Settings, regions) -> dict[str, pd.DataFrame]:
    scores = {}
    for region in regions:
        path = settings.storage_root / "scores" / region / f"{NEXT_WEEK}.parquet"
        assert path.exists(), f"{region} has no forecast for {NEXT_WEEK}"
        frame = pd.read_parquet(path)
        assert len(frame) and np.isfinite(frame["forecast"]).all() and (frame["forecast"] >= 0).all(), region
        scores[region] = frame
    return scores


def _nothing_quarantined(settings: Settings, out: str) -> None:
    assert "0 rows quarantined" in out
    assert not list((settings.storage_root / "quarantine").rglob("*.parquet"))


def test_no_returns_at_all(landing, tmp_path, monkeypatch, capsys):
    """returns/: "any number of files, possibly none"."""
    shutil.rmtree(landing / "returns")
    report, settings, out = _run(landing, tmp_path, monkeypatch, capsys)
    _forecast_every_region(settings, ["north"])
    _nothing_quarantined(settings, out)
    demand = pd.concat(pd.read_parquet(p) for p in (settings.storage_root / "net_demand" / "north").glob("*.parquet"))
    assert (demand["net_demand"] == demand["units_shipped"]).all()  # nothing to subtract
    assert report["regions"]["north"]["scored_week"] == NEXT_WEEK


def test_no_weather_folder(trainable_landing, tmp_path, monkeypatch, capsys):
    """weather/ is optional: "without a weather folder, the models do without weather"."""
    landing = trainable_landing
    shutil.rmtree(landing / "weather")
    report, settings, out = _run(landing, tmp_path, monkeypatch, capsys)
    _forecast_every_region(settings, ["north"])
    _nothing_quarantined(settings, out)
    features = pd.read_parquet(settings.storage_root / "features" / "north" / f"{NEXT_WEEK}.parquet")
    assert features["temp_max_c"].isna().all()
    assert all("skipped" not in s for s in report["regions"]["north"]["segments"].values())


def test_promotions_of_a_store_a_product_and_a_pair_reach_their_rows(landing, tmp_path, monkeypatch, capsys):
    """events: "store_id ... the event is that store's alone", "product_id ... that product's alone":
    promotions listed ahead of the week, the forecast week included, reach exactly their rows."""
    last = pd.read_csv(landing / "shipments" / "2026-11-09.csv", dtype=str)
    store, product = last.iloc[0][["store_id", "product_id"]]
    events = pd.read_csv(landing / "events.csv", dtype=str)
    planned = pd.DataFrame([
        {"date": NEXT_WEEK, "region": "north", "event": "deal", "store_id": store, "product_id": product},
        {"date": NEXT_WEEK, "region": "*", "event": "feature", "product_id": product},
        {"date": NEXT_WEEK, "region": "north", "event": "reopening", "store_id": store},
    ])
    pd.concat([events, planned], ignore_index=True).to_csv(landing / "events.csv", index=False)
    report, settings, out = _run(landing, tmp_path, monkeypatch, capsys)
    _forecast_every_region(settings, ["north"])
    _nothing_quarantined(settings, out)
    weekly = pd.read_parquet(settings.storage_root / "weekly_events" / "north" / f"{NEXT_WEEK}.parquet")
    assert set(zip(weekly["event"], weekly["store_id"], weekly["product_id"])) >= {
        ("deal", store, product), ("feature", "", product), ("reopening", store, "")}
    features = pd.read_parquet(settings.storage_root / "features" / "north" / f"{NEXT_WEEK}.parquet")
    has = {name: features["events"].str.split(";").apply(lambda cell, n=name: n in cell) for name in
           ("deal", "feature", "reopening")}
    assert (has["deal"] == ((features["store_id"] == store) & (features["product_id"] == product))).all()
    assert (has["feature"] == (features["product_id"] == product)).all()
    assert (has["reopening"] == (features["store_id"] == store)).all()
    assert has["deal"].sum() == 1 and has["reopening"].sum() > 1 and has["feature"].sum() > 1


def _natural(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """A CSV table as a program writing Parquet would type it: dates as dates, counts as integers,
    measures as floats, flags as booleans, ids as text."""
    out = frame.copy()
    for column in out.columns:
        if column in TEXT_IDS:
            out[column] = out[column].astype(str)
        elif column in ("week_start", "date"):
            # shipments and returns as timestamps, the rest as calendar dates: both are dates
            days = pd.to_datetime(out[column])
            out[column] = days if table in ("shipments", "returns") else days.dt.date
        elif column.startswith("units_") or column == "population":
            out[column] = out[column].astype("int64")
        elif column == "is_forecast":
            out[column] = out[column].astype(str).str.lower().map({"true": True, "false": False}).astype(bool)
        else:
            out[column] = out[column].astype("float64")
    return out


def test_every_table_as_parquet_with_natural_types(landing, tmp_path, monkeypatch, capsys):
    for csv in sorted(landing.rglob("*.csv")):
        table = csv.parent.name if csv.parent != landing else csv.stem
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        _natural(frame, table).to_parquet(csv.with_suffix(".parquet"), index=False)
        csv.unlink()
    shipments = pd.read_parquet(next((landing / "shipments").glob("*.parquet")))
    assert str(shipments["units_shipped"].dtype) == "int64"
    assert str(shipments["week_start"].dtype).startswith("datetime")
    report, settings, out = _run(landing, tmp_path, monkeypatch, capsys)
    _forecast_every_region(settings, ["north"])
    _nothing_quarantined(settings, out)
    stores = pd.read_parquet(settings.storage_root / "stores.parquet")
    assert stores["zip_code"].str.fullmatch(r"\d{5}").all()


def test_columns_in_another_order_and_an_unknown_column(landing, tmp_path, monkeypatch, capsys):
    """Column order is free; unknown columns are ignored, except in demographics, where a further
    column must be numeric and becomes a feature."""
    for csv in sorted(landing.rglob("*.csv")):
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        if csv.name == "demographics.csv":
            frame["share_seniors"] = np.linspace(0.1, 0.3, len(frame)).round(3).astype(str)
        else:
            frame["delivered_by"] = "a note nobody asked for"
        frame[list(reversed(frame.columns))].to_csv(csv, index=False)
    report, settings, out = _run(landing, tmp_path, monkeypatch, capsys)
    _forecast_every_region(settings, ["north"])
    _nothing_quarantined(settings, out)
    features = pd.read_parquet(settings.storage_root / "features" / "north" / f"{NEXT_WEEK}.parquet")
    assert "demo_share_seniors" in features and "delivered_by" not in features


def test_a_new_region_with_a_few_stores_and_weeks_gets_the_baseline(landing, tmp_path, monkeypatch, capsys):
    """A region is onboarded by its data: two stores, three weeks of shipments. It cannot train
    yet; its forecast is the historical average, marked, with an alert."""
    stores = pd.read_csv(landing / "stores.csv", dtype=str)
    new = pd.DataFrame({"store_id": ["east_s01", "east_s02"], "region": "east", "format": ["large", "small"],
                        "zip_code": ["20001", "20002"]})
    pd.concat([stores, new]).to_csv(landing / "stores.csv", index=False)
    demographics = pd.read_csv(landing / "demographics.csv", dtype=str)
    extra = demographics.head(2).assign(store_id=new["store_id"].to_numpy())
    pd.concat([demographics, extra]).to_csv(landing / "demographics.csv", index=False)
    products = pd.read_csv(landing / "products.csv", dtype=str)["product_id"].head(6)
    weeks = ["2026-10-26", "2026-11-02", "2026-11-09"]
    for i, week in enumerate(weeks):
        path = landing / "shipments" / f"{week}.csv"
        shipped = pd.read_csv(path, dtype=str)
        rows = pd.DataFrame([(week, s, p, str(5 + i + j)) for s in new["store_id"] for j, p in enumerate(products)],
                            columns=shipped.columns)
        pd.concat([shipped, rows]).to_csv(path, index=False)
    report, settings, out = _run(landing, tmp_path, monkeypatch, capsys)
    scores = _forecast_every_region(settings, ["north", "east"])
    _nothing_quarantined(settings, out)
    east = scores["east"]
    assert len(east) == 12 and set(east["model"]) == {"baseline"}
    assert set(east["model_version"]) == {"baseline"}
    assert "too little history" in out
    alerts = pd.read_parquet(settings.storage_root / "alerts.parquet")
    assert (alerts["region"] == "east").any()
    assert report["regions"]["east"]["champion_version"] == "none"


def test_a_delivery_as_spreadsheets_save_it(landing, tmp_path, monkeypatch, capsys):
    """What else the contract allows, in one delivery: CSV with a byte-order mark and CRLF line ends
    (UTF-8 as spreadsheets save it), no velocity column (derived from sales, and recorded), events
    for every region (``*``), shipments as one file for most weeks beside a Parquet file, returns in
    Parquet, and one week whose shipments never arrived (unknown, not zero)."""
    products = pd.read_csv(landing / "products.csv", dtype=str).drop(columns="velocity")
    products.to_csv(landing / "products.csv", index=False)
    events = pd.read_csv(landing / "events.csv", dtype=str)
    events.loc[events["event"] == "christmas", "region"] = "*"
    events.to_csv(landing / "events.csv", index=False)
    files = sorted((landing / "shipments").glob("*.csv"))
    lost = files[len(files) // 2]
    lost.unlink()
    files = [f for f in files if f != lost]
    pd.concat(pd.read_csv(f, dtype=str) for f in files[:-4]).to_csv(landing / "shipments" / "history.csv", index=False)
    pd.concat(pd.read_csv(f, dtype=str) for f in files[-4:]).astype({"units_shipped": "int64"}).to_parquet(
        landing / "shipments" / "latest.parquet", index=False)
    for f in files:
        f.unlink()
    for f in sorted((landing / "returns").glob("*.csv")):
        pd.read_csv(f, dtype=str).to_parquet(f.with_suffix(".parquet"), index=False)
        f.unlink()
    for csv in [landing / "stores.csv", landing / "products.csv", landing / "demographics.csv", landing / "events.csv"]:
        csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes().replace(b"\n", b"\r\n"))
    report, settings, out = _run(landing, tmp_path, monkeypatch, capsys)
    _forecast_every_region(settings, ["north"])
    _nothing_quarantined(settings, out)
    features = pd.read_parquet(settings.storage_root / "features" / "north" / f"{NEXT_WEEK}.parquet")
    assert set(features["velocity_source"]) == {"derived"}
    week_after = (pd.Timestamp(lost.stem) + pd.Timedelta(weeks=1)).strftime("%Y-%m-%d")
    after = pd.read_parquet(settings.storage_root / "features" / "north" / f"{week_after}.parquet")
    assert after["lag_1"].isna().all()  # the lost week is missing history, not a week of zero demand
    assert not (settings.storage_root / "net_demand" / "north" / f"{lost.stem}.parquet").exists()

"""The data contract: every rule of DATA_CONTRACT.md is enforced, row by row, and nothing is lost."""

import pandas as pd

from mlops_assets.contract.validation import check_landing
from mlops_assets_tests.conftest import edit_csv


def _lines(results) -> list[str]:
    return [str(p) for r in results.values() for p in r.problems]


def test_valid_landing_has_no_problems_and_typed_tables(small_landing):
    results = check_landing(small_landing)
    assert _lines(results) == []
    shipments = results["shipments"].valid
    assert str(shipments["week_start"].dtype) == "datetime64[ns]"
    assert str(shipments["units_shipped"].dtype) == "int64"
    assert (shipments["week_start"].dt.dayofweek == 0).all()
    assert results["weather"].valid["is_forecast"].dtype == bool
    # demographics' extra numeric columns are features, kept as numbers
    assert results["demographics"].valid["share_families"].dtype == float


def test_broken_delivery_names_each_problem(small_landing):
    ship = sorted((small_landing / "shipments").glob("*.csv"))[-1]
    rel = f"shipments/{ship.name}"
    week = ship.stem
    first_row = ship.read_text().splitlines()[1].split(",")
    store, product = first_row[1], first_row[2]
    edit_csv(ship, 2, f"{week},{store},{product},-5")          # negative units
    edit_csv(ship, 3, f"{week},{store},p999,abc")               # wrong type (+ unknown product)
    edit_csv(ship, 4, f"{week},{store},{product},7")            # duplicate key with line 2
    edit_csv(ship, 5, f"{week},nowhere_s01,{product},3")        # unknown store
    edit_csv(ship, 6, f"2026-11-10,{store},{product},3")        # not a Monday
    edit_csv(ship, 7, f"2026-13-09,{store},{product},3")        # unreadable date
    (small_landing / "shipments" / "empty.csv").write_text("")  # empty file
    demo = small_landing / "demographics.csv"
    edit_csv(demo, 1, demo.read_text().splitlines()[0].replace("median_income", "income"))  # missing column

    lines = _lines(check_landing(small_landing))

    assert f"{rel}:2: units_shipped: must be >= 0 (-5)" in lines
    assert f"{rel}:3: units_shipped: not an integer (abc)" in lines
    assert f"{rel}:3: product_id: must exist in products (p999)" in lines
    duplicate = f"week_start,store_id,product_id: duplicate key (also on another row) ({week},{store},{product})"
    assert f"{rel}:2: {duplicate}" in lines
    assert f"{rel}:4: {duplicate}" in lines
    assert f"{rel}:5: store_id: must exist in stores (nowhere_s01)" in lines
    assert f"{rel}:6: week_start: must be a Monday (2026-11-10)" in lines
    assert f"{rel}:7: week_start: not a date (YYYY-MM-DD) (2026-13-09)" in lines
    assert "shipments/empty.csv:0: -: file is empty (no header row)" in lines
    assert "demographics.csv:1: median_income: required column missing" in lines


def test_bad_rows_are_quarantined_with_reasons_and_nothing_is_lost(small_landing):
    ship = sorted((small_landing / "shipments").glob("*.csv"))[0]
    total = len(pd.read_csv(ship))
    row = ship.read_text().splitlines()[1].split(",")
    edit_csv(ship, 2, ",".join([*row[:3], "-1"]))
    result = check_landing(small_landing)["shipments"]
    before = sum(len(pd.read_csv(p)) for p in (small_landing / "shipments").glob("*.csv"))
    assert result.rows_read == before
    assert len(result.quarantine) == 1
    bad = result.quarantine.iloc[0]
    assert (bad["_file"], bad["_row"], bad["units_shipped"]) == (f"shipments/{ship.name}", 2, "-1")
    assert bad["_problems"] == "units_shipped: must be >= 0"
    assert len(result.valid) == before - 1 and total > 1


def test_masters_and_weather_rules(small_landing):
    stores = small_landing / "stores.csv"
    header, first = stores.read_text().splitlines()[:2]
    sid, region, fmt, zip_code = first.split(",")
    edit_csv(stores, 2, f"{sid},North,{fmt},{zip_code}")
    edit_csv(stores, 3, f"{sid},{region},medium,123")
    weather = sorted((small_landing / "weather").glob("observed_*.csv"))[0]
    cols = weather.read_text().splitlines()[1].split(",")
    edit_csv(weather, 2, ",".join([cols[0], cols[1], "5.0", "9.0", "-1", "maybe"]))
    lines = _lines(check_landing(small_landing))
    assert "stores.csv:2: region: must be a slug [a-z0-9_]+ (North)" in lines
    assert "stores.csv:3: format: must be one of large, small (medium)" in lines
    assert "stores.csv:3: zip_code: must be 5 digits (123)" in lines
    assert f"stores.csv:2: store_id: must be unique (also on another row) ({sid})" in lines
    rel = f"weather/{weather.name}"
    assert f"{rel}:2: temp_min_c: temp_min_c must be <= temp_max_c (9.0)" in lines
    assert f"{rel}:2: precip_mm: must be >= 0 (-1)" in lines
    assert f"{rel}:2: is_forecast: not a boolean (true/false) (maybe)" in lines


def test_references_to_a_rejected_master_row_say_so(small_landing):
    stores = small_landing / "stores.csv"
    sid, region, fmt, zip_code = stores.read_text().splitlines()[1].split(",")
    edit_csv(stores, 2, f"{sid},{region},huge,{zip_code}")
    results = check_landing(small_landing)
    rules = {p.rule for p in results["shipments"].problems}
    assert rules == {"its stores row was rejected"}
    assert all(p.value == sid for p in results["shipments"].problems)


def test_parquet_files_follow_the_same_contract(small_landing):
    ship = sorted((small_landing / "shipments").glob("*.csv"))[0]
    frame = pd.read_csv(ship, parse_dates=["week_start"])
    frame.loc[0, "units_shipped"] = -2
    frame.to_parquet(ship.with_suffix(".parquet"), index=False)
    ship.unlink()
    result = check_landing(small_landing)["shipments"]
    assert [str(p) for p in result.problems] == [f"shipments/{ship.stem}.parquet:2: units_shipped: must be >= 0 (-2)"]


def test_stray_files_and_missing_required_files_are_reported(small_landing):
    (small_landing / "shipments" / "notes.txt").write_text("hello")
    (small_landing / "events.csv").unlink()
    lines = _lines(check_landing(small_landing))
    assert "shipments/notes.txt:0: -: not a CSV or Parquet file; move it out of the landing folder" in lines
    assert "events.csv:0: -: required file missing" in lines


def test_checking_each_distinct_value_once_finds_exactly_what_checking_every_cell_finds(small_landing):
    """The fast path (each distinct value parsed and checked once, its outcome spread to every row
    that holds it) against the reference that parses and checks cell by cell: the same problems,
    valid rows and quarantine, on a delivery broken in every way the contract names, with bad
    values repeated across many rows and duplicate keys across files."""
    ships = sorted((small_landing / "shipments").glob("*.csv"))
    week = ships[-1].stem
    store, product = ships[-1].read_text().splitlines()[1].split(",")[1:3]
    text = ships[-1].read_text().splitlines()
    # a bad value on many rows: an unknown product, padded and empty cells, nan and inf
    for line in range(2, min(len(text), 40), 3):
        edit_csv(ships[-1], line, f"{week}, {store} ,p999,{line}")
    edit_csv(ships[-1], 41, f"{week},{store},{product},nan")
    edit_csv(ships[-1], 42, f"{week},{store},{product},")
    edit_csv(ships[-1], 43, f" {week},{store},,1e3")
    edit_csv(ships[-1], 44, f"2026-13-09,{store},{product},-4")
    # the same key in two files, and a row of an older week in the newest file
    first = ships[0].read_text().splitlines()[1]
    edit_csv(ships[-1], 45, first)
    stores = small_landing / "stores.csv"
    sid, region, fmt, zip_code = stores.read_text().splitlines()[2].split(",")
    edit_csv(stores, 3, f"{sid},{region},huge,{zip_code}")  # its shipments reference a rejected row
    weather = sorted((small_landing / "weather").glob("observed_*.csv"))[0]
    cols = weather.read_text().splitlines()[1].split(",")
    for line in (2, 3, 4):
        edit_csv(weather, line, ",".join([cols[0], cols[1], "5.0", "9.0", "-1", "maybe"]))
    demo = small_landing / "demographics.csv"
    d = demo.read_text().splitlines()[1].split(",")
    edit_csv(demo, 2, ",".join([d[0], "inf", *d[2:]]))

    fast, slow = check_landing(small_landing), check_landing(small_landing, by_value=False)
    assert _lines(fast) == _lines(slow)
    assert len(_lines(fast)) > 30  # the delivery really is broken everywhere
    for name in fast:
        pd.testing.assert_frame_equal(fast[name].valid, slow[name].valid, check_dtype=True)
        pd.testing.assert_frame_equal(fast[name].quarantine, slow[name].quarantine)


def test_a_business_without_events_delivers_the_header_alone(small_landing):
    (small_landing / "events.csv").write_text("date,region,event\n")
    results = check_landing(small_landing)
    assert results["events"].problems == [] and results["events"].valid.empty
    # a master with its header alone is another matter: nothing to build from
    (small_landing / "products.csv").write_text("product_id,category,velocity\n")
    assert [str(p) for p in check_landing(small_landing)["products"].problems] == [
        "products.csv:1: -: file has a header but no data rows"]


def test_an_event_may_be_limited_to_a_store_and_a_product_of_the_masters(small_landing):
    results = check_landing(small_landing)
    store, region = results["stores"].valid[["store_id", "region"]].iloc[0]
    other = results["stores"].valid.loc[results["stores"].valid["region"] != region, "region"].iloc[0]
    product = results["products"].valid["product_id"].iloc[0]
    (small_landing / "events.csv").write_text(
        "date,region,event,store_id,product_id\n"
        f"2026-01-06,{region},deal,{store},{product}\n"     # a promotion of one product in one store
        f"2026-01-06,*,feature,,{product}\n"                # of one product everywhere
        f"2026-01-06,{region},deal,nowhere_s01,{product}\n"  # an unknown store
        f"2026-01-06,{region},deal,{store},p999\n"          # an unknown product
        f"2026-01-06,{other},deal,{store},{product}\n")     # a store of another region
    results = check_landing(small_landing)
    assert _lines(results) == [
        "events.csv:4: store_id: must exist in stores (nowhere_s01)",
        "events.csv:5: product_id: must exist in products (p999)",
        f"events.csv:6: store_id: store_id must be a store of the event's region (or the region '*') ({store})",
    ]
    valid = results["events"].valid
    assert len(valid) == 2 and valid["store_id"].isna().tolist() == [False, True]


def test_an_events_file_without_the_scope_columns_gets_one_problem_per_bad_cell(small_landing):
    (small_landing / "events.csv").write_text("date,region,event\n2026-01-06,,holiday\n2026-01-06,atlantis,fair\n")
    assert _lines(check_landing(small_landing)) == [
        "events.csv:2: region: must not be empty",
        "events.csv:3: region: must be a region of stores or '*' (atlantis)",
    ]

"""The vectorized features equal the week-by-week reference, row for row and bit for bit."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.config import REPO_ROOT
from mlops_assets.ml.featurize import build_features, finish_features
from mlops_assets.offline import region_inputs
from mlops_assets_tests.reference_features import history_by_week


def _both(inputs: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    fast = build_features(**inputs)
    slow = finish_features(history_by_week(inputs["demand"], inputs["weeks"], inputs["products"]),
                           inputs["stores"], inputs["products"], inputs["demographics"], inputs["weather"],
                           inputs["events"])
    return fast, slow


@pytest.fixture(scope="module")
def inputs() -> dict:
    # the bundled sample (two years, with closures, launches and intermittent products), and two
    # weeks beyond the last delivery: rows of unobserved weeks take the last listed week's pairs
    return region_inputs(REPO_ROOT / "data" / "sample", "north", extra_weeks=2)


def test_all_weeks_at_once_equal_week_by_week(inputs):
    fast, slow = _both(inputs)
    assert len(fast) > 1000 and fast["target"].isna().any() and fast["lag_52"].notna().any()
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)


def test_gaps_new_pairs_unknown_velocity_and_a_range_in_the_middle(inputs):
    demand = inputs["demand"]
    weeks = sorted(demand["week_start"].unique())
    rng = np.random.default_rng(3)
    # a week whose net demand is absent, a pair that starts late, and demand rows removed at random
    demand = demand[demand["week_start"] != weeks[30]]
    late = demand[["store_id", "product_id"]].drop_duplicates().iloc[5]
    demand = demand[~((demand["store_id"] == late["store_id"]) & (demand["product_id"] == late["product_id"])
                      & (demand["week_start"] < weeks[60]))]
    demand = demand[rng.random(len(demand)) > 0.05]
    products = inputs["products"].assign(velocity=[None if i % 3 else v for i, v in
                                                   enumerate(inputs["products"]["velocity"])])
    middle = [w.strftime("%Y-%m-%d") for w in pd.DatetimeIndex(weeks[25:70:2])] + [inputs["weeks"][-1]]
    case = {**inputs, "demand": demand, "products": products, "weeks": middle}
    fast, slow = _both(case)
    assert (fast["velocity_source"] == "derived").any() and fast["mean_4"].isna().any()
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)


def test_no_demand_yet_gives_no_rows(inputs):
    empty = {**inputs, "demand": inputs["demand"].iloc[0:0]}
    fast, slow = _both(empty)
    assert fast.empty and slow.empty


def test_a_listed_promotion_reaches_its_store_and_product_rows_and_the_models_inputs(small_landing):
    from mlops_assets.ml.preprocess import Preprocessor
    from mlops_assets.offline import region_features

    ship = pd.read_csv(sorted((small_landing / "shipments").glob("*.csv"))[-3], dtype=str)
    week, store, product = ship.iloc[0][["week_start", "store_id", "product_id"]]
    region = pd.read_csv(small_landing / "stores.csv", dtype=str).set_index("store_id").loc[store, "region"]
    events = pd.read_csv(small_landing / "events.csv", dtype=str)
    promotion = pd.DataFrame([{"date": week, "region": region, "event": "deal", "store_id": store,
                               "product_id": product}])
    pd.concat([events, promotion], ignore_index=True).to_csv(small_landing / "events.csv", index=False)

    features = region_features(small_landing, region)
    promoted = features["events"].str.split(";").apply(lambda names: "deal" in names)
    assert promoted.sum() == 1
    at = features[promoted].iloc[0]
    assert (at["store_id"], at["product_id"], at["week_start"]) == (store, product, pd.Timestamp(week))
    pre = Preprocessor.fit(features[features["target"].notna()])
    column = pre.feature_names.index("event:deal")
    numeric = pre.numeric_matrix(features)
    assert len(np.unique(numeric[promoted.to_numpy(), column])) == 1
    assert numeric[promoted.to_numpy(), column][0] > numeric[~promoted.to_numpy(), column].max()


def test_the_models_read_holidays_but_not_the_weeks_before_them_which_the_monitor_reads():
    from mlops_assets.ml.preprocess import model_events
    from mlops_assets.monitoring.levels import expectation_model

    frame = pd.DataFrame({"events": ["christmas", "before_christmas", "deal;before_christmas", ""]})
    assert model_events(frame) == ["christmas", "deal"]
    # the monitor's expectation fits a lift for it (a stock-up of log 0.3, the week before Christmas)
    weeks = pd.date_range("2025-01-06", periods=20, freq="7D")
    rows = pd.DataFrame({"week_start": weeks.repeat(2), "week_of_year": 1, "category": "a", "store_id": "s",
                         "product_id": ["p1", "p2"] * 20,
                         "events": np.where(np.arange(40) // 2 == 9, "before_christmas", "")})
    values = np.where(rows["events"] == "before_christmas", 1.3, 1.0)
    assert expectation_model(rows, values)["lifts"]["a"] == pytest.approx({"before_christmas": 0.3})

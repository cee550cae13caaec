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

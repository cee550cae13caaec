"""Conditioned weekly tables: the contract's semantics for demand, weather and events."""

import pandas as pd

from mlops_assets.contract import conditioning, schemas

STORES = pd.DataFrame({"store_id": ["a1", "a2", "b1"], "region": ["a", "a", "b"],
                       "format": ["large", "small", "large"], "zip_code": ["10000", "10001", "20000"]})
W1, W2, W3 = "2026-01-05", "2026-01-12", "2026-01-19"


def _weekly(rows, units):
    frame = pd.DataFrame(rows, columns=["week_start", "store_id", "product_id", units])
    frame["week_start"] = pd.to_datetime(frame["week_start"])
    return frame


def test_net_demand_zero_after_first_delivery_and_absent_before():
    shipments = _weekly([(W1, "a1", "p1", 10), (W2, "a2", "p1", 4), (W3, "a1", "p1", 3), (W1, "b1", "p1", 9)],
                        "units_shipped")
    returns = _weekly([(W3, "a1", "p1", 5)], "units_returned")
    out = conditioning.net_demand(STORES, shipments, returns, "a", [W1, W2, W3])
    schemas.net_demand_schema().validate(out)
    got = {(r.store_id, r.week_start.strftime("%Y-%m-%d")): r.net_demand for r in out.itertuples()}
    assert got == {("a1", W1): 10, ("a1", W2): 0, ("a1", W3): 0,  # 3 shipped - 5 returned clips at 0
                   ("a2", W2): 4, ("a2", W3): 0}                   # a2 unknown before its first delivery
    assert set(out.region) == {"a"}


def test_weekly_weather_prefers_observations_over_forecasts():
    days = pd.date_range(W1, periods=7, freq="D")
    observed = pd.DataFrame({"date": days[:5], "zip_code": "10000", "temp_max_c": 10.0, "temp_min_c": 0.0,
                             "precip_mm": 1.0, "is_forecast": False})
    forecast = pd.DataFrame({"date": days[3:], "zip_code": "10000", "temp_max_c": 30.0, "temp_min_c": 20.0,
                             "precip_mm": 0.0, "is_forecast": True})
    out = conditioning.weekly_weather(STORES, pd.concat([observed, forecast]), "a", [W1])
    schemas.weekly_weather_schema().validate(out)
    row = out.iloc[0]
    assert (row.days_observed, row.days_forecast) == (5, 2)
    assert row.temp_max_c == (5 * 10 + 2 * 30) / 7
    assert row.precip_mm == 5.0


def test_weekly_events_include_national_and_own_region_only():
    events = pd.DataFrame({"date": pd.to_datetime(["2026-01-06", "2026-01-07", "2026-01-08", "2026-01-13"]),
                           "region": ["*", "a", "b", "a"], "event": ["holiday", "home_game", "home_game", "home_game"]})
    out = conditioning.weekly_events(events, "a", [W1, W2])
    schemas.weekly_events_schema().validate(out)
    assert [(r.week_start.strftime("%Y-%m-%d"), r.event, r.days) for r in out.itertuples()] == [
        (W1, "holiday", 1), (W1, "home_game", 1), (W2, "home_game", 1)]


def test_the_week_before_a_national_event_holds_it_as_before_the_event():
    # a national holiday on W2's Thursday: W1 is the week shoppers stock up in; a region's own event
    # and an event of one store are no holiday of the calendar
    events = pd.DataFrame({"date": pd.to_datetime(["2026-01-15", "2026-01-14", "2026-01-16"]),
                           "region": ["*", "a", "*"], "event": ["holiday", "home_game", "deal"],
                           "store_id": [None, None, "a1"]})
    out = conditioning.weekly_events(events, "a", [W1, W2])
    schemas.weekly_events_schema().validate(out)
    assert [(r.week_start.strftime("%Y-%m-%d"), r.event, r.store_id, r.days) for r in out.itertuples()] == [
        (W1, "before_holiday", "", 1), (W2, "deal", "a1", 1), (W2, "holiday", "", 1), (W2, "home_game", "", 1)]
    # the week's partition alone knows it: W1 conditioned on its own reads next week's calendar
    assert "before_holiday" in set(conditioning.weekly_events(events, "a", [W1])["event"])


def test_a_promotion_is_limited_to_its_store_and_product_and_reaches_only_their_rows():
    from mlops_assets.ml.featurize import row_events

    events = pd.DataFrame({"date": pd.to_datetime(["2026-01-06", "2026-01-06", "2026-01-07", "2026-01-08",
                                                   "2026-01-13"]),
                           "region": ["*", "a", "a", "a", "a"],
                           "event": ["holiday", "deal", "deal", "feature", "display"],
                           "store_id": [None, "a1", "a1", None, "a2"], "product_id": [None, "p1", "p1", "p2", None]})
    out = conditioning.weekly_events(events, "a", [W1, W2])
    schemas.weekly_events_schema().validate(out)
    got = [(r.week_start.strftime("%Y-%m-%d"), r.event, r.store_id, r.product_id, r.days) for r in out.itertuples()]
    assert got == [(W1, "deal", "a1", "p1", 2), (W1, "feature", "", "p2", 1), (W1, "holiday", "", "", 1),
                   (W2, "display", "a2", "", 1)]
    rows = pd.DataFrame([(W1, "a1", "p1"), (W1, "a1", "p2"), (W1, "a2", "p1"), (W2, "a2", "p2"), (W2, "a1", "p2")],
                        columns=["week_start", "store_id", "product_id"])
    rows["week_start"] = pd.to_datetime(rows["week_start"])
    assert row_events(rows, out).tolist() == ["deal;holiday", "feature;holiday", "holiday", "display", ""]
    # a partition conditioned before events had a scope reads as events of every store and product
    before = out[(out["store_id"] == "") & (out["product_id"] == "")].drop(columns=["store_id", "product_id"])
    assert row_events(rows, before).tolist() == ["holiday", "holiday", "holiday", "", ""]


def test_row_events_equal_a_row_by_row_reading_of_the_scopes_with_more_names_than_a_mask_word():
    import numpy as np

    from mlops_assets.ml.featurize import EVENT_BITS, row_events

    rng = np.random.default_rng(3)
    weeks = pd.to_datetime([W1, W2, W3])
    stores, products = ["a1", "a2", "a3"], ["p1", "p2", "p3", "p4"]
    n = 400
    events = pd.DataFrame({"week_start": rng.choice(weeks, n), "event": [f"e{i}" for i in rng.integers(0, 70, n)],
                           "store_id": rng.choice(["", *stores], n), "product_id": rng.choice(["", *products], n)})
    assert events["event"].nunique() > EVENT_BITS
    rows = pd.DataFrame([(w, s, p) for w in weeks for s in stores for p in products],
                        columns=["week_start", "store_id", "product_id"], index=range(100, 136))

    def by_hand(r):
        hit = events[(events["week_start"] == r.week_start) & events["store_id"].isin(["", r.store_id])
                     & events["product_id"].isin(["", r.product_id])]
        return ";".join(sorted(set(hit["event"])))

    expected = [by_hand(r) for r in rows.itertuples()]
    got = row_events(rows, events)
    assert list(got.index) == list(rows.index) and got.tolist() == expected
    assert any(len(cell.split(";")) > 5 for cell in expected)


def _cases(frame: pd.DataFrame, schema) -> set:
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True)
        return set()
    except pa.errors.SchemaErrors as exc:
        found = exc.failure_cases
    return {(c.column, str(c.check), None if pd.isna(c.index) else int(c.index), str(c.failure_case))
            for c in found.itertuples()}


def test_the_schema_check_by_distinct_values_finds_what_pandera_finds_on_every_row():
    from mlops_assets.config import REPO_ROOT
    from mlops_assets.contract.validation import failure_cases_by_value
    from mlops_assets.offline import region_features

    features = region_features(REPO_ROOT / "data" / "sample", "south")
    schema = schemas.features_schema()
    assert failure_cases_by_value(schema, features) is None  # what the pipeline builds passes
    bad = features.copy()
    bad.loc[bad.index[:40:3], "lag_1"] = -1.0                 # one bad value on many rows
    bad.loc[bad.index[5], "segment"] = "huge/fast"
    bad.loc[bad.index[7], "week_of_year"] = 60
    bad.loc[bad.index[9], "zero_share_13"] = 1.5
    bad.loc[bad.index[11], "region"] = "South"
    bad = pd.concat([bad, bad.iloc[[20]]], ignore_index=True)  # a duplicate key
    by_value = failure_cases_by_value(schema, bad)
    got = {(c.column, str(c.check), None if pd.isna(c.index) else int(c.index), str(c.failure_case))
           for c in by_value.itertuples()}
    assert got == _cases(bad, schema) and len(got) > 15
    missing = failure_cases_by_value(schema, bad.drop(columns=["segment"]))
    assert "segment" in set(missing["failure_case"].astype(str))  # a missing column is still named

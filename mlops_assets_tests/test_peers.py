"""The peer benchmark's metrics and peers (bench/peers.py), on tiny frames computed by hand."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.ml.peers import LAG_INPUTS, band_columns, compare, peer_forecasts


def test_metrics_and_reductions_match_hand_computed_values():
    frame = pd.DataFrame({"region": ["a", "a", "b"], "target": [0.0, 10.0, 20.0],
                          "model": [1.0, 8.0, 25.0], "historical_average": [0.0, 10.0, 10.0]})
    table = compare(frame, ["model", "historical_average"]).set_index(["scope", "method"])
    pooled = table.loc[("pooled", "model")]
    assert pooled["mape"] == pytest.approx((2 / 10 + 5 / 20) / 2)      # weeks with demand only
    assert pooled["wape"] == pytest.approx((1 + 2 + 5) / 30)           # every week, zero ones too
    assert pooled["rmse0"] == pytest.approx(1.0)                       # the one zero week
    assert pooled["rmse"] == pytest.approx(np.sqrt((1 + 4 + 25) / 3))
    base = table.loc[("pooled", "historical_average")]
    assert (base["mape"], base["wape"]) == (pytest.approx(0.25), pytest.approx(10 / 30))
    assert pooled["mape_reduction"] == pytest.approx(1 - 0.225 / 0.25)
    assert pooled["wape_reduction"] == pytest.approx(1 - (8 / 30) / (10 / 30))
    region_b = table.loc[("b", "model")]
    assert (region_b["rows"], region_b["mape"], region_b["wape"]) == (1, pytest.approx(0.25), pytest.approx(0.25))


def test_methods_are_also_compared_at_zero_bias_each_scaled_to_its_regions_demand():
    # region a: demand 10 and 30, the model forecasts 5 and 15 (half of it): scaled by 2 it is exact;
    # region b: demand 20, forecast 25: scaled to 20. Pooled, the scaled model has no error left.
    frame = pd.DataFrame({"region": ["a", "a", "b"], "target": [10.0, 30.0, 20.0],
                          "model": [5.0, 15.0, 25.0], "historical_average": [20.0, 20.0, 20.0]})
    table = compare(frame, ["model", "historical_average"]).set_index(["scope", "method"])
    assert table.loc[("pooled", "model"), "mape"] == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    assert table.loc[("pooled", "model"), "mape_unbiased"] == pytest.approx(0.0)
    assert table.loc[("pooled", "model"), "wape_unbiased"] == pytest.approx(0.0)
    # the flat 20 is already unbiased in region a (10 + 30 = 2 x 20): unchanged there
    assert table.loc[("a", "historical_average"), "mape_unbiased"] == pytest.approx((1.0 + 1 / 3) / 2)


def _panel(weeks: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for w, week in enumerate(pd.date_range("2025-01-06", periods=weeks, freq="7D")):
        level = rng.lognormal(3, 0.8, 60)
        frame = pd.DataFrame({c: level * rng.uniform(0.8, 1.2, 60) for c in LAG_INPUTS})
        frame["lag_1"] = level
        frame["zero_share_13"] = 0.0
        frame["target"] = np.round(level)  # demand repeats last week's: last value is right
        frame["week_start"] = week
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_peers_forecast_from_each_rows_lags_and_the_fitted_one_learns_the_rule():
    panel = _panel(30, 0)
    train, holdout = panel[panel["week_start"] < panel["week_start"].unique()[-4]], panel.tail(240)
    peers = peer_forecasts(train, holdout, with_lightgbm=False)
    assert list(peers.columns) == ["historical_average", "last_value", "seasonal_naive", "lasso_lags",
                                   "historical_average_p10", "historical_average_p50", "historical_average_p90"]
    band = peers[band_columns(peers, "historical_average")].to_numpy()  # a Poisson count's around the mean
    assert (band >= 0).all() and (np.diff(band, axis=1) >= 0).all()
    np.testing.assert_array_equal(peers["last_value"], holdout["lag_1"])
    np.testing.assert_array_equal(peers["seasonal_naive"], holdout["lag_52"])
    np.testing.assert_array_equal(peers["historical_average"], holdout["mean_52"])
    # demand is last week's: the LASSO on log lags finds it (within rounding), the 52-week mean does not
    frame = holdout.assign(**peers)
    table = compare(frame, ["lasso_lags", "historical_average"], by=None).set_index("method")
    assert table.loc["lasso_lags", "wape"] < 0.05 < table.loc["historical_average", "wape"]


def test_the_fitted_peers_see_the_events_the_models_see():
    from mlops_assets.ml.peers import inputs

    panel = _panel(3, 1).assign(events="")
    panel.loc[panel.index % 7 == 0, "events"] = "deal"
    panel.loc[panel.index % 11 == 0, "events"] = "deal;holiday"
    X = inputs(panel, ["deal", "holiday"])
    assert X.shape[1] == len(LAG_INPUTS) + 1 + 2
    np.testing.assert_array_equal(X[:, -2], panel["events"].str.contains("deal").to_numpy(dtype=float))
    np.testing.assert_array_equal(X[:, -1], panel["events"].str.contains("holiday").to_numpy(dtype=float))
    assert inputs(panel).shape[1] == len(LAG_INPUTS) + 1  # no events named: the lags alone


def test_the_peers_are_not_part_of_the_model_code_version(monkeypatch):
    from pathlib import Path

    import mlops_assets.ml as ml

    before = ml.code_version()
    peers = Path(ml.__file__).with_name("peers.py")
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: real_read(self) + (b"# edited" if self == peers else b""))
    assert ml.code_version() == before
    ensemble = Path(ml.__file__).with_name("ensemble.py")
    monkeypatch.setattr(Path, "read_bytes", lambda self: real_read(self) + (b"# edited" if self == ensemble else b""))
    assert ml.code_version() != before

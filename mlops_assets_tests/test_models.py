"""Features and region models as plain functions (no Dagster): leakage, protocol, determinism, storage."""

import json

import numpy as np
import pandas as pd
import pytest

from mlops_assets.ml.ensemble import SEGMENTS, ForecastModel, TrainConfig, train_region
from mlops_assets.ml.featurize import FORECAST_WEATHER, at_forecast_time, build_features, impute_history
from mlops_assets.offline import region_inputs

FAST = TrainConfig(max_epochs=30)
HISTORY = [c for c in ("lag_1", "lag_2", "lag_3", "lag_4", "lag_52", "mean_4", "mean_13", "mean_52",
                       "nonzero_mean_13", "zero_share_13", "weeks_listed", "velocity")]


def _same(a: dict, b: dict) -> bool:
    """Equal, counting NaN (a metric with no rows to score) as equal to NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture(scope="module")
def inputs(trainable_landing_template):
    return region_inputs(trainable_landing_template, "north", extra_weeks=1)


@pytest.fixture(scope="module")
def features(inputs):
    return build_features(**inputs)


@pytest.fixture(scope="module")
def trained(features):
    return train_region(features, "north", FAST)


def test_features_only_know_the_past(inputs, features):
    """Rewriting all demand from week w on must not change any feature of week w but its target."""
    weeks = sorted(features["week_start"].unique())
    w = weeks[40]
    demand = inputs["demand"].copy()
    future = demand["week_start"] >= w
    rng = np.random.default_rng(0)
    demand.loc[future, "net_demand"] = rng.integers(0, 1000, future.sum())
    changed = build_features(**{**inputs, "demand": demand})

    key = ["week_start", "store_id", "product_id"]
    before = features[features["week_start"] <= w].set_index(key).sort_index()
    after = changed[changed["week_start"] <= w].set_index(key).sort_index()
    pd.testing.assert_frame_equal(before.drop(columns="target"), after.drop(columns="target"))
    # the target itself is the week's (rewritten) demand: the test would notice a frame that ignores it
    assert not before.loc[pd.Timestamp(w), "target"].equals(after.loc[pd.Timestamp(w), "target"])
    # and later weeks do see the change, through their lags
    later = features[features["week_start"] == weeks[41]].set_index(key)
    later_changed = changed[changed["week_start"] == weeks[41]].set_index(key)
    assert not later["lag_1"].equals(later_changed["lag_1"])


def test_unobserved_week_has_features_but_no_target(inputs, features):
    last = features["week_start"].max()
    upcoming = features[features["week_start"] == last]
    assert len(upcoming) and upcoming["target"].isna().all()
    recent = ["lag_1", "lag_2", "lag_3", "lag_4", "mean_4", "mean_13", "mean_52", "nonzero_mean_13", "zero_share_13"]
    assert upcoming[recent].notna().all().all()
    # lag 52 is unknown (not 0) exactly where the pair was not listed, or the week not loaded, a year ago
    demand = inputs["demand"]
    year_ago = demand[demand["week_start"] == last - pd.Timedelta(weeks=52)]
    listed = upcoming.set_index(["store_id", "product_id"]).index.isin(
        year_ago.set_index(["store_id", "product_id"]).index)
    np.testing.assert_array_equal(upcoming["lag_52"].isna().to_numpy(), ~listed)


def test_velocity_from_the_products_file_wins_and_is_recorded(inputs):
    products = inputs["products"].copy()
    products["velocity"] = "slow"
    products.loc[products.index[0], "velocity"] = "fast"
    frame = build_features(**{**inputs, "products": products})
    first = products.loc[products.index[0], "product_id"]
    assert set(frame.loc[frame["product_id"] == first, "velocity"]) == {"fast"}
    assert set(frame.loc[frame["product_id"] != first, "velocity"]) == {"slow"}
    assert set(frame["velocity_source"]) == {"products file"}


def test_every_segment_trains_and_is_evaluated(trained):
    model, holdout = trained
    assert set(model.segments) == set(SEGMENTS) and not model.skipped
    assert holdout["week_start"].nunique() == FAST.holdout_weeks
    for name in SEGMENTS:
        report = model.evaluation["segments"][name]
        for member in ("ensemble", "lasso", "nn", "baseline"):
            assert np.isfinite(report[member]["mape"]) and np.isfinite(report[member]["rmse"])
        assert 0 <= report["hyperparameters"]["ensemble_weight_lasso"] <= 1
        hold = pd.Timestamp(model.evaluation["holdout"]["first_week"])
        assert pd.Timestamp(report["hyperparameters"]["validation_first_week"]) < hold


def test_choices_never_see_the_holdout(features, trained):
    """Scrambling the holdout targets changes the scores but no choice and no holdout forecast."""
    model, holdout = trained
    first = pd.Timestamp(model.evaluation["holdout"]["first_week"])
    scrambled = features.copy()
    mask = (scrambled["week_start"] >= first) & scrambled["target"].notna()
    scrambled.loc[mask, "target"] = scrambled.loc[mask, "target"].sample(frac=1, random_state=1).to_numpy() * 3
    other, other_holdout = train_region(scrambled, "north", FAST)
    for name in SEGMENTS:
        assert (other.evaluation["segments"][name]["hyperparameters"]
                == model.evaluation["segments"][name]["hyperparameters"])
        assert other.evaluation["segments"][name]["ensemble"]["mape"] != \
            model.evaluation["segments"][name]["ensemble"]["mape"]
    for member in ("ensemble", "lasso", "nn", "baseline"):
        np.testing.assert_array_equal(other_holdout[member].to_numpy(), holdout[member].to_numpy())


def test_training_is_deterministic_whatever_the_row_order(features, trained):
    model, holdout = trained
    lines = []
    again, again_holdout = train_region(features.sample(frac=1, random_state=7), "north", FAST,
                                        progress=lines.append)
    pd.testing.assert_frame_equal(again_holdout, holdout)
    # reporting progress changes nothing; it names every stage and member, with its time
    for stage in ("choose (training weeks only)", "evaluated fit (before the holdout)",
                  "deployed fit (up to the as-of week)"):
        assert sum(f"{stage}: network" in line for line in lines) == 1, lines
        for segment in SEGMENTS:
            assert sum(f"{stage}: {segment} LASSO" in line and line.endswith(" s)") for line in lines) == 1
    assert sum(line.split("] ", 1)[1].startswith("holdout: ") for line in lines) == len(SEGMENTS)
    assert "done: 4 segments trained, 0 skipped" in lines[-1]
    assert _same(again.evaluation, model.evaluation)
    upcoming = features[features["target"].isna()]
    pd.testing.assert_frame_equal(again.predict(upcoming), model.predict(upcoming))
    # the seed is what makes it repeatable: another seed gives another network
    reseeded, reseeded_holdout = train_region(features, "north", TrainConfig(max_epochs=30, seed=1))
    assert not np.array_equal(reseeded_holdout["nn"].to_numpy(), holdout["nn"].to_numpy())


def test_a_segment_with_too_little_data_is_skipped_not_fatal(features):
    thin = features[~((features["segment"] == "small/slow") & (features["store_id"] != features.loc[
        features["segment"] == "small/slow", "store_id"].iloc[0]))]
    thin = thin[~((thin["segment"] == "small/slow") & (thin["product_id"] != thin.loc[
        thin["segment"] == "small/slow", "product_id"].iloc[0]))]
    model, holdout = train_region(thin, "north", FAST)
    assert set(model.skipped) == {"small/slow"}
    assert "too little data" in model.skipped["small/slow"]
    assert model.evaluation["segments"]["small/slow"] == {"skipped": model.skipped["small/slow"]}
    assert set(holdout["segment"]) == set(SEGMENTS) - {"small/slow"}
    upcoming = thin[thin["target"].isna()]
    forecast = model.predict(upcoming)
    skipped_rows = forecast["segment"] == "small/slow"
    assert skipped_rows.any() and (forecast.loc[skipped_rows, "model"] == "baseline").all()
    np.testing.assert_allclose(forecast.loc[skipped_rows, "forecast"],
                               upcoming.loc[skipped_rows.to_numpy(), "mean_52"])
    assert (forecast.loc[~skipped_rows, "model"] == "ensemble").all()


def test_a_region_without_enough_weeks_gets_no_model_and_says_why(features):
    """A region onboarded lately is not an error: every segment is skipped with the reason, and
    its rows are forecast by the baseline, marked as such."""
    weeks = sorted(features["week_start"].unique())[:15]
    young = features[features["week_start"].isin(weeks)]
    model, holdout = train_region(young, "north", FAST)
    assert not model.segments and holdout.empty and set(model.skipped) == set(SEGMENTS)
    reason = "too little history: 15 observed weeks; training needs more than 13 holdout + 4 warm-up weeks"
    assert set(model.skipped.values()) == {reason}
    assert model.as_of_week == pd.Timestamp(weeks[-1]).strftime("%Y-%m-%d")
    forecast = model.predict(young[young["week_start"] == weeks[-1]])
    assert set(forecast["model"]) == {"baseline"} and np.isfinite(forecast["forecast"]).all()
    with pytest.raises(ValueError, match="north: no observed week to train on"):
        train_region(features[features["target"].isna()], "north", FAST)


def test_a_stored_model_reloads_without_pickle_and_forecasts_identically(features, trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert {p.rsplit(".", 1)[1] for p in files} == {"json", "npz"}
    for path in (tmp_path / "model").iterdir():  # no pickled objects: NPZ without object arrays
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                assert all(npz[k].dtype != object for k in npz.files)
    loaded = ForecastModel.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.predict(features), model.predict(features))
    assert _same(loaded.evaluation, model.evaluation)


def test_a_model_of_the_previous_format_still_loads_and_serves(features, trained, tmp_path):
    """Format 2 (a network per segment, reading the segment's own inputs) is what champions
    trained before the region's shared network are stored as: they must keep serving."""
    import torch

    from mlops_assets.ml import embedding_net

    model, _ = trained
    model.save(tmp_path / "v2")
    manifest = json.loads((tmp_path / "v2" / "model.json").read_text())
    manifest["format_version"] = 2
    manifest.pop("network")
    manifest["config"].pop("nn_loss")
    rows = features[features["target"].isna()]
    expected = []
    for name, spec in manifest["segments"].items():
        seg = model.segments[name]
        sizes = {k: v for k, v in seg.net_sizes.items() if k != "n_segment"}
        sizes["n_store"], sizes["n_product"] = len(seg.pre.vocab["store_id"]), len(seg.pre.vocab["product_id"])
        sizes["n_category"] = len(seg.pre.vocab["category"])
        sizes["n_numeric"] = seg.pre.lasso_design(rows[:1]).shape[1]
        torch.manual_seed(0)
        net = embedding_net.EmbeddingNet(**sizes)
        stem = name.replace("/", "_")
        embedding_net.save(net, tmp_path / "v2" / f"{stem}_nn.npz")
        spec["net_sizes"], spec["files"] = sizes, [f"{stem}_lasso.npz", f"{stem}_nn.npz"]
        part = rows[rows["segment"] == name]
        nn = np.clip(np.expm1(embedding_net.predict_log(net, part.pipe(seg.pre.lasso_design),
                                                        seg.pre.categorical_matrix(part))), 0, None)
        lasso_part = seg.members(part)["lasso"]
        expected.append(pd.Series(seg.weight * lasso_part + (1 - seg.weight) * nn, index=part.index))
    (tmp_path / "v2" / "network.npz").unlink()
    (tmp_path / "v2" / "model.json").write_text(json.dumps(manifest))
    old = ForecastModel.load(tmp_path / "v2")
    assert old.config.nn_loss == "mse_log"  # what format 2 was trained with, not today's default
    forecast = old.predict(rows).set_index(rows.index)["forecast"]
    pd.testing.assert_series_equal(forecast.loc[pd.concat(expected).index], pd.concat(expected),
                                   check_names=False)


def test_a_week_is_forecast_with_its_weather_forecast_not_its_observation(inputs, features, trained):
    """The sample's archive holds each past week's forecast: holdout and scores use it."""
    weather = inputs["weather"]
    past = weather[weather["days_observed"] == 7]
    assert (past["days_with_forecast"] == 7).all()  # every observed week was forecast before it began
    assert (past["forecast_temp_max_c"] != past["temp_max_c"]).mean() > 0.9
    model, holdout = trained
    rows = features[features["week_start"] >= pd.Timestamp(model.evaluation["holdout"]["first_week"])]
    rows = rows[rows["target"].notna()]
    as_forecast = at_forecast_time(rows)
    np.testing.assert_array_equal(as_forecast["temp_max_c"], rows["forecast_temp_max_c"])
    # what the model forecasts for a week is what it forecasts from the weather forecast ...
    served = model.predict(rows)["forecast"].to_numpy()
    np.testing.assert_array_equal(served, model.predict(as_forecast.drop(columns=FORECAST_WEATHER))["forecast"])
    # ... and not what it would have forecast from the observed weather
    observed = rows.drop(columns=FORECAST_WEATHER)
    assert not np.array_equal(served, model.predict(observed)["forecast"].to_numpy())


def test_an_absent_week_of_demand_is_missing_history_not_zero_demand(inputs, features):
    weeks = sorted(inputs["demand"]["week_start"].unique())
    gap = weeks[30]
    frame = build_features(**{**inputs, "demand": inputs["demand"][inputs["demand"]["week_start"] != gap]})
    after = frame[frame["week_start"] == gap + pd.Timedelta(weeks=1)].set_index(["store_id", "product_id"])
    full = features[features["week_start"] == gap + pd.Timedelta(weeks=1)].set_index(["store_id", "product_id"])
    assert after["lag_1"].isna().all() and (full["lag_1"] > 0).any()
    # the trailing means average the weeks that are known; none reads the gap as a week of 0
    known = [w for w in weeks[27:30]]
    block = inputs["demand"][inputs["demand"]["week_start"].isin(known)]
    expected = block.groupby(["store_id", "product_id"])["net_demand"].mean()
    expected = expected[expected.index.isin(after.index)]
    pd.testing.assert_series_equal(after["mean_4"].loc[expected.index], expected, check_names=False)
    filled = impute_history(after.reset_index())
    assert filled["lag_1"].notna().all() and (filled["history_missing"] > 0).all()
    np.testing.assert_allclose(filled["lag_1"], after["mean_4"].to_numpy())


def test_a_store_first_seen_after_training_gets_a_trained_unknown_embedding(features, trained):
    model, _ = trained
    upcoming = features[features["target"].isna()]
    store = upcoming["store_id"].iloc[0]
    known = upcoming[upcoming["store_id"] == store]
    unseen = known.assign(store_id="a_store_opened_after_training")
    a, b = model.predict(known)["forecast"].to_numpy(), model.predict(unseen)["forecast"].to_numpy()
    assert np.isfinite(b).all() and not np.array_equal(a, b)
    # the network (the member that reads store ids) forecasts the unknown store like a typical
    # store of the region: its forecasts sit among those of the known stores for the same products
    seg = model.segments[known["segment"].iloc[0]]
    rows = upcoming[upcoming["segment"] == known["segment"].iloc[0]]
    rows = rows[rows["product_id"].isin(known["product_id"])]
    per_store = rows.assign(nn=seg.members(rows)["nn"]).groupby("store_id")["nn"].median()
    new_store = seg.members(unseen[unseen["segment"] == known["segment"].iloc[0]])["nn"]
    assert per_store.min() / 2 <= np.median(new_store) <= per_store.max() * 2


def test_the_performance_gate_knows_the_naive_peers(trained):
    from mlops_assets.registry.gates import GateConfig, performance_gate

    model, _ = trained
    ok = performance_gate(model, None, GateConfig(mape_target=10))
    assert ok["region"]["last_value_mape"] == model.evaluation["region"]["last_value"]["mape"]

    def judged(**region_changes):
        # from a region that meets every peer rule, so each change below trips exactly its own
        ev = json.loads(json.dumps(model.evaluation))
        ev["region"]["quantiles"].update({"below_p10": 0.1, "below_p50": 0.5, "below_p90": 0.9})
        ev["region"]["ensemble"]["bias_ratio"] = ev["region"]["baseline"]["bias_ratio"] = 0.0
        for member, changes in region_changes.items():
            ev["region"][member].update(changes)
        clone = ForecastModel(model.region, model.as_of_week, model.segments, model.skipped, model.config, ev)
        return performance_gate(clone, None, GateConfig(mape_target=10))

    ens = model.evaluation["region"]["ensemble"]
    assert "not below last value's" in judged(last_value={"mape": ens["mape"] * 0.99})["reason"]
    base = model.evaluation["region"]["baseline"]
    assert "RMSE at actual = 0" in judged(ensemble={"rmse0": 2 * base["rmse0"], "rows0": 50})["reason"]
    # over a handful of weeks that sold nothing it says little, and is not judged
    assert judged(ensemble={"rmse0": 2 * base["rmse0"], "rows0": 10})["passed"]
    assert "the forecasts total -20.0% against demand, beyond +-15%" in judged(ensemble={"bias_ratio": -0.2})["reason"]
    assert "WAPE" in judged(ensemble={"wape": base["wape"] * 1.01})["reason"]
    quantiles = {**model.evaluation["region"]["quantiles"], "below_p90": 0.6}
    assert "60% of actuals below P90 (nominal 90%" in judged(quantiles=quantiles)["reason"]


def test_attributions_follow_what_each_member_reads(features, trained):
    """A feature the LASSO dropped (coefficient 0, no interaction built from it) moves only the
    network; every embedding moves only the network; and shuffling changes forecasts somewhere."""
    from mlops_assets.ml.attribution import lasso_coefficients, permutation_attribution

    model, _ = trained
    segment = model.segments["large/fast"]
    rows = features[features["segment"] == "large/fast"].tail(800)
    attribution = permutation_attribution(segment, rows)
    coef = lasso_coefficients(segment)
    interacting = {"woy_sin", "woy_cos", "temp_max_c", "precip_mm"} | {n for n in coef.index if n.startswith("event:")}
    dropped = [n for n in coef.index if coef[n] == 0 and n not in interacting]
    assert dropped, "expected the LASSO to drop some input"
    assert (attribution.loc[dropped, "lasso"] == 0).all()
    embeddings = [n for n in attribution.index if n.endswith("(embedding)")]
    assert len(embeddings) == 4 and attribution.loc[embeddings, "lasso"].isna().all()
    assert (attribution.fillna(0) >= 0).all().all() and attribution["nn"].max() > 0
    assert attribution.max(axis=1).is_monotonic_decreasing


def test_a_lasso_that_stops_early_says_so_with_its_gap_not_a_warning(monkeypatch):
    """Coordinate descent on nearly collinear columns at small alphas converges slowly: the fits
    report it (for the segment's training log line), and nothing is printed as a warning."""
    import warnings

    from mlops_assets.ml import lasso

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 30))
    X[:, 1] = X[:, 0] + 1e-3 * rng.normal(size=400)
    y = X[:, 0] - X[:, 2] + rng.normal(size=400)
    weeks = np.repeat(np.arange(40), 10)

    def fitted(report):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would fail the test
            lasso.fit(X, y, lasso.choose_alpha(X, y, weeks, report), report)
        return report

    converged = fitted(lasso.Convergence())
    assert converged.fits == 4 * len(lasso.ALPHAS) + 1 and converged.stopped == 0 and converged.note() == ""
    monkeypatch.setattr(lasso, "MAX_ITER", 3)
    stopped = fitted(lasso.Convergence())
    assert stopped.stopped > 0 and stopped.gap > stopped.tolerance > 0
    assert f"stopped at 3 iterations in {stopped.stopped} of {stopped.fits} fits" in stopped.note()
    assert f"duality gap up to {stopped.gap:.3g}, tolerance {stopped.tolerance:.3g}" in stopped.note()

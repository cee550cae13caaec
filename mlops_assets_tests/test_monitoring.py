"""Drift statistics, profiles and retrain rules as plain functions, against values computed by hand."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from mlops_assets.monitoring import rules
from mlops_assets.monitoring.drift import DriftThresholds, week_drift
from mlops_assets.monitoring.profiles import build_profile
from mlops_assets.monitoring.statistics import (chi_square_test, holm, js_distance, ks_test, psi, reference_cdf,
                                                wasserstein_from_quantiles)


def test_wasserstein_of_a_shift_is_the_shift():
    reference = np.arange(0, 101, dtype=float)  # its quantiles at 0%, 1%, .. 100% are 0, 1, .. 100
    assert wasserstein_from_quantiles(reference, reference + 10) == pytest.approx(10.0)
    assert wasserstein_from_quantiles(reference, reference) == pytest.approx(0.0)


def test_wasserstein_from_quantiles_matches_scipy_on_samples():
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(0, 1, 20000), rng.normal(0.3, 1.2, 3000)
    exact = scipy_stats.wasserstein_distance(ref, cur)
    approx = wasserstein_from_quantiles(np.quantile(ref, np.linspace(0, 1, 101)), cur)
    assert approx == pytest.approx(exact, rel=0.05)


def test_psi_by_hand():
    # shares .5/.5 against .25/.75: (.25-.5) ln(.25/.5) + (.75-.5) ln(.75/.5)
    expected = -0.25 * np.log(0.5) + 0.25 * np.log(1.5)
    assert psi([50, 50], [25, 75]) == pytest.approx(expected)
    assert expected == pytest.approx(0.274653, abs=1e-6)
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)


def test_jensen_shannon_distance_by_hand():
    assert js_distance({"a": 5}, {"b": 5}) == pytest.approx(1.0)
    # p = (.5, .5), q = (1, 0), m = (.75, .25): JSD = (KL(p||m) + KL(q||m)) / 2, distance = sqrt(JSD)
    kl_p = 0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)
    kl_q = np.log2(1 / 0.75)
    assert js_distance({"a": 1, "b": 1}, {"a": 7}) == pytest.approx(np.sqrt((kl_p + kl_q) / 2))
    assert np.sqrt((kl_p + kl_q) / 2) == pytest.approx(0.557923, abs=1e-6)


def test_chi_square_by_hand():
    # 2x2: n (ad - bc)^2 / ((a+b)(c+d)(a+c)(b+d)) = 200 * 2000^2 / (100*100*80*120)
    statistic, p = chi_square_test({"x": 50, "y": 50}, {"x": 30, "y": 70})
    assert statistic == pytest.approx(200 * 2000 ** 2 / (100 * 100 * 80 * 120))
    assert p == pytest.approx(scipy_stats.chi2.sf(statistic, 1))


def test_holm_adjusts_in_order_and_stays_monotone():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})


def test_ks_from_a_profile_matches_scipy():
    ref = np.linspace(0, 100, 1001)
    quantiles = np.quantile(ref, np.linspace(0, 1, 101))
    rng = np.random.default_rng(1)
    for cur in (rng.uniform(20, 120, 300), rng.normal(50, 20, 40)):
        d, p = ks_test(quantiles, len(ref), cur)
        # exactly the distance between the sample and the profile's (piecewise linear) CDF ...
        exact = scipy_stats.kstest(cur, lambda x: reference_cdf(quantiles, np.asarray(x))).statistic
        assert d == pytest.approx(exact, abs=1e-12)
        # ... which is the raw two-sample statistic up to the profile's 1% resolution
        raw = scipy_stats.ks_2samp(ref, cur, method="asymp")
        assert d == pytest.approx(raw.statistic, abs=0.011)
        assert p == pytest.approx(scipy_stats.kstwo.sf(d, round(len(ref) * len(cur) / (len(ref) + len(cur)))))
    d, p = ks_test(quantiles, len(ref), rng.uniform(20, 120, 300))
    assert p < 1e-6
    d_same, p_same = ks_test(np.quantile(ref, np.linspace(0, 1, 101)), len(ref), rng.uniform(0, 100, 300))
    assert d_same < 0.1 and p_same > 0.01


def _weekly(weeks: int, rows: int, shift_from: int | None = None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for w, week in enumerate(pd.date_range("2025-01-06", periods=weeks, freq="7D")):
        lag = rng.lognormal(3, 1, rows) * (3.0 if shift_from is not None and w >= shift_from else 1.0)
        frames.append(pd.DataFrame({"week_start": week, "week_of_year": week.isocalendar().week,
                                    "lag_1": lag, "temp_max_c": rng.normal(15, 3, rows),
                                    "segment": rng.choice(["large/fast", "small/slow"], rows)}))
    return pd.concat(frames, ignore_index=True)


def test_profile_holds_no_rows_and_a_shifted_week_drifts():
    reference = _weekly(52, 400)
    profile = build_profile(reference, forecast=reference["lag_1"].to_numpy(),
                            numeric=("lag_1", "temp_max_c"), categorical=("segment",))
    spec = profile["columns"]["lag_1"]
    assert len(spec["quantiles"]) == 101 and sum(spec["counts"]) == len(reference)
    assert len(json.dumps(profile)) < 20_000  # quantiles and counts, not 20,800 rows
    assert spec["calibration"]["weeks"] == 52

    later = _weekly(3, 400, shift_from=1, seed=9)
    same, shifted = later[later.week_start == later.week_start.min()], later[later.week_start == later.week_start.max()]
    calm = week_drift(profile, same, same["lag_1"].to_numpy())
    assert (calm["drifted"], calm["features"], calm["prediction_drift"]) == (False, [], False)
    moved = week_drift(profile, shifted, shifted["lag_1"].to_numpy())
    assert moved["features"] == ["lag_1"] and moved["share"] == pytest.approx(1 / 3)
    assert moved["prediction_drift"] is True and moved["drifted"] is False  # 1 of 3 is under half
    lowered = week_drift(profile, shifted, None, DriftThresholds(share=0.3))
    assert lowered["drifted"] is True and lowered["prediction_drift"] is None


def test_small_references_use_tests_with_holm():
    reference = _weekly(10, 50)  # 500 rows: small
    profile = build_profile(reference, numeric=("lag_1", "temp_max_c"), categorical=("segment",))
    week = _weekly(2, 300, shift_from=1, seed=4)
    result = week_drift(profile, week[week.week_start == week.week_start.max()])
    assert result["columns"]["lag_1"]["test"] == "ks" and result["columns"]["segment"]["test"] == "chi2"
    assert result["features"] == ["lag_1"]
    assert all("p_adjusted" in c for c in result["columns"].values())


def test_accuracy_needs_two_bad_weeks_of_five_including_the_latest():
    r = rules.RetrainRules()
    good, bad = 0.2, 0.5
    weeks = [{"week": f"2026-0{i}-01", "mape": m, "holdout_mape": 0.2} for i, m in enumerate([bad, good, good, bad], 1)]
    assert rules.accuracy_cause(weeks, r)["cause"] == "accuracy"
    assert rules.accuracy_cause(weeks[:3], r) is None  # one bad week, not the latest
    assert rules.accuracy_cause([*weeks, {"week": "2026-05-01", "mape": good, "holdout_mape": 0.2}], r) is None
    # degradation alone: 0.35 is under the target but 1.75x the holdout MAPE of 0.2
    degraded = [{"week": w, "mape": 0.35, "holdout_mape": 0.2} for w in ("2026-01-05", "2026-01-12")]
    assert rules.accuracy_cause(degraded, r) is not None


def test_drift_stale_and_code_causes():
    calm = {"drifted": False, "share": 0.1, "features": ["lag_1"], "prediction_drift": True}
    assert rules.drift_cause([{"week": "2026-01-05", **calm}]) is None  # one week of prediction drift
    assert rules.drift_cause([{"week": "2026-01-05", **calm}, {"week": "2026-01-12", **calm}])["cause"] == "drift"
    drifted = {"drifted": True, "share": 0.6, "features": ["lag_1", "temp_max_c"], "prediction_drift": False}
    assert "2 features drifted" in rules.drift_cause([{"week": "2026-01-12", **drifted}])["detail"]
    assert rules.stale_cause("2026-01-05", "2026-03-09", rules.RetrainRules()) is not None  # 63 days
    assert rules.stale_cause("2026-01-05", "2026-03-02", rules.RetrainRules()) is None  # 56 days
    assert rules.code_cause("abc", "abc", "2026-01-05") is None
    assert rules.code_cause("abc", "def", "2026-01-05")["cause"] == "code_version"
    assert rules.primary([{"cause": "stale"}, {"cause": "drift"}]) == "drift"


def test_a_failing_webhook_is_reported_without_its_url_and_never_raises():
    from mlops_assets.resources.alerting import post_alerts

    alert = [{"region": "north", "kind": "feature_drift"}]
    for url in ("hooks.example.com/T0/SECRET", "http://127.0.0.1:1/hook?token=SECRET", "http://bad host/SECRET"):
        reason = post_alerts(url, alert, timeout=2)
        assert reason and "SECRET" not in reason and "127.0.0.1" not in reason, reason
    assert post_alerts("", alert) is None and post_alerts("http://127.0.0.1:1/", []) is None

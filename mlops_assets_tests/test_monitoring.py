"""The monitor's statistics, signals and retrain rules as plain functions, against values computed by hand."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from mlops_assets.monitoring import levels, rules
from mlops_assets.monitoring.alerts import signal_alerts, stored_alerts
from mlops_assets.monitoring.monitor import (
    MonitorLimits,
    _spread,
    assess_week,
    build_reference,
    demand_scales,
    describe,
    from_table,
    summary,
    to_table,
    unseen_time_of_year,
)
from mlops_assets.monitoring.statistics import js_distance

WEEKS = pd.date_range("2025-01-06", periods=70, freq="7D")


def test_jensen_shannon_distance_by_hand():
    assert js_distance({"a": 5}, {"b": 5}) == pytest.approx(1.0)
    # p = (.5, .5), q = (1, 0), m = (.75, .25): JSD = (KL(p||m) + KL(q||m)) / 2, distance = sqrt(JSD)
    kl_p = 0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)
    kl_q = np.log2(1 / 0.75)
    assert js_distance({"a": 1, "b": 1}, {"a": 7}) == pytest.approx(np.sqrt((kl_p + kl_q) / 2))
    assert np.sqrt((kl_p + kl_q) / 2) == pytest.approx(0.557923, abs=1e-6)


def test_the_robust_level_weighs_steady_series_more_and_clips_a_spike():
    # equal spreads, nothing clipped: the plain mean
    assert levels.robust_level([0.1, 0.2, 0.6], [1, 1, 1]) == pytest.approx(0.3)
    # inverse-variance weights: (1 x 0 + 1/4 x 1) / (1 + 1/4)
    assert levels.robust_level([0.0, 1.0], [1.0, 2.0]) == pytest.approx(0.2)
    # nine series at 0 and a bulk order at 100, spread 1: m = (9 x 0 + (m + 3)) / 10, so m = 1/3
    assert levels.robust_level([0.0] * 9 + [100.0], [1.0] * 10) == pytest.approx(1 / 3)
    # missing values and spreads are left out, never read as 0
    assert levels.robust_level([np.nan, 1.0, 1.0, 5.0], [1.0, 1.0, 1.0, np.nan]) == pytest.approx(1.0)
    assert np.isnan(levels.robust_level([], []))


def test_a_series_spread_is_its_own_deviation_over_the_reference_year():
    rows = pd.DataFrame({"week_start": np.repeat(WEEKS[:20], 3), "week_of_year": 1, "category": "a", "events": "",
                         "store_id": "s", "product_id": np.tile(["steady", "noisy", "new"], 20)})
    rng = np.random.default_rng(0)
    values = np.where(rows["product_id"] == "steady", 5 + rng.normal(0, 0.05, 60),
                      np.where(rows["product_id"] == "noisy", 2 + rng.normal(0, 1.0, 60), 1.0))
    rows = rows[(rows["product_id"] != "new") | (rows["week_start"] >= WEEKS[15])]  # 5 weeks: too few
    model = levels.expectation_model(rows, values[rows.index])
    spread = dict(zip(model["series"]["key"], model["series"]["spread"]))
    noisy = values[rows.index][(rows["product_id"] == "noisy").to_numpy()]
    assert spread["s|noisy"] == pytest.approx(np.std(noisy, ddof=1), abs=1e-5)
    assert spread["s|steady"] == levels.MIN_SPREAD  # 0.05 is raised to the floor
    assert spread["s|new"] == model["median_spread"]  # the median of the series with enough weeks
    unknown = rows.head(1).assign(product_id="never_seen")
    assert levels.spreads_of(model, unknown)[0] == model["median_spread"]


def test_levels_and_lifts_are_fitted_together_so_events_that_coincide_are_counted_once():
    # two series at levels 2 and 1 (log units); a promotion every third week lifts them by 0.5, a
    # home game every fifth by 0.3, both at once in weeks 0, 15, 30 and 45
    weeks = np.arange(60)
    promotion, game = weeks % 3 == 0, weeks % 5 == 0
    events = np.where(promotion & game, "promotion;home_game",
                      np.where(promotion, "promotion", np.where(game, "home_game", "")))
    rows = pd.DataFrame({"week_start": np.repeat(WEEKS[:60], 2), "week_of_year": 1, "category": "a",
                         "store_id": "s", "product_id": np.tile(["p1", "p2"], 60), "events": np.repeat(events, 2)})
    truth = (np.where(rows["product_id"] == "p1", 2.0, 1.0) + 0.5 * np.repeat(promotion, 2)
             + 0.3 * np.repeat(game, 2))
    model = levels.expectation_model(rows, truth)
    assert dict(zip(model["series"]["key"], model["series"]["level"])) == pytest.approx({"s|p1": 2.0, "s|p2": 1.0},
                                                                                          abs=1e-3)
    assert model["lifts"]["a"] == pytest.approx({"promotion": 0.5, "home_game": 0.3}, abs=1e-3)
    assert levels.expected(model, rows) == pytest.approx(truth, abs=1e-3)
    # (fitted one after the other, p1's level was its mean, 2 + 0.5 x 20/60 + 0.3 x 12/60 = 2.227:
    # every week without an event looked 20% below its level)
    # an event the category never had adds nothing; a category without events gets no lifts
    other = rows.head(2).assign(category="b", events="christmas")
    assert levels.expected(model, other) == pytest.approx([2.0, 1.0], abs=1e-3)
    # two events that always coincide cannot be told apart: they share their joint lift
    together = rows.assign(events=np.where(np.repeat(game, 2), "x;y", ""))
    shared = levels.expectation_model(together, np.where(together["events"] == "x;y", 0.6, 0.0) + 1.0)
    assert shared["lifts"]["a"] == pytest.approx({"x": 0.3, "y": 0.3}, abs=1e-6)
    assert levels.expected(shared, together) == pytest.approx(np.where(together["events"] == "x;y", 1.6, 1.0))


def test_a_lift_noise_explains_is_dropped_and_a_kept_lift_says_how_few_weeks_it_was_seen_in():
    # two series; every week's level wanders by +-0.05 (alternating); a holiday in week 10 lifts both
    # by 0.5, a "parade" in week 21 by nothing: its fitted lift is that week's -0.05, one standard
    # error of a lift seen once (the weekly noise, 0.05) from 0, under the 2 that keep a lift
    weeks = np.arange(52)
    events = np.where(weeks == 10, "holiday", np.where(weeks == 21, "parade", ""))
    rows = pd.DataFrame({"week_start": np.repeat(WEEKS[:52], 2), "week_of_year": 1, "category": "a",
                         "store_id": "s", "product_id": np.tile(["p1", "p2"], 52), "events": np.repeat(events, 2)})
    wander = np.repeat(np.where(weeks % 2 == 0, 0.05, -0.05), 2)
    truth = np.where(rows["product_id"] == "p1", 2.0, 1.0) + wander + 0.5 * np.repeat(weeks == 10, 2)
    model = levels.expectation_model(rows, truth)
    assert set(model["lifts"]["a"]) == {"holiday"}
    assert model["lifts"]["a"]["holiday"] == pytest.approx(0.5 + 0.05, abs=0.01)  # with week 10's own +0.05
    assert model["lift_weeks"] == {"a": {"holiday": 1}}
    # the parade's week is judged against the level alone: its noise is the week's own
    parade = rows[rows["events"] == "parade"]
    assert levels.expected(model, parade) == pytest.approx([2.0, 1.0], abs=0.01)


def test_what_a_week_expectation_carries_from_lifts_seen_in_few_weeks_by_hand():
    model = {"lift_weeks": {"a": {"holiday": 1}, "b": {"holiday": 2}, "c": {"promotion": 5}}}
    week = pd.DataFrame({"category": ["a", "a", "b", "b", "c", "c"],
                         "events": ["holiday", "holiday", "holiday", "holiday", "", "promotion"]})
    spreads = np.ones(6)
    # holiday: shares 2/6 (a, seen once) and 2/6 (b, twice): (2/6 + 2/6) x (2/6 / 1 + 2/6 / 2);
    # promotion: 1/6 x (1/6) / 5
    by_hand = (4 / 6) * (2 / 6 + 1 / 6) + (1 / 6) ** 2 / 5
    assert levels.lift_uncertainty(model, week, spreads) == pytest.approx(by_hand)
    # a steadier series weighs more (1 / spread^2): a's rows now hold 8 of 11 parts of the weight
    heavy = np.array([0.5, 0.5, 1, 1, 1, 1])
    a, b, c = 8 / 12, 2 / 12, 1 / 12
    assert levels.lift_uncertainty(model, week, heavy) == pytest.approx((a + b) * (a + b / 2) + c ** 2 / 5)
    assert levels.lift_uncertainty({"lift_weeks": {}}, week, spreads) == 0.0


def test_a_holiday_the_reference_saw_once_is_judged_at_a_wider_scale_stored_or_not():
    """Its lift holds the reference week's noise too: the week's 1-week scale is sqrt(2) of the
    usual, a 2-week window's scale^2 gains the 1-week scale^2 / 4; the next week's windows still
    hold it, as the partition stored it."""
    reference_rows = _panel(WEEKS[:52])
    holiday = reference_rows["week_start"] == WEEKS[10]
    reference_rows.loc[holiday, "events"] = "holiday"
    reference_rows.loc[holiday, "target"] *= 2
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), None)
    assert reference["levels"]["demand"]["lift_weeks"] == {c: {"holiday": 1} for c in ("a", "b", "c")}
    rows = _panel([WEEKS[52]], seed=5).assign(events="holiday")
    rows["target"] *= 2
    week = WEEKS[52].strftime("%Y-%m-%d")
    found = assess_week(reference, rows, week, rows["target"].to_numpy(), rows["target"].to_numpy())
    demand = found["signals"]["demand"]
    assert demand["uncertainty"] == pytest.approx(1.0)  # every category lifted, each lift seen once
    series = levels.Series(reference["levels"]["calibration"]["demand"], {week: demand["value"]})
    one, two = levels.baseline(series, week, 1).scale, levels.baseline(series, week, 2).scale
    assert demand["windows"][1]["scale"] == pytest.approx(np.sqrt(2) * one)
    assert demand["windows"][2]["scale"] == pytest.approx(np.sqrt(two ** 2 + one ** 2 / 4))
    # the week after, the 2-week window still holds the holiday: from memory and from the stored table
    after = _panel([WEEKS[53]], seed=6)
    later = WEEKS[53].strftime("%Y-%m-%d")
    for history in ([found], [from_table(to_table(found, "r", "1"))]):
        next_week = assess_week(reference, after, later, after["target"].to_numpy(), after["target"].to_numpy(),
                                history=history)["signals"]["demand"]
        assert "uncertainty" not in next_week
        served = levels.Series(reference["levels"]["calibration"]["demand"],
                               {week: demand["value"], later: next_week["value"]})
        one, two = levels.baseline(served, later, 1).scale, levels.baseline(served, later, 2).scale
        assert next_week["windows"][1]["scale"] == pytest.approx(one)
        assert next_week["windows"][2]["scale"] == pytest.approx(np.sqrt(two ** 2 + one ** 2 / 4))


def _series(values: list[float], start: int = 0) -> dict[str, float]:
    return {WEEKS[start + i].strftime("%Y-%m-%d"): v for i, v in enumerate(values)}


def test_a_week_is_judged_against_the_weeks_that_end_four_before_it():
    calibration = _series([0.0, 1.0] * 13)  # 26 weeks alternating 0 and 1
    series = levels.Series(calibration, {})
    week = WEEKS[26].strftime("%Y-%m-%d")
    found = levels.baseline(series, week)
    # the 13 weeks ending 4 before: weeks 10..22, which hold seven 0s and six 1s
    assert found.center == pytest.approx(6 / 13) and found.weeks == 13
    # the scale: the root mean square of every earlier week's departure from its own baseline (weeks
    # up to 22, each with at least two baseline weeks: weeks 5.. 22)
    departures = []
    for t in range(5, 23):
        base = [calibration[WEEKS[i].strftime("%Y-%m-%d")] for i in range(max(0, t - 16), t - 3)]
        departures.append(calibration[WEEKS[t].strftime("%Y-%m-%d")] - np.mean(base))
    assert found.residuals == len(departures) == 18
    assert found.scale == pytest.approx(np.sqrt(np.mean(np.square(departures))))
    # a two-week window: the mean of the week and the one before, against the same baseline
    two = levels.baseline(series, week, weeks=2)
    assert two.center == pytest.approx(found.center) and two.scale < found.scale  # 0 and 1 average out


def test_a_baseline_is_the_quarter_ending_four_weeks_before_or_the_latest_weeks_before_a_gap():
    """``levels.centers``, the one rule behind a region's statistic's baseline and each store's,
    by hand: weeks 0..39, column a every week, b missing weeks 20..35 (so its window before week 40,
    weeks 24..36, holds only week 36: its latest 13 weeks before then instead), c only weeks 0 and
    39 (one week before 37: no baseline)."""
    weeks = np.arange(40)
    values = np.column_stack([weeks * 1.0, np.where((weeks >= 20) & (weeks <= 35), np.nan, weeks * 1.0),
                              np.where(np.isin(weeks, [0, 39]), 5.0, np.nan)])
    usable = np.ones(40, dtype=bool)
    count, mean = levels.centers(weeks, values, usable, 40)
    assert count[0] == 13 and mean[0] == pytest.approx(np.mean(np.arange(24, 37)))  # weeks 24..36
    assert count[1] == 13 and mean[1] == pytest.approx(np.mean([*range(8, 20), 36]))  # its latest 13, not 7..19
    assert count[2] == 1  # callers need 2
    # per store and week, as the stores' spread reads it: only where 2 weeks or more stand behind it
    base = levels._store_baselines(values, weeks, usable)
    assert base[39, 0] == pytest.approx(np.mean(np.arange(23, 36))) and np.isnan(base[:, 2]).all()
    assert np.isnan(base[:5, 0]).all() and base[5, 0] == pytest.approx(0.5)  # weeks 0 and 1 behind week 5
    # weeks left out (a change still flagged) count in no baseline: a's window loses 30..36
    usable[30:] = False
    count, mean = levels.centers(weeks, values, usable, 40)
    assert count[0] == 6 and mean[0] == pytest.approx(np.mean(np.arange(24, 30)))
    assert count[1] == 13 and mean[1] == pytest.approx(13.0)  # weeks 7..19
    # a region's statistic, one series: the same rule
    labels = {WEEKS[i].strftime("%Y-%m-%d"): float(i) for i in range(40) if not 20 <= i <= 35}
    found = levels.baseline(levels.Series(labels, {}), WEEKS[40].strftime("%Y-%m-%d"))
    assert found.center == pytest.approx(np.mean([*range(8, 20), 36])) and found.weeks == 13


def test_limits_follow_the_false_alarm_rate_and_widen_with_few_calibration_weeks():
    limits = MonitorLimits(false_alarm=0.002)
    assert limits.z_limit(200) == pytest.approx(scipy_stats.norm.ppf(1 - 0.001))
    assert limits.z_limit(10) == pytest.approx(scipy_stats.t.ppf(1 - 0.001, df=9))
    assert limits.z_limit(10) > limits.z_limit(40) > limits.z_limit(200)
    # three windows share the rate
    assert limits.z_limit(200, tests=3) == pytest.approx(scipy_stats.norm.ppf(1 - 0.001 / 3))


def _panel(weeks, series: int = 60, level: float = 1.0, seed: int = 0, weather: float = 0.0) -> pd.DataFrame:
    """Weekly demand of ``series`` store x product series, each at its own size (1 to 1,000 a
    week) times ``level``, Poisson around it."""
    rng = np.random.default_rng(seed)
    size = np.exp(np.linspace(0, np.log(1000), series))
    frames = []
    for week in weeks:
        frames.append(pd.DataFrame({
            "week_start": week, "week_of_year": int(week.isocalendar().week),
            "store_id": [f"s{i % 6}" for i in range(series)], "product_id": [f"p{i}" for i in range(series)],
            "category": ["a", "b", "c"] * (series // 3), "events": "",
            "target": rng.poisson(size * level).astype(float),
            "temp_max_c": rng.normal(15 + weather, 1, series).round(1)}))
    frame = pd.concat(frames, ignore_index=True)
    frame["lag_1"] = frame["target"]
    return frame


def test_a_panel_level_change_moves_the_demand_signal_by_its_log_and_nothing_else():
    reference_rows = _panel(WEEKS[:52])
    out_of_sample = reference_rows[reference_rows["week_start"] >= WEEKS[39]].assign(
        actual=lambda f: f["target"], forecast=lambda f: f["target"].rolling(3, min_periods=1).mean())
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), out_of_sample)
    # the levels of every series, no rows: a few kB, whatever the reference's size
    assert len(reference["levels"]["demand"]["series"]["key"]) == 60
    history, flagged = [], {}
    for i, week in enumerate(WEEKS[52:64]):
        rows = _panel([week], level=1.6 if i >= 8 else 1.0, seed=100 + i)
        label = week.strftime("%Y-%m-%d")
        forecasts = rows["target"].to_numpy() / (1.6 if i >= 8 else 1.0)  # forecasts that missed the change
        found = assess_week(reference, rows, label, forecasts, rows["target"].to_numpy(), history=history)
        history.append(found)
        flagged[label] = found["signals"]["demand"]["flagged"]
        if i == 8:
            # the series' log ratios moved by log 1.6 (Poisson noise aside)
            assert found["signals"]["demand"]["change"] == pytest.approx(np.log(1.6), abs=0.05)
            assert f"above its reference level since {label}" in found["reasons"][0]
        if i == 11:  # still flagged three weeks later: it says since when, not just this week
            onset = WEEKS[60].strftime("%Y-%m-%d")
            assert found["signals"]["demand"]["since"] == onset
            assert f"above its reference level since {onset}" in found["reasons"][0]
    assert [flagged[w.strftime("%Y-%m-%d")] for w in WEEKS[52:60]] == [False] * 8
    assert all(flagged[w.strftime("%Y-%m-%d")] for w in WEEKS[60:64])


def test_a_fall_then_a_rise_are_two_changes_each_since_its_own_week_stored_or_not():
    reference_rows = _panel(WEEKS[:52])
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), None)
    in_memory, stored, found = [], [], {}
    levels_by_week = [1.0] * 6 + [0.5] * 3 + [2.0] * 3
    for i, (week, level) in enumerate(zip(WEEKS[52:64], levels_by_week)):
        rows = _panel([week], level=level, seed=300 + i)
        label = week.strftime("%Y-%m-%d")
        for history in (in_memory, stored):
            assessment = assess_week(reference, rows, label, rows["target"].to_numpy(), rows["target"].to_numpy(),
                                     history=history)
            # the sensors' and the next run's view: the assessment as its partition stores it
            history.append(assessment if history is in_memory else from_table(to_table(assessment, "r", "1")))
            found.setdefault(label, []).append(assessment["signals"]["demand"])
    fall, rise = WEEKS[58].strftime("%Y-%m-%d"), WEEKS[61].strftime("%Y-%m-%d")
    for memory, table in (found[WEEKS[i].strftime("%Y-%m-%d")] for i in range(58, 64)):
        assert memory["flagged"] and table["flagged"]
        assert memory["since"] == table["since"]
    assert [found[WEEKS[i].strftime("%Y-%m-%d")][0]["since"] for i in range(58, 64)] == [fall] * 3 + [rise] * 3


def test_the_forecast_signal_is_calibrated_on_the_weeks_the_model_forecast_unseen():
    """Fitted values of the reference year track it closely; the weeks forecast unseen (here 20%
    high, a model's ordinary miss) calibrate the forecast signal in their place: by hand, the
    robust level of each week's log(1 + forecast) - expected."""
    rows = _panel(WEEKS[:52])
    fitted = rows["target"].to_numpy()
    unseen = rows[rows["week_start"] >= WEEKS[39]].assign(actual=lambda f: f["target"],
                                                           forecast=lambda f: f["target"] * 1.2)
    reference = levels.build_level_reference(rows, fitted, unseen)
    calibration = reference["calibration"]["forecast"]
    assert len(calibration) == 52
    for week in (WEEKS[0], WEEKS[38]):  # fitted weeks: the fitted values against their own expectation
        part = rows[rows["week_start"] == week]
        by_hand = levels.robust_level(np.log1p(part["target"]) - levels.expected(reference["forecast"], part),
                                      levels.spreads_of(reference["forecast"], part))
        assert calibration[week.strftime("%Y-%m-%d")] == pytest.approx(by_hand, abs=1e-6)
    for week in (WEEKS[39], WEEKS[51]):  # unseen weeks: the unseen forecasts in their place
        part = unseen[unseen["week_start"] == week]
        by_hand = levels.robust_level(np.log1p(part["forecast"]) - levels.expected(reference["forecast"], part),
                                      levels.spreads_of(reference["forecast"], part))
        assert calibration[week.strftime("%Y-%m-%d")] == pytest.approx(by_hand, abs=1e-6)
        assert calibration[week.strftime("%Y-%m-%d")] > 0.1  # about log 1.2 above the fitted values
    # only they set the signal's scale; the fitted weeks are their baselines
    assert reference["unseen_forecast_weeks"] == [w.strftime("%Y-%m-%d") for w in WEEKS[39:52]]


def test_the_forecasts_are_scaled_at_least_as_widely_as_demand_wanders():
    """A model's forecasts follow the demand its lags give it: however steady its few unseen weeks
    were, the forecast signal's scale is at least demand's, per window, over the reference year."""
    rows = _panel(WEEKS[:52])
    reference = build_reference(rows, rows["target"].to_numpy(), None)
    calibration = reference["levels"]["calibration"]
    calibration["forecast"] = {w: 0.001 * (-1) ** i for i, w in enumerate(sorted(calibration["forecast"]))}
    week = WEEKS[52].strftime("%Y-%m-%d")
    least = demand_scales(calibration["demand"], week, (2, 4))
    for weeks in (2, 4):  # by hand: demand's departures from its baselines, as any statistic's
        assert least[weeks] == levels.baseline(levels.Series(calibration["demand"], {}), week, weeks).scale
        assert least[weeks] > 0.002  # Poisson weeks wander far more than the forecasts' 0.001
    part = _panel([WEEKS[52]], seed=7)
    found = assess_week(reference, part, week, part["target"].to_numpy() * 1.1)["signals"]["forecast"]
    for weeks, window in found["windows"].items():
        assert window["scale"] == pytest.approx(least[weeks])
        assert window["z"] == pytest.approx((window["mean"] - window["center"]) / least[weeks])


def test_a_scale_can_be_set_by_some_calibration_weeks_and_the_weeks_served():
    # 30 weeks alternating 0 and 1, then 10 weeks at 0.5: scaled by those 10 and two served weeks,
    # the departures are the weeks' distances from their baselines, by hand
    calibration = _series([0.0, 1.0] * 15 + [0.5] * 10)
    served = _series([0.5, 0.7], start=40)
    scaled = frozenset(list(calibration)[30:])
    series = levels.Series(calibration, served, scaled=scaled)
    week = WEEKS[46].strftime("%Y-%m-%d")
    found = levels.baseline(series, week)
    values = [*calibration.values(), *served.values()]
    # weeks 30..41 (10 calibration weeks and the 2 served), each against the 13 weeks ending 4 before it
    departures = [values[t] - np.mean(values[max(0, t - 16):t - 3]) for t in range(30, 42)]
    assert found.residuals == len(departures) == 12
    assert found.scale == pytest.approx(np.sqrt(np.mean(np.square(departures))))
    everything = levels.baseline(levels.Series(calibration, served), week)
    assert everything.residuals == 37 and everything.scale > found.scale  # weeks 5..41: the alternating widen it
    # two chosen weeks and none served give fewer than MIN_WEEKS departures: every week sets it
    few = levels.Series(calibration, {}, scaled=frozenset(list(calibration)[38:]))
    later = WEEKS[44].strftime("%Y-%m-%d")
    assert levels.baseline(few, later) == levels.baseline(levels.Series(calibration, {}), later)


def test_a_warm_weather_feed_is_named_by_the_weather_signal():
    reference_rows = _panel(WEEKS[:52])
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), None)
    history = []
    for i, week in enumerate(WEEKS[52:60]):
        rows = _panel([week], seed=200 + i, weather=5.0 if i >= 4 else 0.0)
        found = assess_week(reference, rows, week.strftime("%Y-%m-%d"), rows["target"].to_numpy(), history=history)
        history.append(found)
    assert not any(h["flagged"] for h in history[:4])
    assert history[5]["signals"]["weather:temp_max_c"]["flagged"]  # the mean of its 2 weeks
    assert "weather:temp_max_c +5" in history[5]["reasons"][0] or "weather:temp_max_c +4" in history[5]["reasons"][0]
    assert not history[5]["signals"]["forecast"]["flagged"]


def test_a_new_product_line_and_a_delisting_are_named_by_the_mix():
    reference_rows = _panel(WEEKS[:52])
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), None)
    week = WEEKS[52]
    rows = _panel([week], seed=5)
    same = assess_week(reference, rows, week.strftime("%Y-%m-%d"), rows["target"].to_numpy())
    assert not same["signals"]["mix"]["flagged"]
    delisted = rows[~rows["product_id"].isin([f"p{i}" for i in range(20)])]
    found = assess_week(reference, delisted, week.strftime("%Y-%m-%d"), delisted["target"].to_numpy())
    assert found["signals"]["mix"]["parts"]["gone"]["value"] == pytest.approx(20 / 60)
    assert found["signals"]["mix"]["flagged"]
    assert found["reasons"][0].startswith("mix: 0% of this week's series are new")
    launched = pd.concat([rows, rows.head(30).assign(product_id=lambda f: f["product_id"] + "_new")])
    found = assess_week(reference, launched, week.strftime("%Y-%m-%d"), launched["target"].to_numpy())
    assert found["signals"]["mix"]["parts"]["new"]["value"] == pytest.approx(30 / 90)
    assert found["signals"]["mix"]["flagged"]


def test_a_week_with_few_series_or_an_old_reference_says_so_and_never_flags():
    reference_rows = _panel(WEEKS[:52])
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), None)
    rows = _panel([WEEKS[52]], seed=3).head(5)
    found = assess_week(reference, rows, WEEKS[52].strftime("%Y-%m-%d"), rows["target"].to_numpy())
    assert not found["flagged"] and "too few to judge" in found["status"]
    old = assess_week({"version": 1}, _panel([WEEKS[52]]), WEEKS[52].strftime("%Y-%m-%d"))
    assert not old["flagged"] and "retrain it" in old["status"]
    # the error signal has no out-of-sample weeks to calibrate on: measured, not judged
    rows = _panel([WEEKS[52]], seed=4)
    found = assess_week(reference, rows, WEEKS[52].strftime("%Y-%m-%d"), rows["target"].to_numpy(),
                        rows["target"].to_numpy())
    assert found["signals"]["error"]["status"] == "too few calibration weeks" and not found["flagged"]


def test_a_closed_store_is_named_and_left_out_of_demand_and_error_never_flagged():
    reference_rows = _panel(WEEKS[:52])
    out_of_sample = reference_rows[reference_rows["week_start"] >= WEEKS[39]].assign(
        actual=lambda f: f["target"], forecast=lambda f: f["target"])
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), out_of_sample)
    usual = reference["levels"]["store_units"]
    # a store's usual week: the mean over the weeks it sold anything, all its products together
    s0 = reference_rows[reference_rows["store_id"] == "s0"].groupby("week_start")["target"].sum()
    assert usual["s0"] == pytest.approx(s0[s0 > 0].mean(), abs=1e-3)
    rows = _panel([WEEKS[52]], seed=8)
    week = WEEKS[52].strftime("%Y-%m-%d")
    actual = rows["target"].to_numpy().copy()
    actual[(rows["store_id"] == "s2").to_numpy()] = 0  # s2 sold nothing at all
    found = assess_week(reference, rows, week, rows["target"].to_numpy(), actual)
    stores = found["signals"]["stores"]
    assert stores["closed"] == ["s2"] and stores["value"] == pytest.approx(1 / 6) and not stores["flagged"]
    assert "1 of 6 stores sold nothing this week (s2)" in stores["note"]
    # the planner's bias still counts it: its forecasts went to its shelves
    forecast = rows["target"].to_numpy()
    assert found["bias"] == pytest.approx(forecast.sum() / actual.sum() - 1)
    # demand and bias as if s2 had not been in the week at all
    open_rows = (rows["store_id"] != "s2").to_numpy()
    alone = levels.week_statistics(reference["levels"], rows[open_rows].reset_index(drop=True),
                                   rows["target"].to_numpy()[open_rows], actual[open_rows])
    assert found["signals"]["demand"]["value"] == pytest.approx(alone["demand"])
    assert found["signals"]["error"]["value"] == pytest.approx(alone["error"])
    assert not found["flagged"]
    # a store that usually sells less than CLOSED_MIN_UNITS a week and sold nothing is a quiet week
    tiny = {**reference["levels"], "store_units": {**usual, "s2": levels.CLOSED_MIN_UNITS - 1}}
    assert levels.week_statistics(tiny, rows, rows["target"].to_numpy(), actual)["closed_stores"] == []
    # stored and read back, it is still a note for a person, not a cause to retrain
    back = from_table(to_table(found, "north", "demand-forecast-north/3"))
    assert not back["flagged"] and "s2" in back["signals"]["stores"]["note"]
    assert [a["kind"] for a in signal_alerts("north", week, found)] == ["closed_stores"]
    assert [a["kind"] for a in stored_alerts("north", week, back)] == ["closed_stores"]
    assert rules.level_cause([back]) is None and summary(found)["closed_stores"] == ["s2"]
    assert summary(back)["signals"] == []
    # and `mlops-assets run`'s replay table shows it beside the week's (empty) verdict
    from mlops_assets.app.execution import RunSummary
    from mlops_assets.app.report import replay_table

    ahead = assess_week(reference, rows, week, rows["target"].to_numpy())
    replay = {"drift": {week: summary(ahead)}, "levels": {week: summary(found)}, "retrain_requests": [],
              "accuracy": {week: {"mape": 0.2, "baseline_mape": 0.3, "degradation": 1.0}}}
    text = replay_table(RunSummary(landing=Path("."), first_week=week, last_week=week, replay={"north": replay}))
    assert f"north {week} - (closed: s2)" in text and "north: no retraining needed" in text


def test_a_closure_in_the_reference_year_is_left_out_of_its_fit_and_calibration():
    # s2 closed for three weeks of the fit, s4 for one week the model forecast unseen
    rows = _panel(WEEKS[:52])
    shut = (((rows["store_id"] == "s2") & rows["week_start"].isin(WEEKS[10:13]))
            | ((rows["store_id"] == "s4") & (rows["week_start"] == WEEKS[45])))
    rows.loc[shut, "target"] = 0.0

    def unseen(frame):
        return frame[frame["week_start"] >= WEEKS[39]].assign(actual=lambda f: f["target"],
                                                             forecast=lambda f: f["target"] + 1)

    found = build_reference(rows, rows["target"].to_numpy(), unseen(rows))["levels"]
    # the same reference as one whose data never held those store-weeks
    kept = rows[~shut].reset_index(drop=True)
    alone = build_reference(kept, kept["target"].to_numpy(), unseen(kept))["levels"]
    assert found["store_units"] == alone["store_units"]
    assert dict(zip(found["demand"]["series"]["key"], found["demand"]["series"]["level"])) == pytest.approx(
        dict(zip(alone["demand"]["series"]["key"], alone["demand"]["series"]["level"])))
    for name in ("demand", "error"):
        assert found["calibration"][name] == pytest.approx(alone["calibration"][name])
    # counted as sales of 0, the closures would have lowered s2's levels and its weeks' statistics
    week = WEEKS[11].strftime("%Y-%m-%d")
    counted = levels.weekly(rows, levels.log_units(rows["target"]) - levels.expected(found["demand"], rows),
                            levels.spreads_of(found["demand"], rows))
    assert counted[week] < found["calibration"]["demand"][week] - 0.05


def test_a_week_of_the_year_a_short_reference_never_held_is_not_judged_and_says_why():
    # a region with 30 weeks of history: its reference year runs from January to July
    reference_rows = _panel(WEEKS[:30])
    out_of_sample = reference_rows[reference_rows["week_start"] >= WEEKS[20]].assign(
        actual=lambda f: f["target"], forecast=lambda f: f["target"])
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), out_of_sample)
    autumn, spring = WEEKS[40], WEEKS[56]  # October 2025: not in it; late January 2026: in it
    for week, held in ((autumn, False), (spring, True)):
        rows = _panel([week], level=2.0, seed=9)  # demand doubled: a change if it can be judged
        label = week.strftime("%Y-%m-%d")
        found = assess_week(reference, rows, label, rows["target"].to_numpy() / 2, rows["target"].to_numpy())
        demand = found["signals"]["demand"]
        ahead = assess_week(reference, rows, label, rows["target"].to_numpy())  # when the week is forecast
        if held:
            assert demand["flagged"] and "unseen_time_of_year" not in found
            assert not ahead["signals"]["forecast"]["status"].startswith("not judged")
            assert "unseen_time_of_year" not in ahead
        else:
            assert not demand["flagged"] and demand["value"] > 0.5  # measured (log 2 less Poisson), not judged
            assert demand["status"].startswith("not judged: the reference year holds 30 weeks (2025-01-06 to ")
            assert found["signals"]["error"]["status"] == "measured"  # the bias needs no season
            assert summary(found)["not_judged"] == found["unseen_time_of_year"]
            stored = to_table(found, "north", "v1")
            assert stored.loc[stored["signal"] == "demand", "detail"].iloc[0] == demand["status"]
            assert ahead["signals"]["forecast"]["status"] == demand["status"]
    # week after week through storage: the weeks not judged keep their values, so the first week
    # judged after them has all its windows, against a baseline of the weeks just before it
    stages = {"ahead": [], "after": []}
    for i in range(30, 57):
        rows = _panel([WEEKS[i]], seed=200 + i)
        label = WEEKS[i].strftime("%Y-%m-%d")
        for stage, actuals in (("ahead", None), ("after", rows["target"].to_numpy())):
            found = assess_week(reference, rows, label, rows["target"].to_numpy(), actuals, history=stages[stage])
            stages[stage].append(from_table(to_table(found, "north", "v1")))
    assert set(found["signals"]["demand"]["windows"]) == {1, 2, 4} and not found["flagged"]
    assert found["signals"]["demand"]["windows"][1]["baseline_weeks"] == levels.BASELINE
    assert set(assess_week(reference, rows, label, rows["target"].to_numpy(), history=stages["ahead"][:-1])[
        "signals"]["forecast"]["windows"]) == {2, 4}
    # a reference of a whole year holds every week of the year
    full = build_reference(_panel(WEEKS[:52]), _panel(WEEKS[:52])["target"].to_numpy(), None)
    assert unseen_time_of_year(full, WEEKS[60].strftime("%Y-%m-%d")) is None


def test_an_assessment_survives_storage():
    reference_rows = _panel(WEEKS[:52])
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), None)
    rows = _panel([WEEKS[52]], level=2.0, seed=6)
    found = assess_week(reference, rows, WEEKS[52].strftime("%Y-%m-%d"), rows["target"].to_numpy(),
                        rows["target"].to_numpy())
    table = to_table(found, "north", "demand-forecast-north/3")
    # the week and the mean of the 2 and 4 weeks ending with it (the weeks before are the reference's last)
    assert set(table["signal"]) == {"demand", "error", "spread"}
    assert set(table.loc[table["signal"] == "demand", "window"]) == {1, 2, 4}
    back = from_table(table)
    # each store's departure from the region survives, for later weeks' baselines
    assert back["signals"]["spread"]["departures"] == pytest.approx(found["signals"]["spread"]["departures"])
    assert len(back["signals"]["spread"]["departures"]) == 6
    assert not back["signals"]["spread"]["flagged"]  # every store moved together: no store moved apart
    assert back["signals"]["demand"]["value"] == pytest.approx(found["signals"]["demand"]["value"])
    assert back["flagged"] and back["reasons"] == found["reasons"] and back["model_version"].endswith("/3")
    assert summary(found)["signals"] == ["demand"] and summary(found)["demand"]["change"] > 0.8


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


def test_level_drift_stale_and_code_causes():
    calm = {"week": "2026-01-05", "flagged": False, "signals": {"demand": {"flagged": False}}, "reasons": []}
    moved = {"week": "2026-01-12", "flagged": True, "signals": {"demand": {"flagged": True}},
             "reasons": ["demand 58% above its reference level since 2026-01-12 (z +6.0, limit 3.3)"]}
    assert rules.level_cause([calm]) is None
    cause = rules.level_cause([calm, moved])
    assert (cause["cause"], cause["week"], cause["signals"]) == ("level_shift", "2026-01-12", ["demand"])
    assert "58% above" in cause["detail"]
    assert rules.level_cause([moved, {**calm, "week": "2026-01-19"}]) is None  # the latest week decides
    weather = {"week": "2026-01-12", "flagged": True, "signals": {"weather:temp_max_c": {"flagged": True}},
               "reasons": ["weather:temp_max_c +5.1 against its recent weeks (mean of 2 weeks, z +5.0, limit 3.5)"]}
    assert rules.drift_cause([weather])["detail"].startswith("weather:temp_max_c +5.1")
    assert rules.stale_cause("2026-01-05", "2026-03-09", rules.RetrainRules()) is not None  # 63 days
    assert rules.stale_cause("2026-01-05", "2026-03-02", rules.RetrainRules()) is None  # 56 days
    assert rules.code_cause("abc", "abc", "2026-01-05") is None
    assert rules.code_cause("abc", "def", "2026-01-05")["cause"] == "code_version"


def test_a_cause_only_new_weeks_can_fix_waits_for_them_so_retraining_never_loops():
    """A champion trained on every observed week, retrained for drift, its age or its accuracy,
    would fit the same model, see the same evidence and retrain again: those causes wait for a
    week it has not seen. New code is acted on at once."""
    stale = rules.stale_cause("2026-01-05", "2026-03-09", rules.RetrainRules())
    drift = {"cause": "drift", "week": "2026-03-09", "value": None, "detail": "forecast -13%"}
    code = rules.code_cause("abc", "def", "2026-03-09")
    # the champion saw every week observed so far (its data ends at the region's last observed week)
    act, wait = rules.act_or_wait([stale, drift, code], "2026-03-02", "2026-03-02")
    assert (act, wait) == ([code], [stale, drift])
    # a newer week has landed: every cause acts
    assert rules.act_or_wait([stale, drift, code], "2026-03-02", "2026-03-09") == ([stale, drift, code], [])
    # nothing known about the region's weeks (no champion, nothing conditioned): nothing is held back
    assert rules.act_or_wait([drift], None, "2026-03-09") == ([drift], [])
    assert rules.act_or_wait([drift], "2026-03-02", None) == ([drift], [])
    # the region's weeks end before the champion's (a storage rebuilt, the registry kept): wait too
    assert rules.act_or_wait([drift], "2026-03-02", "2026-02-23") == ([], [drift])
    assert rules.primary([{"cause": "stale"}, {"cause": "drift"}, {"cause": "level_shift"}]) == "level_shift"


def test_a_failing_webhook_is_reported_without_its_url_and_never_raises():
    from mlops_assets.resources.alerting import post_alerts

    alert = [{"region": "north", "kind": "level_shift"}]
    for url in ("hooks.example.com/T0/SECRET", "http://127.0.0.1:1/hook?token=SECRET", "http://bad host/SECRET"):
        reason = post_alerts(url, alert, timeout=2)
        assert reason and "SECRET" not in reason and "127.0.0.1" not in reason, reason
    assert post_alerts("", alert) is None and post_alerts("http://127.0.0.1:1/", []) is None


def _spread_by_loops(departures: dict, calibration: set, excluded: frozenset = frozenset()) -> dict:
    """``levels.store_spread``'s values, written out as plain loops over weeks and stores."""
    weeks = sorted(departures)
    number = {w: (pd.Timestamp(w) - pd.Timestamp("1970-01-01")).days // 7 for w in weeks}
    stores = sorted({s for d in departures.values() for s in d})
    change = {}
    for w in weeks:
        for s in stores:
            usable = [departures[v][s] for v in weeks if v not in excluded and s in departures[v]
                      and number[v] <= number[w] - 4]
            before = [departures[v][s] for v in weeks if v not in excluded and s in departures[v]
                      and number[w] - 16 <= number[v] <= number[w] - 4]
            if len(before) < 2:  # too few in the window: the latest 13 before it
                before = usable[-13:]
            if s in departures[w] and len(before) >= 2:
                change[w, s] = departures[w][s] - sum(before) / len(before)
        week = [change[w, s] for s in stores if (w, s) in change]
        for s in stores:
            if (w, s) in change:
                change[w, s] -= float(np.median(week))
    scale = {}
    for s in stores:
        seen = [change[w, s] for w in weeks if w in calibration and (w, s) in change]
        if len(seen) >= 8:
            scale[s] = max((sum(c * c for c in seen) / len(seen)) ** 0.5, 0.01)
    out = {}
    for w in weeks:
        z = [change[w, s] / scale[s] for s in stores if (w, s) in change and s in scale]
        if len(z) >= 3:
            spread = 2 / (9 * len(z))
            out[w] = ((sum(v * v for v in z) / len(z)) ** (1 / 3) - (1 - spread)) / spread ** 0.5
    return out


def test_the_stores_spread_by_hand_and_by_loops():
    labels = [w.strftime("%Y-%m-%d") for w in WEEKS[:40]]
    # three stores, never apart in the reference: each store's scale is the least one, 0.01
    departures = {w: {"a": 0.0, "b": 0.0, "c": 0.0} for w in labels[:30]}
    departures[labels[30]] = {"a": 0.1, "b": -0.1, "c": 0.0}
    found = levels.store_spread(departures, set(labels[:30]))
    # z = 0.1 / 0.01 = 10, -10 and 0: m = (100 + 100 + 0) / 3, standardized for 3 stores (Wilson-Hilferty)
    assert found.values[labels[30]] == pytest.approx(((200 / 3) ** (1 / 3) - (1 - 2 / 27)) / (2 / 27) ** 0.5, abs=1e-5)
    assert found.values[labels[30]] == pytest.approx(11.496, abs=1e-3)
    assert found.z.loc[labels[30]].to_dict() == pytest.approx({"a": 10.0, "b": -10.0, "c": 0.0})
    assert found.changes.loc[labels[30]].to_dict() == pytest.approx({"a": 0.1, "b": -0.1, "c": 0.0})
    assert found.scale.to_dict() == pytest.approx({"a": 0.01, "b": 0.01, "c": 0.01})  # what z divides by
    # the stores' z and changes are each week's, whichever week is asked for
    assert found.z.loc[labels[29]].to_dict() == pytest.approx({"a": 0.0, "b": 0.0, "c": 0.0})
    # two stores alone say nothing about a spread
    assert labels[30] not in levels.store_spread({w: {"a": v["a"], "b": v["b"]} for w, v in departures.items()},
                                                 set(labels[:30])).values
    # noisy stores, one missing some weeks, one week left out of the baselines: the plain loops agree
    rng = np.random.default_rng(3)
    noisy = {w: {s: float(rng.normal(0, 0.1)) for s in "abcde" if not (s == "e" and i % 3 == 0)}
             for i, w in enumerate(labels)}
    for excluded in (frozenset(), frozenset({labels[33], labels[35]}), frozenset(labels[20:38])):
        found = levels.store_spread(noisy, set(labels[:30]), excluded)
        expected = _spread_by_loops(noisy, set(labels[:30]), excluded)
        assert found.values == pytest.approx(expected, abs=1e-5) and len(expected) >= 30


def test_store_departures_are_each_stores_level_less_the_regions():
    rows = pd.DataFrame({"week_start": pd.Timestamp("2026-01-05"), "store_id": [s for s in "abcd" for _ in range(4)],
                         "product_id": [f"p{i}" for i in range(16)]})
    values = np.array([0.2] * 4 + [0.0] * 4 + [-0.2] * 3 + [np.nan] + [0.0] * 4)  # one of c's series not counted
    found = levels.store_departures(rows, values, np.full(16, 1.0))
    # equal spreads, nothing clipped: plain means; the region's is (0.8 - 0.6) / 15
    region = 0.2 / 15
    assert found == {"2026-01-05": pytest.approx({"a": 0.2 - region, "b": -region, "c": -0.2 - region, "d": -region},
                                                 abs=1e-6)}
    # a store with fewer than MIN_STORE_SERIES counted series has no level of its own
    fewer = levels.store_departures(rows, np.where(np.isin(np.arange(16), [9, 10]), np.nan, values), np.full(16, 1.0))
    assert set(fewer["2026-01-05"]) == {"a", "b", "d"}


def test_some_stores_moving_apart_flag_the_spread_and_name_them():
    reference_rows = _panel(WEEKS[:52])
    reference = build_reference(reference_rows, reference_rows["target"].to_numpy(), None)
    history = []
    for i, week in enumerate(WEEKS[52:62]):
        label = week.strftime("%Y-%m-%d")
        rows = _panel([week], seed=300 + i)
        if i >= 6:  # two of the six stores sell 1.6x from the seventh week on; the others do not
            moved = rows["store_id"].isin(["s1", "s4"])
            rows.loc[moved, "target"] = _panel([week], level=1.6, seed=300 + i).loc[moved, "target"]
        found = assess_week(reference, rows, label, rows["target"].to_numpy(), rows["target"].to_numpy(),
                            history=history)
        history.append(from_table(to_table(found, "north", "v1")))
        spread = found["signals"]["spread"]
        assert spread["flagged"] == (i >= 6), (label, spread.get("z"), spread.get("limit"))
    assert spread["z"] > 0 and sorted(m["store"] for m in spread["moved"]) == ["s1", "s4"]
    # each against the other stores: their own +60%
    assert all(0.4 < levels.ratio(m["change"]) < 0.8 for m in spread["moved"])
    reason = describe("spread", spread, label)
    assert reason.startswith("stores apart: 2 of 6 stores moved away from the rest of the region (s")
    assert "since " + WEEKS[58].strftime("%Y-%m-%d") in reason
    # a level shift, the retrain rules' cause, and an alert that names the stores
    assert "spread" in rules.level_cause(history)["signals"]  # (this steady panel: demand too)
    alerts = [a for a in signal_alerts("north", label, found) if a["kind"] == "store_shift"]
    assert len(alerts) == 1 and "s1 +" in alerts[0]["message"] and "s4 +" in alerts[0]["message"]
    # the alerts table (and the health asset) read it back from the stored partition: the same message and severity
    [stored] = [a for a in stored_alerts("north", label, history[-1]) if a["kind"] == "store_shift"]
    assert (stored["severity"], stored["message"]) == (alerts[0]["severity"], alerts[0]["message"])


def test_a_level_check_that_passes_says_what_it_could_not_measure():
    from mlops_assets.assets.health import level_shift_description

    judged = {"windows": {1: {"z": 0.3}}, "flagged": False}
    old = {"value": None, "flagged": False, "status": "not measured: the model's reference has no stores' levels "
                                                      "(trained before them): retrain it"}
    few = {"value": None, "flagged": False, "status": "not measured: fewer than 3 stores with a baseline and a scale"}
    found = {"north|2026-01-05": {"flagged": False, "signals": {"demand": judged, "spread": old, "error": judged}},
             "south|2026-01-05": {"flagged": False, "signals": {"demand": judged, "spread": old, "error": judged}},
             "west|2026-01-05": {"flagged": False, "signals": {"demand": judged, "spread": few, "error": judged}},
             "east|2026-01-05": {"flagged": False, "signals": {}, "status": "only 4 series this week: too few to "
                                                                           "judge"}}
    text = level_shift_description(found)
    assert text.startswith("demand, stores apart and bias within their limits where measured; ")
    # each reason once, with its count; a week not assessed at all said once, not as three signals
    assert "; 1 of 4 week(s) not assessed: only 4 series this week: too few to judge" in text
    assert "; stores apart: " + old["status"] + " (2 of 4 week(s))" in text
    assert "; stores apart: " + few["status"] + " (1 of 4 week(s))" in text
    assert "demand:" not in text and "bias:" not in text
    # a week of the year the reference does not hold: demand not judged, said by its own note; the rest counted
    found["north|2026-01-05"] = {"flagged": False, "unseen_time_of_year": "week 1 not in the reference",
                                 "signals": {"demand": {"value": None, "flagged": False, "status": "not measured"},
                                             "spread": judged}}
    text = level_shift_description(found)
    assert "1 week(s) not judged" in text and "demand:" not in text and "; bias: not measured (1 of 4 week(s))" in text
    # all measured: nothing added; a flagged week: its reasons instead
    assert level_shift_description({"n|w": {"flagged": False, "signals": dict.fromkeys(("demand", "spread", "error"),
                                                                                        judged)}}).endswith("measured")
    assert level_shift_description({"n|w": {"flagged": True, "reasons": ["demand 58% above"], "signals": {}}}) == (
        "n|w: demand 58% above")
    assert level_shift_description({}) == "nothing assessed"


def test_on_realistic_demand_stores_moving_apart_are_found_and_named(loop_landing_template):
    """The loop's landing (closures, promotions nobody announced, outliers): three of north's eight
    stores sell twice as much from one week on. The stores' spread flags from that week or the next, names
    those three, and flags nothing before, nor in the same weeks left unchanged. The limits are the
    loop tests' (1 false alarm in 10,000 weeks: z 4.6), so no seed's noise decides it."""
    from mlops_assets.contract.validation import check_landing, require_clean
    from mlops_assets.ml.featurize import at_forecast_time, build_features
    from mlops_assets.monitoring.monitor import reference_rows
    from mlops_assets.offline import region_inputs

    landing = loop_landing_template
    inputs = region_inputs(landing, "north", checked=require_clean(check_landing(landing), landing))
    features = build_features(**inputs)
    weeks = sorted(features.loc[features["target"].notna(), "week_start"].dt.strftime("%Y-%m-%d").unique())
    monitored, as_of = weeks[-12:], weeks[-13]
    observed = at_forecast_time(features[features["target"].notna() & (features["week_start"] <= as_of)])
    rows = reference_rows(observed, as_of).reset_index(drop=True)
    reference = build_reference(rows, rows["target"].to_numpy(), None)
    limits = MonitorLimits(false_alarm=0.0001, level_false_alarm=0.0001)
    moved_stores = sorted(inputs["demand"]["store_id"].unique())[:3]

    def judged(demand: pd.DataFrame) -> dict[str, dict]:
        later = at_forecast_time(build_features(**{**inputs, "demand": demand}))
        history, out = [], {}
        for week in monitored:
            part = later[later["week_start"] == pd.Timestamp(week)].reset_index(drop=True)
            found = assess_week(reference, part, week, None, part["target"].to_numpy(float), limits, history)
            history.append(from_table(to_table(found, "north", "v1")))
            out[week] = found["signals"]["spread"]
        return out

    unchanged = judged(inputs["demand"])
    demand = inputs["demand"].copy()
    at = (demand["week_start"] >= pd.Timestamp(monitored[6])) & demand["store_id"].isin(moved_stores)
    demand.loc[at, "net_demand"] = demand.loc[at, "net_demand"] * 2
    changed = judged(demand)
    assert not any(s["flagged"] for s in unchanged.values()), {w: s.get("z") for w, s in unchanged.items()}
    assert not any(changed[w]["flagged"] for w in monitored[:6])
    first = next(w for w in monitored if changed[w]["flagged"])
    assert first in monitored[6:8], {w: s.get("z") for w, s in changed.items()}
    # the stores named as gone up (each week, those 3 of their own scales out): moved ones only, and
    # every one of them in the weeks flagged
    named = [{m["store"] for m in changed[w]["moved"] if m["change"] > 0} for w in monitored if changed[w]["flagged"]]
    assert named[0] and set().union(*named) == set(moved_stores), named


def test_a_lasting_change_in_some_stores_stays_flagged():
    """Three of eight stores 50% up for 40 weeks: every week flagged keeps out of the stores'
    baselines, so once their last 13 weeks are all flagged, each store is measured against the
    latest weeks before the change (not left without a baseline, then absorbed)."""
    rng = np.random.default_rng(5)
    labels = [w.strftime("%Y-%m-%d") for w in pd.date_range("2025-01-06", periods=92, freq="7D")]
    stores = [f"s{i}" for i in range(8)]
    departures = {w: {s: float(rng.normal(0, 0.05)) + (0.4 if i >= 52 and s in stores[:3] else 0.0)
                      for s in stores} for i, w in enumerate(labels)}
    reference = {w: departures[w] for w in labels[:52]}
    history, flags = [], []
    for week in labels[52:]:
        found = _spread(departures[week], reference, week, history, MonitorLimits())
        history.append({"week": week, "signals": {"spread": found}})
        flags.append(found["flagged"])
    assert all(flags[1:]), [i for i, f in enumerate(flags) if not f]
    assert sorted(m["store"] for m in found["moved"] if m["named"]) == stores[:3]
    assert describe("spread", found, labels[-1]).startswith(
        "stores apart: 3 of 8 stores moved away from the rest of the region (s")


def test_the_dashboard_draws_a_signal_judged_up_only_by_its_largest_window():
    """A window of the stores' spread far below its baseline is stores closer together than usual: no
    flag, so the dashboard's line and heat map show its highest window, while demand shows the
    window furthest either way."""
    from mlops_assets.dashboard.build import _closest

    rows = pd.DataFrame({"signal": ["spread", "spread", "demand", "demand"], "week": "2026-01-05",
                         "window": [2, 4, 1, 2], "z": [-4.0, 1.5, -4.0, 1.5], "limit": 3.0, "value": 0.0})
    found = _closest(rows)
    assert found[("spread", "2026-01-05")] == pytest.approx(0.5)
    assert found[("demand", "2026-01-05")] == pytest.approx(-4 / 3)

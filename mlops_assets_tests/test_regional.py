"""The regional signal (each region's demand against the other regions') as plain functions,
against values computed by hand."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.monitoring import regional
from mlops_assets.monitoring.alerts import signal_alerts
from mlops_assets.monitoring.monitor import MonitorLimits, from_table, summary, to_table

WEEKS = [w.strftime("%Y-%m-%d") for w in pd.date_range("2025-01-06", periods=70, freq="7D")]
SHARES = {"north": 0.6, "south": 0.5, "west": 0.8}  # how much of the chain's movement each region carries


def _chain(seed: int = 0, weeks: int = 62, shares: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Each region's demand statistic (log, against its reference level) over ``weeks`` weeks: its
    share of a movement the whole chain shares (a promotion, a holiday: 0.10 a week) and its own
    noise (0.02)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.10, weeks)
    return {r: dict(zip(WEEKS[:weeks], share * common + rng.normal(0, 0.02, weeks)))
            for r, share in (shares or SHARES).items()}


def _split(chain: dict[str, dict[str, float]]) -> tuple[dict, dict]:
    """(the reference year's 52 weeks, the 10 weeks served after it) of each region."""
    return ({r: {w: v[w] for w in WEEKS[:52]} for r, v in chain.items()},
            {r: {w: v[w] for w in WEEKS[52:62]} for r, v in chain.items()})


def _replay(calibrations: dict, served: dict, stored: bool = False) -> dict[str, dict[str, dict]]:
    """Every served week, in order (``regional.replay``), or with ``stored`` each region's history
    read back as its partitions store it (``monitor.from_table``): what the asset's next run reads."""
    if not stored:
        return regional.replay(served, calibrations)
    histories, out = {r: [] for r in served}, {r: {} for r in served}
    for week in WEEKS[52:62]:
        values = {r: v.get(week) for r, v in served.items()}
        for r, found in regional.assess_week(week, values, calibrations, histories).items():
            if found["signals"]:
                histories[r].append(from_table(to_table(found, r, "1")))
            out[r][week] = found
    return out


def test_the_coefficient_is_the_least_squares_slope_clipped_to_zero_and_one():
    common = {w: x for w, x in zip(WEEKS, [0.1, -0.2, 0.3, 0.0, -0.1])}
    assert regional.coefficient({w: 0.5 * x + 0.7 for w, x in common.items()}, common) == pytest.approx(0.5)
    assert regional.coefficient({w: 2.0 * x for w, x in common.items()}, common) == 1.0
    assert regional.coefficient({w: -x for w, x in common.items()}, common) == 0.0
    assert regional.coefficient(common, dict.fromkeys(common, 0.3)) == 0.0  # the others never moved
    # only the weeks both hold
    assert regional.coefficient({**{w: 0.5 * x for w, x in common.items()}, WEEKS[9]: 5.0}, common) == \
        pytest.approx(0.5)


def test_a_week_is_the_region_less_its_share_of_the_others_mean_by_hand():
    calibrations, served = _split(_chain())
    week = WEEKS[52]
    found = regional.assess_week(week, {r: v[week] for r, v in served.items()}, calibrations)
    others = ["north", "west"]
    mean = {w: np.mean([calibrations[o][w] for o in others]) for w in WEEKS[:52]}
    x = np.array([mean[w] for w in WEEKS[:52]])
    y = np.array([calibrations["south"][w] for w in WEEKS[:52]])
    beta = np.polyfit(x, y, 1)[0]
    assert found["south"]["coefficient"] == pytest.approx(beta)
    assert 0.6 < beta < 0.85  # south carries half the chain's movement, the others' mean 0.7 of it
    value = served["south"][week] - beta * np.mean([served[o][week] for o in others])
    assert found["south"]["signals"]["regional"]["value"] == pytest.approx(value)
    assert found["south"]["compared_with"] == others and found["south"]["status"] == "assessed"


def test_what_the_whole_chain_shares_is_taken_out_and_one_region_own_change_stands_out():
    # the regions carry the chain's movement alike (one that carries more of it than the others'
    # mean, coefficient clipped at 1, reads part of a chain-wide change as its own)
    calibrations, served = _split(_chain(seed=3, shares=dict.fromkeys(SHARES, 0.8)))
    unchanged = _replay(calibrations, served)
    assert not any(f["flagged"] for weeks in unchanged.values() for f in weeks.values())
    # every region 30% up from the fifth served week (a national promotion, a price cut): each
    # comparison moves by (1 - its coefficient) x log 1.3 only, and nothing is flagged
    everyone = {r: {w: x + (np.log(1.3) if w >= WEEKS[56] else 0.0) for w, x in v.items()} for r, v in served.items()}
    moved = _replay(calibrations, everyone)
    for r, weeks in moved.items():
        beta = weeks[WEEKS[56]]["coefficient"]
        for w in WEEKS[56:62]:
            assert weeks[w]["signals"]["regional"]["value"] - unchanged[r][w]["signals"]["regional"]["value"] == \
                pytest.approx((1 - beta) * np.log(1.3))
    assert not any(f["flagged"] for weeks in moved.values() for f in weeks.values())
    # south alone 30% up from the same week
    south = {**served, "south": everyone["south"]}
    for stored in (False, True):  # judged against its history in memory, or as the partitions store it
        found = _replay(calibrations, south, stored)
        flagged = {r: [w for w, f in weeks.items() if f["flagged"]] for r, weeks in found.items()}
        assert flagged["south"] == WEEKS[56:62], flagged
        # south pulls the others' comparisons down; that pull is added back before they are judged
        assert flagged["north"] == flagged["west"] == [], flagged
        reason = found["south"][WEEKS[58]]["reasons"][0]
        assert f"above the other regions' (each against its reference level) since {WEEKS[56]}" in reason
        assert 0.15 < found["south"][WEEKS[56]]["signals"]["regional"]["change"] < 0.35  # about log 1.3
    week = found["north"][WEEKS[56]]["signals"]["regional"]
    lead = found["south"][WEEKS[56]]["signals"]["regional"]["windows"][1]
    assert week["windows"][1]["pull"] == pytest.approx(
        found["north"][WEEKS[56]]["coefficient"] * 0.5 * (lead["mean"] - lead["center"]))


def test_the_alert_names_the_region_the_week_and_the_size():
    calibrations, served = _split(_chain(seed=2))
    served["west"] = {w: x + (np.log(1.6) if w >= WEEKS[57] else 0.0) for w, x in served["west"].items()}
    found = _replay(calibrations, served)["west"][WEEKS[57]]
    [alert] = signal_alerts("west", WEEKS[57], found)
    assert alert["kind"] == "regional_shift" and alert["severity"] == "ERROR"
    assert alert["message"].startswith("west: demand ") and f"since {WEEKS[57]}" in alert["message"]
    assert summary(found)["regional"]["change"] > 0.3 and summary(found)["signals"] == ["regional"]


def test_a_region_that_cannot_be_compared_says_why_and_is_never_flagged():
    calibrations, served = _split(_chain())
    week = WEEKS[52]
    alone = regional.assess_week(week, {"north": 1.0}, calibrations)["north"]
    assert not alone["flagged"] and "no other region" in alone["status"] and not alone["signals"]
    found = regional.assess_week(week, {"north": None, "south": 0.9, "west": 0.1}, calibrations)
    assert "no demand statistic this week" in found["north"]["status"] and not found["north"]["flagged"]
    assert found["south"]["status"] == "assessed"  # compared with west alone
    assert found["south"]["compared_with"] == ["west"]
    found = regional.assess_week(week, {"north": 0.0, "south": 0.0}, {**calibrations, "south": None})
    assert "no demand calibration" in found["south"]["status"]
    # a new region whose reference year shares three weeks with the others'
    short = {**calibrations, "west": {w: 0.0 for w in WEEKS[49:52]}}
    found = regional.assess_week(week, {r: 0.0 for r in SHARES}, short, limits=MonitorLimits())
    assert "share 3 weeks" in found["west"]["status"] and not found["west"]["flagged"]
    # what a partition stores of it: one row that says why
    table = to_table(found["west"], "west", "1")
    assert list(table["signal"]) == ["status"] and "share 3 weeks" in table["detail"].iloc[0]

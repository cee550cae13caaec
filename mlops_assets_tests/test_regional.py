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


def _replay(calibrations: dict, served: dict, stored: bool = False, own: dict | None = None
            ) -> dict[str, dict[str, dict]]:
    """Every served week, in order (``regional.replay``), or with ``stored`` each region's history
    read back as its partitions store it (``monitor.from_table``): what the asset's next run reads."""
    if not stored:
        return regional.replay(served, calibrations, own=own)
    histories, out = {r: [] for r in served}, {r: {} for r in served}
    for week in sorted(set().union(*served.values())):
        values = {r: v.get(week) for r, v in served.items()}
        found = regional.assess_week(week, values, calibrations, histories,
                                     own={r: (own or {}).get(r, {}).get(week) for r in served})
        for r, assessed in found.items():
            if assessed["signals"]:
                histories[r].append(from_table(to_table(assessed, r, "1")))
            out[r][week] = assessed
    return out


def _flagged(found: dict[str, dict[str, dict]]) -> dict[str, list[str]]:
    return {r: [w for w, f in weeks.items() if f["flagged"]] for r, weeks in found.items()}


def _shifted(served: dict, region: str, factor: float, start: int) -> dict:
    return {**served, region: {w: x + (np.log(factor) if w >= WEEKS[start] else 0.0)
                               for w, x in served[region].items()}}


def test_the_coefficient_is_the_least_squares_slope_clipped_to_zero_and_one():
    common = {w: x for w, x in zip(WEEKS, [0.1, -0.2, 0.3, 0.0, -0.1])}
    assert regional.coefficient({w: 0.5 * x + 0.7 for w, x in common.items()}, common) == pytest.approx(0.5)
    assert regional.coefficient({w: 2.0 * x for w, x in common.items()}, common) == 1.0
    assert regional.coefficient({w: -x for w, x in common.items()}, common) == 0.0
    assert regional.coefficient(common, dict.fromkeys(common, 0.3)) == 0.0  # the others never moved
    # only the weeks both hold
    assert regional.coefficient({**{w: 0.5 * x for w, x in common.items()}, WEEKS[9]: 5.0}, common) == \
        pytest.approx(0.5)


def test_a_week_is_the_region_less_its_share_of_the_others_mean_and_the_leader_pull_by_hand():
    calibrations, served = _split(_chain())
    week = WEEKS[52]
    found = regional.assess_week(week, {r: v[week] for r, v in served.items()}, calibrations)
    raw, betas = {}, {}
    for region in SHARES:
        others = [o for o in SHARES if o != region]
        mean = {w: np.mean([calibrations[o][w] for o in others]) for w in WEEKS[:52]}
        x = np.array([mean[w] for w in WEEKS[:52]])
        y = np.array([calibrations[region][w] for w in WEEKS[:52]])
        betas[region] = float(np.clip(np.polyfit(x, y, 1)[0], 0.0, 1.0))  # west carries more than the rest: 1
        assert found[region]["coefficient"] == pytest.approx(betas[region])
        assert found[region]["compared_with"] == others and found[region]["status"] == "assessed"
        raw[region] = served[region][week] - betas[region] * np.mean([served[o][week] for o in others])
    assert 0.6 < betas["south"] < 0.85  # south carries half the chain's movement, the others' mean 0.7 of it
    [lead] = [r for r, f in found.items() if f["furthest"]]
    window = found[lead]["signals"]["regional"]["windows"][1]
    assert found[lead]["signals"]["regional"]["value"] == pytest.approx(raw[lead])
    for region in set(SHARES) - {lead}:  # the leader's pull on it added back, and stored so
        pull = betas[region] * 0.5 * (window["mean"] - window["center"])
        assert found[region]["signals"]["regional"]["pull"] == pytest.approx(pull)
        assert found[region]["signals"]["regional"]["value"] == pytest.approx(raw[region] + pull)
    found["west"]["peer_versions"] = {"north": "demand-forecast-north/2", "south": "demand-forecast-south/5"}
    table = to_table(found["west"], "west", "demand-forecast-west/1")
    assert set(table["peers"]) == {"north,south"} and table["pull"].iloc[0] == pytest.approx(
        found["west"]["signals"]["regional"].get("pull", 0.0))
    # read back: the comparison names every model behind it and its coefficient on their mean
    stored = from_table(table)
    assert stored["peer_versions"] == found["west"]["peer_versions"]
    assert stored["model_version"] == "demand-forecast-west/1" and stored["compared_with"] == ["north", "south"]
    assert stored["coefficient"] == pytest.approx(betas["west"])


def test_what_the_whole_chain_shares_is_taken_out_and_one_region_own_change_stands_out():
    # the regions carry the chain's movement alike (one that carries more of it than the others'
    # mean, coefficient clipped at 1, reads part of a chain-wide change as its own)
    calibrations, served = _split(_chain(seed=3, shares=dict.fromkeys(SHARES, 0.8)))
    assert not any(_flagged(_replay(calibrations, served)).values())
    # every region 30% up from the fifth served week (a national promotion, a price cut)
    everyone = {r: {w: x + (np.log(1.3) if w >= WEEKS[56] else 0.0) for w, x in v.items()} for r, v in served.items()}
    assert not any(_flagged(_replay(calibrations, everyone)).values())
    # south alone 30% up from the same week
    for stored in (False, True):  # judged against its history in memory, or as the partitions store it
        found = _replay(calibrations, _shifted(served, "south", 1.3, 56), stored)
        flagged = _flagged(found)
        assert flagged["south"] == WEEKS[56:62], flagged
        # south pulls the others' comparisons down; that pull is added back before they are judged
        assert flagged["north"] == flagged["west"] == [], flagged
        reason = found["south"][WEEKS[58]]["reasons"][0]
        assert f"above the other regions' (each against its reference level) since {WEEKS[56]}" in reason
        assert 0.15 < found["south"][WEEKS[56]]["signals"]["regional"]["change"] < 0.35  # about log 1.3


def test_a_lasting_change_in_one_region_never_becomes_the_others_departure():
    """Seven months of south 60% up: the others' weeks, pulled down all that time, are stored with
    the pull added back, so their baselines never settle at the pulled level."""
    chain = _chain(seed=4, weeks=82, shares=dict.fromkeys(SHARES, 0.8))
    calibrations = {r: {w: v[w] for w in WEEKS[:52]} for r, v in chain.items()}
    served = {r: {w: v[w] for w in WEEKS[52:82]} for r, v in chain.items()}
    assert not any(_flagged(_replay(calibrations, served)).values())
    flagged = _flagged(_replay(calibrations, _shifted(served, "south", 1.6, 54)))
    assert flagged["south"] == WEEKS[54:82] and flagged["north"] == flagged["west"] == [], flagged


def test_with_two_regions_the_region_whose_own_level_moved_is_the_one_flagged():
    """Two regions move each other's comparison as far as their own: their own demand z tells
    which one moved."""
    shares = {"north": 0.8, "south": 0.8}
    chain = _chain(seed=5, weeks=62, shares=shares)
    calibrations = {r: {w: v[w] for w in WEEKS[:52]} for r, v in chain.items()}
    served = {r: {w: v[w] for w in WEEKS[52:62]} for r, v in chain.items()}
    moved = _shifted(served, "south", 1.3, 56)
    # the regions' own demand z, as their demand signal measures it: each week's departure over a
    # scale of 0.1 (what the chain's movement leaves a region's own level)
    own = {r: {w: (x - np.mean(list(calibrations[r].values()))) / 0.1 for w, x in weeks.items()}
           for r, weeks in moved.items()}
    flagged = _flagged(_replay(calibrations, moved, own=own))
    assert flagged["south"] == WEEKS[56:62] and flagged["north"] == [], flagged


def test_the_alert_names_the_region_the_week_and_the_size():
    calibrations, served = _split(_chain(seed=2))
    found = _replay(calibrations, _shifted(served, "west", 1.6, 57))["west"][WEEKS[57]]
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
    assert "no demand statistic judged this week" in found["north"]["status"] and not found["north"]["flagged"]
    assert found["south"]["status"] == "assessed"  # compared with west alone
    assert found["south"]["compared_with"] == ["west"]
    found = regional.assess_week(week, {"north": 0.0, "south": 0.0}, {**calibrations, "south": None})
    assert "no demand calibration" in found["south"]["status"]
    # a new region whose reference year shares ten weeks with the others': left out, the others
    # compared over their own common weeks
    short = {**calibrations, "west": {w: 0.0 for w in WEEKS[42:52]}}
    found = regional.assess_week(week, {r: 0.0 for r in SHARES}, short, limits=MonitorLimits())
    assert "share 10 weeks (at least 13); its own is the shortest (10 weeks)" in found["west"]["status"]
    assert not found["west"]["flagged"] and found["north"]["compared_with"] == ["south"]
    # what a partition stores of it: one row that says why
    table = to_table(found["west"], "west", "1")
    assert list(table["signal"]) == ["status"] and "share 10 weeks" in table["detail"].iloc[0]

"""Generate a landing folder that follows the data contract, with demand worth forecasting.

Weekly demand per store x product is a count around a mean built from effects a model can
learn (store format and size, shopper demographics, product level and trend, yearly
seasonality by category, event lifts by category, weather sensitivity by category) and what
real retail demand has besides, which no model here was designed around:

- level shifts: stores that close for weeks, remodels that lift a store, competitors that
  open and take a share, for good;
- stores that open and products that launch mid-history, and a long tail of intermittent
  low-volume products;
- promotions nobody announced (a product's lift in one store, then a post-promotion dip) and
  outliers (bulk orders);
- heterogeneous series: each pair's own noise level and seasonal amplitude;
- effects that are not a log-linear model's terms: a heat threshold for cold drinks and ice
  cream, stock-up the week before a holiday.

Shipments are that demand plus returns; returns are recorded separately. Weather is observed
daily, and each week was forecast the day before it began (the forecast archive), with errors
that grow with the lead time. ``drift`` shifts one region's demand behaviour and its weather
from a given week on, for testing drift monitoring.

The bundled ``data/sample`` is ``mlops-assets sample data/sample`` with the defaults below.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

REGION_NAMES = (
    "north", "south", "west", "east", "central", "coastal", "mountain", "lakes",
    "plains", "valley", "desert", "bay", "delta", "highlands", "harbor", "prairie",
)

# category: (temperature coefficient per degree C, rain coefficient per 10 mm,
#            seasonal amplitude, seasonal peak week, income elasticity, returns rate)
CATEGORIES = {
    "ice_cream": (0.045, -0.06, 0.50, 28, 0.30, 0.00),
    "soup": (-0.035, 0.08, 0.40, 2, -0.10, 0.00),
    "beverages": (0.025, -0.03, 0.30, 27, 0.10, 0.01),
    "bakery": (0.000, -0.02, 0.20, 51, 0.05, 0.06),
    "dairy": (0.005, 0.00, 0.15, 20, 0.00, 0.03),
    "produce": (0.010, -0.04, 0.35, 32, 0.25, 0.05),
    "snacks": (0.005, 0.05, 0.20, 5, -0.05, 0.01),
    "frozen_meals": (-0.015, 0.06, 0.30, 6, -0.20, 0.00),
}

# event: (calendar rule, {category: lift})  where lift multiplies the week's mean demand
NATIONAL_EVENTS = {
    "thanksgiving": {"bakery": 0.9, "produce": 0.6, "beverages": 0.3, "dairy": 0.4, "soup": 0.2},
    "christmas": {"bakery": 0.7, "beverages": 0.5, "snacks": 0.4, "dairy": 0.3, "ice_cream": 0.2},
    "super_bowl": {"snacks": 1.2, "beverages": 0.8, "frozen_meals": 0.3},
    "independence_day": {"beverages": 0.7, "ice_cream": 0.6, "snacks": 0.5, "produce": 0.3},
}
HOME_GAME = {"snacks": 0.35, "beverages": 0.3, "frozen_meals": 0.1}
PROMOTION = {c: 0.6 for c in CATEGORIES}

DEFAULT_END_WEEK = "2026-11-09"

# Demand level and noise. Weekly demand is Poisson around a mean times a gamma shock
# (coefficient of variation 1/sqrt(NOISE_SHAPE)): noise no model can learn.
FAST_LEVEL, SLOW_LEVEL = 60.0, 20.0   # median weekly units per store (before format and size)
GROWTH_SD = 0.3                       # spread of product trends, log-growth per year
NOISE_SHAPE = 80.0
SLOW_ZERO_SHARE = 0.06                # slow movers: share of weeks with no order at all
TAIL_SHARE, TAIL_LEVEL = 0.15, (0.4, 3.0)  # long-tail products: share, weekly units per store
STORE_EVENTS = {"closure": 0.12, "remodel": 0.12, "competitor": 0.12, "late_opening": 0.08}  # share of stores
PROMO_RATE, OUTLIER_RATE = 0.02, 0.002   # per pair and week: unannounced promotion, bulk order
HEAT_THRESHOLD_C, HEAT_LIFT = 24.0, {"ice_cream": 0.35, "beverages": 0.2}
STOCK_UP = {"thanksgiving": 0.25, "christmas": 0.2}  # lift of the week before, all categories


@dataclass
class SampleSpec:
    out_dir: Path
    regions: tuple[str, ...] = ("north", "south", "west")
    stores_per_region: int = 8
    products: int = 24
    weeks: int = 104
    end_week: str = DEFAULT_END_WEEK  # last observed week (a Monday)
    seed: int = 7
    drift: dict[str, str] = field(default_factory=dict)  # region -> first drifted week
    forecast_days: int = 14
    # what real demand has besides the learnable effects (level shifts, late openings, long-tail
    # products, unannounced promotions, outliers, heterogeneous noise, non-linear effects); off,
    # every region behaves the same all along unless ``drift`` changes it (for tests of monitoring)
    realism: bool = True


def parse_regions(value: str) -> tuple[str, ...]:
    """``"3"`` gives the first three region names; ``"a,b"`` names them."""
    value = value.strip()
    if value.isdigit():
        n = int(value)
        names = list(REGION_NAMES[:n]) + [f"region_{i:02d}" for i in range(len(REGION_NAMES), n)]
        return tuple(names)
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parse_drift(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        region, _, week = item.partition(":")
        day = dt.date.fromisoformat(week)
        if day.weekday() != 0:
            raise ValueError(f"--drift {item}: the week must be a Monday")
        out[region] = week
    return out


def _thanksgiving(year: int) -> dt.date:
    first = dt.date(year, 11, 1)
    first_thu = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    return first_thu + dt.timedelta(weeks=3)


def _super_bowl(year: int) -> dt.date:
    first = dt.date(year, 2, 1)
    first_sun = first + dt.timedelta(days=(6 - first.weekday()) % 7)
    return first_sun + dt.timedelta(weeks=1)


def _national_dates(year: int) -> dict[str, dt.date]:
    return {
        "thanksgiving": _thanksgiving(year),
        "christmas": dt.date(year, 12, 25),
        "super_bowl": _super_bowl(year),
        "independence_day": dt.date(year, 7, 4),
    }


def _noise_shapes(seed: int, region_index: int, store_index: int, n_prod: int) -> np.ndarray:
    """Heterogeneous series: each pair's own noise level (gamma shape; smaller is noisier)."""
    rng = np.random.default_rng([seed, region_index, store_index, 11])
    return np.clip(NOISE_SHAPE * rng.lognormal(0.0, 1.0, n_prod), 3.0, 500.0)


def _realism(mu: np.ndarray, rng: np.random.Generator, season: np.ndarray, temp: np.ndarray,
             categories: np.ndarray, stock_up: np.ndarray, first: bool) -> np.ndarray:
    """A store's mean demand (products x weeks) with what real stores have and the models were not
    designed around: its own history (a late opening, a closure of weeks, a remodel, a competitor),
    each pair's own seasonal amplitude, a heat threshold, stock-up before holidays, promotions
    nobody announced with their post-promotion dip, and bulk orders. ``rng`` is the store's own
    stream: a drift of its region changes none of these draws."""
    n_prod, n_weeks = mu.shape
    level = np.ones(n_weeks)
    happens = {name: rng.random() < share for name, share in STORE_EVENTS.items()}
    opened = int(rng.integers(13, max(14, n_weeks // 2))) if happens["late_opening"] and not first else 0
    level[:opened] = 0.0
    for name, (low, high) in (("remodel", (1.15, 1.4)), ("competitor", (0.6, 0.85))):
        at, factor = int(rng.integers(opened + 4, max(opened + 5, n_weeks - 4))), rng.uniform(low, high)
        if happens[name]:
            level[at:] *= factor
    start, length = int(rng.integers(opened + 4, max(opened + 5, n_weeks - 3))), int(rng.integers(2, 6))
    if happens["closure"]:
        level[start:start + length] = 0.0
    amplitude = rng.lognormal(0.0, 0.4, n_prod)[:, None]
    heat = np.array([HEAT_LIFT.get(c, 0.0) for c in categories])[:, None] * (temp[None, :n_weeks] > HEAT_THRESHOLD_C)
    promo = rng.random((n_prod, n_weeks)) < PROMO_RATE
    lift = rng.uniform(1.5, 3.0, (n_prod, n_weeks))
    dip = np.zeros_like(promo)
    dip[:, 1:] = promo[:, :-1] & ~promo[:, 1:]
    bulk = rng.random((n_prod, n_weeks)) < OUTLIER_RATE
    size = rng.uniform(3.0, 8.0, (n_prod, n_weeks))
    return (mu * level[None, :] * season ** (amplitude - 1.0) * (1.0 + heat) * (1.0 + stock_up[None, :])
            * np.where(promo, lift, 1.0) * np.where(dip, 0.7, 1.0) * np.where(bulk, size, 1.0))


@dataclass(frozen=True)
class _Calendar:
    weeks: pd.DatetimeIndex        # the observed weeks' Mondays
    days: pd.DatetimeIndex         # every observed day
    last_observed: dt.date         # the last week's Sunday


@dataclass(frozen=True)
class _Catalog:
    """The products and what drives each one's demand (arrays over products)."""
    products: pd.DataFrame
    ids: list[str]
    category: np.ndarray
    slow: np.ndarray
    base: np.ndarray
    growth: np.ndarray
    launch: np.ndarray


def generate(spec: SampleSpec) -> dict[str, int]:
    """Write the landing folder; returns row counts per table. One random stream, drawn in this
    order (the masters, the weather, the events, the demand), so a seed gives the same files."""
    calendar = _calendar(spec)
    rng = np.random.default_rng(spec.seed)
    catalog = _catalog(spec, rng, len(calendar.weeks))
    stores, demographics = _stores(spec, rng)
    weather, climate, weekly_temp, weekly_rain = _weather(spec, rng, calendar, stores)
    events = _events(spec, rng, calendar)
    shipments, returns = _demand(spec, rng, calendar, catalog, stores, demographics, events, climate, weekly_temp,
                                 weekly_rain)
    tables = {"stores": stores, "products": catalog.products, "demographics": demographics, "events": events,
              "shipments": shipments, "returns": returns, "weather": weather}
    _write(Path(spec.out_dir), tables, calendar.last_observed)
    return {name: len(table) for name, table in tables.items()}


def _calendar(spec: SampleSpec) -> _Calendar:
    end = dt.date.fromisoformat(spec.end_week)
    if end.weekday() != 0:
        raise ValueError(f"end week {end} is not a Monday")
    unknown = set(spec.drift) - set(spec.regions)
    if unknown:
        raise ValueError(f"--drift names unknown regions: {', '.join(sorted(unknown))}")
    weeks = pd.date_range(end=pd.Timestamp(end), periods=spec.weeks, freq="7D")
    last_observed = end + dt.timedelta(days=6)
    return _Calendar(weeks, pd.date_range(weeks[0], pd.Timestamp(last_observed), freq="D"), last_observed)


def _catalog(spec: SampleSpec, rng: np.random.Generator, n_weeks: int) -> _Catalog:
    cats = list(CATEGORIES)
    n_prod = spec.products
    prod_cat = np.array([cats[i % len(cats)] for i in range(n_prod)])
    slow = rng.random(n_prod) < 0.5
    base = np.where(slow, rng.lognormal(np.log(SLOW_LEVEL), 0.3, n_prod),
                    rng.lognormal(np.log(FAST_LEVEL), 0.4, n_prod))
    if spec.realism:  # without it, the draws (hence the data) are those of the learnable effects alone
        tail = rng.random(n_prod) < TAIL_SHARE  # intermittent low-volume products
        slow = slow | tail
        base = np.where(tail, rng.uniform(*TAIL_LEVEL, n_prod), base)
    growth = rng.normal(0.0, GROWTH_SD, n_prod)  # log-growth per year
    launch = np.where(rng.random(n_prod) < 0.1, rng.integers(20, max(21, n_weeks // 2), n_prod), 0)
    product_ids = [f"p{i + 1:03d}" for i in range(n_prod)]
    velocity = np.where(slow, "slow", "fast").astype(object)
    velocity[rng.random(n_prod) < 0.25] = ""  # the contract lets velocity be derived
    products = pd.DataFrame({"product_id": product_ids, "category": prod_cat, "velocity": velocity})
    return _Catalog(products, product_ids, prod_cat, slow, base, growth, launch)


def _stores(spec: SampleSpec, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    store_rows, demo_rows = [], []
    for r, region in enumerate(spec.regions):
        for i in range(spec.stores_per_region):
            fmt = "large" if (i % 5) in (0, 2) else "small"
            store_rows.append({"store_id": f"{region}_s{i + 1:02d}", "region": region, "format": fmt,
                               "zip_code": f"{10000 + 600 * r + 7 * i:05d}"})
            demo_rows.append({"store_id": f"{region}_s{i + 1:02d}",
                              "population": int(rng.lognormal(np.log(40000), 0.5)),
                              "median_income": int(rng.lognormal(np.log(62000), 0.3)),
                              "share_families": round(float(rng.uniform(0.15, 0.55)), 3)})
    return pd.DataFrame(store_rows), pd.DataFrame(demo_rows)


def _weather(spec: SampleSpec, rng: np.random.Generator, calendar: _Calendar, stores: pd.DataFrame):
    """Daily weather per zip, observed through the last week, each observed week's archived
    forecast, and the forecast of the next two weeks; with each region's climate and each store's
    weekly mean maximum temperature and rain (what demand responds to)."""
    weeks, days, last_observed = calendar.weeks, calendar.days, calendar.last_observed
    n_weeks = len(weeks)
    doy = days.dayofyear.to_numpy()
    weather_frames, weekly_temp, weekly_rain = [], {}, {}
    climate = {region: (rng.uniform(6, 20), rng.uniform(8, 14)) for region in spec.regions}
    for store in stores.itertuples():
        mean_t, amp = climate[store.region]
        noise = np.zeros(len(days))
        shocks = rng.normal(0, 2.2, len(days))
        for t in range(1, len(days)):
            noise[t] = 0.7 * noise[t - 1] + shocks[t]
        tmax = mean_t + 5 + amp * np.cos(2 * np.pi * (doy - 200) / 365.25) + noise
        if store.region in spec.drift:
            tmax = tmax + np.where(days >= pd.Timestamp(spec.drift[store.region]), 6.0, 0.0)
        tmin = tmax - rng.uniform(5, 11, len(days))
        rain = np.where(rng.random(len(days)) < 0.33, rng.gamma(1.5, 5.0, len(days)), 0.0)
        frame = pd.DataFrame({"date": days, "zip_code": store.zip_code, "temp_max_c": tmax.round(1),
                              "temp_min_c": tmin.round(1), "precip_mm": rain.round(1), "is_forecast": False})
        weather_frames.append(frame)
        # the archive: each observed week was forecast the day before it began, with errors
        # that grow with the lead (1-7 days); its own stream, so drift leaves it alone
        archive = np.random.default_rng([spec.seed, 99, store.Index])
        early = days <= pd.Timestamp(last_observed)
        lead = (days.weekday.to_numpy() + 1)[early]
        f_err = archive.normal(0, 1.0, early.sum()) * (1.0 + 0.35 * lead)
        rain_miss = archive.random(early.sum()) < 0.25
        weather_frames.append(pd.DataFrame({
            "date": days[early], "zip_code": store.zip_code, "temp_max_c": (tmax[early] + f_err).round(1),
            "temp_min_c": (tmin[early] + f_err).round(1),
            "precip_mm": np.where(rain_miss, np.where(rain[early] > 0, 0.0, 4.0), rain[early]).round(1),
            "is_forecast": True}))
        wk = (days - pd.Timestamp(weeks[0])).days // 7
        weekly_temp[store.store_id] = pd.Series(tmax).groupby(wk).mean().to_numpy()[:n_weeks]
        weekly_rain[store.store_id] = pd.Series(rain).groupby(wk).sum().to_numpy()[:n_weeks]
        # forecasts of the next two weeks (the observed weeks' are in the archive above; the last
        # one's days are drawn and dropped, which keeps the draws of everything after the same)
        f_days = pd.date_range(pd.Timestamp(last_observed) - pd.Timedelta(days=6),
                               pd.Timestamp(last_observed) + pd.Timedelta(days=spec.forecast_days), freq="D")
        f_doy = f_days.dayofyear.to_numpy()
        f_tmax = mean_t + 5 + amp * np.cos(2 * np.pi * (f_doy - 200) / 365.25) + rng.normal(0, 2.0, len(f_days))
        future = pd.DataFrame({
            "date": f_days, "zip_code": store.zip_code, "temp_max_c": f_tmax.round(1),
            "temp_min_c": (f_tmax - 8).round(1), "precip_mm": np.where(rng.random(len(f_days)) < 0.3, 3.0, 0.0),
            "is_forecast": True})
        weather_frames.append(future[future["date"] > pd.Timestamp(last_observed)])
    return pd.concat(weather_frames, ignore_index=True), climate, weekly_temp, weekly_rain


def _events(spec: SampleSpec, rng: np.random.Generator, calendar: _Calendar) -> pd.DataFrame:
    """National holidays, each region's home games and announced promotions."""
    weeks, days, last_observed = calendar.weeks, calendar.days, calendar.last_observed
    n_weeks = len(weeks)
    event_rows = []
    for year in sorted({d.year for d in weeks} | {(weeks[-1] + pd.Timedelta(days=21)).year}):
        for name, day in _national_dates(year).items():
            event_rows.append({"date": day, "region": "*", "event": name})
    for region in spec.regions:
        game_days = rng.choice(len(days), size=max(1, len(days) // 30), replace=False)
        for d in game_days:
            event_rows.append({"date": days[d].date(), "region": region, "event": f"{region}_home_game"})
        promo_weeks = rng.choice(n_weeks, size=max(1, n_weeks // 8), replace=False)
        for w in promo_weeks:
            event_rows.append({"date": (weeks[w] + pd.Timedelta(days=2)).date(), "region": region,
                               "event": "promotion"})
    events = pd.DataFrame(event_rows).sort_values(["date", "region", "event"]).drop_duplicates()
    events = events[(pd.to_datetime(events["date"]) >= weeks[0])
                    & (pd.to_datetime(events["date"]) <= pd.Timestamp(last_observed) + pd.Timedelta(days=21))]
    return events


def _demand(spec: SampleSpec, rng: np.random.Generator, calendar: _Calendar, catalog: _Catalog,
            stores: pd.DataFrame, demographics: pd.DataFrame, events: pd.DataFrame, climate: dict,
            weekly_temp: dict, weekly_rain: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly shipments and returns per store x product: the learnable effects (size, income,
    season, trend, weather, events), a region's drift, the realism, then count noise."""
    weeks = calendar.weeks
    n_weeks, n_prod = len(weeks), spec.products
    cats = list(CATEGORIES)
    prod_cat, slow, product_ids = catalog.category, catalog.slow, catalog.ids
    woy = weeks.isocalendar().week.to_numpy().astype(float)
    years = (np.arange(n_weeks) - n_weeks) / 52.0
    cat_idx = {c: i for i, c in enumerate(cats)}
    coef = np.array([CATEGORIES[c] for c in cats])  # (n_cat, 6)
    pc = np.array([cat_idx[c] for c in prod_cat])
    season = np.exp(coef[pc, 2][:, None] * np.cos(2 * np.pi * (woy[None, :] - coef[pc, 3][:, None]) / 52.18))
    trend = np.exp(catalog.growth[:, None] * years[None, :])
    alive = np.arange(n_weeks)[None, :] >= catalog.launch[:, None]
    week_of = {d: i for i, d in enumerate(weeks)}

    def week_index(day) -> int | None:
        monday = pd.Timestamp(day) - pd.Timedelta(days=pd.Timestamp(day).weekday())
        return week_of.get(monday)

    ship_rows, return_rows = [], []
    demo = demographics.set_index("store_id")
    for r_idx, region in enumerate(spec.regions):
        lift = np.zeros((len(cats), n_weeks))
        for ev in events.itertuples():
            if ev.region not in ("*", region):
                continue
            w = week_index(ev.date)
            if w is None:
                continue
            table = NATIONAL_EVENTS.get(ev.event) or (PROMOTION if ev.event == "promotion" else HOME_GAME)
            for c, v in table.items():
                lift[cat_idx[c], w] += v
        stock_up = np.zeros(n_weeks)
        for ev in events[events["event"].isin(list(STOCK_UP))].itertuples():
            w = week_index(ev.date)
            if w is not None and w > 0:
                stock_up[w - 1] += STOCK_UP[ev.event]
        drift_from = week_of.get(pd.Timestamp(spec.drift[region])) if region in spec.drift else None
        for store in stores[stores.region == region].itertuples():
            d = demo.loc[store.store_id]
            size = (2.6 if store.format == "large" else 1.0) * rng.lognormal(0, 0.15)
            size *= (d.population / 40000) ** 0.25
            income = np.log(d.median_income / 62000)
            temp = weekly_temp[store.store_id] - climate[region][0]
            rain = weekly_rain[store.store_id] / 10.0
            stocked = rng.random(n_prod) < (0.95 if store.format == "large" else 0.75)
            mu = (catalog.base[:, None] * size * np.exp(coef[pc, 4] * income)[:, None] * season * trend
                  * np.exp(coef[pc, 0][:, None] * temp[None, :] + coef[pc, 1][:, None] * rain[None, :])
                  * (1 + lift[pc, :]))
            if drift_from is not None:
                shift = np.where(np.isin(prod_cat, cats[: len(cats) // 2]), 1.6, 0.65)
                mu[:, drift_from:] *= shift[:, None]
            if spec.realism:
                mu = _realism(mu, np.random.default_rng([spec.seed, r_idx, store.Index, 10]), season,
                              weekly_temp[store.store_id], prod_cat, stock_up, first=store.store_id.endswith("_s01"))
            mu *= alive & stocked[:, None]
            # Count draws use a varying amount of randomness, so each store gets its own
            # streams, drawn week by week (transposed): weeks before a drift are identical
            # with and without it.
            streams = [np.random.default_rng([spec.seed, r_idx, store.Index, k]) for k in range(4)]
            shapes = _noise_shapes(spec.seed, r_idx, store.Index, n_prod) if spec.realism else NOISE_SHAPE
            shape = np.broadcast_to(shapes, mu.T.shape)
            lam = mu * streams[0].gamma(shape, 1 / shape).T
            demand = streams[1].poisson(lam.T).T
            demand[slow[:, None].repeat(n_weeks, 1) & (streams[2].random(mu.T.shape).T < SLOW_ZERO_SHARE)] = 0
            ret_rate = np.broadcast_to(coef[pc, 5][:, None], demand.shape)
            returned = streams[3].binomial((demand + 2).T, ret_rate.T).T
            returned = np.where(demand > 0, returned, 0)
            shipped = demand + returned
            p_idx, w_idx = np.nonzero(shipped)
            ship_rows.append(pd.DataFrame({"week_start": weeks[w_idx], "store_id": store.store_id,
                                           "product_id": np.array(product_ids)[p_idx],
                                           "units_shipped": shipped[p_idx, w_idx]}))
            rp, rw = np.nonzero(returned)
            return_rows.append(pd.DataFrame({"week_start": weeks[rw], "store_id": store.store_id,
                                             "product_id": np.array(product_ids)[rp],
                                             "units_returned": returned[rp, rw]}))
    return pd.concat(ship_rows, ignore_index=True), pd.concat(return_rows, ignore_index=True)


def _write(out: Path, tables: dict[str, pd.DataFrame], last_observed: dt.date) -> None:
    """The landing folder as the contract has it: masters, a shipments file per week, returns and
    observed weather per year, the current forecast and the archive of past forecasts."""
    for sub in ("shipments", "returns", "weather"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
        (out / sub).mkdir(parents=True)
    shipments, returns, weather = tables["shipments"], tables["returns"], tables["weather"]
    tables["stores"].to_csv(out / "stores.csv", index=False)
    tables["products"].to_csv(out / "products.csv", index=False)
    tables["demographics"].to_csv(out / "demographics.csv", index=False)
    tables["events"].to_csv(out / "events.csv", index=False, date_format="%Y-%m-%d")
    for week, part in shipments.groupby("week_start"):
        part.sort_values(["store_id", "product_id"]).to_csv(
            out / "shipments" / f"{week:%Y-%m-%d}.csv", index=False, date_format="%Y-%m-%d")
    for year, part in returns.groupby(returns.week_start.dt.year):
        part.sort_values(["week_start", "store_id", "product_id"]).to_csv(
            out / "returns" / f"{year}.csv", index=False, date_format="%Y-%m-%d")
    observed = weather[~weather.is_forecast]
    for year, part in observed.groupby(observed.date.dt.year):
        part.to_csv(out / "weather" / f"observed_{year}.csv", index=False, date_format="%Y-%m-%d")
    forecasts = weather[weather.is_forecast]
    current = forecasts.date >= pd.Timestamp(last_observed) - pd.Timedelta(days=6)
    forecasts[current].to_csv(out / "weather" / f"forecast_{last_observed:%Y-%m-%d}.csv",
                              index=False, date_format="%Y-%m-%d")
    for year, part in forecasts[~current].groupby(forecasts[~current].date.dt.year):
        part.to_csv(out / "weather" / f"forecast_archive_{year}.csv", index=False, date_format="%Y-%m-%d")

"""Real weekly demand in the data contract: two data sets of the R package bayesm.

    apt-get download r-cran-bayesm && dpkg -x r-cran-bayesm_*.deb /tmp/bayesm   # Debian package, GPL-2+
    .venv/bin/pip install -e '.[bench]'                                          # rdata reads the .rda
    .venv/bin/python bench/real_data.py /tmp/bayesm/usr/lib/R/site-library/bayesm/data/orangeJuice.rda /tmp/oj
    .venv/bin/python bench/real_data.py /tmp/bayesm/usr/lib/R/site-library/bayesm/data/cheese.rda /tmp/cheese
    .venv/bin/python bench/peers.py --landing /tmp/oj

**Orange juice** (``orangeJuice.rda``):

The data set ``orangeJuice`` of the R package bayesm (also on CRAN) is the scanner data of the
Dominick's Finer Foods chain (Chicago, 1989-1994; James M. Kilts Center, University of Chicago
Booth School of Business): unit sales (``logmove``, log units) of 11 orange-juice brands in 83
stores over weeks 40-160 (June 1990 - September 1992), and each store's demographics. Nobody
here made it, and nothing in it was designed around this project's models.

How it is mapped into the contract (nothing is invented except where said):

- ``shipments``: ``units_shipped = round(exp(logmove))`` per store x brand x week; a Dominick's
  week starts on a Thursday (week 1 = 1989-09-14): it is filed under the Monday of that Thursday.
  About 4% of store x brand x weeks have no row; the contract reads a week without a row as 0.
- ``stores``: ``region`` = the tercile of the distance to the nearest warehouse store
  (``SSTRDIST``: ``near_discounter``, ``mid_distance``, ``far_from_discounter``), so regions differ in
  competition; ``format`` = ``large`` when the store's mean weekly OJ units in its first 26 weeks
  are at least the median store's, else ``small``; ``zip_code`` = 60601 for every store (the data
  has no zip codes, and there is no weather to join).
- ``products``: the 11 brands; ``category`` = ``premium`` (Tropicana Premium, Florida's Natural),
  ``national`` or ``store_brand`` (Dominick's); ``velocity`` left empty, so it is derived.
- ``demographics``: ``population`` is not in the data: it is left at 0 for every store;
  ``median_income`` = exp(``INCOME``) (the data holds log median income); the other columns of
  ``storedemo`` (age 60+, education, ethnicity, household size, working women, house values,
  competition) are further numeric features.
- ``events``: US federal holidays and the Super Bowl in the period (dates are facts of the calendar).
- ``weather``: none (the contract's weather folder is optional).
- Promotions (``--no-promotions`` leaves them out): a store x brand x week with an in-store deal
  (``deal`` = 1) is an event ``deal``, one featured in the weekly ad (``feat`` >= 0.5; ``feat`` is
  0 or 1 in 95% of rows) an event ``feature``, each limited to its store and product, as a
  business plans its promotions ahead of the week. Price is not in the contract: no model sees it.

**Sliced cheese** (``cheese.rda``): weekly unit volume of one product (Borden sliced cheese) at
88 retailers (key accounts) in 46 US markets, 52 to 68 weeks each, with the retailer's price and
the share of its stores (by all-commodity volume) with a display (IRI scanner data as published with bayesm; Rossi,
Allenby and McCulloch, *Bayesian Statistics and Marketing*, 2005). A second real data set of
the same kind (a product's weekly sales across many outlets), chosen because it is offline in
the same Debian package, nobody here made it, and its outlets are whole retail chains: far fewer,
far larger series than orange juice, one product. How it is mapped:

- ``shipments``: ``units_shipped`` = ``VOLUME`` per retailer and week. The data holds no dates:
  its rows are week after week, each week listing its retailers, and a retailer has 52 to 68 of
  them. Every retailer's series is taken to end in the last week (one that ended early would
  read, under the contract, as weeks of zero demand): its last row is week 68, filed under
  Mondays from 1990-01-01 (a calendar of convenience: no events).
- ``stores``: one per retailer; ``region`` = the US Census region of its market (``west``,
  ``midwest``, ``south``, ``northeast``: a fact of geography); ``format`` = ``large`` when its
  mean weekly volume over its first 26 weeks is at least the median retailer's; ``zip_code`` =
  00000 (no weather).
- ``products``: the one product, category ``cheese``, ``velocity`` left empty (derived).
- ``demographics``: none in the data: ``population`` and ``median_income`` are 0.
- Promotions (``--no-promotions`` leaves them out): a retailer x week with a display in stores
  that make at least a fifth of its all-commodity volume (``DISP``, "percent ACV on display",
  >= 0.2; a fifth of the rows) is an event ``display`` of that store and the product. Price is
  not in the contract.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

WEEK_ONE_MONDAY = pd.Timestamp("1989-09-11")  # the Monday of Dominick's week 1 (Thursday 1989-09-14)
BRANDS = {1: "tropicana_premium_64", 2: "tropicana_premium_96", 3: "florida_natural_64", 4: "tropicana_64",
          5: "minute_maid_64", 6: "minute_maid_96", 7: "citrus_hill_64", 8: "tree_fresh_64",
          9: "florida_gold_64", 10: "dominicks_64", 11: "dominicks_128"}
CATEGORY = {1: "premium", 2: "premium", 3: "premium", 10: "store_brand", 11: "store_brand"}
HOLIDAYS = {  # 1990-1992, from the calendar
    "new_year": ["1991-01-01", "1992-01-01"],
    "super_bowl": ["1991-01-27", "1992-01-26"],
    "memorial_day": ["1990-05-28", "1991-05-27", "1992-05-25"],
    "independence_day": ["1990-07-04", "1991-07-04", "1992-07-04"],
    "labor_day": ["1990-09-03", "1991-09-02", "1992-09-07"],
    "thanksgiving": ["1990-11-22", "1991-11-28"],
    "christmas": ["1990-12-25", "1991-12-25"],
}


CENSUS = {  # the US Census region of each market of the cheese data
    "west": ["LOS ANGELES", "SAN DIEGO", "SAN FRANCISCO", "SACRAMENTO", "PHOENIX", "DENVER", "SALT LAKE CITY"],
    "midwest": ["CHICAGO", "CINCINNATI", "CLEVELAND", "COLUMBUS,OH", "DETROIT", "INDIANAPOLIS", "MILWAUKEE",
                "ST. LOUIS", "WICHITA"],
    "south": ["ATLANTA", "BALTI/WASH", "BIRMINGHAM/MONTGOM", "CHARLOTTE", "DALLAS/FT. WORTH", "HOUSTON",
              "JACKSONVILLE,FL", "LITTLE ROCK", "LOUISVILLE", "MIAMI", "NASHVILLE", "NEW ORLEANS", "OKLAHOMA CITY",
              "ORLANDO,FL", "RALEIGH/GREENSBORO", "RICHMOND/NORFOLK", "ROANOKE (NEW)", "SAN ANT/CORPUS CHR",
              "SOUTH CAROLINA", "TAMPA/ST. PETE"],
    "northeast": ["ALBANY,NY", "BOSTON", "BUFFALO/ROCHESTER", "HARRISBURG/SCRANTN", "HARTFORD", "NEW ENGLAND (NORTH)",
                  "NEW YORK (NEW)", "PHILADELPHIA", "PITTSBURGH", "SYRACUSE"],
}
CHEESE_WEEK_ONE = pd.Timestamp("1990-01-01")  # a Monday: the data has no dates


EVENT_COLUMNS = ["date", "region", "event", "store_id", "product_id"]
FEATURED = 0.5   # orange juice: ``feat`` at least this: the brand was in the store's weekly ad
DISPLAYED = 0.2  # cheese: ``DISP`` (share of the retailer's ACV on display) at least this


def convert(rda: Path, out: Path, promotions: bool = True) -> dict:
    """The landing folder of the data set in ``rda`` (orangeJuice or cheese); ``promotions``:
    the data's promotions as store x product events (False: the calendar's events alone)."""
    import rdata  # the bench extra

    data = rdata.read_rda(str(rda))
    if "cheese" in data:
        return convert_cheese(data["cheese"], out, promotions)
    return convert_orange_juice(data["orangeJuice"], out, promotions)


def _promotions(sales: pd.DataFrame, stores: pd.DataFrame, flags: dict[str, np.ndarray]) -> pd.DataFrame:
    """One event per promoted store x product x week (``flags``: event name -> a boolean per
    ``sales`` row), dated the week's Monday, in the store's region."""
    region = sales["store_id"].map(stores.set_index("store_id")["region"])
    frames = [pd.DataFrame({"date": sales.loc[flag, "week_start"].dt.strftime("%Y-%m-%d"),
                            "region": region[flag], "event": name, "store_id": sales.loc[flag, "store_id"],
                            "product_id": sales.loc[flag, "product_id"]})
              for name, flag in flags.items()]
    return pd.concat(frames, ignore_index=True).reindex(columns=EVENT_COLUMNS)


def _write(out: Path, stores, products, demographics, events, sales) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "shipments").mkdir(exist_ok=True)
    stores.to_csv(out / "stores.csv", index=False)
    products.to_csv(out / "products.csv", index=False)
    demographics.to_csv(out / "demographics.csv", index=False)
    events.to_csv(out / "events.csv", index=False)
    for week, part in sales.sort_values(["week_start", "store_id", "product_id"]).groupby("week_start"):
        part.to_csv(out / "shipments" / f"{week:%Y-%m-%d}.csv", index=False, date_format="%Y-%m-%d")
    return {"rows": len(sales), "stores": len(stores), "products": len(products),
            "weeks": sales["week_start"].nunique(), "regions": stores["region"].value_counts().to_dict()}


def _formats(sales: pd.DataFrame) -> pd.Series:
    """large or small per store: its mean weekly units over its first 26 weeks against the median store's."""
    first = sales[sales["week_start"] < sales["week_start"].min() + pd.Timedelta(weeks=26)]
    volume = first.groupby(["store_id", "week_start"])["units_shipped"].sum().groupby("store_id").mean()
    return pd.Series(np.where(volume >= volume.median(), "large", "small"), index=volume.index)


def convert_cheese(cheese: pd.DataFrame, out: Path, promotions: bool = True) -> dict:
    region_of = {market: region for region, markets in CENSUS.items() for market in markets}
    retailer = cheese["RETAILER"].astype(str)
    names = sorted(retailer.unique())
    store_of = {name: f"r{i + 1:03d}" for i, name in enumerate(names)}
    # a retailer's k-th row is its week k, counted back from the last week: every series ends there
    rows = retailer.groupby(retailer).transform("size")
    week = retailer.groupby(retailer).cumcount() + (rows.max() - rows)
    sales = pd.DataFrame({"week_start": CHEESE_WEEK_ONE + pd.to_timedelta(week * 7, unit="D"),
                          "store_id": retailer.map(store_of), "product_id": "borden_sliced_cheese",
                          "units_shipped": cheese["VOLUME"].astype("int64")})
    markets = {name: name.split(" - ")[0] for name in names}
    unknown = sorted({m for m in markets.values() if m not in region_of})
    if unknown:
        raise ValueError(f"markets without a Census region: {unknown}")
    stores = pd.DataFrame({"store_id": [store_of[n] for n in names],
                           "region": [region_of[markets[n]] for n in names]})
    stores["format"] = stores["store_id"].map(_formats(sales))
    stores["zip_code"] = "00000"
    products = pd.DataFrame({"product_id": ["borden_sliced_cheese"], "category": ["cheese"], "velocity": [""]})
    demographics = pd.DataFrame({"store_id": stores["store_id"], "population": 0, "median_income": 0})
    events = pd.DataFrame(columns=EVENT_COLUMNS)
    if promotions:
        events = _promotions(sales, stores, {"display": (cheese["DISP"].astype(float) >= DISPLAYED).to_numpy()})
    return _write(out, stores, products, demographics, events, sales)


def convert_orange_juice(data: dict, out: Path, promotions: bool = True) -> dict:
    yx, demo = data["yx"], data["storedemo"]
    sales = pd.DataFrame({
        "week_start": WEEK_ONE_MONDAY + pd.to_timedelta((yx["week"].astype(int) - 1) * 7, unit="D"),
        "store_id": "s" + yx["store"].astype(int).astype(str).str.zfill(3),
        "product_id": yx["brand"].astype(int).map(BRANDS),
        "units_shipped": np.round(np.exp(yx["logmove"].astype(float))).astype("int64"),
    })
    demo = demo.assign(store_id="s" + demo["STORE"].astype(int).astype(str).str.zfill(3))
    promoted = {"deal": (yx["deal"].astype(int) == 1).to_numpy(),
                "feature": (yx["feat"].astype(float) >= FEATURED).to_numpy()}
    known = sales["store_id"].isin(demo["store_id"]).to_numpy()
    sales, promoted = sales[known], {name: flag[known] for name, flag in promoted.items()}

    tercile = pd.qcut(demo.set_index("store_id")["SSTRDIST"], 3,
                      labels=["near_discounter", "mid_distance", "far_from_discounter"])
    stores = pd.DataFrame({"store_id": demo["store_id"]})
    stores["region"] = stores["store_id"].map(tercile).astype(str)
    stores["format"] = stores["store_id"].map(_formats(sales)).fillna("small")  # no sales in its first weeks
    stores["zip_code"] = "60601"
    products = pd.DataFrame({"product_id": list(BRANDS.values()),
                             "category": [CATEGORY.get(b, "national") for b in BRANDS], "velocity": ""})
    extra = {c.lower(): demo[c].astype(float).round(6) for c in demo.columns
             if c not in ("STORE", "INCOME", "store_id")}
    demographics = pd.DataFrame({"store_id": demo["store_id"], "population": 0,
                                 "median_income": np.exp(demo["INCOME"].astype(float)).round(0), **extra})
    events = pd.DataFrame([(d, "*", name) for name, days in HOLIDAYS.items() for d in days],
                          columns=["date", "region", "event"]).reindex(columns=EVENT_COLUMNS)
    if promotions:
        events = pd.concat([events, _promotions(sales, stores, promoted)], ignore_index=True)
    return _write(out, stores, products, demographics, events.sort_values("date", kind="stable"), sales)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rda", type=Path, help="bayesm's data/orangeJuice.rda or data/cheese.rda")
    parser.add_argument("out", type=Path, help="the landing folder to write")
    parser.add_argument("--no-promotions", action="store_true",
                        help="leave the data's promotions out of events.csv (the calendar's events alone)")
    args = parser.parse_args()
    print(convert(args.rda, args.out, promotions=not args.no_promotions))
    return 0


if __name__ == "__main__":
    sys.exit(main())

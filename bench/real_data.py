"""Real weekly demand in the data contract: Dominick's Finer Foods refrigerated orange juice.

    apt-get download r-cran-bayesm && dpkg -x r-cran-bayesm_*.deb /tmp/bayesm   # Debian package, GPL-2+
    .venv/bin/pip install -e '.[bench]'                                          # rdata reads the .rda
    .venv/bin/python bench/real_data.py /tmp/bayesm/usr/lib/R/site-library/bayesm/data/orangeJuice.rda /tmp/oj
    .venv/bin/python bench/peers.py --landing /tmp/oj

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
- Price, deal and feature advertising are in the data but not in the contract: no model here
  sees them, the peers included.
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


def convert(rda: Path, out: Path) -> dict:
    import rdata  # the bench extra

    data = rdata.read_rda(str(rda))["orangeJuice"]
    yx, demo = data["yx"], data["storedemo"]
    sales = pd.DataFrame({
        "week_start": WEEK_ONE_MONDAY + pd.to_timedelta((yx["week"].astype(int) - 1) * 7, unit="D"),
        "store_id": "s" + yx["store"].astype(int).astype(str).str.zfill(3),
        "product_id": yx["brand"].astype(int).map(BRANDS),
        "units_shipped": np.round(np.exp(yx["logmove"].astype(float))).astype("int64"),
    })
    demo = demo.assign(store_id="s" + demo["STORE"].astype(int).astype(str).str.zfill(3))
    sales = sales[sales["store_id"].isin(demo["store_id"])]

    first = sales[sales["week_start"] < sales["week_start"].min() + pd.Timedelta(weeks=26)]
    volume = first.groupby(["store_id", "week_start"])["units_shipped"].sum().groupby("store_id").mean()
    tercile = pd.qcut(demo.set_index("store_id")["SSTRDIST"], 3,
                      labels=["near_discounter", "mid_distance", "far_from_discounter"])
    stores = pd.DataFrame({"store_id": demo["store_id"]})
    stores["region"] = stores["store_id"].map(tercile).astype(str)
    stores["format"] = np.where(stores["store_id"].map(volume) >= volume.median(), "large", "small")
    stores["zip_code"] = "60601"
    products = pd.DataFrame({"product_id": list(BRANDS.values()),
                             "category": [CATEGORY.get(b, "national") for b in BRANDS], "velocity": ""})
    extra = {c.lower(): demo[c].astype(float).round(6) for c in demo.columns
             if c not in ("STORE", "INCOME", "store_id")}
    demographics = pd.DataFrame({"store_id": demo["store_id"], "population": 0,
                                 "median_income": np.exp(demo["INCOME"].astype(float)).round(0), **extra})
    events = pd.DataFrame([(d, "*", name) for name, days in HOLIDAYS.items() for d in days],
                          columns=["date", "region", "event"]).sort_values("date")

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rda", type=Path, help="bayesm's data/orangeJuice.rda")
    parser.add_argument("out", type=Path, help="the landing folder to write")
    args = parser.parse_args()
    print(convert(args.rda, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

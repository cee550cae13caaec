"""Conditioned weekly tables per region, from validated landing tables. Pure pandas."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

KEY = ["week_start", "store_id", "product_id"]


def _weeks(weeks: Sequence[str]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(weeks))).sort_values()


def net_demand(stores: pd.DataFrame, shipments: pd.DataFrame, returns: pd.DataFrame,
               region: str, weeks: Sequence[str]) -> pd.DataFrame:
    """Weekly net demand (shipped - returned, clipped at 0) per store x product of a region.

    A store x product is listed from its first delivery on; a later week without a
    shipment row is a demand of 0 (docs/DATA_CONTRACT.md), not missing data.
    """
    weeks = _weeks(weeks)
    region_stores = set(stores.loc[stores["region"] == region, "store_id"])
    ship = shipments[shipments["store_id"].isin(region_stores)]
    ret = returns[returns["store_id"].isin(region_stores)]
    first = (pd.concat([ship[KEY], ret[KEY]]).groupby(["store_id", "product_id"])["week_start"].min()
             .rename("first_week").reset_index())
    grid = first.merge(pd.DataFrame({"week_start": weeks}), how="cross")
    grid = grid[grid["week_start"] >= grid["first_week"]].drop(columns="first_week")
    out = (grid.merge(ship[[*KEY, "units_shipped"]], on=KEY, how="left")
               .merge(ret[[*KEY, "units_returned"]], on=KEY, how="left"))
    out[["units_shipped", "units_returned"]] = out[["units_shipped", "units_returned"]].fillna(0).astype("int64")
    out["net_demand"] = (out["units_shipped"] - out["units_returned"]).clip(lower=0).astype("int64")
    out.insert(0, "region", region)
    return out.sort_values(KEY).reset_index(drop=True)


def weekly_weather(stores: pd.DataFrame, weather: pd.DataFrame, region: str, weeks: Sequence[str]) -> pd.DataFrame:
    """Weekly weather per zip code of the region's stores: observed days, else the forecast.

    A forecast is superseded by an observation for the same date and zip code. The
    ``forecast_*`` columns keep the week as it was forecast (each day's forecast where one
    landed, else its observation): what a forecast made before the week could know.
    """
    weeks = _weeks(weeks)
    zips = set(stores.loc[stores["region"] == region, "zip_code"])
    w = weather[weather["zip_code"].isin(zips)].copy()
    w["week_start"] = w["date"] - pd.to_timedelta(w["date"].dt.weekday, unit="D")
    w = w[w["week_start"].isin(weeks)]
    w = w.sort_values(["zip_code", "date", "is_forecast"])
    aggregate = {"temp_max_c": ("temp_max_c", "mean"), "temp_min_c": ("temp_min_c", "mean"),
                 "precip_mm": ("precip_mm", "sum"), "days_forecast": ("is_forecast", "sum"), "days": ("date", "size")}
    # what is known now: one row per date and zip, the observation when there is one (False sorts first)
    out = (w.drop_duplicates(["zip_code", "date"], keep="first")
           .groupby(["week_start", "zip_code"]).agg(**aggregate).reset_index())
    # what was known before the week: the forecast when one landed, else the observation
    before = (w.drop_duplicates(["zip_code", "date"], keep="last")
              .groupby(["week_start", "zip_code"]).agg(**aggregate).reset_index()
              .rename(columns={c: f"forecast_{c}" for c in ("temp_max_c", "temp_min_c", "precip_mm")})
              .rename(columns={"days_forecast": "days_with_forecast"}).drop(columns="days"))
    out = out.merge(before, on=["week_start", "zip_code"], how="left")
    for c in ("days_forecast", "days_with_forecast"):
        out[c] = out[c].astype("int64")
    out["days_observed"] = (out.pop("days") - out["days_forecast"]).astype("int64")
    out.insert(0, "region", region)
    cols = ["region", "week_start", "zip_code", "temp_max_c", "temp_min_c", "precip_mm",
            "days_observed", "days_forecast", "forecast_temp_max_c", "forecast_temp_min_c", "forecast_precip_mm",
            "days_with_forecast"]
    return out.reindex(columns=cols).sort_values(["week_start", "zip_code"]).reset_index(drop=True)


EVENT_SCOPE = ("store_id", "product_id")  # "" in a weekly event: every store, every product
BEFORE = "before_"  # the week before a national event's week also holds it, under this prefix


def weekly_events(events: pd.DataFrame, region: str, weeks: Sequence[str]) -> pd.DataFrame:
    """The events of each week that apply to the region (its own and ``*``), with their day count,
    each with the store and the product it is limited to ("": every one). A national event (region
    ``*``, every store and product: a holiday) is also an event of the week before its week, named
    ``before_<event>``: shoppers stock up before Thanksgiving and Christmas, and the calendar says
    so a week ahead. The monitor's expectation reads it; the models do not
    (``ml.preprocess.model_events`` says why)."""
    weeks = _weeks(weeks)
    e = events[events["region"].isin([region, "*"])].copy()
    for column in EVENT_SCOPE:
        e[column] = e[column].fillna("").astype(str) if column in e else ""
    national = e[(e["region"] == "*") & (e["store_id"] == "") & (e["product_id"] == "")]
    e = pd.concat([e, national.assign(event=BEFORE + national["event"], date=national["date"] - pd.Timedelta(weeks=1))],
                  ignore_index=True)
    e["week_start"] = e["date"] - pd.to_timedelta(e["date"].dt.weekday, unit="D")
    e = e[e["week_start"].isin(weeks)]
    keys = ["week_start", "event", *EVENT_SCOPE]
    out = e.groupby(keys)["date"].nunique().rename("days").reset_index()
    out["days"] = out["days"].astype("int64")
    out.insert(0, "region", region)
    return out.reindex(columns=["region", *keys, "days"]).sort_values(keys).reset_index(drop=True)

"""Pandera schemas for every raw and conditioned table (docs/DATA_CONTRACT.md).

Raw schemas run on frames that :mod:`mlops_assets.landing` has parsed from text
(a cell that could not be read is null there and is reported by the parser, so
each cell yields one problem at most). Rules that need other tables (foreign
keys) take the valid keys as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pandera.pandas as pa

SLUG = r"^[a-z0-9_]+$"
ZIP = r"^\d{5}$"
FORMATS = ("large", "small")
VELOCITIES = ("fast", "slow")
SEGMENTS = tuple(f"{f}/{v}" for f in FORMATS for v in VELOCITIES)
ALL_REGIONS = "*"


def _nonneg() -> pa.Check:
    return pa.Check.ge(0, error="must be >= 0")


def _monday() -> pa.Check:
    return pa.Check(lambda s: s.dt.dayofweek == 0, error="must be a Monday")


def _refs(valid: Iterable[str], what: str, rejected: Iterable[str] = ()) -> list[pa.Check]:
    """A foreign key: the value names a valid row of ``what``. A value whose row was
    rejected gets its own rule, so one bad master row does not read as unknown ids."""
    valid, rejected = set(valid), set(rejected) - set(valid)
    checks = [pa.Check.isin(sorted(valid | rejected), error=f"must exist in {what}")]
    if rejected:
        checks.append(pa.Check(lambda s: ~s.isin(rejected), error=f"its {what} row was rejected"))
    return checks


def _one_of(values: Iterable[str]) -> pa.Check:
    return pa.Check.isin(list(values), error=f"must be one of {', '.join(values)}")


def _nonempty() -> pa.Check:
    return pa.Check(lambda s: s.str.len() > 0, error="must not be empty")


def _text(*checks, nullable=False, unique=False, required=True) -> pa.Column:
    return pa.Column(str, list(checks), nullable=nullable, unique=unique, required=required)


def _date(*checks) -> pa.Column:
    return pa.Column("datetime64[ns]", list(checks))


def _count(*checks) -> pa.Column:
    return pa.Column("Int64", [_nonneg(), *checks])


def _number(*checks, nullable=False) -> pa.Column:
    return pa.Column(float, list(checks), nullable=nullable)


def _schema(name, columns, *, unique=None, checks=()) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        columns, name=name, unique=unique, report_duplicates="all", checks=list(checks), strict=False
    )


# --- raw tables -------------------------------------------------------------------


def stores_schema() -> pa.DataFrameSchema:
    return _schema(
        "stores",
        {
            "store_id": _text(_nonempty(), unique=True),
            "region": _text(pa.Check.str_matches(SLUG, error="must be a slug [a-z0-9_]+")),
            "format": _text(_one_of(FORMATS)),
            "zip_code": _text(pa.Check.str_matches(ZIP, error="must be 5 digits")),
        },
    )


def products_schema() -> pa.DataFrameSchema:
    return _schema(
        "products",
        {
            "product_id": _text(_nonempty(), unique=True),
            "category": _text(_nonempty()),
            "velocity": _text(_one_of(VELOCITIES), nullable=True, required=False),
        },
    )


def demographics_schema(store_ids, extra_columns=(), rejected_store_ids=()) -> pa.DataFrameSchema:
    columns = {
        "store_id": _text(*_refs(store_ids, "stores", rejected_store_ids), unique=True),
        "population": _number(_nonneg()),
        "median_income": _number(_nonneg()),
    }
    for name in extra_columns:
        columns[name] = _number()
    return _schema("demographics", columns)


def events_schema(regions: Iterable[str], store_regions: dict[str, str] | None = None,
                  product_ids: Iterable[str] = (), rejected_store_ids=(), rejected_product_ids=()
                  ) -> pa.DataFrameSchema:
    """An event applies to its region (or every region), and, where ``store_id`` or
    ``product_id`` is given, to that store or product only (a promotion, a store's reopening)."""
    # a region only named by a rejected stores row is still unknown here: events are few
    store_regions = store_regions or {}
    known = set(regions) | {ALL_REGIONS}

    def in_its_region(df):
        # only a known store in a known region is checked here: an unknown store, or a region that
        # is empty or unknown, is reported once by its own column's rule
        if "store_id" not in df:
            return pd.Series(True, index=df.index)
        own = df["store_id"].map(store_regions)
        return (df["store_id"].isna() | own.isna() | ~df["region"].isin(known) | (df["region"] == ALL_REGIONS)
                | (df["region"] == own))

    return _schema(
        "events",
        {
            "date": _date(),
            "region": _text(pa.Check.isin(sorted(set(regions) | {ALL_REGIONS}),
                                          error="must be a region of stores or '*'")),
            "event": _text(_nonempty()),
            "store_id": _text(*_refs(store_regions, "stores", rejected_store_ids), nullable=True, required=False),
            "product_id": _text(*_refs(product_ids, "products", rejected_product_ids), nullable=True,
                                required=False),
        },
        checks=[pa.Check(in_its_region, error="store_id must be a store of the event's region (or the region '*')")],
    )


def _weekly_rows(name, units, store_ids, product_ids, rejected_store_ids, rejected_product_ids):
    return _schema(
        name,
        {
            "week_start": _date(_monday()),
            "store_id": _text(*_refs(store_ids, "stores", rejected_store_ids)),
            "product_id": _text(*_refs(product_ids, "products", rejected_product_ids)),
            units: _count(),
        },
        unique=["week_start", "store_id", "product_id"],
    )


def shipments_schema(store_ids, product_ids, rejected_store_ids=(), rejected_product_ids=()):
    return _weekly_rows("shipments", "units_shipped", store_ids, product_ids,
                        rejected_store_ids, rejected_product_ids)


def returns_schema(store_ids, product_ids, rejected_store_ids=(), rejected_product_ids=()):
    return _weekly_rows("returns", "units_returned", store_ids, product_ids,
                        rejected_store_ids, rejected_product_ids)


def weather_schema() -> pa.DataFrameSchema:
    in_range = pa.Check.in_range(-60, 60, error="must be within -60..60")
    return _schema(
        "weather",
        {
            "date": _date(),
            "zip_code": _text(pa.Check.str_matches(ZIP, error="must be 5 digits")),
            "temp_max_c": _number(in_range),
            "temp_min_c": _number(in_range),
            "precip_mm": _number(_nonneg()),
            "is_forecast": pa.Column("boolean"),
        },
        unique=["date", "zip_code", "is_forecast"],
        checks=[pa.Check(lambda df: ~(df["temp_min_c"] > df["temp_max_c"]),
                         error="temp_min_c must be <= temp_max_c")],
    )


# --- conditioned tables -----------------------------------------------------------

_region = pa.Column(str, pa.Check.str_matches(SLUG))
_week = pa.Column("datetime64[ns]", _monday())


def net_demand_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "region": _region,
            "week_start": _week,
            "store_id": pa.Column(str),
            "product_id": pa.Column(str),
            "units_shipped": pa.Column("int64", _nonneg()),
            "units_returned": pa.Column("int64", _nonneg()),
            "net_demand": pa.Column("int64", _nonneg()),
        },
        name="net_demand",
        unique=["week_start", "store_id", "product_id"],
        strict=True,
    )


def weekly_weather_schema() -> pa.DataFrameSchema:
    days = pa.Check.in_range(0, 7)
    return pa.DataFrameSchema(
        {
            "region": _region,
            "week_start": _week,
            "zip_code": pa.Column(str, pa.Check.str_matches(ZIP)),
            "temp_max_c": pa.Column(float, pa.Check.in_range(-60, 60)),
            "temp_min_c": pa.Column(float, pa.Check.in_range(-60, 60)),
            "precip_mm": pa.Column(float, _nonneg()),
            "days_observed": pa.Column("int64", days),
            "days_forecast": pa.Column("int64", days),
            "forecast_temp_max_c": pa.Column(float, pa.Check.in_range(-60, 60)),
            "forecast_temp_min_c": pa.Column(float, pa.Check.in_range(-60, 60)),
            "forecast_precip_mm": pa.Column(float, _nonneg()),
            "days_with_forecast": pa.Column("int64", days),
        },
        name="weekly_weather",
        unique=["week_start", "zip_code"],
        checks=[pa.Check(lambda df: df["days_observed"] + df["days_forecast"] <= 7,
                         error="a week has at most 7 days")],
        strict=True,
    )


def weekly_events_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "region": _region,
            "week_start": _week,
            "event": pa.Column(str, _nonempty()),
            "store_id": pa.Column(str),    # "": every store of the region
            "product_id": pa.Column(str),  # "": every product
            "days": pa.Column("int64", pa.Check.in_range(1, 7)),
        },
        name="weekly_events",
        unique=["week_start", "event", "store_id", "product_id"],
        strict=True,
    )


def features_schema() -> pa.DataFrameSchema:
    """Model inputs: ids and segment present, history non-negative, the target only where observed."""
    # history that was never observed is missing (NaN), never 0
    history = {c: pa.Column(float, _nonneg(), nullable=True) for c in
               ("lag_1", "lag_2", "lag_3", "lag_4", "lag_52", "mean_4", "mean_13", "mean_52", "nonzero_mean_13")}
    return pa.DataFrameSchema(
        {
            "region": _region,
            "week_start": _week,
            "store_id": pa.Column(str),
            "product_id": pa.Column(str),
            "category": pa.Column(str),
            "format": pa.Column(str, _one_of(FORMATS)),
            "velocity": pa.Column(str, _one_of(VELOCITIES)),
            "segment": pa.Column(str, _one_of(SEGMENTS)),
            "target": pa.Column(float, _nonneg(), nullable=True),
            **history,
            "zero_share_13": pa.Column(float, pa.Check.in_range(0, 1), nullable=True),
            "weeks_listed": pa.Column(float, pa.Check.in_range(0, 52)),
            "week_of_year": pa.Column("int64", pa.Check.in_range(1, 53)),
            "temp_max_c": pa.Column(float, nullable=True),
            "precip_mm": pa.Column(float, nullable=True),
            "events": pa.Column(str),
        },
        name="features",
        unique=["week_start", "store_id", "product_id"],
        strict=False,  # demographics bring their own demo_* columns
    )

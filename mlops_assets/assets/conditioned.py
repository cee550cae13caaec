"""Conditioned weekly tables, partitioned by region x week.

Each asset runs over any set of region x week partitions in one step (a
single-run backfill policy), computing all requested weeks of a region at once,
so rebuilding years of history is one run per region, not one per week.
"""


from collections.abc import Callable

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from mlops_assets.contract import conditioning, schemas
from mlops_assets.contract.validation import failure_cases_by_value
from mlops_assets.errors import ContractError
from mlops_assets.ml import source_version
from mlops_assets.partitions import weeks_by_region
from mlops_assets.resources.storage import StorageResource


def _schema_check(asset: str, schema: pa.DataFrameSchema, frame: pd.DataFrame) -> dg.AssetCheckResult:
    # each column's distinct values checked once (a region's features: 10^6 rows, few distinct ids)
    failures = failure_cases_by_value(schema, frame)
    if failures is None:
        return dg.AssetCheckResult(check_name="schema", passed=True, metadata={"rows": len(frame)})
    return dg.AssetCheckResult(
        check_name="schema", passed=False, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failures": len(failures),
                  "sample": dg.MetadataValue.md(failures.head(25).to_markdown(index=False))},
    )


# The landing tables too big to load whole for every region x week run: an asset reading one
# gets the rows of its region (and weeks) alone, filtered while the Parquet file is read.
def _region_stores(stores: pd.DataFrame, region: str) -> list[str]:
    return stores.loc[stores["region"] == region, "store_id"].tolist()


def _delivery_rows(table: str):
    def read(storage: StorageResource, stores: pd.DataFrame, region: str, weeks: list[str]) -> pd.DataFrame:
        # every week up to the last one: a pair is listed from its first delivery on (conditioning)
        return storage.read_parquet(f"{table}.parquet", filters=[
            ("store_id", "in", _region_stores(stores, region)), ("week_start", "<=", pd.Timestamp(max(weeks)))])
    return read


def _weather_rows(storage: StorageResource, stores: pd.DataFrame, region: str, weeks: list[str]) -> pd.DataFrame:
    zips = stores.loc[stores["region"] == region, "zip_code"].unique().tolist()
    return storage.read_parquet("weather.parquet", filters=[
        ("zip_code", "in", zips), ("date", ">=", pd.Timestamp(min(weeks))),
        ("date", "<", pd.Timestamp(max(weeks)) + pd.Timedelta(weeks=1))])


SLICES = {"shipments": _delivery_rows("shipments"), "returns": _delivery_rows("returns"), "weather": _weather_rows}


def weekly_asset(name: str, schema: pa.DataFrameSchema, ins: dict[str, dg.AssetIn],
                 build: Callable[..., pd.DataFrame], description: str,
                 guard: Callable[..., None] | None = None, group: str = "conditioned",
                 code: tuple[str, ...] = ("contract/conditioning.py",)):
    """A region x week asset built by ``build``; ``code``: the source files whose digest is its
    code version (the UI marks partitions built by other code as out of date). Inputs named in
    ``SLICES`` stay edges of the graph but are read a region at a time (``stores`` must be an input)."""
    sliced = [k for k in ins if k in SLICES]
    loaded = {k: v for k, v in ins.items() if k not in SLICES}

    def factory(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
        @dg.asset(
            name=name,
            partitions_def=partitions_def,
            backfill_policy=dg.BackfillPolicy.single_run(),
            ins=loaded,
            deps=[dg.AssetKey(k) for k in sliced],
            group_name=group,
            io_manager_key="parquet_io_manager",
            check_specs=[dg.AssetCheckSpec("schema", asset=name, blocking=True,
                                           description=f"Conditioned `{name}` passes its pandera schema.")],
            description=description,
            kinds={"pandas", "parquet"},
            code_version=source_version(*code),
        )
        def _weekly(context: dg.AssetExecutionContext, storage: StorageResource, **inputs: pd.DataFrame):
            regions = weeks_by_region(context)
            if guard is not None:
                guard(regions=regions, storage=storage, **inputs)
            frames = []
            for region, weeks in sorted(regions.items()):
                rows = {k: SLICES[k](storage, inputs["stores"], region, weeks) for k in sliced}
                frames.append(build(region=region, weeks=weeks, **inputs, **rows))
            frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            per_region = frame.groupby("region").size().to_dict() if len(frame) else {}
            yield dg.Output(frame, metadata={
                "rows": len(frame),
                "regions": dg.MetadataValue.json(per_region),
                "weeks": sum(len(w) for w in regions.values()),
                "first_week": min(min(w) for w in regions.values()),
                "last_week": max(max(w) for w in regions.values()),
            })
            yield _schema_check(name, schema, frame)

        return _weekly

    return factory


def _only_delivered_weeks(regions: dict[str, list[str]], storage: StorageResource, **_) -> None:
    """Demand of a week with no delivery yet is unknown, not 0: refuse rather than write zeros."""
    delivered = storage.read_parquet("shipments.parquet", columns=["week_start"])["week_start"]
    latest = delivered.max() if len(delivered) else None
    latest_key = latest.strftime("%Y-%m-%d") if latest is not None else "none"
    ahead = sorted({w for weeks in regions.values() for w in weeks if latest is None or pd.Timestamp(w) > latest})
    if ahead:
        raise ContractError(f"net_demand: no shipments delivered yet for week(s) {', '.join(ahead[:5])}"
                            f"{' ...' if len(ahead) > 5 else ''} (latest delivered week: {latest_key}); "
                            "materialize those weeks once their shipments land")


net_demand = weekly_asset(
    "net_demand", schemas.net_demand_schema(),
    {"stores": dg.AssetIn(), "shipments": dg.AssetIn(), "returns": dg.AssetIn()},
    lambda stores, shipments, returns, region, weeks: conditioning.net_demand(stores, shipments, returns,
                                                                              region, weeks),
    "Weekly net demand (units shipped - returned, clipped at 0) per store x product: the target.",
    guard=_only_delivered_weeks,
)
weekly_weather = weekly_asset(
    "weekly_weather", schemas.weekly_weather_schema(),
    {"stores": dg.AssetIn(), "weather": dg.AssetIn()},
    lambda stores, weather, region, weeks: conditioning.weekly_weather(stores, weather, region, weeks),
    "Weekly weather per zip code of the region: observed days, else the latest forecast.",
)
weekly_events = weekly_asset(
    "weekly_events", schemas.weekly_events_schema(),
    {"events": dg.AssetIn()},
    lambda events, region, weeks: conditioning.weekly_events(events, region, weeks),
    "The week's events for the region (its own and national ones), with days per event.",
)

WEEKLY_FACTORIES = [net_demand, weekly_weather, weekly_events]

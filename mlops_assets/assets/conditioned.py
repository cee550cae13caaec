"""Conditioned weekly tables, partitioned by region x week.

Each asset runs over any set of region x week partitions in one step (a
single-run backfill policy), computing all requested weeks of a region at once,
so rebuilding years of history is one run per region, not one per week.
"""


from collections.abc import Callable

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from mlops_assets.contract import conditioning, schemas
from mlops_assets.contract.validation import failure_cases_by_value
from mlops_assets.errors import ContractError
from mlops_assets.locations import source, url
from mlops_assets.ml import source_version
from mlops_assets.partitions import split_key, weeks_by_region
from mlops_assets.resources.storage import SKIPPED, StorageResource, partition_file


def _schema_check(asset: str, schema: pa.DataFrameSchema, frame: pd.DataFrame, scope: str) -> dg.AssetCheckResult:
    # each column's distinct values checked once (a region's features: 10^6 rows, few distinct ids)
    failures = failure_cases_by_value(schema, frame)
    if failures is None:
        return dg.AssetCheckResult(check_name="schema", passed=True, description=f"{scope}: {len(frame):,} rows pass",
                                   metadata={"rows": len(frame), "partitions": scope})
    return dg.AssetCheckResult(
        check_name="schema", passed=False, severity=dg.AssetCheckSeverity.ERROR,
        description=f"{scope}: {len(failures)} failure case(s)",
        metadata={"failures": len(failures), "partitions": scope,
                  "sample": dg.MetadataValue.md(failures.head(25).to_markdown(index=False))},
    )


def _row_count(path) -> int:
    """Rows of a stored Parquet file, from its footer (local or on Azure)."""
    with source(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


def describe_partitions(regions: dict[str, list[str]]) -> str:
    """'north 2024-11-18' for one partition, 'north 2024-11-18 .. 2026-11-09 (104 weeks)' for a range."""
    parts = []
    for region, weeks in sorted(regions.items()):
        weeks = sorted(weeks)
        parts.append(f"{region} {weeks[0]}" if len(weeks) == 1 else
                     f"{region} {weeks[0]} .. {weeks[-1]} ({len(weeks)} weeks)")
    return "; ".join(parts) or "none"


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


Availability = Callable[..., dict[str, str]]


def weekly_asset(name: str, schema: pa.DataFrameSchema, ins: dict[str, dg.AssetIn],
                 build: Callable[..., pd.DataFrame], description: str,
                 not_available: Availability | None = None, group: str = "conditioned",
                 code: tuple[str, ...] = ("contract/conditioning.py",)):
    """A region x week asset built by ``build``; ``code``: the source files whose digest is its
    code version (the UI marks partitions built by other code as out of date). Inputs named in
    ``SLICES`` stay edges of the graph but are read a region at a time (``stores`` must be an input).

    ``not_available(region, weeks, storage, **inputs)`` names the weeks whose data has not landed,
    with the reason: a run over a range (a backfill of "all" weeks) builds the others and records
    those as skipped in their own partition's metadata, instead of failing every week; a run with
    no week to build fails, saying why. Each
    partition's metadata is its own (rows, status), whatever range the run covered."""
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
            # partitioned: a one-week run's result names its region and week (a range run's says
            # its range in the description: Dagster gives a range's check result no partition)
            check_specs=[dg.AssetCheckSpec("schema", asset=name, blocking=True, partitions_def=partitions_def,
                                           description=f"Conditioned `{name}` passes its pandera schema.")],
            description=description,
            kinds={"pandas", "parquet"},
            code_version=source_version(*code),
        )
        def _weekly(context: dg.AssetExecutionContext, storage: StorageResource, **inputs: pd.DataFrame):
            requested = weeks_by_region(context)
            frames, built, skipped = [], {}, {}
            for region, weeks in sorted(requested.items()):
                missing = not_available(region=region, weeks=weeks, storage=storage, **inputs) if not_available else {}
                skipped.update({(region, w): why for w, why in missing.items()})
                ready = [w for w in weeks if w not in missing]
                if not ready:
                    continue
                built[region] = ready
                rows = {k: SLICES[k](storage, inputs["stores"], region, ready) for k in sliced}
                frames.append(build(region=region, weeks=ready, **inputs, **rows))
            if skipped and not built:  # nothing asked for can be built: say so, as a failure
                raise ContractError(f"{name}: nothing to build; " + "; ".join(
                    f"{r} {w}: {why}" for (r, w), why in sorted(skipped.items())[:5]) +
                    (f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""))
            frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
                {"region": pd.Series(dtype=str), "week_start": pd.Series(dtype="datetime64[ns]")})
            counts = (frame.groupby([frame["region"], frame["week_start"].dt.strftime("%Y-%m-%d")]).size().to_dict()
                      if len(frame) else {})
            scope = (f"{describe_partitions(requested)}: {sum(map(len, built.values()))} built, "
                     f"{len(skipped)} skipped, in run {context.run.run_id[:8]}")
            for key in context.partition_keys:
                region, week = split_key(key)
                if (region, week) in skipped:
                    kept = storage.path / partition_file(context.assets_def.key, key)
                    rows = _row_count(kept) if kept.exists() else 0
                    meta = {"status": "skipped: " + skipped[(region, week)] +
                            ("; the value an earlier run stored is kept" if kept.exists() else ""), "rows": rows}
                else:
                    meta = {"status": "built", "rows": int(counts.get((region, week), 0)),
                            "path": dg.MetadataValue.path(url(storage.path / partition_file(context.assets_def.key,
                                                                                             key)))}
                context.add_asset_metadata({"region": region, "week": week, **meta, "run covered": scope},
                                           partition_key=key)
            if skipped:
                context.log.info(f"{name}: built {describe_partitions(built)}; skipped {len(skipped)} week(s) "
                                    f"whose data has not landed: " + "; ".join(
                                        f"{r} {w}: {why}" for (r, w), why in sorted(skipped.items())[:5]))
            frame.attrs[SKIPPED] = [f"{r}|{w}" for r, w in skipped]
            # the blocking check runs before the output is handed to the IO manager: Dagster would
            # write a failing frame over the last good partitions before running the check
            check = _schema_check(name, schema, frame, describe_partitions(built))
            if not check.passed:
                yield check
                raise ContractError(f"{name}: {check.description}; nothing written, the partitions keep their "
                                    "last good values (see the schema check's failure cases)")
            yield dg.Output(frame)
            yield check

        return _weekly

    return factory


def undelivered_weeks(region: str, weeks: list[str], storage: StorageResource, stores: pd.DataFrame,
                      **_) -> dict[str, str]:
    """Demand of a week with no delivery to the region is unknown, not 0: such weeks are not built,
    whether they come after the latest delivery or fall between two (a lost file). Another
    region's deliveries say nothing of this one's."""
    delivered = storage.read_parquet("shipments.parquet", columns=["week_start"],
                                     filters=[("store_id", "in", _region_stores(stores, region))])["week_start"]
    latest = delivered.max() if len(delivered) else None
    latest_key = latest.strftime("%Y-%m-%d") if latest is not None else "none"
    seen = set(delivered.dt.strftime("%Y-%m-%d").unique())
    out = {}
    for w in weeks:
        if latest is None or pd.Timestamp(w) > latest:
            out[w] = f"no shipments have landed for this week yet (latest delivered week: {latest_key})"
        elif w not in seen:
            out[w] = (f"no shipments were delivered for this week, though later weeks were (latest: {latest_key}): "
                      "its demand is unknown, not 0; deliver its file to build it")
    return out


net_demand = weekly_asset(
    "net_demand", schemas.net_demand_schema(),
    {"stores": dg.AssetIn(), "shipments": dg.AssetIn(), "returns": dg.AssetIn()},
    lambda stores, shipments, returns, region, weeks: conditioning.net_demand(stores, shipments, returns,
                                                                              region, weeks),
    "Weekly net demand (units shipped - returned, clipped at 0) per store x product: the target. Weeks whose "
    "shipments have not landed are skipped (their partition's status says so), never written as zeros.",
    not_available=undelivered_weeks,
)
weekly_weather = weekly_asset(
    "weekly_weather", schemas.weekly_weather_schema(),
    {"stores": dg.AssetIn(), "weather": dg.AssetIn()},
    lambda stores, weather, region, weeks: conditioning.weekly_weather(stores, weather, region, weeks),
    # a week with no weather yet is built empty, not skipped: the coming week is forecast from
    # whatever weather is known (none: the features impute it), as it always was
    "Weekly weather per zip code of the region: observed days, else the latest forecast (none yet: no rows).",
)
weekly_events = weekly_asset(
    "weekly_events", schemas.weekly_events_schema(),
    {"events": dg.AssetIn()},
    lambda events, region, weeks: conditioning.weekly_events(events, region, weeks),
    "The week's events for the region (its own and national ones), with days per event and the store "
    "and product each is limited to (empty: every one).",
)

WEEKLY_FACTORIES = [net_demand, weekly_weather, weekly_events]

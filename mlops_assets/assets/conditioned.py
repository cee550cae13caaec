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
from mlops_assets.errors import ContractError
from mlops_assets.ml import source_version
from mlops_assets.partitions import weeks_by_region


def _schema_check(asset: str, schema: pa.DataFrameSchema, frame: pd.DataFrame) -> dg.AssetCheckResult:
    try:
        schema.validate(frame, lazy=True)
        return dg.AssetCheckResult(check_name="schema", passed=True, metadata={"rows": len(frame)})
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.head(25)
        return dg.AssetCheckResult(
            check_name="schema", passed=False, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"failures": len(exc.failure_cases),
                      "sample": dg.MetadataValue.md(cases.to_markdown(index=False))},
        )


def weekly_asset(name: str, schema: pa.DataFrameSchema, ins: dict[str, dg.AssetIn],
                 build: Callable[..., pd.DataFrame], description: str,
                 guard: Callable[..., None] | None = None, group: str = "conditioned",
                 code: tuple[str, ...] = ("contract/conditioning.py",)):
    """A region x week asset built by ``build``; ``code``: the source files whose digest is its
    code version (the UI marks partitions built by other code as out of date)."""
    def factory(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
        @dg.asset(
            name=name,
            partitions_def=partitions_def,
            backfill_policy=dg.BackfillPolicy.single_run(),
            ins=ins,
            group_name=group,
            io_manager_key="parquet_io_manager",
            check_specs=[dg.AssetCheckSpec("schema", asset=name, blocking=True,
                                           description=f"Conditioned `{name}` passes its pandera schema.")],
            description=description,
            kinds={"pandas", "parquet"},
            code_version=source_version(*code),
        )
        def _weekly(context: dg.AssetExecutionContext, **inputs: pd.DataFrame):
            regions = weeks_by_region(context)
            if guard is not None:
                guard(regions=regions, **inputs)
            frames = [build(region=r, weeks=w, **inputs) for r, w in sorted(regions.items())]
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


def _only_delivered_weeks(regions: dict[str, list[str]], shipments: pd.DataFrame, **_) -> None:
    """Demand of a week with no delivery yet is unknown, not 0: refuse rather than write zeros."""
    latest = shipments["week_start"].max() if len(shipments) else None
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

"""``features`` [region x week]: model inputs built only from what was known before each week."""

import dagster as dg

from mlops_assets.assets.conditioned import weekly_asset
from mlops_assets.contract import schemas
from mlops_assets.ml.featurize import HISTORY_WEEKS, build_features
from mlops_assets.partitions import REGION, WEEK
from mlops_assets.resources.storage import ALLOW_MISSING, StorageResource, partition_file

# week w reads net demand of weeks w-52 .. w (w itself only as the target, when observed)
HISTORY = dg.MultiPartitionMapping({
    REGION: dg.DimensionPartitionMapping(REGION, dg.IdentityPartitionMapping()),
    WEEK: dg.DimensionPartitionMapping(WEEK, dg.TimeWindowPartitionMapping(
        start_offset=-HISTORY_WEEKS, end_offset=0, allow_nonexistent_upstream_partitions=True)),
})


def _build(net_demand, weekly_weather, weekly_events, stores, products, demographics, region, weeks):
    def own(frame):
        return frame[frame["region"] == region] if len(frame) else frame

    return build_features(own(net_demand), weeks, stores, products, demographics, own(weekly_weather),
                          own(weekly_events))


def weeks_without_inputs(region: str, weeks: list[str], storage: StorageResource, **_) -> dict[str, str]:
    """A week's features need its weather and events partitions (its demand only as the target)."""
    out = {}
    for week in weeks:
        absent = [a for a in ("weekly_weather", "weekly_events")
                  if not storage.exists(partition_file(dg.AssetKey(a), f"{region}|{week}"))]
        if absent:
            out[week] = (f"{' and '.join(absent)} of this week not materialized (materialize them first; "
                         "they skip weeks whose data has not landed)")
    return out


features = weekly_asset(
    "features", schemas.features_schema(),
    {
        # history before the first week, and a week not observed yet, are simply absent
        "net_demand": dg.AssetIn(partition_mapping=HISTORY, metadata={ALLOW_MISSING: True}),
        # a week whose weather or events are not built is skipped (weeks_without_inputs)
        "weekly_weather": dg.AssetIn(metadata={ALLOW_MISSING: True}),
        "weekly_events": dg.AssetIn(metadata={ALLOW_MISSING: True}),
        "stores": dg.AssetIn(),
        "products": dg.AssetIn(),
        "demographics": dg.AssetIn(),
    },
    _build,
    "One row per listed store x product for the week: target, lags, trailing means, calendar, events, "
    "weather, demographics, format, velocity (given or derived, with its source) and ids.",
    not_available=weeks_without_inputs,
    group="features",
    code=("ml/featurize.py", "contract/conditioning.py"),
)

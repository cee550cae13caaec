"""Partitions: regions are discovered from the data, weeks start on Monday."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import dagster as dg

REGION = "region"
WEEK = "week"

# Named, so sensors and the CLI can add regions found in stores.csv.
region_partitions = dg.DynamicPartitionsDefinition(name=REGION)


def week_partitions(first_week: str) -> dg.WeeklyPartitionsDefinition:
    # day_offset=1: Dagster's weeks start on Sunday otherwise. end_offset=1 keeps the
    # week in progress available, so next week's forecast has a partition to land in.
    return dg.WeeklyPartitionsDefinition(start_date=first_week, day_offset=1, end_offset=1)


def region_week_partitions(first_week: str) -> dg.MultiPartitionsDefinition:
    """Region x week, from ``first_week``: the conditioned tables and features (weeks of data), or,
    from the first scored week, the scores and their monitors (weeks a champion forecast)."""
    return dg.MultiPartitionsDefinition({REGION: region_partitions, WEEK: week_partitions(first_week)})


def week_to_score(last_delivered: str, today: dt.date | None = None) -> str:
    """The week a run forecasts after ``last_delivered``: the week after it, unless that week is
    not a partition yet (data dated ahead of the clock), then the last delivered week itself."""
    upcoming = dt.date.fromisoformat(last_delivered) + dt.timedelta(weeks=1)
    today = today or dt.datetime.now(dt.timezone.utc).date()
    newest = today - dt.timedelta(days=today.weekday())  # the week in progress (end_offset=1)
    return upcoming.isoformat() if upcoming <= newest else last_delivered


def split_key(key) -> tuple[str, str]:
    """(region, week) of a region x week partition key, given as a string or MultiPartitionKey."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[REGION], dims[WEEK]
    region, week = str(key).split("|")
    return region, week


def region_week_key(region: str, week: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({REGION: region, WEEK: week})


def weeks_by_region(context: dg.AssetExecutionContext) -> dict[str, list[str]]:
    """{region: [week, ..]} of the partitions a run materializes."""
    out: dict[str, list[str]] = defaultdict(list)
    for key in context.partition_keys:
        region, week = split_key(key)
        out[region].append(week)
    return dict(out)


def latest_materializations(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]) -> dict:
    """{partition: its latest materialization record} for the given partitions (absent if never)."""
    found: dict = {}
    cursor = None
    while len(found) < len(partitions):
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=1000, cursor=cursor)
        for record in result.records:  # newest first
            found.setdefault(record.asset_materialization.partition, record)
        if not result.has_more:
            break
        cursor = result.cursor
    return found

"""A region's end and return: ``mlops-assets retire`` and ``mlops-assets onboard``.

Retiring takes the champion alias away (the versions stay, tagged), removes the region's dynamic
partition so that sensors, schedules and backfills stop touching it, and keeps its history
(stored weeks, runs, registry) readable. A retired region whose data lands again is not added
back by the sensors: the alerts say so, and a person onboards it.
"""

from __future__ import annotations

import dagster as dg

from mlops_assets import config
from mlops_assets.app.execution import RunFailed, prepare_environment
from mlops_assets.partitions import region_partitions
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource

IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def runs_in_flight(instance: dg.DagsterInstance, region: str) -> list[dg.DagsterRun]:
    """The queued or running runs that touch ``region``: its partition, a range of its weeks, or
    its tag (the sensors' chains)."""
    out = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        keys = [run.tags.get("dagster/partition", ""), run.tags.get("dagster/asset_partition_range_start", "")]
        if run.tags.get("mlops/region") == region or any(k == region or k.startswith(f"{region}|") for k in keys):
            out.append(run)
    return out


def retire_region(region: str, reason: str, by: str) -> dict:
    settings = prepare_environment()
    instance = dg.DagsterInstance.get()
    registry = MlflowRegistryResource.from_settings(settings).registry
    known = instance.get_dynamic_partitions(region_partitions.name)
    if region not in registry.regions():  # a region is retired in the registry: it must have models
        raise RunFailed(f"{region} has no registered model; this home's regions are {', '.join(known) or 'none'}")
    if registry.retired(region):
        raise RunFailed(f"{region} is retired already ({registry.retired(region)['reason']})")
    busy = runs_in_flight(instance, region)
    if busy:
        named = ", ".join(f"{r.job_name} {r.run_id[:8]}" for r in busy[:5])
        raise RunFailed(f"{region} has {len(busy)} run(s) in flight ({named}): retire it once they end "
                        "(or cancel them in the UI)")
    entry = registry.retire(region, by=by, reason=reason)
    if region in known:
        instance.delete_dynamic_partition(region_partitions.name, region)
    return entry


def onboard_region(region: str, reason: str, by: str) -> None:
    """Take a retired region back: its retirement ends and its partition returns, so the sensors,
    the schedules and ``mlops-assets run`` work on it again."""
    settings: config.Settings = prepare_environment()
    registry = MlflowRegistryResource.from_settings(settings).registry
    if not registry.retired(region):
        raise RunFailed(f"{region} is not retired")
    registry.onboard(region, by=by, reason=reason)
    instance = dg.DagsterInstance.get()
    if region not in instance.get_dynamic_partitions(region_partitions.name):
        instance.add_dynamic_partitions(region_partitions.name, [region])

"""Materialize the graph for a landing folder in-process: what ``mlops-assets run`` does.

Runs go into a persistent Dagster instance (``DAGSTER_HOME``), so ``dagster dev``
shows them afterwards. Everything the runs need to know comes from the data:
the regions from stores.csv, the weeks from the shipments.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_assets import config
from mlops_assets.jobs import OBSERVE_LANDING, TABLES, WEEKLY
from mlops_assets.landing import check_landing
from mlops_assets.partitions import region_partitions

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


class RunFailed(RuntimeError):
    """A Dagster run of ``mlops-assets run`` failed; the message names the step and error."""


def prepare_environment(landing: Path | None = None) -> config.Settings:
    """Point settings at ``landing`` and a persistent Dagster home with the project's dagster.yaml."""
    if landing is not None:
        os.environ["MLOPS_LANDING_DIR"] = str(Path(landing).resolve())
    settings = config.Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    template = config.REPO_ROOT / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and template.exists():
        shutil.copy(template, home / "dagster.yaml")
    return settings


@dataclass
class RunSummary:
    landing: Path
    first_week: str
    last_week: str
    regions: dict[str, dict] = field(default_factory=dict)
    tables: dict[str, dict] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)


def user_error(error) -> str:
    """The innermost message of a Dagster error chain: the user's own exception, not the wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def _execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, summary: RunSummary, **kwargs):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, run_config=QUIET, raise_on_error=False, **kwargs)
    summary.run_ids.append(result.run_id)
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        detail = "\n".join(f"  step {e.step_key}: {user_error(e.event_specific_data.error)}" for e in failures)
        raise RunFailed(f"run {result.run_id} of job {job} failed:\n{detail or '  (see the Dagster UI)'}")
    return result


def run_pipeline(landing: Path | None = None, regions: list[str] | None = None) -> RunSummary:
    settings = prepare_environment(landing)
    checked = check_landing(settings.landing_dir)
    stores, shipments = checked["stores"].valid, checked["shipments"].valid
    if stores.empty or shipments.empty:
        problems = "\n".join(str(p) for p in [*checked["stores"].problems, *checked["shipments"].problems][:20])
        raise RunFailed(f"{settings.landing_dir}: no valid stores or shipments to run on:\n{problems}")

    data_regions = list(dict.fromkeys(stores["region"]))
    if regions:
        unknown = sorted(set(regions) - set(data_regions))
        if unknown:
            raise RunFailed(f"unknown region(s) {', '.join(unknown)}; stores.csv has {', '.join(data_regions)}")
    selected = regions or data_regions

    first = shipments["week_start"].min().date()
    last = shipments["week_start"].max().date()
    if not os.environ.get("MLOPS_FIRST_WEEK"):
        recorded = config.partition_settings_path(settings.home)
        known = dt.date.fromisoformat(settings.first_week) if recorded.exists() else first
        config.record_first_week(settings.home, min(known, first).isoformat())
        settings = config.Settings.from_env()

    from mlops_assets.definitions import build_definitions  # after the environment is set

    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    known_regions = set(instance.get_dynamic_partitions(region_partitions.name))
    new_regions = [r for r in data_regions if r not in known_regions]
    if new_regions:
        instance.add_dynamic_partitions(region_partitions.name, new_regions)

    summary = RunSummary(settings.landing_dir, first.isoformat(), last.isoformat())
    _execute(defs, OBSERVE_LANDING, instance, summary)
    _execute(defs, TABLES, instance, summary)
    for name, result in checked.items():
        summary.tables[name] = {"rows": len(result.valid), "quarantined": len(result.quarantine),
                                "problems": len(result.problems)}

    week_keys = defs.resolve_assets_def("weekly_weather").partitions_def.get_partitions_def_for_dimension(
        "week").get_partition_keys()
    next_week = (last + dt.timedelta(weeks=1)).isoformat()
    for region in selected:
        _execute(defs, WEEKLY, instance, summary,
                 tags={RANGE_START: f"{region}|{first.isoformat()}", RANGE_END: f"{region}|{last.isoformat()}"})
        if next_week in week_keys:  # the coming week's weather forecast and events, for scoring
            _execute(defs, WEEKLY, instance, summary, partition_key=f"{region}|{next_week}",
                     asset_selection=[dg.AssetKey("weekly_weather"), dg.AssetKey("weekly_events")])
        region_stores = stores[stores["region"] == region]
        region_shipments = shipments[shipments["store_id"].isin(region_stores["store_id"])]
        summary.regions[region] = {
            "stores": len(region_stores),
            "products": int(region_shipments["product_id"].nunique()),
            "weeks": int(region_shipments["week_start"].nunique()),
            "shipment_rows": len(region_shipments),
        }
    return summary


def format_summary(summary: RunSummary) -> str:
    lines = [f"landing {summary.landing}: weeks {summary.first_week} .. {summary.last_week}", ""]
    regions = pd.DataFrame.from_dict(summary.regions, orient="index")
    regions.index.name = "region"
    lines.append(regions.to_string())
    lines.append("")
    tables = pd.DataFrame.from_dict(summary.tables, orient="index")
    tables.index.name = "table"
    lines.append(tables.to_string())
    quarantined = sum(t["quarantined"] for t in summary.tables.values())
    lines.append("")
    lines.append(f"{quarantined} rows quarantined" + (" (see mlops-assets validate, and <storage>/quarantine/)"
                                                      if quarantined else ""))
    lines.append(f"{len(summary.run_ids)} Dagster runs in {os.environ.get('DAGSTER_HOME')}: "
                 "`mlops-assets ui` shows them")
    return "\n".join(lines)

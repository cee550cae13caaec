"""``mlops-assets run``: a landing folder to validated tables, features, trained and gated models,
the holdout replay and the coming week's forecast; ``--new-weeks``: what the sensors do when a
week lands.

Everything the runs need to know comes from the data: the regions from stores.csv, the weeks from
the shipments.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_assets import config
from mlops_assets.app import lanes as lane
from mlops_assets.app.execution import (
    MANUAL,
    NEW_DATA,
    QUIET,
    RANGE_END,
    RANGE_START,
    RunFailed,
    RunSummary,
    StageHook,
    check_landing,
    execute,
    prepare_environment,
    storage,
    week_keys,
)
from mlops_assets.app.report import holdout_totals
from mlops_assets.automation.jobs import (
    ALERTING,
    COMPARISON,
    FORECAST_INPUTS,
    MONITORING,
    OBSERVE_LANDING,
    SCORING,
    TABLES,
    TRAINING,
    WEEKLY,
)
from mlops_assets.automation.sensors import last_delivered_week, monitored_span, next_week
from mlops_assets.locations import url
from mlops_assets.ml.ensemble import evaluation_json
from mlops_assets.monitoring.replay import replay_region, replay_regions
from mlops_assets.partitions import region_partitions, week_to_score
from mlops_assets.registry import gates
from mlops_assets.resources.landing_folder import LandingResource, forget_checked
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource
from mlops_assets.resources.storage import load_model_version


def _prepare(settings: config.Settings, regions: list[str] | None, summary: RunSummary,
             on_stage: StageHook | None = None) -> dict:
    """Validate the landing folder, record the first week, add the regions' partitions, and run
    the observation and the tables jobs. Returns the facts the regions' runs need (plain JSON)."""
    # the tables job reads the same cached check: the landing folder is validated once per run
    checked = LandingResource(path=url(settings.landing_dir)).checked()
    stores, shipments = checked["stores"].valid, checked["shipments"].valid
    if stores.empty or shipments.empty:
        problems = "\n".join(str(p) for p in [*checked["stores"].problems, *checked["shipments"].problems][:20])
        raise RunFailed(f"{settings.landing_dir}: no valid stores or shipments to run on:\n{problems}")

    data_regions = list(dict.fromkeys(stores["region"]))
    if regions:
        unknown = sorted(set(regions) - set(data_regions))
        if unknown:
            raise RunFailed(f"unknown region(s) {', '.join(unknown)}; stores.csv has {', '.join(data_regions)}")
    # a retired region is left alone until a person onboards it (`mlops-assets onboard`)
    registry = MlflowRegistryResource.from_settings(settings).registry
    retired = [r for r in data_regions if registry.retired(r)]  # None for a region never registered
    if regions and set(regions) & set(retired):
        raise RunFailed(f"{', '.join(sorted(set(regions) & set(retired)))} retired: `mlops-assets onboard REGION "
                        "--reason ...` first")
    data_regions = [r for r in data_regions if r not in retired]
    first = shipments["week_start"].min().date()
    last = shipments["week_start"].max().date()
    region_of_rows = shipments["store_id"].map(stores.set_index("store_id")["region"])
    shipped = shipments.groupby(region_of_rows).agg(products=("product_id", "nunique"), weeks=("week_start", "nunique"),
                                                    shipment_rows=("store_id", "size"))
    del shipments, region_of_rows
    # where the week partitions start (the first delivered week) and the scored weeks (the first
    # week forecast), kept as early as any run here has needed them
    recorded, weeks = config.recorded_weeks(settings.home), {}
    if not settings.first_week_from_env:
        weeks["first_week"] = min(recorded.get("first_week", first.isoformat()), first.isoformat())
    if not settings.first_scored_week_from_env:
        scored = week_to_score(last.isoformat())
        weeks["first_scored_week"] = min(recorded.get("first_scored_week", scored), scored)
    if weeks:
        config.record_weeks(settings.home, **weeks)
        settings = config.Settings.from_env()

    from mlops_assets.definitions import build_definitions  # after the environment is set

    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    known_regions = set(instance.get_dynamic_partitions(region_partitions.name))
    new_regions = [r for r in data_regions if r not in known_regions]
    if new_regions:
        instance.add_dynamic_partitions(region_partitions.name, new_regions)
    execute(defs, OBSERVE_LANDING, instance, summary, on_stage=on_stage)
    execute(defs, TABLES, instance, summary, on_stage=on_stage)
    tables = {name: {"rows": len(r.valid), "quarantined": len(r.quarantine), "problems": len(r.problems)}
              for name, r in checked.items()}
    del checked
    forget_checked()  # stored now: the regions' runs read the stored tables, a region at a time
    return {"first": first.isoformat(), "last": last.isoformat(), "selected": regions or data_regions,
            "tables": tables, "stores": {r: int(n) for r, n in stores["region"].value_counts().items()},
            "shipped": {r: {k: int(v) for k, v in row.items()} for r, row in shipped.to_dict("index").items()}}


def run_pipeline(landing: Path | None = None, regions: list[str] | None = None,
                 holdout_weeks: int = 13, train: bool = True, on_stage: StageHook | None = None,
                 workers: int | None = None) -> RunSummary:
    """``on_stage(label)``, when given, is entered around every Dagster run of this process
    (benchmarks measure with it; runs in worker processes are timed there, into
    ``summary.stages``). ``workers``: regions at a time (``lanes``)."""
    settings = prepare_environment(landing)
    check_landing(settings)
    summary = RunSummary(settings.landing_dir, "", "")
    if lane.lanes(workers, *lane.size_estimate(settings.landing_dir), settings.run_workers) > 1:
        # the landing check (gigabytes at seed scale) in a process of its own, which ends with it
        facts = lane.in_processes(_worker, "prepare", [""], 1, {"regions": regions}, summary)[""]
    else:
        facts = _prepare(settings, regions, summary, on_stage)
    settings = config.Settings.from_env()  # the first week is recorded now
    from mlops_assets.definitions import build_definitions

    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    summary.first_week, summary.last_week = facts["first"], facts["last"]
    summary.tables = facts["tables"]
    selected, shipped = facts["selected"], facts["shipped"]

    n_lanes = lane.lanes(workers, len(selected), sum(c["shipment_rows"] for c in shipped.values()),
                         settings.run_workers)
    plan = {"first": facts["first"], "last": facts["last"], "holdout_weeks": holdout_weeks, "train": train}
    if n_lanes > 1:
        lane.in_processes(_worker, "pipeline", selected, n_lanes, {**plan, "threads": 1}, summary)
    else:
        for region in selected:
            _run_region(defs, instance, settings, region, {**plan, "threads": settings.train_threads}, summary,
                        on_stage)
    if train:  # each region's holdout weeks against the other regions' (the regional signal)
        replay_regions(summary.replay, settings.monitor)
    for region in selected:
        summary.regions[region] = {"stores": facts["stores"].get(region, 0),
                                   **shipped.get(region, {"products": 0, "weeks": 0, "shipment_rows": 0})}
    if train:
        execute(defs, ALERTING, instance, summary, on_stage=on_stage, label="alerts", tags=MANUAL)
    return summary


def _run_region(defs: dg.Definitions, instance: dg.DagsterInstance, settings: config.Settings, region: str,
                plan: dict, summary: RunSummary, on_stage: StageHook | None = None) -> None:
    """A region's chain: its conditioned weeks and features, the coming week's inputs, training, the
    holdout replay and the forecast of the coming week. Fills ``summary``'s entries for ``region``.
    ``plan``: the first and last delivered weeks, holdout weeks, whether to train, and the
    training's threads (0: as many as the cores allow, at most 2)."""
    first, last = plan["first"], plan["last"]
    score_week = week_to_score(last)
    # drift and realized accuracy of past weeks are the replay's, against the model fit before them
    execute(defs, WEEKLY, instance, summary, on_stage=on_stage, label=f"weekly {region}",
            tags={RANGE_START: f"{region}|{first}", RANGE_END: f"{region}|{last}", **MANUAL})
    if score_week > last:  # the coming week's weather forecast, events and features, for scoring
        execute(defs, WEEKLY, instance, summary, on_stage=on_stage, label=f"weekly {region} next week",
                partition_key=f"{region}|{score_week}", tags=MANUAL, asset_selection=FORECAST_INPUTS)
    if not plan["train"]:
        return
    training = {"holdout_weeks": plan["holdout_weeks"], "threads": plan["threads"]}
    result = execute(defs, TRAINING, instance, summary, on_stage=on_stage, label=f"training {region}",
                     partition_key=region, tolerate_gates=True, tags=MANUAL,
                     run_config={**QUIET, "ops": {"region_model": {"config": training}}})
    # this run's candidate, whether or not it passed its gates (current.json moves only if it did)
    model = load_model_version(settings.storage_root / "region_model" / region / result.run_id)
    meta = result.asset_materializations_for_node("region_model")[-1].metadata
    summary.models[region] = {
        "model_version": f"{meta['registered model'].value}/{meta[gates.VERSION_ENTRY].value}",
        "mlflow_run_id": meta["mlflow run"].value, "as_of_week": model.as_of_week,
        "gate_verdict": meta[gates.VERDICT_ENTRY].value.split(":")[0], "promoted": meta["promoted"].value,
        "champion_version": str(meta[gates.CHAMPION_ENTRY].value),
        "failed_gates": {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.description
                         for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                         and not e.asset_check_evaluation_data.passed},
        "evaluation": model.evaluation, "segments": evaluation_json(model)}
    if model.segments:  # else nothing was held out or forecast: nothing to replay
        holdout = storage(settings).read_parquet(f"holdout_forecasts/{region}/{result.run_id}.parquet")
        summary.models[region]["holdout_totals"] = holdout_totals(holdout)
        held_from = model.evaluation["holdout"]["first_week"]
        summary.replay[region] = replay_region(
            region, _stored(settings, "features", region, held_from), holdout, model.holdout_reference,
            model.evaluation, (dt.date.fromisoformat(held_from) - dt.timedelta(weeks=1)).isoformat(),
            settings.monitor, settings.retrain)
    # without a champion the baseline serves (marked, with an alert): a region is never unforecast
    execute(defs, SCORING, instance, summary, on_stage=on_stage, label=f"scoring {region} {score_week}",
            partition_key=f"{region}|{score_week}", tags=MANUAL)
    summary.models[region]["scored_week"] = score_week


def _stored(settings: config.Settings, asset: str, region: str, first_week: str) -> pd.DataFrame:
    store = storage(settings)
    weeks = [w for w in store.files(f"{asset}/{region}") if w >= first_week]
    return pd.concat([store.read_parquet(f"{asset}/{region}/{w}.parquet") for w in weeks], ignore_index=True)


def run_new_weeks(landing: Path | None = None, on_stage: StageHook | None = None,
                  workers: int | None = None) -> RunSummary:
    """What the sensors do when a week's files land, in the same runs: validate
    the landing tables; per region, condition, build features and monitor (drift, realized
    accuracy) the weeks delivered since the last validation, then forecast the coming week with
    the champion and measure its drift; refresh the alerts. Needs a home that ``run_pipeline``
    (or the sensors) already filled: the history, the features and the champions. Regions run
    two at a time in worker processes where they are large (``lanes``)."""
    from mlops_assets.definitions import build_definitions

    settings = prepare_environment(landing)
    check_landing(settings)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    before = last_delivered_week(instance)
    if before is None:
        raise RunFailed(f"{settings.dagster_home}: nothing validated here yet; run `mlops-assets run` first")
    summary = RunSummary(settings.landing_dir, before, before)
    execute(defs, OBSERVE_LANDING, instance, summary, on_stage=on_stage, tags=NEW_DATA)
    execute(defs, TABLES, instance, summary, on_stage=on_stage, tags=NEW_DATA)
    forget_checked()
    last = last_delivered_week(instance)
    summary.first_week, summary.last_week = next_week(before), last
    if last <= before:
        return summary  # no new week: the sensors would stop here too
    regions = instance.get_dynamic_partitions(region_partitions.name)
    event = instance.get_latest_materialization_event(dg.AssetKey("shipments"))
    rows = event.asset_materialization.metadata["rows"].value if event else 0
    n_lanes = lane.lanes(workers, len(regions), rows, settings.run_workers)
    if n_lanes > 1:
        lane.in_processes(_worker, "new_weeks", regions, n_lanes, {"first": summary.first_week, "last": last},
                          summary, fresh=False)
    else:
        for region in regions:
            _new_weeks_of_region(defs, instance, region, summary.first_week, last, summary, on_stage)
    # then every region's new weeks against the other regions' (the sensors compare after each
    # region's monitoring run; here once, with every region in)
    span = monitored_span(week_keys(defs, "drift_metrics"), summary.first_week, last)
    if span:
        execute(defs, COMPARISON, instance, summary, on_stage=on_stage, label="comparing the regions' new weeks",
                tags={RANGE_START: span[0], RANGE_END: span[1], **NEW_DATA})
    execute(defs, ALERTING, instance, summary, on_stage=on_stage, label="alerts", tags=NEW_DATA)
    return summary


def _new_weeks_of_region(defs: dg.Definitions, instance: dg.DagsterInstance, region: str, first: str, last: str,
                         summary: RunSummary, on_stage: StageHook | None = None) -> None:
    """The sensors' runs for a region's new weeks, in their order: the weeks conditioned and
    featurized (with the coming week's inputs), the coming week forecast and its drift measured,
    and the new weeks monitored (drift, realized accuracy: they are scored weeks)."""
    upcoming = week_to_score(last)
    execute(defs, WEEKLY, instance, summary, on_stage=on_stage, label=f"weekly {region} new weeks",
            tags={RANGE_START: f"{region}|{first}", RANGE_END: f"{region}|{last}", **NEW_DATA})
    execute(defs, WEEKLY, instance, summary, on_stage=on_stage, label=f"weekly {region} next week",
            partition_key=f"{region}|{upcoming}", asset_selection=FORECAST_INPUTS, tags=NEW_DATA)
    execute(defs, SCORING, instance, summary, on_stage=on_stage, label=f"scoring {region} {upcoming}",
            partition_key=f"{region}|{upcoming}", tags=NEW_DATA)
    span = monitored_span(week_keys(defs, "drift_metrics"), first, last)
    if span:
        execute(defs, MONITORING, instance, summary, on_stage=on_stage, label=f"monitoring {region} new weeks",
                tags={RANGE_START: f"{region}|{span[0]}", RANGE_END: f"{region}|{span[1]}", **NEW_DATA})


_WORKER: dict = {}  # a worker process's settings and definitions, built by its first task


def _worker(task: str, region: str, params: dict) -> str:
    """A region's ``task`` in a worker process (``lanes.in_processes``): one torch thread, the
    other cores run the other regions. Returns its part of the summary as JSON."""
    if not _WORKER or task == "prepare":
        import warnings

        import torch

        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        torch.set_num_threads(1)
        from mlops_assets.definitions import build_definitions

        settings = config.Settings.from_env()
        if task != "prepare":  # it records the first week the definitions are built with
            _WORKER.update(settings=settings, defs=build_definitions(settings), instance=dg.DagsterInstance.get())
    summary = RunSummary(config.Settings.from_env().landing_dir, params.get("first", ""), params.get("last", ""))
    stage = lane.stage_timer(summary)
    result = None
    if task == "prepare":
        result = _prepare(config.Settings.from_env(), params["regions"], summary, stage)
    elif task == "pipeline":
        _run_region(_WORKER["defs"], _WORKER["instance"], _WORKER["settings"], region, params, summary, stage)
    elif task == "new_weeks":
        _new_weeks_of_region(_WORKER["defs"], _WORKER["instance"], region, params["first"], params["last"], summary,
                             stage)
    else:
        raise ValueError(f"unknown task {task!r}")
    return lane.worker_part(summary, result)



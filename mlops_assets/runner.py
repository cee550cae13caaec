"""Materialize the graph for a landing folder in-process: what ``mlops-assets run`` does.

Runs go into a persistent Dagster instance (``DAGSTER_HOME``), so ``dagster dev``
shows them afterwards. Everything the runs need to know comes from the data:
the regions from stores.csv, the weeks from the shipments.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets import config
from mlops_assets.automation.jobs import (
    ALERTING,
    FORECAST_INPUTS,
    MONITORING,
    OBSERVE_LANDING,
    SCORING,
    TABLES,
    TRAINING,
    WEEKLY,
)
from mlops_assets.automation.sensors import monitored_span
from mlops_assets.code_location import execute_in_location
from mlops_assets.locations import location, source, url
from mlops_assets.ml import quantiles
from mlops_assets.ml.ensemble import MEMBERS, evaluation_json
from mlops_assets.ml.metrics import METRICS
from mlops_assets.monitoring.replay import replay_region
from mlops_assets.partitions import region_partitions, week_to_score
from mlops_assets.registry import gates
from mlops_assets.resources.landing_folder import LandingResource, forget_checked
from mlops_assets.resources.storage import load_model_version

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


class RunFailed(RuntimeError):
    """A Dagster run of ``mlops-assets run`` failed; the message names the step and error."""


def prepare_environment(landing: Path | None = None) -> config.Settings:
    """Point settings at ``landing`` and a persistent Dagster home with the project's dagster.yaml."""
    if landing is not None:
        os.environ["MLOPS_LANDING_DIR"] = url(location(landing, "--landing"))
    settings = config.Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    template = config.REPO_ROOT / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and template.exists():
        shutil.copy(template, home / "dagster.yaml")
    return settings


def _check_landing(settings: config.Settings) -> None:
    """Before a run validates anything: a storage built from another landing folder is refused
    (the tables job would refuse it too, later)."""
    from mlops_assets.errors import ContractError

    try:
        _storage(settings).claim_landing(settings.landing_dir, record=False)
    except ContractError as error:
        raise RunFailed(str(error)) from None


@dataclass
class RunSummary:
    landing: Path
    first_week: str
    last_week: str
    regions: dict[str, dict] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)  # region -> the --json report
    tables: dict[str, dict] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)  # (run label, seconds)
    replay: dict[str, dict] = field(default_factory=dict)  # region -> monitoring.replay.replay_region's result
    stages: list[tuple[str, float, int]] = field(default_factory=list)  # worker runs: (label, s, worker peak RSS)


def user_error(error) -> str:
    """The innermost message of a Dagster error chain: the user's own exception, not the wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


StageHook = Callable[[str], AbstractContextManager]


def _execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, summary: RunSummary,
             label: str | None = None, on_stage: StageHook | None = None, tolerate_gates: bool = False,
             **kwargs):
    label = label or job
    started = time.perf_counter()
    kwargs.setdefault("run_config", QUIET)
    with on_stage(label) if on_stage else nullcontext():
        result = execute_in_location(defs.resolve_job_def(job), instance, **kwargs)
    summary.timings.append((label, time.perf_counter() - started))
    summary.run_ids.append(result.run_id)
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        gate_only = failures and all(e.event_specific_data.error.cls_name == "DagsterAssetCheckFailedError"
                                     for e in failures)
        if tolerate_gates and gate_only:
            return result  # a candidate failed its gates: recorded, and the champion did not move
        detail = _failure_detail(result) or "  (see the Dagster UI)"
        raise RunFailed(f"run {result.run_id} of job {job} failed:\n{detail}")
    return result


def _failure_detail(result) -> str:
    """A line per failed step of a run: the step and the user's own error."""
    return "\n".join(f"  step {e.step_key}: {user_error(e.event_specific_data.error)}"
                     for e in result.all_events if e.is_step_failure)


def _week_keys(defs: dg.Definitions, asset: str = "net_demand") -> list[str]:
    """Every week partition of ``asset`` (the conditioned weeks, or the scored weeks of the scores
    and monitors), the week in progress included."""
    return defs.resolve_assets_def(asset).partitions_def.get_partitions_def_for_dimension(
        "week").get_partition_keys()


def _size_estimate(landing: Path) -> tuple[int, int]:
    """(regions, shipment rows) guessed from stores.csv's regions and the shipment files' bytes
    (about 30 a row), without validating anything: enough to choose where validation runs."""
    from mlops_assets.contract import validation as contract

    try:
        with source(landing / "stores.csv") as f:
            regions = pd.read_csv(f, usecols=["region"], dtype=str)["region"].nunique()
    except (OSError, ValueError):
        return 1, 0
    files = contract.table_stamps(landing, contract.TABLES["shipments"])
    return max(1, regions), sum(size for _, size, _ in files) // 30


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
    first = shipments["week_start"].min().date()
    last = shipments["week_start"].max().date()
    region_of_rows = shipments["store_id"].map(stores.set_index("store_id")["region"])
    shipped = shipments.groupby(region_of_rows).agg(products=("product_id", "nunique"), weeks=("week_start", "nunique"),
                                                    shipment_rows=("store_id", "size"))
    del shipments, region_of_rows
    # where the week partitions start (the first delivered week) and the scored weeks (the first
    # week forecast), kept as early as any run here has needed them
    recorded, weeks = config.recorded_weeks(settings.home), {}
    if not os.environ.get("MLOPS_FIRST_WEEK"):
        weeks["first_week"] = min(recorded.get("first_week", first.isoformat()), first.isoformat())
    if not os.environ.get("MLOPS_FIRST_SCORED_WEEK"):
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
    _execute(defs, OBSERVE_LANDING, instance, summary, on_stage=on_stage)
    _execute(defs, TABLES, instance, summary, on_stage=on_stage)
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
    _check_landing(settings)
    summary = RunSummary(settings.landing_dir, "", "")
    if lanes(workers, *_size_estimate(settings.landing_dir)) > 1:
        # the landing check (gigabytes at seed scale) in a process of its own, which ends with it
        facts = _in_processes("prepare", [""], 1, {"regions": regions}, summary)[""]
    else:
        facts = _prepare(settings, regions, summary, on_stage)
    settings = config.Settings.from_env()  # the first week is recorded now
    from mlops_assets.definitions import build_definitions

    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    first, last = dt.date.fromisoformat(facts["first"]), dt.date.fromisoformat(facts["last"])
    summary.first_week, summary.last_week = facts["first"], facts["last"]
    summary.tables = facts["tables"]
    selected, shipped = facts["selected"], facts["shipped"]

    n_lanes = lanes(workers, len(selected), sum(c["shipment_rows"] for c in shipped.values()))
    if n_lanes > 1:
        _in_processes("pipeline", selected, n_lanes, {"first": first.isoformat(), "last": last.isoformat(),
                                                      "holdout_weeks": holdout_weeks, "train": train}, summary)
    else:
        for region in selected:
            _run_region(defs, instance, settings, region, first, last, holdout_weeks, train, summary, on_stage)
    for region in selected:
        summary.regions[region] = {"stores": facts["stores"].get(region, 0),
                                   **shipped.get(region, {"products": 0, "weeks": 0, "shipment_rows": 0})}
    if train:
        _execute(defs, ALERTING, instance, summary, on_stage=on_stage, label="alerts", tags=MANUAL)
    return summary


MANUAL = {"mlops/trigger": "manual"}


def _run_region(defs: dg.Definitions, instance: dg.DagsterInstance, settings: config.Settings, region: str,
                first: dt.date, last: dt.date, holdout_weeks: int, train: bool, summary: RunSummary,
                on_stage: StageHook | None = None) -> None:
    """A region's chain: its conditioned weeks and features, the coming week's inputs, training, the
    holdout replay and the forecast of the coming week. Fills ``summary``'s entries for ``region``."""
    score_week = week_to_score(last.isoformat())
    # drift and realized accuracy of past weeks are the replay's, against the model fit before them
    _execute(defs, WEEKLY, instance, summary, on_stage=on_stage, label=f"weekly {region}",
             tags={RANGE_START: f"{region}|{first.isoformat()}", RANGE_END: f"{region}|{last.isoformat()}", **MANUAL})
    if score_week > last.isoformat():  # the coming week's weather forecast, events and features, for scoring
        _execute(defs, WEEKLY, instance, summary, on_stage=on_stage, label=f"weekly {region} next week",
                 partition_key=f"{region}|{score_week}", tags=MANUAL, asset_selection=FORECAST_INPUTS)
    if train:
        result = _execute(defs, TRAINING, instance, summary, on_stage=on_stage, label=f"training {region}",
                          partition_key=region, tolerate_gates=True, tags=MANUAL,
                          run_config={**QUIET, "ops": {"region_model": {"config": {"holdout_weeks": holdout_weeks}}}})
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
            holdout = _storage(settings).read_parquet(f"holdout_forecasts/{region}/{result.run_id}.parquet")
            summary.models[region]["holdout_totals"] = holdout_totals(holdout)
            summary.replay[region] = replay_region(
                region, _stored(settings, "features", region, model.evaluation["holdout"]["first_week"]),
                holdout,
                model.holdout_reference, model.evaluation, _week_before(model.evaluation["holdout"]["first_week"]),
                settings.monitor, settings.retrain)
        # without a champion the baseline serves (marked, with an alert): a region is never unforecast
        _execute(defs, SCORING, instance, summary, on_stage=on_stage, label=f"scoring {region} {score_week}",
                 partition_key=f"{region}|{score_week}", tags=MANUAL)
        summary.models[region]["scored_week"] = score_week


def holdout_totals(holdout: pd.DataFrame) -> dict:
    """Sums over a region's holdout forecasts from which the figures of several regions pooled
    follow: rows, demand, forecast, absolute error, and the actuals below each quantile."""
    actual, forecast = holdout["target"].to_numpy(dtype=float), holdout["ensemble"].to_numpy(dtype=float)
    out = {"rows": len(holdout), "actual": float(actual.sum()), "forecast": float(forecast.sum()),
           "abs_error": float(np.abs(forecast - actual).sum())}
    for name, level in zip(quantiles.NAMES, quantiles.LEVELS):
        if name in holdout:
            q = holdout[name].to_numpy(dtype=float)
            out[f"below_{name}"] = int((actual < q).sum())
            out[f"pinball_{name}"] = quantiles.pinball(actual, q, level) * len(holdout)
    return out


def pooled(totals: list[dict]) -> dict:
    """All regions' holdout rows as one: WAPE, bias (total forecast / total demand - 1), the share
    of actuals below P10, P50 and P90 and their pinball losses."""
    rows, actual = sum(t["rows"] for t in totals), sum(t["actual"] for t in totals)
    if not rows:
        return {}
    out = {"rows": rows, "wape": sum(t["abs_error"] for t in totals) / actual if actual else None,
           "bias_ratio": sum(t["forecast"] for t in totals) / actual - 1 if actual else None}
    for name in quantiles.NAMES:
        if all(f"below_{name}" in t for t in totals):
            out[f"below_{name}"] = sum(t[f"below_{name}"] for t in totals) / rows
            out[f"pinball_{name}"] = sum(t[f"pinball_{name}"] for t in totals) / rows
    return out


def lanes(requested: int | None, regions: int, shipment_rows: int) -> int:
    """How many regions run at once: ``requested`` (or ``MLOPS_RUN_WORKERS``), else two on a
    machine with two cores when the regions are big enough (100,000 shipment rows each on
    average) to repay a worker process's start (about 6 s: Dagster, torch and MLflow imported)."""
    requested = requested or int(os.environ.get("MLOPS_RUN_WORKERS", "0") or 0)
    if requested:
        return max(1, min(requested, regions))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    big = regions and shipment_rows / regions >= 100_000
    return min(2, cores, regions) if big else 1


def _in_processes(task: str, keys: list[str], n: int, params: dict, summary: RunSummary,
                  fresh: bool = True) -> dict[str, dict]:
    """``task`` for each key (a region) in worker processes, ``n`` at a time, one torch thread
    each: the regions' work is independent (its own partitions, its own MLflow model), so two use
    two cores. ``fresh``: a new process per key, so each worker's memory ends with its task
    (training); else the workers live on (small tasks: a start costs about 6 s). The Dagster
    instance and the MLflow store are the same files (MLflow writes take the store's lock).
    Each task's runs and stage timings go into ``summary``; returns each task's result."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # no forked copy of this process's memory or threads
    with ProcessPoolExecutor(max_workers=n, mp_context=context, max_tasks_per_child=1 if fresh else None) as pool:
        futures = {pool.submit(_region_worker, task, key, params): key for key in keys}
        done = {}
        for future in as_completed(futures):
            done[futures[future]] = json.loads(future.result())  # a failed task raises here, with its error
    out = {}
    for key in keys:  # in the order asked, whatever order they finished in
        part = done[key]
        for name in ("models", "replay"):
            getattr(summary, name).update(part[name])
        summary.run_ids.extend(part["run_ids"])
        summary.timings.extend((label, seconds) for label, seconds in part["timings"])
        summary.stages.extend((label, seconds, peak) for label, seconds, peak in part["stages"])
        out[key] = part.get("result")
    return out


_WORKER: dict = {}  # a worker process's settings and definitions, built by its first task


def _region_worker(task: str, region: str, params: dict) -> str:
    """A region's ``task`` in a worker process; returns its part of the summary as JSON."""
    if not _WORKER or task == "prepare":
        import warnings

        import torch

        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        os.environ["MLOPS_TRAIN_THREADS"] = "1"  # the other core runs the other region
        torch.set_num_threads(1)
        from mlops_assets.definitions import build_definitions

        settings = config.Settings.from_env()
        if task != "prepare":  # it records the first week the definitions are built with
            _WORKER.update(settings=settings, defs=build_definitions(settings), instance=dg.DagsterInstance.get())
    summary = RunSummary(location(os.environ.get("MLOPS_LANDING_DIR", "."), "MLOPS_LANDING_DIR"),
                         params.get("first", ""),
                         params.get("last", ""))
    result = None

    @contextmanager
    def stage(label):
        started = time.perf_counter()
        yield
        summary.stages.append((label, time.perf_counter() - started, _peak_rss()))

    if task == "prepare":
        result = _prepare(config.Settings.from_env(), params["regions"], summary, stage)
    elif task == "pipeline":
        settings, defs, instance = _WORKER["settings"], _WORKER["defs"], _WORKER["instance"]
        _run_region(defs, instance, settings, region, dt.date.fromisoformat(params["first"]),
                    dt.date.fromisoformat(params["last"]), params["holdout_weeks"], params["train"], summary, stage)
    elif task == "new_weeks":
        defs, instance = _WORKER["defs"], _WORKER["instance"]
        _new_weeks_of_region(defs, instance, region, params["first"], params["last"], summary, stage)
    else:
        raise ValueError(f"unknown task {task!r}")
    return json.dumps({"models": summary.models, "replay": summary.replay, "run_ids": summary.run_ids,
                       "timings": summary.timings, "stages": summary.stages, "result": result}, default=_plain)


def _peak_rss() -> int:
    """This process's peak resident memory so far, in bytes: VmHWM, which starts afresh with the
    process image (getrusage's ru_maxrss carries the spawning parent's peak over)."""
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _plain(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (dt.date, pd.Timestamp)):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def run_new_weeks(landing: Path | None = None, on_stage: StageHook | None = None,
                  workers: int | None = None) -> RunSummary:
    """What the sensors do when a week's files land, in the same runs: validate
    the landing tables; per region, condition, build features and monitor (drift, realized
    accuracy) the weeks delivered since the last validation, then forecast the coming week with
    the champion and measure its drift; refresh the alerts. Needs a home that ``run_pipeline``
    (or the sensors) already filled: the history, the features and the champions. Regions run
    two at a time in worker processes where they are large (``lanes``)."""
    from mlops_assets.automation.sensors import last_delivered_week, next_week
    from mlops_assets.definitions import build_definitions

    settings = prepare_environment(landing)
    _check_landing(settings)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    before = last_delivered_week(instance)
    if before is None:
        raise RunFailed(f"{os.environ['DAGSTER_HOME']}: nothing validated here yet; run `mlops-assets run` first")
    summary = RunSummary(settings.landing_dir, before, before)
    _execute(defs, OBSERVE_LANDING, instance, summary, on_stage=on_stage, tags=NEW_DATA)
    _execute(defs, TABLES, instance, summary, on_stage=on_stage, tags=NEW_DATA)
    forget_checked()
    last = last_delivered_week(instance)
    summary.first_week, summary.last_week = next_week(before), last
    if last <= before:
        return summary  # no new week: the sensors would stop here too
    regions = instance.get_dynamic_partitions(region_partitions.name)
    event = instance.get_latest_materialization_event(dg.AssetKey("shipments"))
    rows = event.asset_materialization.metadata["rows"].value if event else 0
    n_lanes = lanes(workers, len(regions), rows)
    if n_lanes > 1:
        _in_processes("new_weeks", regions, n_lanes, {"first": summary.first_week, "last": last}, summary,
                      fresh=False)
    else:
        for region in regions:
            _new_weeks_of_region(defs, instance, region, summary.first_week, last, summary, on_stage)
    _execute(defs, ALERTING, instance, summary, on_stage=on_stage, label="alerts", tags=NEW_DATA)
    return summary


NEW_DATA = {"mlops/trigger": "new_data"}


def _new_weeks_of_region(defs: dg.Definitions, instance: dg.DagsterInstance, region: str, first: str, last: str,
                         summary: RunSummary, on_stage: StageHook | None = None) -> None:
    """The sensors' runs for a region's new weeks, in their order: the weeks conditioned and
    featurized (with the coming week's inputs), the coming week forecast and its drift measured,
    and the new weeks monitored (drift, realized accuracy: they are scored weeks)."""
    upcoming = week_to_score(last)
    _execute(defs, WEEKLY, instance, summary, on_stage=on_stage, label=f"weekly {region} new weeks",
             tags={RANGE_START: f"{region}|{first}", RANGE_END: f"{region}|{last}", **NEW_DATA})
    _execute(defs, WEEKLY, instance, summary, on_stage=on_stage, label=f"weekly {region} next week",
             partition_key=f"{region}|{upcoming}", asset_selection=FORECAST_INPUTS, tags=NEW_DATA)
    _execute(defs, SCORING, instance, summary, on_stage=on_stage, label=f"scoring {region} {upcoming}",
             partition_key=f"{region}|{upcoming}", tags=NEW_DATA)
    span = monitored_span(_week_keys(defs, "drift_metrics"), first, last)
    if span:
        _execute(defs, MONITORING, instance, summary, on_stage=on_stage, label=f"monitoring {region} new weeks",
                 tags={RANGE_START: f"{region}|{span[0]}", RANGE_END: f"{region}|{span[1]}", **NEW_DATA})


# what a backfill covers, per job, upstream first: the conditioned weeks, then the monitors of the
# scored weeks (a partitions definition of their own, so a run of their own)
BACKFILL_JOBS = {WEEKLY: ("net_demand", "weekly_weather", "weekly_events", "features"),
                 MONITORING: ("drift_metrics", "forecast_accuracy")}
BACKFILLABLE = tuple(a for assets in BACKFILL_JOBS.values() for a in assets)


@dataclass
class BackfillResult:
    region: str
    run_id: str
    success: bool
    first_week: str
    last_week: str
    partitions: dict[str, dict[str, str]] = field(default_factory=dict)  # asset -> week -> status
    error: str = ""  # a line per failed step, indented


def backfill(regions: list[str], assets: list[str], first: str | None = None, last: str | None = None
             ) -> list[BackfillResult]:
    """What a per-region backfill from the UI does, from the command line: per region, one run of
    the ``weekly`` job over the region's weeks ``first`` .. ``last`` (default: every week
    partition, the week in progress included) for ``assets``, then one of the ``monitoring`` job
    over the scored weeks in that range, if monitors are asked for. Weeks whose data has not
    landed are skipped, each named with its reason in its partition's status; the others are built."""
    unknown = sorted(set(assets) - set(BACKFILLABLE))
    if unknown:
        raise RunFailed(f"cannot backfill {', '.join(unknown)}: a backfill covers {', '.join(BACKFILLABLE)}")
    settings = prepare_environment()
    from mlops_assets.definitions import build_definitions

    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    known = instance.get_dynamic_partitions(region_partitions.name)
    missing = sorted(set(regions) - set(known))
    if missing:
        raise RunFailed(f"unknown region(s) {', '.join(missing)}; this home has {', '.join(known) or 'none'} "
                        "(mlops-assets run adds the regions of stores.csv)")
    weeks = _week_keys(defs)
    first, last = first or weeks[0], last or weeks[-1]
    for label, week in (("first", first), ("last", last)):
        if week not in weeks:
            raise RunFailed(f"--{label} {week}: not a week partition (Mondays {weeks[0]} .. {weeks[-1]})")
    if first > last:
        raise RunFailed(f"--first {first} is after --last {last}")
    runs, skipped = [], ""  # (job, asset keys, first, last); why the monitors were left out
    for job, covered in BACKFILL_JOBS.items():
        keys = [dg.AssetKey(a) for a in covered if a in assets]  # upstream first, as the job orders them
        if not keys:
            continue
        scored = _week_keys(defs, covered[0]) if job == MONITORING else []
        span = monitored_span(scored, first, last) if job == MONITORING else (first, last)
        if span is None:
            skipped = (f"{', '.join(k.path[-1] for k in keys)}: no scored week in {first} .. {last} "
                       f"(the scored weeks are {scored[0]} .. {scored[-1]})" if scored else "no scored week yet")
            continue
        runs.append((job, keys, *span))
    if not runs:
        raise RunFailed(skipped)
    out = []
    for region in regions:
        for job, keys, start, end in runs:
            result = execute_in_location(defs.resolve_job_def(job), instance, run_config=QUIET, asset_selection=keys,
                                         tags={RANGE_START: f"{region}|{start}", RANGE_END: f"{region}|{end}",
                                               "mlops/trigger": "backfill"})
            done = BackfillResult(region, result.run_id, result.success, start, end)
            for event in result.all_events:
                if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                    m = event.event_specific_data.materialization
                    _, week = m.partition.split("|")
                    done.partitions.setdefault(m.asset_key.to_user_string(), {})[week] = \
                        m.metadata["status"].value if "status" in m.metadata else "built"
            done.error = _failure_detail(result)
            out.append(done)
    if skipped:
        out.append(BackfillResult("", "", True, first, last, error=f"  not run: {skipped}"))
    return out


def format_backfill(results: list[BackfillResult]) -> str:
    lines = []
    for r in results:
        if not r.run_id:  # a part of the backfill that had nothing to run
            lines.append(r.error.strip())
            continue
        lines.append(f"{r.region} {r.first_week} .. {r.last_week}: run {r.run_id} "
                     f"{'succeeded' if r.success else 'FAILED'}")
        for asset, weeks in r.partitions.items():
            by_status: dict[str, list[str]] = {}
            for week, status in sorted(weeks.items()):
                by_status.setdefault(status, []).append(week)
            for status, listed in by_status.items():
                lines.append(f"  {asset}: {len(listed)} week(s) {status} ({_spans(listed)})")
        if r.error:
            lines.append(r.error)
    return "\n".join(lines)


def refresh_dashboard() -> str:
    """Materialize ``monitoring_dashboard`` (a run of the alerting job, in the code location); its run id."""
    settings = prepare_environment()
    from mlops_assets.definitions import build_definitions

    summary = RunSummary(settings.landing_dir, "", "")
    result = _execute(build_definitions(settings), ALERTING, dg.DagsterInstance.get(), summary, label="dashboard",
                      asset_selection=[dg.AssetKey("monitoring_dashboard")], tags=MANUAL)
    return result.run_id


def _spans(weeks: list[str]) -> str:
    """Sorted Mondays as runs of consecutive weeks: '2024-11-18 .. 2025-03-03, 2025-03-17'."""
    runs: list[list[str]] = []
    for week in weeks:
        if runs and dt.date.fromisoformat(week) - dt.date.fromisoformat(runs[-1][-1]) == dt.timedelta(weeks=1):
            runs[-1].append(week)
        else:
            runs.append([week])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]} .. {r[-1]}" for r in runs)


def _storage(settings: config.Settings):
    from mlops_assets.resources.storage import StorageResource

    return StorageResource(root=url(settings.storage_root))


def _stored(settings: config.Settings, asset: str, region: str, first_week: str) -> pd.DataFrame:
    storage = _storage(settings)
    weeks = [w for w in storage.files(f"{asset}/{region}") if w >= first_week]
    return pd.concat([storage.read_parquet(f"{asset}/{region}/{w}.parquet") for w in weeks], ignore_index=True)


def _week_before(week: str) -> str:
    return (dt.date.fromisoformat(week) - dt.timedelta(weeks=1)).isoformat()


def _no_nan(value):
    """The report as strict JSON: a number that does not exist (NaN, infinity) is null."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_json(summary: RunSummary) -> dict:
    """The ``--json`` report: per region, per segment, every member's metrics or the skip reason."""
    out = {"regions": {}}
    for region, model in summary.models.items():
        region_eval = model["evaluation"].get("region", {})
        out["regions"][region] = {
            "model_version": model["model_version"],
            "mlflow_run_id": model["mlflow_run_id"],
            "gate_verdict": model["gate_verdict"],
            "failed_gates": model["failed_gates"],
            "promoted": model["promoted"],
            "champion_version": model["champion_version"],
            "as_of_week": model["as_of_week"],
            "holdout_first_week": model["evaluation"]["holdout"]["first_week"],
            "scored_week": model.get("scored_week"),
            "segments": model["segments"],
            "region": {m: {k: region_eval[m].get(k) for k in METRICS} for m in MEMBERS if m in region_eval}
            | ({"mape_reduction_vs_baseline": region_eval["mape_reduction_vs_baseline"]} if region_eval else {})
            | {k: region_eval[k] for k in ("quantiles", "baseline_quantiles") if k in region_eval},
        }
    out["pooled"] = pooled([m["holdout_totals"] for m in summary.models.values() if "holdout_totals" in m])
    out["drift"] = {r: rep["drift"] for r, rep in summary.replay.items()}
    out["levels"] = {r: rep["levels"] for r, rep in summary.replay.items()}
    out["accuracy"] = {r: rep["accuracy"] for r, rep in summary.replay.items()}
    out["alerts"] = [a for rep in summary.replay.values() for a in rep["alerts"]]
    out["retrain_requests"] = [q for rep in summary.replay.values() for q in rep["retrain_requests"]]
    return _no_nan(out)


def replay_table(summary: RunSummary) -> str:
    """Per region and holdout week: the signals that moved when the week was forecast and once its
    actuals were in, demand against its reference (the level signal), the forecasts' bias, realized
    MAPE against the baseline, and the retrain requests the sensors would have made."""
    lines = ["replay of the holdout weeks (each forecast by the model fit before them, monitored, then evaluated):"]
    for region, rep in summary.replay.items():
        rows = []
        for week, ahead in rep["drift"].items():
            after, acc = rep["levels"].get(week, {}), rep["accuracy"][week]
            demand = after.get("demand")
            rows.append({"region": region, "week": week,
                         "flagged": ", ".join(sorted({*ahead["signals"], *after.get("signals", [])})) or "-",
                         "demand vs reference": "-" if demand is None else
                         f"{demand['change']:+.0%} (z {demand['z']:+.1f}/{demand['limit']:.1f})",
                         "bias": "-" if after.get("bias") is None else f"{after['bias']:+.0%}",
                         "MAPE": _fmt(acc["mape"]), "baseline": _fmt(acc["baseline_mape"]),
                         "degradation": _fmt(acc["degradation"], 2)})
        lines.append(pd.DataFrame(rows).to_string(index=False))
        requests = rep["retrain_requests"]
        lines.append(f"  {region}: " + ("; ".join(f"would retrain in week {q['week']} ({q['reason']}: {q['detail']})"
                                              for q in requests) if requests else "no retraining needed"))
    return "\n".join(lines)


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _models_table(summary: RunSummary) -> str:
    rows = []
    for region, model in summary.models.items():
        for segment, report in model["segments"].items():
            if "skipped" in report:
                rows.append({"region": region, "segment": segment, "ensemble": "skipped: " + report["skipped"]})
                continue
            rows.append({"region": region, "segment": segment, **_model_row(report)})
        region_eval = model["evaluation"].get("region")
        if region_eval:
            rows.append({"region": region, "segment": "(all)", **_model_row(region_eval)})
    table = pd.DataFrame(rows).fillna("")
    lines = ["holdout MAPE (actual > 0), one week ahead; the ensemble's bias (total forecast / total demand - 1) "
             "and the share of actuals below its P10 / P50 / P90 (nominal 0.10 / 0.50 / 0.90):",
             table.to_string(index=False)]
    both = pooled([m["holdout_totals"] for m in summary.models.values() if "holdout_totals" in m])
    if both and len(summary.models) > 1 and "below_p10" in both:
        lines.append(f"all regions pooled: WAPE {both['wape']:.3f}, bias {both['bias_ratio']:+.1%}, below P10 / P50 / "
                     f"P90 {both['below_p10']:.2f} / {both['below_p50']:.2f} / {both['below_p90']:.2f}")
    return "\n".join(lines)


def _model_row(report: dict) -> dict:
    q = report.get("quantiles") or {}
    return {**{m: round(report[m]["mape"], 3) for m in MEMBERS},
            "reduction": f"{report['mape_reduction_vs_baseline']:.0%}",
            "bias": f"{report['ensemble'].get('bias_ratio', float('nan')):+.1%}",
            "P10/P50/P90": (f"{q['below_p10']:.2f}/{q['below_p50']:.2f}/{q['below_p90']:.2f}"
                            if "below_p10" in q else "")}


def format_summary(summary: RunSummary) -> str:
    lines = [f"landing {summary.landing}: weeks {summary.first_week} .. {summary.last_week}", ""]
    regions = pd.DataFrame.from_dict(summary.regions, orient="index")
    regions.index.name = "region"
    lines.append(regions.to_string())
    lines.append("")
    tables = pd.DataFrame.from_dict(summary.tables, orient="index")
    tables.index.name = "table"
    lines.append(tables.to_string())
    if summary.models:
        lines.append("")
        lines.append(_models_table(summary))
        lines.append("")
    if summary.replay:
        lines.append(replay_table(summary))
        lines.append("")
    for region, model in summary.models.items():
        verdict = model["gate_verdict"]
        line = (f"{region}: trained {model['model_version']} (MLflow run {model['mlflow_run_id']}), gates {verdict}"
                f"; champion {model['champion_version']}" + (" (promoted now)" if model["promoted"] else ""))
        lines.append(line)
        for gate, reason in model["failed_gates"].items():
            lines.append(f"  failed {gate}: {reason}")
        if model["champion_version"] != "none":
            lines.append(f"  scored week {model['scored_week']} with the champion")
        else:
            lines.append(f"  scored week {model['scored_week']} with the historical-average baseline: no champion "
                         "(alert raised; see mlops-assets status)")
    quarantined = sum(t["quarantined"] for t in summary.tables.values())
    lines.append("")
    lines.append(f"{quarantined} rows quarantined" + (" (see mlops-assets validate, and <storage>/quarantine/)"
                                                      if quarantined else ""))
    lines.append(f"{len(summary.run_ids)} Dagster runs, {sum(t for _, t in summary.timings):.1f} s, "
                 f"in {os.environ.get('DAGSTER_HOME')}: "
                 "`mlops-assets ui` shows them")
    return "\n".join(lines)

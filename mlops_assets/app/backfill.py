"""``mlops-assets backfill``: a region's weeks rebuilt in one run, as a UI backfill does; and the
dashboard's refresh."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg

from mlops_assets.app.execution import (
    MANUAL,
    QUIET,
    RANGE_END,
    RANGE_START,
    RunFailed,
    RunSummary,
    execute,
    failure_detail,
    prepare_environment,
    week_keys,
)
from mlops_assets.automation.jobs import ALERTING, COMPARISON, MONITORING, WEEKLY
from mlops_assets.automation.sensors import monitored_span
from mlops_assets.code_location import execute_in_location
from mlops_assets.partitions import region_partitions

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


def _plan(defs: dg.Definitions, assets: list[str], first: str, last: str) -> tuple[list[tuple], str]:
    """The runs of a region's backfill, (job, asset keys, first week, last week) each, and why the
    monitors were left out, if they were."""
    runs, skipped = [], ""
    for job, covered in BACKFILL_JOBS.items():
        keys = [dg.AssetKey(a) for a in covered if a in assets]  # upstream first, as the job orders them
        if not keys:
            continue
        scored = week_keys(defs, covered[0]) if job == MONITORING else []
        span = monitored_span(scored, first, last) if job == MONITORING else (first, last)
        if span is None:
            skipped = (f"{', '.join(k.path[-1] for k in keys)}: no scored week in {first} .. {last} "
                       f"(the scored weeks are {scored[0]} .. {scored[-1]})" if scored else "no scored week yet")
            continue
        runs.append((job, keys, *span))
    return runs, skipped


def backfill(regions: list[str], assets: list[str], first: str | None = None, last: str | None = None
             ) -> list[BackfillResult]:
    """What a per-region backfill from the UI does, from the command line: per region, one run of
    the ``weekly`` job over the region's weeks ``first`` .. ``last`` (default: every week
    partition, the week in progress included) for ``assets``, then one of the ``monitoring`` job
    over the scored weeks in that range, if monitors are asked for, and with ``forecast_accuracy``
    one ``comparison`` run of those weeks over every region. Weeks whose data has not
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
    weeks = week_keys(defs)
    first, last = first or weeks[0], last or weeks[-1]
    for label, week in (("first", first), ("last", last)):
        if week not in weeks:
            raise RunFailed(f"--{label} {week}: not a week partition (Mondays {weeks[0]} .. {weeks[-1]})")
    if first > last:
        raise RunFailed(f"--first {first} is after --last {last}")
    runs, skipped = _plan(defs, assets, first, last)
    if not runs:
        raise RunFailed(skipped)
    out = []
    for region in regions:
        for job, keys, start, end in runs:
            result = execute_in_location(defs.resolve_job_def(job), instance, run_config=QUIET, asset_selection=keys,
                                         tags={RANGE_START: f"{region}|{start}", RANGE_END: f"{region}|{end}",
                                               "mlops/trigger": "backfill"})
            out.append(_result(result, region, start, end, "status"))
    monitored = [(start, end) for job, keys, start, end in runs
                 if job == MONITORING and dg.AssetKey("forecast_accuracy") in keys]
    if monitored and all(r.success for r in out):  # the rebuilt weeks against the other regions' (one run)
        out.append(_compare(defs, instance, *monitored[0]))
    if skipped:
        out.append(BackfillResult("", "", True, first, last, error=f"  not run: {skipped}"))
    return out


def _compare(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> BackfillResult:
    """One run of the ``comparison`` job over the weeks ``first`` .. ``last``: every region's
    demand in those weeks against the other regions' (``regional_comparison``, partitioned by week)."""
    result = execute_in_location(defs.resolve_job_def(COMPARISON), instance, run_config=QUIET,
                                 tags={RANGE_START: first, RANGE_END: last, "mlops/trigger": "backfill"})
    return _result(result, "every region", first, last, "verdict")


def _result(result, region: str, first: str, last: str, entry: str) -> BackfillResult:
    """A run's outcome: per asset and week (a 'region|week' partition's week), the metadata ``entry``
    of its materialization ('built' where it has none), and a line per failed step."""
    done = BackfillResult(region, result.run_id, result.success, first, last)
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            m = event.event_specific_data.materialization
            done.partitions.setdefault(m.asset_key.to_user_string(), {})[m.partition.split("|")[-1]] = \
                m.metadata[entry].value if entry in m.metadata else "built"
    done.error = failure_detail(result)
    return done


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


def _spans(weeks: list[str]) -> str:
    """Sorted Mondays as runs of consecutive weeks: '2024-11-18 .. 2025-03-03, 2025-03-17'."""
    runs: list[list[str]] = []
    for week in weeks:
        if runs and dt.date.fromisoformat(week) - dt.date.fromisoformat(runs[-1][-1]) == dt.timedelta(weeks=1):
            runs[-1].append(week)
        else:
            runs.append([week])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]} .. {r[-1]}" for r in runs)


def refresh_dashboard() -> str:
    """Materialize ``monitoring_dashboard`` (a run of the alerting job, in the code location); its run id."""
    settings = prepare_environment()
    from mlops_assets.definitions import build_definitions

    summary = RunSummary(settings.landing_dir, "", "")
    result = execute(build_definitions(settings), ALERTING, dg.DagsterInstance.get(), summary, label="dashboard",
                     asset_selection=[dg.AssetKey("monitoring_dashboard")], tags=MANUAL)
    return result.run_id

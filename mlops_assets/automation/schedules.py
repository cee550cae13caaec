"""Weekly schedules: re-validate the landing tables, then condition last week for every region."""

import datetime as dt

import dagster as dg

from mlops_assets.automation.jobs import tables_job, weekly_job
from mlops_assets.partitions import region_partitions, region_week_key


def last_complete_week(now: dt.datetime) -> str:
    monday = now.date() - dt.timedelta(days=now.weekday())
    return (monday - dt.timedelta(weeks=1)).isoformat()


def build_schedules(default_status: dg.DefaultScheduleStatus) -> list[dg.ScheduleDefinition]:
    tables_refresh = dg.ScheduleDefinition(
        name="tables_refresh",
        cron_schedule="30 5 * * 1",  # Mondays 05:30 UTC, after the weekend's deliveries
        job=tables_job,
        default_status=default_status,
        description="Re-validate every landing table before the weekly conditioning runs.",
    )

    @dg.schedule(
        name="weekly_refresh",
        cron_schedule="0 6 * * 1",
        job=weekly_job,
        default_status=default_status,
        description="Condition last week for each region (one run per region).",
    )
    def weekly_refresh(context: dg.ScheduleEvaluationContext):
        week = last_complete_week(context.scheduled_execution_time)
        for region in context.instance.get_dynamic_partitions(region_partitions.name):
            yield dg.RunRequest(run_key=f"weekly-{region}-{week}", partition_key=region_week_key(region, week))

    return [tables_refresh, weekly_refresh]

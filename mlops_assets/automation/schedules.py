"""Weekly schedules: forecast the new week for every region, and retrain every region.

Both run in ``prod`` and are off in ``dev`` (``MLOPS_AUTOMATION`` overrides). Their runs are
tagged ``mlops/trigger=schedule``; a retraining that passes its gates re-forecasts the region
(``scoring_after_promotion``).
"""

import datetime as dt

import dagster as dg

from mlops_assets.automation.jobs import FORECAST_INPUTS, training_job, weekly_job
from mlops_assets.automation.sensors import INPUTS, SCORE_WEEK, STAGE
from mlops_assets.automation.sensors import REGION as REGION_TAG
from mlops_assets.monitoring.rules import TRIGGER_TAG
from mlops_assets.partitions import region_partitions, region_week_key


def week_of(moment: dt.datetime) -> str:
    """The Monday of the week ``moment`` falls in: the week a Monday-morning forecast is for."""
    return (moment.date() - dt.timedelta(days=moment.weekday())).isoformat()


def build_schedules(default_status: dg.DefaultScheduleStatus) -> list[dg.ScheduleDefinition]:
    @dg.schedule(name="weekly_scoring", cron_schedule="0 6 * * 1", job=weekly_job, default_status=default_status,
                 description="Mondays 06:00 UTC: forecast the week that starts for every region: a run each builds "
                             "the week's inputs (weather forecast, events, features), and its success the forecast "
                             "(scoring_after_conditioning).")
    def weekly_scoring(context: dg.ScheduleEvaluationContext):
        week = week_of(context.scheduled_execution_time)
        for region in context.instance.get_dynamic_partitions(region_partitions.name):
            yield dg.RunRequest(run_key=f"scoring-{region}-{week}", partition_key=region_week_key(region, week),
                                asset_selection=FORECAST_INPUTS,
                                tags={TRIGGER_TAG: "schedule", REGION_TAG: region, SCORE_WEEK: week, STAGE: INPUTS})

    @dg.schedule(name="weekly_retraining", cron_schedule="0 2 * * 1", job=training_job,
                 default_status=default_status,
                 description="Mondays 02:00 UTC: retrain every region on all delivered weeks; a candidate serves "
                             "only through its gates.")
    def weekly_retraining(context: dg.ScheduleEvaluationContext):
        week = week_of(context.scheduled_execution_time)
        for region in context.instance.get_dynamic_partitions(region_partitions.name):
            yield dg.RunRequest(run_key=f"training-{region}-{week}", partition_key=region,
                                tags={TRIGGER_TAG: "schedule", REGION_TAG: region})

    return [weekly_scoring, weekly_retraining]

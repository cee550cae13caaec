"""The one Definitions object: ``mlops_assets.definitions:defs``."""

from __future__ import annotations

import dagster as dg

from mlops_assets.assets.conditioned import WEEKLY_FACTORIES
from mlops_assets.assets.dashboard import monitoring_dashboard
from mlops_assets.assets.features import features
from mlops_assets.assets.health import (
    alerts,
    build_drift_metrics,
    build_forecast_accuracy,
    build_regional_comparison,
    housekeeping,
)
from mlops_assets.assets.models import region_model
from mlops_assets.assets.raw import raw_sources
from mlops_assets.assets.scores import build_scores
from mlops_assets.assets.tables import table_assets
from mlops_assets.automation.jobs import ALL_JOBS
from mlops_assets.automation.schedules import build_schedules
from mlops_assets.automation.sensors import build_sensors
from mlops_assets.config import Settings
from mlops_assets.locations import url
from mlops_assets.partitions import region_week_partitions, week_partitions
from mlops_assets.resources import LandingResource, ModelIOManager, ParquetIOManager, StorageResource
from mlops_assets.resources.alerting import MonitoringResource
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource


def build_definitions(settings: Settings) -> dg.Definitions:
    region_week = region_week_partitions(settings.first_week)
    scored_week = region_week_partitions(settings.first_scored_week or settings.first_week)
    storage = StorageResource(root=url(settings.storage_root), retention_days=settings.retention_days,
                              keep_models=settings.keep_models)
    weekly = [factory(region_week) for factory in [*WEEKLY_FACTORIES, features]]
    weekly += [factory(scored_week) for factory in [build_scores, build_drift_metrics, build_forecast_accuracy]]
    weekly.append(build_regional_comparison(week_partitions(settings.first_scored_week or settings.first_week)))
    return dg.Definitions(
        assets=[*raw_sources, *table_assets, *weekly, region_model, alerts, monitoring_dashboard, housekeeping],
        jobs=ALL_JOBS,
        schedules=build_schedules(
            dg.DefaultScheduleStatus.RUNNING if settings.automation else dg.DefaultScheduleStatus.STOPPED),
        sensors=build_sensors(settings),
        resources={
            "landing": LandingResource(path=url(settings.landing_dir)),
            "storage": storage,
            "parquet_io_manager": ParquetIOManager(storage=storage),
            "model_io_manager": ModelIOManager(storage=storage),
            "mlflow": MlflowRegistryResource.from_settings(settings),
            "monitoring": MonitoringResource.from_settings(settings),
        },
        # a run is a region's chain (its weeks, its training, its scores), one step after another:
        # in one process. Runs scale out, not steps: a process per run (started by the code server
        # the daemon hands it to), a Kubernetes pod per run in Helm (K8sRunLauncher). The
        # multiprocess executor would start a Python and torch per step and thrash a small machine
        executor=dg.in_process_executor,
    )


defs = build_definitions(Settings.from_env())

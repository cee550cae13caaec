"""The one Definitions object: ``mlops_assets.definitions:defs``."""

from __future__ import annotations

import dagster as dg

from mlops_assets.assets.features import features
from mlops_assets.assets.models import region_model
from mlops_assets.assets.raw import raw_sources
from mlops_assets.assets.scores import build_scores
from mlops_assets.assets.tables import table_assets
from mlops_assets.assets.conditioned import WEEKLY_FACTORIES
from mlops_assets.config import Settings
from mlops_assets.automation.jobs import observe_landing_job, scoring_job, tables_job, training_job, weekly_job
from mlops_assets.partitions import region_week_partitions
from mlops_assets.resources import LandingResource, ModelIOManager, ParquetIOManager, StorageResource
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource
from mlops_assets.automation.schedules import build_schedules
from mlops_assets.automation.sensors import build_landing_sensor, region_discovery_sensor


def build_definitions(settings: Settings) -> dg.Definitions:
    region_week = region_week_partitions(settings.first_week)
    storage = StorageResource(root=str(settings.storage_root))
    automation_on = settings.env == "prod"
    return dg.Definitions(
        assets=[*raw_sources, *table_assets, *(factory(region_week) for factory in [*WEEKLY_FACTORIES, features]),
                region_model, build_scores(region_week)],
        jobs=[observe_landing_job, tables_job, weekly_job, training_job, scoring_job],
        schedules=build_schedules(
            dg.DefaultScheduleStatus.RUNNING if automation_on else dg.DefaultScheduleStatus.STOPPED),
        sensors=[region_discovery_sensor, build_landing_sensor(
            dg.DefaultSensorStatus.RUNNING if automation_on else dg.DefaultSensorStatus.STOPPED)],
        resources={
            "landing": LandingResource(path=str(settings.landing_dir)),
            "storage": storage,
            "parquet_io_manager": ParquetIOManager(storage=storage),
            "model_io_manager": ModelIOManager(storage=storage),
            "mlflow": MlflowRegistryResource.from_settings(settings),
        },
        # one process per run: the multiprocess executor would start a Python (and torch)
        # per step, which thrashes a small machine
        executor=dg.in_process_executor,
    )


defs = build_definitions(Settings.from_env())

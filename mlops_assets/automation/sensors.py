"""Sensors: regions appear when stores.csv names them; new landing files trigger validation."""


import dagster as dg

from mlops_assets.contract import validation as contract
from mlops_assets.automation.jobs import observe_landing_job, tables_job
from mlops_assets.partitions import region_partitions
from mlops_assets.resources import LandingResource


def discover_regions(landing: LandingResource) -> list[str]:
    """Regions named by the valid rows of stores.csv, in order of first appearance."""
    stores = landing.table("stores").valid
    return list(dict.fromkeys(stores["region"].tolist()))


@dg.sensor(
    name="region_discovery",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a region partition for every region found in stores.csv: onboarding is adding data.",
)
def region_discovery_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
    known = set(context.instance.get_dynamic_partitions(region_partitions.name))
    new = [r for r in discover_regions(landing) if r not in known]
    if not new:
        return dg.SkipReason(f"no new regions ({len(known)} known)")
    context.log.info(f"new regions: {', '.join(new)}")
    return dg.SensorResult(dynamic_partitions_requests=[region_partitions.build_add_request(new)])


def build_landing_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_files",
        jobs=[observe_landing_job, tables_job],
        minimum_interval_seconds=120,
        default_status=default_status,
        description="When landing files change, record their new hashes and re-validate the tables.",
    )
    def landing_files_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
        version = "-".join(landing.data_version(t) for t in contract.TABLES)
        if version == context.cursor:
            return dg.SkipReason("landing files unchanged")
        # the run key carries the content version: Dagster de-duplicates run keys forever
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"observe-{version}", job_name=observe_landing_job.name),
                          dg.RunRequest(run_key=f"tables-{version}", job_name=tables_job.name)],
            cursor=version,
        )

    return landing_files_sensor

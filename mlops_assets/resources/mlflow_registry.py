"""MLflow as a Dagster resource: the tracking store, the model registry, the promotion policy.

dagster-mlflow 0.29's ``mlflow_tracking`` is a legacy resource that opens one MLflow run
per Dagster *run* (named after the job) and closes it from a job hook that does not fire
under ``materialize()``. Here one Dagster run trains many things over time and each
``region_model`` partition must be exactly one MLflow run, ended when the step ends, with a
registered version and gate verdicts. So this resource wraps ``MlflowClient`` directly
(see ``mlops_assets.registry.tracking``) and is configured from the environment like the rest.
"""

from functools import lru_cache

import dagster as dg

from mlops_assets.config import (
    DEFAULT_BIAS_LIMIT,
    DEFAULT_CHAMPION_TOL,
    DEFAULT_COVERAGE_TOL,
    DEFAULT_STALE_DAYS,
    Settings,
    env_value,
)
from mlops_assets.registry.gates import GateConfig
from mlops_assets.registry.tracking import Registry


@lru_cache(maxsize=None)
def _registry(tracking_uri: str, artifact_root: str, experiment: str, lock_dir: str) -> Registry:
    # one Registry per store and process: its file lock is re-entrant only within itself
    return Registry(tracking_uri, artifact_root or None, experiment, lock_dir or None)


class MlflowRegistryResource(dg.ConfigurableResource):
    """The MLflow store (``MLFLOW_TRACKING_URI``, default SQLite under the Dagster home) and
    how candidates are promoted: ``mode`` is enforce (promote on a passed gate), dry_run (record
    the verdict only) or manual (``mlops-assets promote``)."""

    tracking_uri: str
    artifact_root: str = ""
    experiment: str = "demand-forecast"
    mode: str = "enforce"
    mape_target: float = GateConfig.mape_target
    champion_tolerance: float = DEFAULT_CHAMPION_TOL
    coverage_tolerance: float = DEFAULT_COVERAGE_TOL
    bias_limit: float = DEFAULT_BIAS_LIMIT
    stale_after_days: int = DEFAULT_STALE_DAYS
    lock_dir: str = ""  # a server store's champion locks (MLOPS_LOCK_DIR, else $MLOPS_HOME/locks)

    @classmethod
    def from_settings(cls, settings: Settings) -> "MlflowRegistryResource":
        # a tracking URI from the environment may carry a database password: Dagster resolves it
        # at run time and shows the variable's name, never its value, in the UI
        uri = (dg.EnvVar("MLFLOW_TRACKING_URI") if "MLFLOW_TRACKING_URI" in settings.secrets_in_env
               else settings.mlflow_tracking_uri)
        return cls(tracking_uri=uri, artifact_root=settings.mlflow_artifact_root,
                   experiment=f"demand-forecast-{settings.env}", mode=settings.promotion_mode,
                   champion_tolerance=settings.champion_tolerance, coverage_tolerance=settings.coverage_tolerance,
                   bias_limit=settings.bias_limit, stale_after_days=settings.stale_after_days,
                   lock_dir=str(settings.lock_dir or ""))

    @property
    def registry(self) -> Registry:
        return _registry(env_value(self.tracking_uri), self.artifact_root, self.experiment, self.lock_dir)

    @property
    def gate_config(self) -> GateConfig:
        return GateConfig(mape_target=self.mape_target, champion_tolerance=self.champion_tolerance,
                          coverage_tolerance=self.coverage_tolerance, bias_limit=self.bias_limit)

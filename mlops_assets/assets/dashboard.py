"""``monitoring_dashboard``: the business, data-science and support views over every region, as one page."""

import dagster as dg

from mlops_assets.dashboard.build import PAGE, Links, build_dashboard
from mlops_assets.locations import url
from mlops_assets.registry.gates import GateConfig
from mlops_assets.resources.alerting import MonitoringResource
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource
from mlops_assets.resources.storage import StorageResource


@dg.asset(
    deps=["scores", "forecast_accuracy", "drift_metrics", "region_model", "alerts"],
    group_name="monitoring",
    description="Three views over every region as one static HTML page (charts inline, nothing fetched): "
                "**business** (forecast vs actual per week, MAPE against the 0.45 target and the baseline, the "
                "week's forecast totals), **data science** (drift per feature and week, segment metrics, champion "
                "versions and gate verdicts over time, LASSO coefficients and permutation attributions) and "
                "**support** (last runs and failures, stale champions, table freshness, quarantined rows, open "
                "alerts). Each figure links its model version, MLflow run and Dagster run. `mlops-assets "
                "dashboard` serves it.",
    kinds={"html"},
)
def monitoring_dashboard(context: dg.AssetExecutionContext, storage: StorageResource, mlflow: MlflowRegistryResource,
                         monitoring: MonitoringResource) -> dg.MaterializeResult:
    page = build_dashboard(storage, context.instance, mlflow.registry, mlflow.stale_after_days,
                           GateConfig().mape_target, Links(monitoring.dagster_url, monitoring.mlflow_url))
    path = storage.write_text(PAGE, page.html)
    return dg.MaterializeResult(metadata={
        **page.figures,  # numeric: plotted across materializations
        "page": dg.MetadataValue.path(url(path)),
        "served at": dg.MetadataValue.url(monitoring.dashboard_url),
    })

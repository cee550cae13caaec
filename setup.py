from setuptools import find_packages, setup

# Pinned to a set that resolves together (checked 2026-11-22). torch is exactly the
# CPU build 2.13.0: a looser pin lets a resolver pull a multi-GB CUDA build.
# Not here, on purpose: dagster-mlflow (its mlflow_tracking resource opens one MLflow run per
# Dagster run and ends it from a job hook; here each region_model partition is one MLflow run with
# a registered version and gate verdicts, so resources/mlflow_registry.py wraps MlflowClient) and
# dagster-pandera (its Dagster types fail a step on the first bad frame; contract/validation.py
# names file, row, column and rule, and quarantines bad rows while the rest flows on).
# pandas stays at the 2.x the suite runs on (nothing installed requires <3 any more).
INSTALL_REQUIRES = [
    "dagster==1.13.27",
    "dagster-webserver==1.13.27",
    "dagster-azure==0.29.27",
    # fsspec's Azure backend: the landing folder and asset storage on Blob Storage / ADLS Gen2
    # (az://, abfss://) through universal_pathlib, which dagster already installs. dagster-azure's
    # own IO manager pickles, and its blob resource is a bare client: no Parquet, no listing by path
    "adlfs==2026.8.0",
    "universal_pathlib>=0.3,<0.4",
    # production: the Dagster instance (runs, events, schedules) and the MLflow store on PostgreSQL
    "dagster-postgres==0.29.27",
    "mlflow==3.17.2",
    "pandas==2.3.3",
    "pyarrow>=15",
    "pandera==0.35.0",
    "scikit-learn==1.9.1",
    "scipy>=1.13",
    "torch==2.13.0",
]

setup(
    name="mlops_assets",
    version="0.1.0",
    description="Weekly retail demand forecasting as one Dagster asset graph",
    packages=find_packages(exclude=["mlops_assets_tests"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    # lightgbm: a peer in bench/peers.py only, never a runtime dependency
    # evidently: the drift monitor's peer in bench/drift_power.py only (its data-drift preset, defaults)
    # playwright: drives the machine's chromium in the browser tests (its own browser download is not used)
    # pytest-xdist: the suite's modules in three processes (make test), most tests wait on servers
    # k8s: the run launcher of the Helm deployment (deploy/helm/values.yaml), in the image only
    # ruff: the linter .ci/run runs before the tests
    extras_require={"k8s": ["dagster-k8s==0.29.27"],
                    "test": ["pytest>=8", "playwright==1.63.0", "pytest-xdist==3.8.0", "ruff==0.17.6"],
                    "bench": ["lightgbm==4.7.0", "rdata>=1.0", "evidently==0.7.23"]},
    entry_points={"console_scripts": ["mlops-assets=mlops_assets.cli:main"]},
)

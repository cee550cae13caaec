"""Settings from the environment: where data lives, which environment this is.

Everything that differs between a laptop, CI and production is read here and
nowhere else, so ``dev`` and ``prod`` differ only in environment variables:

=====================  ==========================================  ===========================
variable               meaning                                     default
=====================  ==========================================  ===========================
MLOPS_ENV              ``dev`` or ``prod``                         ``dev``
MLOPS_HOME             folder for all local state                  ``$DAGSTER_HOME/..``, else the checkout's ``.mlops``
MLOPS_LANDING_DIR      landing folder (docs/DATA_CONTRACT.md)      the bundled ``data/sample``
MLOPS_STORAGE_ROOT     where asset values (Parquet) are written    ``$MLOPS_HOME/storage``
MLOPS_FIRST_WEEK       first week partition (a Monday)             recorded by ``mlops-assets run``, else 2001-01-01
MLOPS_FIRST_SCORED_WEEK  first week of the scored-week partitions  recorded by ``mlops-assets run``, else the first week
DAGSTER_HOME           Dagster instance folder                     ``$MLOPS_HOME/dagster``
MLFLOW_TRACKING_URI    MLflow tracking and registry store          ``sqlite:///$DAGSTER_HOME/mlflow/mlflow.db``
MLOPS_MLFLOW_ARTIFACTS MLflow artifact root for a database store   ``$DAGSTER_HOME/mlflow/artifacts``
MLOPS_PROMOTION_MODE   ``enforce``, ``dry_run`` or ``manual``      ``enforce`` (dev and prod)
MLOPS_CHAMPION_TOL     how much worse than the champion (relative) ``0.02``
MLOPS_STALE_DAYS       a model older than this when it scores      ``60``
MLOPS_AUTOMATION       schedules and sensors on (``on``/``off``)   ``on`` in prod, ``off`` in dev
MLOPS_SENSOR_INTERVAL  seconds between sensor ticks                ``60``
MLOPS_ALERT_WEBHOOK    URL that alerts are POSTed to (JSON)        none
MLOPS_MONITOR_*        monitor limits (``FALSE_ALARM``, ``LEVEL_FALSE_ALARM``, ``MIX_FLOOR``, ``JS_FLOOR``,
                       ``JS_FACTOR``): see monitoring/monitor.py
MLOPS_DEGRADATION      realized / holdout MAPE that counts as a bad week  ``1.5``
MLOPS_RETENTION_DAYS   holdout forecasts, quarantined rows kept    ``90`` days
MLOPS_KEEP_MODELS      model folders kept per region               ``10`` (and the current one)
MLOPS_RUN_WORKERS      regions ``mlops-assets run`` runs at once   ``0``: 2 on 2 cores for big regions, else 1
MLOPS_TRAIN_THREADS    threads of a region's training in ``run``   ``0``: as many as the cores, at most 2
MLOPS_LOCK_DIR         the champion locks of a server store        ``$MLOPS_HOME/locks``
MLOPS_DASHBOARD_URL    where ``mlops-assets dashboard`` serves     ``http://127.0.0.1:8765/``
MLOPS_DAGSTER_URL      the Dagster UI, for the dashboard's links   ``http://127.0.0.1:3000``
MLOPS_MLFLOW_URL       the MLflow UI, for the dashboard's links    ``http://127.0.0.1:5000``
=====================  ==========================================  ===========================
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from mlops_assets.locations import location
from mlops_assets.monitoring.monitor import MonitorLimits
from mlops_assets.monitoring.rules import RetrainRules

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
SAMPLE_LANDING_DIR = REPO_ROOT / "data" / "sample"
DEFAULT_FIRST_WEEK = "2001-01-01"
ENVIRONMENTS = ("dev", "prod")
PROMOTION_MODES = ("enforce", "dry_run", "manual")
# a candidate that passes every gate serves at once in both environments; set
# MLOPS_PROMOTION_MODE=manual where a person must sign off each release
PROMOTION_MODE = {"dev": "enforce", "prod": "enforce"}
DEFAULT_CHAMPION_TOL = 0.02  # a candidate may be 2% (relative) worse than the champion
DEFAULT_BIAS_LIMIT = 0.15  # |total forecast / total demand - 1| on the holdout
DEFAULT_COVERAGE_TOL = 0.15  # P10/P50/P90: the share of actuals below each may miss nominal by this
DEFAULT_STALE_DAYS = 60      # a model trained longer than this before the week it scores is stale
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8765/"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
DEFAULT_MLFLOW_URL = "http://127.0.0.1:5000"
# variables that hold secrets: a resource names them (dg.EnvVar) rather than holding their value,
# so the UI shows the name
SECRET_VARIABLES = ("MLFLOW_TRACKING_URI", "MLOPS_ALERT_WEBHOOK")
# monitor limits per environment; each can be overridden by MLOPS_MONITOR_<NAME>
MONITOR = {"dev": MonitorLimits(), "prod": MonitorLimits()}
AUTOMATION = {"dev": False, "prod": True}


def _home() -> Path:
    """``MLOPS_HOME``; else the folder above ``DAGSTER_HOME`` when that is a folder named ``dagster``
    (``$MLOPS_HOME/dagster`` is where the CLI puts the instance); else ``.mlops`` in the source
    checkout, or ``~/.mlops`` for an installed package. Never the working directory: the
    definitions (where data lives, where the weeks begin) are the same wherever a process starts,
    `dagster dev`, the daemon or a run worker."""
    if os.environ.get("MLOPS_HOME"):
        return Path(os.environ["MLOPS_HOME"]).expanduser().resolve()
    dagster_home = Path(os.environ.get("DAGSTER_HOME", "")).expanduser()
    # only the layout the CLI makes: a DAGSTER_HOME like ~/.dagster says nothing of where data goes
    if os.environ.get("DAGSTER_HOME") and dagster_home.name == "dagster":
        return dagster_home.resolve().parent
    if (REPO_ROOT / "pyproject.toml").exists() and os.access(REPO_ROOT, os.W_OK):
        return REPO_ROOT / ".mlops"
    return Path.home() / ".mlops"


def partition_settings_path(home: Path | None = None) -> Path:
    return (home or _home()) / "partitions.json"


def monday_on_or_before(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    landing_dir: Path
    storage_root: Path
    dagster_home: Path
    first_week: str
    # scores and their monitors (drift, realized accuracy) exist only from the first forecast week
    # on: their partitions start there, so "filled" counts weeks that could have been scored
    first_scored_week: str = ""
    mlflow_tracking_uri: str = ""
    mlflow_artifact_root: str = ""
    promotion_mode: str = "enforce"
    champion_tolerance: float = DEFAULT_CHAMPION_TOL
    coverage_tolerance: float = DEFAULT_COVERAGE_TOL
    bias_limit: float = DEFAULT_BIAS_LIMIT
    stale_after_days: int = DEFAULT_STALE_DAYS
    automation: bool = False
    sensor_interval: int = 60
    monitor: MonitorLimits = field(default_factory=MonitorLimits)
    retrain: RetrainRules = field(default_factory=RetrainRules)
    retention_days: int = 90
    keep_models: int = 10
    run_workers: int = 0    # regions `mlops-assets run` runs at once; 0: lanes() chooses
    train_threads: int = 0  # threads of a region's training in `mlops-assets run`; 0: up to 2 cores
    lock_dir: Path | None = None  # the champion locks of a server store; None: $MLOPS_HOME/locks
    dashboard_url: str = DEFAULT_DASHBOARD_URL
    dagster_url: str = DEFAULT_DAGSTER_URL
    mlflow_url: str = DEFAULT_MLFLOW_URL
    first_week_from_env: bool = False         # MLOPS_FIRST_WEEK given: nothing to record
    first_scored_week_from_env: bool = False  # MLOPS_FIRST_SCORED_WEEK given
    secrets_in_env: tuple[str, ...] = ()      # the SECRET_VARIABLES that are set

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get("MLOPS_ENV", "dev")
        if env not in ENVIRONMENTS:
            raise ValueError(f"MLOPS_ENV={env!r}: must be one of {', '.join(ENVIRONMENTS)}")
        home = _home()
        landing = location(os.environ.get("MLOPS_LANDING_DIR", SAMPLE_LANDING_DIR), "MLOPS_LANDING_DIR")
        storage = location(os.environ.get("MLOPS_STORAGE_ROOT", home / "storage"), "MLOPS_STORAGE_ROOT")
        dagster_home = Path(os.environ.get("DAGSTER_HOME", home / "dagster")).expanduser().resolve()
        mode = os.environ.get("MLOPS_PROMOTION_MODE", PROMOTION_MODE[env])
        if mode not in PROMOTION_MODES:
            raise ValueError(f"MLOPS_PROMOTION_MODE={mode!r}: must be one of {', '.join(PROMOTION_MODES)}")
        stale_days = int(os.environ.get("MLOPS_STALE_DAYS", DEFAULT_STALE_DAYS))  # scores' check and the retrain rule
        first_week = resolve_first_week(home)
        gone = [name for name in ("MLOPS_EXECUTOR", "MLOPS_DASK_SCHEDULER")  # in_process: what runs anyway
                if os.environ.get(name, "in_process") not in ("", "in_process")]
        if gone:  # 0.1.0's Dask executor collided across concurrent runs: the run is the unit now
            raise ValueError(f"{', '.join(gone)}: no longer read. A run executes in one process (a "
                             "Kubernetes pod with the Helm chart's K8sRunLauncher); to scale out, run more "
                             "runs at once (deploy/dagster.prod.yaml's concurrency). Unset it")
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{dagster_home / 'mlflow' / 'mlflow.db'}"
        # a database store (SQLite, PostgreSQL) keeps artifacts where this says (a server or a
        # managed workspace keeps its own): never MLflow's ./mlruns, relative to the working directory
        database = uri.startswith(("sqlite:", "postgresql", "postgres:", "mysql", "mssql"))
        artifacts = os.environ.get("MLOPS_MLFLOW_ARTIFACTS") or (
            str(dagster_home / "mlflow" / "artifacts") if database else "")
        return cls(
            env=env,
            home=home,
            landing_dir=landing,
            storage_root=storage,
            dagster_home=dagster_home,
            first_week=first_week,
            first_scored_week=resolve_first_week(home, "first_scored_week", "MLOPS_FIRST_SCORED_WEEK", first_week),
            mlflow_tracking_uri=uri,
            mlflow_artifact_root=artifacts,
            promotion_mode=mode,
            champion_tolerance=float(os.environ.get("MLOPS_CHAMPION_TOL", DEFAULT_CHAMPION_TOL)),
            coverage_tolerance=float(os.environ.get("MLOPS_COVERAGE_TOL", DEFAULT_COVERAGE_TOL)),
            bias_limit=float(os.environ.get("MLOPS_BIAS_LIMIT", DEFAULT_BIAS_LIMIT)),
            stale_after_days=stale_days,
            automation=_flag("MLOPS_AUTOMATION", AUTOMATION[env]),
            sensor_interval=int(os.environ.get("MLOPS_SENSOR_INTERVAL", 60)),
            monitor=monitor_limits(env),
            retention_days=int(os.environ.get("MLOPS_RETENTION_DAYS", 90)),
            keep_models=int(os.environ.get("MLOPS_KEEP_MODELS", 10)),
            retrain=RetrainRules(degradation=float(os.environ.get("MLOPS_DEGRADATION", RetrainRules.degradation)),
                                 stale_days=stale_days),
            run_workers=int(os.environ.get("MLOPS_RUN_WORKERS") or 0),
            train_threads=int(os.environ.get("MLOPS_TRAIN_THREADS") or 0),
            lock_dir=Path(os.environ.get("MLOPS_LOCK_DIR") or home / "locks"),
            dashboard_url=dashboard_url(),
            dagster_url=os.environ.get("MLOPS_DAGSTER_URL", DEFAULT_DAGSTER_URL).rstrip("/"),
            mlflow_url=os.environ.get("MLOPS_MLFLOW_URL", DEFAULT_MLFLOW_URL).rstrip("/"),
            first_week_from_env=bool(os.environ.get("MLOPS_FIRST_WEEK")),
            first_scored_week_from_env=bool(os.environ.get("MLOPS_FIRST_SCORED_WEEK")),
            secrets_in_env=tuple(name for name in SECRET_VARIABLES if os.environ.get(name)),
        )


def dashboard_url() -> str:
    """``MLOPS_DASHBOARD_URL``: also the default address of ``mlops-assets dashboard``."""
    return os.environ.get("MLOPS_DASHBOARD_URL", DEFAULT_DASHBOARD_URL)


def monitor_limits(env: str) -> MonitorLimits:
    """The environment's monitor limits, each overridable by ``MLOPS_MONITOR_<NAME>``."""
    base, overrides = MONITOR[env], {}
    for f in fields(MonitorLimits):
        value = os.environ.get(f"MLOPS_MONITOR_{f.name.upper()}")
        if value is not None:
            overrides[f.name] = type(getattr(base, f.name))(value)
    return replace(base, **overrides)


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() not in ("on", "off", "true", "false", "1", "0"):
        raise ValueError(f"{name}={value!r}: must be on or off")
    return value.lower() in ("on", "true", "1")


def resolve_first_week(home: Path, key: str = "first_week", variable: str = "MLOPS_FIRST_WEEK",
                       floor: str | None = None) -> str:
    """The first week of a partitions definition: the environment wins, then what ``mlops-assets
    run`` recorded from the data, then ``floor`` (the scored weeks: never before the weeks' own
    first week), then 2001-01-01."""
    value = os.environ.get(variable)
    if not value:
        value = recorded_weeks(home).get(key)
    value = value or floor or DEFAULT_FIRST_WEEK
    day = dt.date.fromisoformat(value)
    if day.weekday() != 0:
        raise ValueError(f"{variable}={value}: weeks start on Monday; use {monday_on_or_before(day)}")
    return max(value, floor) if floor else value


def first_week_is_set(home: Path) -> bool:
    """Whether the week partitions' start was chosen (``MLOPS_FIRST_WEEK``) or recorded from data."""
    return bool(os.environ.get("MLOPS_FIRST_WEEK") or recorded_weeks(home).get("first_week"))


def recorded_weeks(home: Path) -> dict:
    path = partition_settings_path(home)
    return json.loads(path.read_text()) if path.exists() else {}


def record_weeks(home: Path, **weeks: str) -> None:
    """Record where the week partitions (``first_week``) and the scored weeks
    (``first_scored_week``) start, for every process that builds the definitions from this home
    (``dagster dev``, runs, sensors); keeps what is recorded and not given."""
    path = partition_settings_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**recorded_weeks(home), **weeks}, indent=2) + "\n")


SECRET_QUERY_KEYS = ("sig", "accountkey", "sharedaccesssignature", "password", "pwd", "token", "access_token")


def redacted(uri: str) -> str:
    """``uri`` fit to print: a password in its user part and the values of secret query keys (SAS
    signatures, account keys, tokens) replaced by ``***``; anything else as it was."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    text = str(uri)
    try:
        parts = urlsplit(text)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    # in place, not through urlunsplit: that would drop the empty authority of sqlite:////path
    if netloc != parts.netloc:
        text = text.replace(parts.netloc, netloc, 1)
    if query != parts.query:
        text = text.replace(parts.query, query, 1)
    return text


def env_value(value):
    """A resource field given as ``dg.EnvVar`` (a secret), resolved from the environment: inside a
    run Dagster has resolved it already; the CLI and sensor helpers use resources outside one."""
    return value.get_value() if hasattr(value, "env_var_name") else value

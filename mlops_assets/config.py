"""Settings from the environment: where data lives, which environment this is.

Everything that differs between a laptop, CI and production is read here and
nowhere else, so ``dev`` and ``prod`` differ only in environment variables:

=====================  ==========================================  ===========================
variable               meaning                                     default
=====================  ==========================================  ===========================
MLOPS_ENV              ``dev`` or ``prod``                         ``dev``
MLOPS_HOME             folder for all local state                  ``$DAGSTER_HOME/..`` or ``./.mlops``
MLOPS_LANDING_DIR      landing folder (see DATA_CONTRACT.md)       the bundled ``data/sample``
MLOPS_STORAGE_ROOT     where asset values (Parquet) are written    ``$MLOPS_HOME/storage``
MLOPS_FIRST_WEEK       first week partition (a Monday)             recorded by ``mlops-assets run``, else 2001-01-01
DAGSTER_HOME           Dagster instance folder                     ``$MLOPS_HOME/dagster``
=====================  ==========================================  ===========================
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
SAMPLE_LANDING_DIR = REPO_ROOT / "data" / "sample"
DEFAULT_FIRST_WEEK = "2001-01-01"
ENVIRONMENTS = ("dev", "prod")


def _home() -> Path:
    if os.environ.get("MLOPS_HOME"):
        return Path(os.environ["MLOPS_HOME"]).expanduser().resolve()
    return (Path.cwd() / ".mlops").resolve()


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

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get("MLOPS_ENV", "dev")
        if env not in ENVIRONMENTS:
            raise ValueError(f"MLOPS_ENV={env!r}: must be one of {', '.join(ENVIRONMENTS)}")
        home = _home()
        landing = Path(os.environ.get("MLOPS_LANDING_DIR", SAMPLE_LANDING_DIR)).expanduser()
        storage = Path(os.environ.get("MLOPS_STORAGE_ROOT", home / "storage")).expanduser()
        dagster_home = Path(os.environ.get("DAGSTER_HOME", home / "dagster")).expanduser()
        return cls(
            env=env,
            home=home,
            landing_dir=landing.resolve(),
            storage_root=storage.resolve(),
            dagster_home=dagster_home.resolve(),
            first_week=resolve_first_week(home),
        )


def resolve_first_week(home: Path) -> str:
    """The first week partition: the environment wins, then what ``mlops-assets run``
    recorded from the data, then 2001-01-01."""
    value = os.environ.get("MLOPS_FIRST_WEEK")
    if not value:
        recorded = partition_settings_path(home)
        if recorded.exists():
            value = json.loads(recorded.read_text()).get("first_week")
    value = value or DEFAULT_FIRST_WEEK
    day = dt.date.fromisoformat(value)
    if day.weekday() != 0:
        raise ValueError(f"MLOPS_FIRST_WEEK={value}: weeks start on Monday; use {monday_on_or_before(day)}")
    return value


def record_first_week(home: Path, first_week: str) -> None:
    path = partition_settings_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"first_week": first_week}, indent=2) + "\n")

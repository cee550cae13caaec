"""One Dagster run of the code location's jobs, as ``mlops-assets`` starts it, and its failure.

Runs go into a persistent Dagster instance (``DAGSTER_HOME``), so ``dagster dev`` shows them
afterwards.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from mlops_assets import config
from mlops_assets.code_location import execute_in_location
from mlops_assets.locations import location, url

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
MANUAL = {"mlops/trigger": "manual"}
NEW_DATA = {"mlops/trigger": "new_data"}

StageHook = Callable[[str], AbstractContextManager]


class RunFailed(RuntimeError):
    """A Dagster run of ``mlops-assets run`` failed; the message names the step and error."""


@dataclass
class RunSummary:
    landing: Path
    first_week: str
    last_week: str
    regions: dict[str, dict] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)  # region -> the --json report
    tables: dict[str, dict] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)  # (run label, seconds)
    replay: dict[str, dict] = field(default_factory=dict)  # region -> monitoring.replay.replay_region's result
    stages: list[tuple[str, float, int]] = field(default_factory=list)  # worker runs: (label, s, worker peak RSS)


def prepare_environment(landing: Path | None = None) -> config.Settings:
    """Point settings at ``landing`` and a persistent Dagster home with the project's dagster.yaml."""
    if landing is not None:
        os.environ["MLOPS_LANDING_DIR"] = url(location(landing, "--landing"))
    settings = config.Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    template = config.REPO_ROOT / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and template.exists():
        shutil.copy(template, home / "dagster.yaml")
    return settings


def check_landing(settings: config.Settings) -> None:
    """Before a run validates anything: a storage built from another landing folder is refused
    (the tables job would refuse it too, later)."""
    from mlops_assets.errors import ContractError

    try:
        storage(settings).claim_landing(settings.landing_dir, record=False)
    except ContractError as error:
        raise RunFailed(str(error)) from None


def storage(settings: config.Settings):
    from mlops_assets.resources.storage import StorageResource

    return StorageResource(root=url(settings.storage_root))


def user_error(error) -> str:
    """The innermost message of a Dagster error chain: the user's own exception, not the wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, summary: RunSummary,
            label: str | None = None, on_stage: StageHook | None = None, tolerate_gates: bool = False,
            **kwargs):
    """One run of ``job`` in the code location; its time and id go into ``summary``. A failed run
    raises RunFailed naming each failed step, except a candidate that only failed its gates
    (``tolerate_gates``): that is recorded, and the champion did not move."""
    label = label or job
    started = time.perf_counter()
    kwargs.setdefault("run_config", QUIET)
    with on_stage(label) if on_stage else nullcontext():
        result = execute_in_location(defs.resolve_job_def(job), instance, **kwargs)
    summary.timings.append((label, time.perf_counter() - started))
    summary.run_ids.append(result.run_id)
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        gate_only = failures and all(e.event_specific_data.error.cls_name == "DagsterAssetCheckFailedError"
                                     for e in failures)
        if tolerate_gates and gate_only:
            return result
        detail = failure_detail(result) or "  (see the Dagster UI)"
        raise RunFailed(f"run {result.run_id} of job {job} failed:\n{detail}")
    return result


def failure_detail(result) -> str:
    """A line per failed step of a run: the step and the user's own error."""
    return "\n".join(f"  step {e.step_key}: {user_error(e.event_specific_data.error)}"
                     for e in result.all_events if e.is_step_failure)


def week_keys(defs: dg.Definitions, asset: str = "net_demand") -> list[str]:
    """Every week partition of ``asset`` (the conditioned weeks, or the scored weeks of the scores
    and monitors), the week in progress included."""
    return defs.resolve_assets_def(asset).partitions_def.get_partitions_def_for_dimension(
        "week").get_partition_keys()

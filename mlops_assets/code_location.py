"""Runs of ``mlops-assets run`` that belong to the code location, like runs from the UI or the daemon.

``JobDefinition.execute_in_process`` creates runs with no code-location origin: the web UI's
global Runs list shows them, but the job's Runs tab, the Overview timeline and the sparklines
(which select runs by their ``.dagster/repository`` label) do not. Here the same in-process
execution creates its run with the origin that ``workspace.yaml``'s location gives runs launched
from the UI (``__repository__@mlops_assets``), so the CLI's runs sit under their jobs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import dagster as dg

from mlops_assets.config import REPO_ROOT

LOCATION_NAME = "mlops_assets"  # workspace.yaml's location_name
MODULE, ATTRIBUTE = "mlops_assets.definitions", "defs"
REPOSITORY_NAME = "__repository__"  # the repository a Definitions object becomes


def _repository_origins():
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    target = LoadableTargetOrigin(executable_path=sys.executable, module_name=MODULE, attribute=ATTRIBUTE,
                                  working_directory=str(REPO_ROOT))
    remote = RemoteRepositoryOrigin(ManagedGrpcPythonEnvCodeLocationOrigin(target, LOCATION_NAME), REPOSITORY_NAME)
    python = ReconstructableRepository.for_module(MODULE, ATTRIBUTE, working_directory=str(REPO_ROOT))
    return remote, python.get_python_origin()


def repository_label() -> str:
    """The label the UI files runs of this code location under (the ``.dagster/repository`` tag)."""
    return f"{REPOSITORY_NAME}@{LOCATION_NAME}"


def execute_in_location(job_def: dg.JobDefinition, instance: dg.DagsterInstance, *,
                        run_config: Mapping | None = None, partition_key: str | None = None,
                        asset_selection: Sequence[dg.AssetKey] | None = None,
                        tags: Mapping[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """``job_def.execute_in_process(..., raise_on_error=False)``, its run created with the code
    location's origin (remote and Python), so the run is the job's in the UI and can be
    re-executed from there. Unlike execute_in_process, outputs are not captured in memory
    (``result.output_for_node`` has nothing; read the stored asset) and ``instance`` must be
    persistent."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.definitions.partitions.context import partition_loading_context
    from dagster._core.execution.api import ExecuteRunWithPlanIterable, create_execution_plan, job_execution_iterator
    from dagster._core.execution.context_creation_job import (
        PlanOrchestrationContextManager,
        orchestration_context_event_generator,
    )
    from dagster._core.execution.execute_in_process import merge_run_tags
    from dagster._core.origin import JobPythonOrigin

    asset_selection = list(asset_selection or [])
    job = job_def.as_ephemeral_job(resource_defs={}, input_values={}, asset_selection=asset_selection or None)
    if partition_key and job.partitions_def:
        with partition_loading_context(dynamic_partitions_store=instance) as ctx:
            job.validate_partition_key(partition_key=partition_key, selected_asset_keys=set(asset_selection),
                                       context=ctx)
    run_config = dict(run_config or {})
    if not run_config and job.partitioned_config and partition_key:
        run_config = job.partitioned_config.get_run_config_for_partition_key(partition_key)
    run_tags = merge_run_tags(job_def=job_def, partition_key=partition_key, tags=tags,
                              asset_selection=asset_selection, instance=instance, run_config=run_config)
    wrapped = InMemoryJob(job_def=job)
    plan = create_execution_plan(wrapped, run_config=run_config, instance_ref=instance.get_ref())
    remote, python = _repository_origins()
    run = instance.create_run_for_job(
        job_def=job, run_config=run_config, tags={**job.run_tags, **run_tags}, execution_plan=plan,
        asset_selection=frozenset(asset_selection) or None,
        remote_job_origin=remote.get_job_origin(job_def.name), job_code_origin=JobPythonOrigin(job_def.name, python))
    events = list(ExecuteRunWithPlanIterable(
        execution_plan=plan, iterator=job_execution_iterator,
        execution_context_manager=PlanOrchestrationContextManager(
            context_event_generator=orchestration_context_event_generator, job=wrapped, execution_plan=plan,
            dagster_run=run, instance=instance, run_config=run_config, executor_defs=None, output_capture=None,
            raise_on_error=False)))
    return dg.ExecuteInProcessResult(job_def=job, event_list=events, dagster_run=instance.get_run_by_id(run.run_id),
                                     output_capture={})

"""The deployment files (deploy/): the production instance config, the Docker image and the
compose file agree with each other and with the code. No Docker daemon is needed: the files are
parsed and every reference they make is checked."""

import os
import re
import shlex
from pathlib import Path

import yaml

from mlops_assets.config import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _env_refs(text: str) -> set[str]:
    return set(re.findall(r"\{env:\s*(\w+)\}", text))


def test_the_prod_instance_config_is_valid_and_every_variable_it_reads_is_given(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    text = (DEPLOY / "dagster.prod.yaml").read_text()
    refs = _env_refs(text)
    assert {"DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"} <= refs
    for name in refs:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    (tmp_path / "dagster.yaml").write_text(text)
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "mlops/region", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    # every Dagster service of the compose file gives each variable the config reads
    services = _compose()["services"]
    for name in ("code", "webserver", "daemon"):
        assert refs <= set(services[name]["environment"]), (name, refs - set(services[name]["environment"]))


def test_the_image_builds_from_files_that_exist_and_puts_the_configs_where_dagster_reads_them():
    steps = _dockerfile()
    env = {}
    for op, arg in steps:
        if op == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", arg)))
        if op == "COPY":
            *sources, _ = shlex.split(arg)
            for source in sources:
                assert (REPO_ROOT / source).exists(), source
    copies = {shlex.split(a)[0]: shlex.split(a)[-1] for op, a in steps if op == "COPY"}
    assert copies["deploy/dagster.prod.yaml"] == "${DAGSTER_HOME}/dagster.yaml"
    assert env["MLOPS_ENV"] == "prod" and env["DAGSTER_HOME"].startswith("/")
    assert any(op == "RUN" and "torch==2.13.0" in a and "/whl/cpu" in a for op, a in steps)  # never CUDA
    [user] = [a for op, a in steps if op == "USER"]
    assert user != "root"
    # compose's named volume at /data takes the image's folder and its owner: the user's
    [made] = [a for op, a in steps if op == "RUN" and "useradd" in a]
    assert re.search(r"mkdir -p [^&]*/data\b", made) and re.search(rf"chown -R {user} [^&]*/data\b", made)
    [cmd] = [a for op, a in steps if op == "CMD"]
    assert '"-m", "mlops_assets.definitions"' in cmd and '"-a", "defs"' in cmd


def test_the_compose_services_find_each_other():
    compose, steps = _compose(), _dockerfile()
    services = compose["services"]
    assert {"postgres", "mlflow", "code", "webserver", "daemon"} <= set(services)
    workspace = yaml.safe_load((DEPLOY / "workspace.docker.yaml").read_text())
    [location] = workspace["load_from"]
    grpc = location["grpc_server"]
    [cmd] = [a for op, a in steps if op == "CMD"]
    assert grpc["host"] in services and f'"-p", "{grpc["port"]}"' in cmd
    assert location["grpc_server"]["location_name"] == "mlops_assets"  # the name runs and links carry
    copied = {shlex.split(a)[0]: shlex.split(a)[-1] for op, a in steps if op == "COPY"}
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == copied["deploy/workspace.docker.yaml"]
    # the Dagster services reach MLflow at the mlflow service's own port
    uri = services["code"]["environment"]["MLFLOW_TRACKING_URI"]
    host, port = re.match(r"http://([\w-]+):(\d+)", uri).groups()
    assert host in services and f"--port {port}" in services["mlflow"]["command"]
    # MLflow's store is a database the postgres service creates, given in the environment: the
    # URI holds the password, and no command line of any service does
    backend = services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert backend.startswith("postgresql+psycopg2://") and backend.endswith("@postgres:5432/mlflow")
    assert not any("PASSWORD" in str(service.get("command", "")) for service in services.values())
    # MLflow 3.5+ refuses a Host header it was not told of: the name the services use is allowed
    assert f"{host}:{port}" in services["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "CREATE DATABASE mlflow" in (DEPLOY / "postgres-init.sql").read_text()
    # published ports listen on the loopback only
    for service in services.values():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), mapping
    # no secret is written in the file: each comes from the environment
    assert "${POSTGRES_PASSWORD" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_the_code_location_loads_as_the_image_loads_it(tmp_path):
    """The image's command: `-m mlops_assets.definitions -a defs`, with prod settings."""
    import subprocess
    import sys

    (tmp_path / "dh").mkdir()
    env = {**os.environ, "MLOPS_ENV": "prod", "MLOPS_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dh")}
    out = subprocess.run([str(Path(sys.executable).with_name("dagster")), "definitions", "validate",
                          "-m", "mlops_assets.definitions", "-a", "defs"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_the_helm_values_run_the_same_image_settings_and_limits():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "mlops_assets.definitions", "-a", "defs"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["MLOPS_ENV"] == "prod" and not {"MLOPS_EXECUTOR", "MLOPS_DASK_SCHEDULER"} & set(env)
    # a pod per run, with the secrets and the shared volume the code location has
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert launcher["config"]["k8sRunLauncher"]["envSecrets"] == deployment["envSecrets"]
    assert launcher["config"]["k8sRunLauncher"]["volumeMounts"] == deployment["volumeMounts"]
    assert values["postgresql"]["enabled"] is False and values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    # the database password only in the named secret, never generated from a value in this file
    assert values["generatePostgresqlPasswordSecret"] is False and values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in values["postgresql"]


def test_helm_queues_pools_retries_and_retention_are_those_of_the_prod_instance():
    """One production behaviour, two spellings: Helm's camelCase values and dagster.prod.yaml."""
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    prod = yaml.safe_load((DEPLOY / "dagster.prod.yaml").read_text())
    runs, pools = values["concurrency"]["runs"], values["concurrency"]["pools"]
    assert values["concurrency"]["enabled"] is True
    assert runs["maxConcurrentRuns"] == prod["concurrency"]["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == prod["concurrency"]["runs"]["tag_concurrency_limits"]
    assert pools["defaultLimit"] == prod["concurrency"]["pools"]["default_limit"]
    assert pools["opGranularityRunBuffer"] == prod["concurrency"]["pools"]["op_granularity_run_buffer"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert coordinator == {"dequeueIntervalSeconds": prod["run_coordinator"]["config"]["dequeue_interval_seconds"]}
    retries = values["dagsterDaemon"]["runRetries"]
    assert {"enabled": retries["enabled"], "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"]} == prod["run_retries"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert {"enabled": monitoring["enabled"], "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"]} == prod["run_monitoring"]
    retention = values["retention"]
    assert retention["enabled"] is True
    assert retention["schedule"]["purgeAfterDays"] == prod["retention"]["schedule"]["purge_after_days"]
    assert retention["sensor"]["purgeAfterDays"] == prod["retention"]["sensor"]["purge_after_days"]


def test_every_container_has_resources_and_the_release_image():
    """Requests and limits everywhere a container runs; the image tag is setup.py's version."""
    version = re.search(r'version="([^"]+)"', (REPO_ROOT / "setup.py").read_text()).group(1)
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    for name, resources in {"code location": deployment["resources"],
                            "run pods": values["runLauncher"]["config"]["k8sRunLauncher"]["resources"],
                            "daemon": values["dagsterDaemon"]["resources"],
                            "webserver": values["dagsterWebserver"]["resources"]}.items():
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), name
    for name, service in _compose()["services"].items():
        resources = service["deploy"]["resources"]
        assert {"cpus", "memory"} <= set(resources["limits"]) and set(resources["reservations"]), name
    assert deployment["image"]["tag"] == version
    compose = (DEPLOY / "docker-compose.yaml").read_text()
    assert f"mlops-assets:${{MLOPS_IMAGE_TAG:-{version}}}" in compose
    assert ":latest" not in compose and "latest" not in str(deployment["image"])


def test_every_pod_reaches_the_data_on_azure_and_the_step_logs_go_there_too(monkeypatch):
    """The Helm values put the landing folder, the storage and MLflow's artifacts on ADLS Gen2, and
    the compute logs in the same account through dagster-azure, with no secret in the values."""
    from dagster._config import process_config
    from dagster_azure.blob.compute_log_manager import AzureBlobComputeLogManager

    from mlops_assets.locations import is_local, location

    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    for name in ("MLOPS_LANDING_DIR", "MLOPS_STORAGE_ROOT"):
        assert not is_local(location(env[name], name)), name
    assert env["MLOPS_MLFLOW_ARTIFACTS"].startswith("wasbs://")  # the store that reads the connection string
    custom = values["computeLogManager"]["config"]["customComputeLogManager"]
    assert (custom["module"], custom["class"]) == ("dagster_azure.blob.compute_log_manager",
                                                   "AzureBlobComputeLogManager")
    checked = process_config(AzureBlobComputeLogManager.config_type(), custom["config"])
    assert checked.success, checked.errors
    assert not {"access_key_or_sas_token", "secret_credential"} & set(custom["config"])  # identity, no secret
    for name in [k for k in os.environ if k.startswith("AZURE_")]:
        monkeypatch.delenv(name)
    manager = AzureBlobComputeLogManager(**checked.value)  # constructs offline: no request until a log
    assert manager._container_client.url.startswith(f"https://{custom['config']['storage_account']}.blob.")

"""The production deployment, run: docker-compose.yaml's services started as plain processes, the
way their containers start them (no container engine runs here).

What is the deployment is read from the shipped files, not restated: each service's command and
environment from deploy/docker-compose.yaml, the code location's command and the image's
environment from deploy/Dockerfile, the instance from deploy/dagster.prod.yaml, the workspace from
deploy/workspace.docker.yaml. The test maps only what a container network provides: the service
names (postgres, mlflow, code) become 127.0.0.1 and a free port each, and the image's paths
(/data, /opt/dagster) a folder of the test's. As root, every service runs as uid 1000, the image's
user, with the data folder owned as the image leaves it.

What must hold, from an empty deployment: a landing folder arrives and the sensors alone take it
to scores and a delivered alert, starting from the landing's own first week; a training launched
through the webserver is promoted and forecasts the coming week through the MLflow server; the
next delivered week is conditioned, monitored and forecast by the champion. No password is in any
process's command line, the UI's answers or a file the deployment wrote.

The test's own changes to the shipped configuration, for time only: sensors tick every 3 s
(MLOPS_SENSOR_INTERVAL, 60 by default) and the queue is read every second (5 in production).
"""

import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests
import yaml

from mlops_assets.automation.sensors import OBSERVED, RANGE_START, STAGE
from mlops_assets.config import REPO_ROOT
from mlops_assets.sample import SampleSpec, generate
from mlops_assets_tests.browsing import free_port, stop_group
from mlops_assets_tests.conftest import SEED, TOY_COVERAGE_TOL
from mlops_assets_tests.servers import postgres_server, process_arguments, wait_alongside, webhook_receiver

# its own group, and the PostgreSQL one (it starts one); not -m daemon or -m distributed, which would
# add its 4 minutes to runs meant for the others
pytestmark = [pytest.mark.deployment, pytest.mark.postgres]
BIN = Path(sys.executable).parent
DEPLOY = REPO_ROOT / "deploy"
IMAGE_UID = 1000  # deploy/Dockerfile: useradd --uid 1000 dagster
# one region whose every segment trains in seconds (conftest.TRAINABLE's size)
LANDING = dict(regions=("north",), stores_per_region=6, products=12, weeks=60, end_week="2026-11-09", seed=5 + SEED,
               realism=False)
HELD_BACK = "2026-11-09"  # delivered in the last part: the week the champion forecast
PASSWORD = "S3cret-compose-pg-1618"  # POSTGRES_PASSWORD of the .env beside docker-compose.yaml
NEW_DATA = dg.RunsFilter(tags={"mlops/trigger": "new_data"})


def _interpolate(value: str, dotenv: dict) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}, from ``dotenv``."""
    def one(m):
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if dotenv.get(name):
            return dotenv[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return arg if op == ":-" else ""
    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, str(value))


class Net:
    """What the containers' network and volumes give them, as this machine has it."""

    def __init__(self, root: Path, pg_port: int):
        self.root, self.pg_port = root, pg_port
        self.data = root / "data"
        self.ports = {"mlflow": free_port(), "code": free_port(), "webserver": free_port()}

    def path(self, value: str) -> str:
        for prefix in ("/data", "/opt/dagster"):
            if value == prefix or value.startswith(prefix + "/"):
                return str(self.root / prefix.lstrip("/")) + value[len(prefix):]
        return value

    def address(self, value: str) -> str:
        value = value.replace("@postgres:5432/", f"@127.0.0.1:{self.pg_port}/")
        value = value.replace("http://mlflow:5000", f"http://127.0.0.1:{self.ports['mlflow']}")
        return self.path(value)


def _image_env(net: Net) -> dict:
    """The ENV block of deploy/Dockerfile, its paths mapped."""
    text = (DEPLOY / "Dockerfile").read_text()
    block = re.search(r"^ENV ((?:.*\\\n)*.*)$", text, re.M).group(1)
    return {k: net.path(v) for k, v in re.findall(r"(\w+)=(\S+)", block)}


def _code_command(net: Net, python: str) -> list[str]:
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text(), re.M).group(1))
    return _command(cmd, net, "code", 4000, python)


def _command(cmd, net: Net, service: str, port: int, python: str) -> list[str]:
    """A service's command: its console script run by ``python``, its address and paths mapped."""
    args = cmd.split() if isinstance(cmd, str) else list(cmd)
    out = [{"0.0.0.0": "127.0.0.1", str(port): str(net.ports.get(service, port))}.get(a, a) for a in args[1:]]
    return [python, str(BIN / args[0]), *[net.path(a) for a in out]]


def _service_env(compose: dict, service: str, net: Net, dotenv: dict, base: dict) -> dict:
    """A service's environment: the image's, then compose's, its names and paths mapped."""
    env = {**base, **_image_env(net)}
    for name, value in (compose["services"][service].get("environment") or {}).items():
        env[name] = net.address(_interpolate(value, dotenv))
    if "DAGSTER_PG_HOST" in env:
        assert (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_PORT"]) == ("postgres", "5432")
        env.update(DAGSTER_PG_HOST="127.0.0.1", DAGSTER_PG_PORT=str(net.pg_port))
    return env


def _runs_as(user: dict, python: str) -> bool:
    try:
        probe = subprocess.run([python, "-c", "import mlops_assets, torch"], capture_output=True, cwd="/", **user)
    except PermissionError:  # the user cannot reach the interpreter itself
        return False
    return probe.returncode == 0


def _image_user(root: Path) -> tuple[str, dict]:
    """The interpreter and the Popen arguments that run a service as the image's user. The
    image's Python is world-readable (/usr/local); where this checkout's is not (a pyenv under
    /root), the system's Python of the same minor version runs this checkout's packages, as a
    container's Python would. Not root: the test's own user (not root either) and interpreter."""
    user = {"user": IMAGE_UID, "group": IMAGE_UID, "extra_groups": []}
    if os.geteuid() != 0:
        return sys.executable, {}
    if _runs_as(user, sys.executable):
        return sys.executable, user
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        pytest.fail(f"uid {IMAGE_UID} cannot run {sys.executable} and there is no {system} to run this "
                    "checkout's packages with: the services would run as root, not as the image's user")
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(root / "python")], check=True)
    [site] = (root / "python" / "lib").glob("python*/site-packages")
    checkout = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "checkout.pth").write_text(f"import site; site.addsitedir({checkout!r})\n")
    python = str(root / "python" / "bin" / "python")
    if not _runs_as(user, python):
        pytest.fail(f"uid {IMAGE_UID} cannot import this checkout's packages with {python}")
    return python, user


def _uid(pid: int) -> int:
    return int(re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))


def _get(port: int, path: str, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def deployment():
    """compose's services as processes, on an empty deployment; yields what the test reads."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    root = Path(tempfile.mkdtemp(prefix="mlops-deployment-"))  # not under pytest's root-only folder
    os.chmod(root, 0o755)
    python, user = _image_user(root)
    procs, logs = {}, {}
    with postgres_server(password=PASSWORD) as (host, pg_port, pg_user), webhook_receiver() as hook:
        net = Net(root, pg_port)
        dotenv = {"POSTGRES_USER": pg_user, "POSTGRES_PASSWORD": PASSWORD,
                  "MLOPS_ALERT_WEBHOOK": hook.url}
        image = _image_env(net)
        # the image's folders, as its Dockerfile makes them and gives them to its user
        home, mlops_home = Path(image["DAGSTER_HOME"]), Path(image["MLOPS_HOME"])
        for folder in (home, mlops_home, net.data / "landing", net.data / "storage", net.data / "mlflow-artifacts",
                       root / "opt" / "dagster" / "app", root / "user-home"):
            folder.mkdir(parents=True, exist_ok=True)
        instance = yaml.safe_load((DEPLOY / "dagster.prod.yaml").read_text())
        instance["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
        (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
        workspace = (DEPLOY / "workspace.docker.yaml").read_text()
        (root / "opt" / "dagster" / "app" / "workspace.yaml").write_text(
            workspace.replace("host: code", "host: 127.0.0.1").replace("port: 4000", f"port: {net.ports['code']}"))
        generate(SampleSpec(out_dir=root / "generated", **LANDING))
        if user:
            for path in [root, *root.rglob("*")]:
                if "generated" not in path.parts:
                    os.chown(path, IMAGE_UID, IMAGE_UID)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_"))}
        base.update(HOME=str(root / "user-home"), MLOPS_SENSOR_INTERVAL="3", MLOPS_COVERAGE_TOL=TOY_COVERAGE_TOL)
        mlflow_service = compose["services"]["mlflow"]
        mlflow_env = _service_env(compose, "mlflow", net, dotenv, base)
        published = net.ports["mlflow"]
        mlflow_env["MLFLOW_SERVER_ALLOWED_HOSTS"] = re.sub(  # the port compose publishes on 127.0.0.1
            r"(localhost|127\.0\.0\.1):5000", rf"\1:{published}", mlflow_env["MLFLOW_SERVER_ALLOWED_HOSTS"])
        dagster_env = _service_env(compose, "code", net, dotenv, base)
        services = {
            "mlflow": (_command(mlflow_service["command"], net, "mlflow", 5000, python), mlflow_env),
            "code": (_code_command(net, python), dagster_env),
            "webserver": (_command(compose["services"]["webserver"]["command"], net, "webserver", 3000, python),
                          _service_env(compose, "webserver", net, dotenv, base)),
            "daemon": (_command(compose["services"]["daemon"]["command"], net, "daemon", 0, python),
                       _service_env(compose, "daemon", net, dotenv, base)),
        }
        try:
            for name, (cmd, env) in services.items():
                logs[name] = root / f"{name}.log"
                procs[name] = subprocess.Popen(cmd, env=env, cwd=root / "opt" / "dagster" / "app",
                                               stdout=logs[name].open("w"), stderr=subprocess.STDOUT,
                                               start_new_session=True, **user)
            yield dict(root=root, net=net, procs=procs, logs=logs, user=user, env=dagster_env,
                       generated=root / "generated", webhook=hook.received, compose=compose,
                       instance=_instance(dagster_env))
        finally:
            for proc in procs.values():
                stop_group(proc, seconds=10)
            shutil.rmtree(root, ignore_errors=True)


def _instance(env: dict) -> dg.DagsterInstance:
    """The deployment's instance, read by the test (the same PostgreSQL)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            if name.startswith("DAGSTER_PG_"):
                mp.setenv(name, value)
        return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def _failures(instance, run_id: str) -> str:
    """What a failed run said about its failure."""
    failed = (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.ENGINE_EVENT)
    return "\n".join(f"{e.dagster_event.event_type_value}: {e.message} {e.dagster_event.event_specific_data}"[:3000]
                     for e in instance.all_logs(run_id) if e.dagster_event and e.dagster_event.event_type in failed)


def _tail(d: dict) -> str:
    return "\n".join(f"--- {n}\n{p.read_text()[-2500:]}" for n, p in d["logs"].items())


def _wait(d: dict, probe, seconds: float, what: str):
    return wait_alongside(probe, seconds, what, d["procs"]["daemon"], d["logs"]["daemon"],
                          lambda: _runs(d) + "\n" + _tail(d), every=1)


def _runs(d: dict) -> str:
    return "\n".join(f"{r.job_name} {r.status.value} {r.tags.get('dagster/partition', '')}"
                     f"{r.tags.get(RANGE_START, '')} {r.tags.get('mlops/trigger', '')} "
                     f"{r.tags.get('mlops/reasons', '')}"
                     for r in d["instance"].get_runs())


def _deliver(d: dict, *, held_back: bool) -> None:
    """Copy the generated landing folder into the deployment's (all but the held-back week, or it too)."""
    landing = d["net"].data / "landing"
    for src in sorted(d["generated"].rglob("*")):
        dst = landing / src.relative_to(d["generated"])
        if src.is_dir():
            dst.mkdir(exist_ok=True)
        elif (src.stem != HELD_BACK or held_back) and not dst.exists():
            shutil.copyfile(src, dst)
        if d["user"] and dst.exists():
            os.chown(dst, IMAGE_UID, IMAGE_UID)


def test_the_services_run_as_shipped_and_the_sensors_alone_take_a_landing_to_scores_and_alerts(deployment):
    d, net = deployment, deployment["net"]
    storage = net.data / "storage"
    # MLflow answers the name the services call it by, and the published port; no other host
    _wait(d, lambda: _ok(lambda: _get(net.ports["mlflow"], "/health", "mlflow:5000") == 200), 120,
          "the MLflow server")
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _get(net.ports["mlflow"], search, "mlflow:5000") == 200
    assert _get(net.ports["mlflow"], search, f"127.0.0.1:{net.ports['mlflow']}") == 200
    assert _get(net.ports["mlflow"], search, "attacker.example:5000") == 403
    _wait(d, lambda: _ok(lambda: _get(net.ports["webserver"], "/server_info", "127.0.0.1") == 200), 180,
          "the webserver")

    first_week = pd.read_csv(d["generated"] / "shipments" / sorted(
        p.name for p in (d["generated"] / "shipments").iterdir())[0])["week_start"].min()
    _deliver(d, held_back=False)
    scores = storage / "scores" / "north" / f"{HELD_BACK}.parquet"
    _wait(d, scores.exists, 300, f"the sensors' forecast of {HELD_BACK}")
    _wait(d, lambda: any(a["kind"] == "no_champion" for body in d["webhook"] for a in body["alerts"]), 120,
          "the no_champion alert at the webhook")
    served = pd.read_parquet(scores)
    assert len(served) and (served["model"] == "baseline").all()  # nothing trained yet: the baseline, marked
    runs = d["instance"].get_runs(filters=NEW_DATA)
    conditioned = [r for r in runs if r.job_name == "weekly" and r.tags.get(STAGE) == OBSERVED]
    assert [r.tags[RANGE_START] for r in conditioned] == [f"north|{first_week}"]  # not 2001
    assert {"observe_landing", "tables", "weekly", "scoring"} <= {r.job_name for r in runs}
    assert not [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]

    # every service as the image's user, and every run (the code server starts them) writing a
    # data folder that user owns
    if d["user"]:
        assert {name: _uid(p.pid) for name, p in d["procs"].items()} == dict.fromkeys(d["procs"], IMAGE_UID)
        assert {p.stat().st_uid for p in storage.rglob("*")} == {IMAGE_UID}


def test_a_training_launched_from_the_webserver_is_promoted_and_forecasts_through_the_mlflow_server(deployment):
    from dagster_graphql import DagsterGraphQLClient
    from mlflow import MlflowClient

    d, net = deployment, deployment["net"]
    client = DagsterGraphQLClient("127.0.0.1", port_number=net.ports["webserver"])
    run_id = client.submit_job_execution("training", repository_location_name="mlops_assets",
                                         repository_name="__repository__", tags={"dagster/partition": "north"})
    instance = d["instance"]
    _wait(d, lambda: instance.get_run_by_id(run_id).is_finished, 300, "the training run")
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS, _failures(instance, run_id)
    # registered through the MLflow server, its artifacts in the data folder the server writes
    server = f"http://127.0.0.1:{net.ports['mlflow']}"
    mlflow = MlflowClient(server, server)  # the registry too: an earlier test may have set MLflow's global one
    champion = mlflow.get_model_version_by_alias("demand-forecast-north", "champion")
    assert champion.tags["dagster_run_id"] == run_id
    artifacts = list((net.data / "mlflow-artifacts").rglob("MLmodel"))
    assert artifacts and all(p.stat().st_uid == (IMAGE_UID if d["user"] else os.geteuid()) for p in artifacts)
    # scoring_after_promotion: the coming week forecast again, by the champion
    scores = net.data / "storage" / "scores" / "north" / f"{HELD_BACK}.parquet"
    _wait(d, lambda: _served_by(scores) == {f"demand-forecast-north/{champion.version}"}, 300,
          f"the champion's forecast of {HELD_BACK}")
    # whatever its monitoring says, the champion has seen every week there is: no retrain until a new
    # one lands (a retrain on the same weeks would find the same and retrain for ever)
    served = scores.stat().st_mtime
    _quiet(d)
    assert [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(job_name="training"))] == [run_id]
    # and that is the retrain sensor's decision, not a tick yet to come: it ticked since, and asked nothing
    ticks = _ticks(instance, "retrain_on_model_health")
    assert [t for t in ticks if t.timestamp > served], [(t.timestamp, t.status) for t in ticks[:3]]
    assert not [t for t in ticks if t.timestamp > served and t.status.value == "SUCCESS"]


def test_the_next_delivered_week_is_conditioned_monitored_and_forecast_by_the_champion(deployment):
    d, net = deployment, deployment["net"]
    instance, storage = d["instance"], net.data / "storage"
    earlier = {r.run_id for r in instance.get_runs()}
    _deliver(d, held_back=True)
    upcoming = (pd.Timestamp(HELD_BACK) + pd.Timedelta(weeks=1)).date().isoformat()
    scores = storage / "scores" / "north" / f"{upcoming}.parquet"
    accuracy = storage / "forecast_accuracy" / "north" / f"{HELD_BACK}.parquet"
    # forecast by a champion (the one of the last test, or one retrained on the new week if its
    # monitoring asked for it), and the week that champion forecast evaluated
    _wait(d, lambda: (_served_by(scores) or {"baseline"}).isdisjoint({"baseline"}) and accuracy.exists(), 300,
          f"a champion's forecast of {upcoming} and the realized accuracy of {HELD_BACK}")
    arguments = process_arguments()  # the five services and whatever runs now
    _quiet(d)
    new = [r for r in instance.get_runs() if r.run_id not in earlier]
    assert len(pd.read_parquet(accuracy)) > 0
    assert not [r.job_name for r in new if r.status == dg.DagsterRunStatus.FAILURE], _runs(d)
    # at most the one retrain the new week allows
    assert len([r for r in new if r.job_name == "training"]) <= 1, _runs(d)
    new = [r for r in new if r.tags.get("mlops/trigger") == "new_data"]
    ranges = {(r.job_name, r.tags.get(RANGE_START) or r.tags.get("dagster/partition")) for r in new
              if r.job_name in ("weekly", "monitoring", "scoring")}
    assert {("weekly", f"north|{HELD_BACK}"), ("monitoring", f"north|{HELD_BACK}"),
            ("scoring", f"north|{upcoming}")} <= ranges, ranges

    # no password: in no process's command line, in none of the UI's answers (the instance's
    # configuration included), in no file the deployment wrote
    query = "{ instance { info } runsOrError { ... on Runs { results { tags { key value } } } } }"
    answers = requests.post(f"http://127.0.0.1:{net.ports['webserver']}/graphql", json={"query": query},
                            timeout=60).text
    assert "postgres" in answers.lower()  # the instance's storage is described, by name
    assert any("dagster-daemon run" in a for a in arguments) and any("mlflow" in a for a in arguments)
    assert not [a for a in arguments if PASSWORD in a]
    assert PASSWORD not in answers
    written = [p for p in d["root"].rglob("*") if p.is_file() and "python" not in p.relative_to(d["root"]).parts]
    assert not [p for p in written if PASSWORD.encode() in p.read_bytes()]


def _quiet(d: dict, seconds: float = 12) -> None:
    """Wait until every run has finished and none started for ``seconds`` (several sensor ticks)."""
    instance = d["instance"]

    def settled():
        records = instance.get_run_records()
        if not all(rec.dagster_run.is_finished for rec in records):
            return False
        return time.time() - max(rec.end_time or 0 for rec in records) >= seconds

    _wait(d, settled, 600, "every run finished and no new one")


def _ticks(instance, sensor: str) -> list:
    """A sensor's ticks, newest first."""
    [state] = [s for s in instance.all_instigator_state() if s.instigator_name == sensor]
    return instance.get_ticks(state.instigator_origin_id, state.selector_id)


def _served_by(scores: Path) -> set | None:
    """The model versions that forecast ``scores`` ("baseline" for the historical average)."""
    if not scores.exists():
        return None
    return set(pd.read_parquet(scores, columns=["model_version"])["model_version"].astype(str))


def _ok(probe) -> bool:
    try:
        return probe()
    except OSError:
        return False

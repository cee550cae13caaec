"""MLflow tracking and registry for region models: runs, releases, the champion alias, rollback.

One registered model per region, ``demand-forecast-<region>``; every training logs one
MLflow run and registers one new version. The alias ``champion`` is what serves, and it
moves only through ``promote`` (a passed gate, or a person) or ``rollback``; every move is
recorded as tags on the versions involved and in a short log on the registered model.

The default store is SQLite with a local artifact folder (MLflow >= 3.13 refuses the old
file store). SQLite allows one writer at a time, and MLflow's first use of a database
runs its schema migrations: two region runs starting together would race on both. Every
call into a SQLite store therefore holds an exclusive file lock beside the database, so
parallel runs on one machine queue for a few hundred milliseconds instead of failing.
A server, Azure ML or Databricks store (``MLFLOW_TRACKING_URI``) handles its own writers.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PREFIX = "demand-forecast-"
CHAMPION = "champion"
GATE_VERDICT = "gate_verdict"
LOG_TAG = "champion_log"
RETIRED_TAG = "retired"  # on the registered model: JSON {at, by, reason, champion} while the region is retired
TAG_LIMIT = 4900  # characters: under the 5000 that MLflow stores take for a tag value
PYFUNC_CODE = Path(__file__).resolve().parent.parent / "ml" / "pyfunc_model.py"
# explicit requirements: inferred ones pin torch without its +cpu label (a later install would
# fetch a CUDA build) and add whatever test packages happen to be installed
PIP_REQUIREMENTS = [
    "--extra-index-url https://download.pytorch.org/whl/cpu",
    "torch==2.13.0+cpu",
    "numpy>=1.26",
    "pandas==2.3.3",
    "pyarrow>=15",
    "scikit-learn==1.9.1",
    "mlflow==3.17.2",
]


def registered_name(region: str) -> str:
    return f"{PREFIX}{region}"


class RegistryError(RuntimeError):
    """A registry operation was refused; the message says why and what to do."""


def store_problem(uri: str, timeout: int = 5) -> str | None:
    """Why the MLflow store at ``uri`` cannot be reached, in one line, or None when it answers.
    One try with a short timeout: MLflow itself retries a database for two minutes and then
    prints a traceback. The line never holds the URI (the caller prints it masked)."""
    from urllib.parse import urlsplit

    scheme = urlsplit(uri).scheme
    try:
        if scheme in ("http", "https"):
            import urllib.error
            import urllib.request

            try:
                with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):  # noqa: S310
                    return None
            except urllib.error.HTTPError:  # it answered (401 behind an auth proxy, say): it is there
                return None
        if scheme.startswith(("postgres", "mysql", "mssql")):
            import sqlalchemy

            args = {"connect_timeout": timeout} if scheme.startswith("postgres") else {}
            engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
            try:
                with engine.connect():
                    return None
            finally:
                engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the answer
        reason = getattr(exc, "orig", None) or getattr(exc, "reason", None) or exc
        line = (str(reason).strip().splitlines() or [""])[0]
        secret = urlsplit(uri).password
        return f"{type(reason).__name__}: {line.replace(secret, '***') if secret else line}"
    return None  # a local store (sqlite, files) is created on first use


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Release:
    """A registered model version, as the CLI and the gates read it."""

    region: str
    version: str
    run_id: str
    tags: dict

    def __post_init__(self):
        self.version = str(self.version)  # MLflow returns numbers from some stores, strings from others

    @property
    def as_of_week(self) -> str:
        return self.tags.get("as_of_week", "")

    @property
    def verdict(self) -> str:
        return self.tags.get(GATE_VERDICT, "unknown")

    @property
    def uri(self) -> str:
        return f"models:/{registered_name(self.region)}/{self.version}"


class Registry:
    def __init__(self, tracking_uri: str, artifact_root: str | None = None, experiment: str = "demand-forecast",
                 lock_dir: str | None = None):
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.experiment = experiment
        # where a server or workspace store's champion locks go: a folder every process deciding
        # for a region can reach (MLOPS_LOCK_DIR); the temporary folder only as a last resort
        self.lock_dir = lock_dir or tempfile.gettempdir()
        self._depth = 0
        self._thread_lock = threading.RLock()
        self._lock_file = None
        self._held: set[tuple[int, str]] = set()  # (thread, region) holding a champion_decision
        self._models: dict = {}

    # -- locking -------------------------------------------------------------
    def _sqlite_path(self) -> Path | None:
        if self.tracking_uri.startswith("sqlite:///"):
            return Path(self.tracking_uri[len("sqlite:///"):])
        return None

    @contextmanager
    def _session(self) -> Iterator["MlflowClient"]:  # noqa: F821
        """Point MLflow at this store and hold the store's lock (re-entrant)."""
        import mlflow
        from mlflow import MlflowClient

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in run logs
        with self._thread_lock:
            db = self._sqlite_path()
            if self._depth == 0 and db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
                self._lock_file = open(db.with_name(db.name + ".lock"), "w")
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            self._depth += 1
            # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI (and the registry's): left
            # behind, it would redirect every later Settings.from_env() in this process to this store
            saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
            try:
                mlflow.set_tracking_uri(self.tracking_uri)
                mlflow.set_registry_uri(self.tracking_uri)
                yield MlflowClient(self.tracking_uri, self.tracking_uri)
            finally:
                if self._depth == 1:
                    for key, value in saved.items():
                        if value is None:
                            os.environ.pop(key, None)
                        else:
                            os.environ[key] = value
                self._depth -= 1
                if self._depth == 0 and self._lock_file is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                    self._lock_file.close()
                    self._lock_file = None

    def experiment_id(self, client) -> str:
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = None
        if self.artifact_root and "://" in self.artifact_root:  # an object store (wasbs://, s3://, ...)
            location = self.artifact_root
        elif self.artifact_root:
            Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
            location = Path(self.artifact_root).resolve().as_uri()
        return client.create_experiment(self.experiment, artifact_location=location)

    # -- training --------------------------------------------------------------
    def log_training(self, region: str, model_folder: Path, example: pd.DataFrame, params: dict,
                     metrics: dict, tags: dict, dataset: dict, artifacts: dict[str, dict]) -> Release:
        """One MLflow run for one training, its pyfunc model, and a new registered version.

        ``dataset``: ``frame`` (the training rows), ``digest``, ``source`` (where its immutable
        snapshot lives) and ``name``; ``artifacts``: JSON documents logged beside the model.
        """
        import mlflow
        from mlflow.models import infer_signature

        from mlops_assets.ml.ensemble import ForecastModel

        predicted = ForecastModel.load(model_folder).predict(example)
        with warnings.catch_warnings(), self._session() as client:
            # MLflow hints that integer columns cannot hold missing values (ours, week of year, never
            # do) and that a local path could be two kinds of dataset source (it is a local file)
            warnings.filterwarnings("ignore", message=r".*Inferred schema contains integer column")
            warnings.filterwarnings("ignore", message=r".*dataset source can be interpreted in multiple ways")
            signature = infer_signature(example, predicted)
            run = client.create_run(self.experiment_id(client),
                                    run_name=f"{region} {tags.get('as_of_week', '')}".strip(),
                                    tags={k: str(v) for k, v in tags.items()})
            run_id = run.info.run_id
            try:
                with mlflow.start_run(run_id=run_id):
                    mlflow.log_params({k: _param(v) for k, v in params.items()})
                    mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                                        if v is not None and np.isfinite(v)})
                    mlflow.log_input(_training_rows(dataset), context="training")
                    for name, document in artifacts.items():
                        mlflow.log_dict(document, name)
                    info = mlflow.pyfunc.log_model(
                        name="model", python_model=str(PYFUNC_CODE), artifacts={"model": str(model_folder)},
                        pip_requirements=PIP_REQUIREMENTS, signature=signature, input_example=example)
                _ensure_registered(client, region)
                # model_id: a tracking server takes a logged model's models:/ source only with
                # the id of the model it names (a database store does not check)
                version = client.create_model_version(
                    registered_name(region), source=info.model_uri, run_id=run_id, model_id=info.model_id,
                    tags={"region": region, **{k: str(v) for k, v in tags.items()}, GATE_VERDICT: "pending"})
                client.set_terminated(run_id, "FINISHED")
            except BaseException:
                client.set_terminated(run_id, "FAILED")
                raise
        return Release(region, version.version, run_id, dict(version.tags))

    # -- reading ---------------------------------------------------------------
    def release(self, region: str, version: str | None = None) -> Release | None:
        """A version, or the champion when ``version`` is None (None when there is none)."""
        from mlflow.exceptions import MlflowException

        with self._session() as client:
            try:
                mv = (client.get_model_version(registered_name(region), str(version)) if version is not None
                      else client.get_model_version_by_alias(registered_name(region), CHAMPION))
            except MlflowException:
                if version is not None:
                    raise RegistryError(f"{registered_name(region)} has no version {version}") from None
                return None
            return Release(region, mv.version, mv.run_id, dict(mv.tags))

    def champion(self, region: str) -> Release | None:
        return self.release(region)

    def versions(self, region: str) -> list[Release]:
        with self._session() as client:
            found = client.search_model_versions(f"name = '{registered_name(region)}'")
            return sorted((Release(region, mv.version, mv.run_id, dict(mv.tags)) for mv in found),
                          key=lambda r: int(r.version))

    def regions(self) -> list[str]:
        with self._session() as client:
            return sorted(m.name[len(PREFIX):] for m in client.search_registered_models(f"name LIKE '{PREFIX}%'"))

    def load(self, release: Release):
        """The pyfunc model of a release, loaded back from the registry."""
        import mlflow

        with self._session():
            return mlflow.pyfunc.load_model(release.uri)

    def load_forecast_model(self, release: Release):
        """The ``ForecastModel`` inside a release, with its registry version as its version.
        Kept per version for the life of the process: a registered version never changes."""
        key = (release.region, release.version)
        if key not in self._models:
            model = self.load(release).unwrap_python_model().model
            model.version = f"{registered_name(release.region)}/{release.version}"
            self._models[key] = model
        return self._models[key]

    def holdout_mapes(self, release: Release) -> dict[str, float]:
        """The version's holdout ensemble MAPE for the region and each trained segment, from its run."""
        logged = self.run(release.run_id).data.metrics
        out = {"region": logged.get("region.ensemble.mape")}
        for key, value in logged.items():
            scope, _, rest = key.partition(".")
            if rest == "ensemble.mape" and scope != "region":
                out[scope.replace("_", "/", 1)] = value
        return {k: v for k, v in out.items() if v is not None}

    def run(self, run_id: str):
        with self._session() as client:
            return client.get_run(run_id)

    def download(self, run_id: str, path: str) -> dict:
        import mlflow

        with self._session():
            return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")

    def champion_log(self, region: str) -> list[dict]:
        with self._session() as client:
            tags = client.get_registered_model(registered_name(region)).tags
            return json.loads(tags.get(LOG_TAG, "[]"))

    # -- moving the champion ---------------------------------------------------------
    def record_verdict(self, release: Release, verdict: dict) -> None:
        """The gate verdict on the version: passed/failed per gate, and the details."""
        with self._session() as client:
            name = registered_name(release.region)
            for gate, result in verdict["gates"].items():
                client.set_model_version_tag(name, release.version, f"gate.{gate}",
                                             "passed" if result["passed"] else "failed")
            overall = "passed" if verdict["passed"] else "failed"
            client.set_model_version_tag(name, release.version, GATE_VERDICT, overall)
            client.set_model_version_tag(name, release.version, "gate_details",
                                         json.dumps(verdict, default=str)[:TAG_LIMIT])
            client.set_model_version_tag(name, release.version, "gate_mode", verdict.get("mode", ""))
        release.tags[GATE_VERDICT] = overall

    @contextmanager
    def champion_decision(self, region: str) -> Iterator[None]:
        """Hold the region's champion still: read the champion, compare a candidate with it and
        promote it as one step. Two trainings of one region at once would otherwise both compare
        with the same champion and both promote, the later silently replacing the other.
        A lock per region: a PostgreSQL advisory lock when the store is PostgreSQL (held across
        machines), else a file lock beside the SQLite store, or for a server store in
        ``MLOPS_LOCK_DIR`` / ``$MLOPS_HOME/locks`` (shared by every machine that mounts it).
        Re-entrant in a thread (``promote`` takes it too); another thread of this process waits
        like another process."""
        me = (threading.get_ident(), region)
        with self._thread_lock:
            held = me in self._held
        if held:
            yield
            return
        with self._region_lock(region):
            with self._thread_lock:
                self._held.add(me)
            try:
                yield
            finally:
                with self._thread_lock:
                    self._held.discard(me)

    @contextmanager
    def _region_lock(self, region: str) -> Iterator[None]:
        if self.tracking_uri.startswith(("postgresql", "postgres")):
            import sqlalchemy

            key = int.from_bytes(hashlib.sha256(f"champion:{region}".encode()).digest()[:8], "big", signed=True)
            engine = sqlalchemy.create_engine(self.tracking_uri, poolclass=sqlalchemy.pool.NullPool)
            try:
                with engine.connect() as conn:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                    try:
                        yield
                    finally:
                        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            finally:
                engine.dispose()
            return
        db = self._sqlite_path()
        folder = db.parent if db is not None else Path(self.lock_dir)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"champion-{region}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def promote(self, region: str, version: str, by: str, reason: str, force: bool = False) -> Release:
        """Make ``version`` the champion. A version that did not pass its gates is refused
        unless ``force`` (and then a reason is required)."""
        with self.champion_decision(region), self._session() as client:
            target = self.release(region, version)
            if target.verdict != "passed" and not force:
                raise RegistryError(
                    f"{registered_name(region)} version {version}: gate verdict is {target.verdict!r}; "
                    "it cannot be promoted (use --force with --reason to override)")
            if force and not reason.strip():
                raise RegistryError("a forced promotion needs a reason")
            current = self.champion(region)
            if current is not None and current.version == str(version):
                raise RegistryError(f"{registered_name(region)} version {version} is already the champion")
            name = registered_name(region)
            client.set_registered_model_alias(name, CHAMPION, str(version))
            stamp = now()
            tags = {"promoted_at": stamp, "promoted_by": by, "promotion_reason": reason,
                    "previous_champion": current.version if current else "", "forced": str(bool(force)).lower()}
            for key, value in tags.items():
                client.set_model_version_tag(name, str(version), key, value)
            self._log(client, region, {"at": stamp, "action": "promote", "version": str(version),
                                       "from": current.version if current else None, "by": by, "reason": reason,
                                       "forced": force})
        return self.release(region, version)

    def rollback(self, region: str, by: str, reason: str) -> Release:
        """Give the champion alias back to the version it replaced, in one step."""
        with self.champion_decision(region), self._session() as client:
            current = self.champion(region)
            if current is None:
                raise RegistryError(f"{registered_name(region)} has no champion to roll back")
            previous = current.tags.get("previous_champion", "")
            if not previous:
                raise RegistryError(f"{registered_name(region)} version {current.version} replaced no earlier "
                                    "champion; there is nothing to roll back to")
            name = registered_name(region)
            client.set_registered_model_alias(name, CHAMPION, previous)
            stamp = now()
            client.set_model_version_tag(name, current.version, "rolled_back_at", stamp)
            client.set_model_version_tag(name, current.version, "rollback_reason", reason)
            client.set_model_version_tag(name, previous, "restored_at", stamp)
            client.set_model_version_tag(name, previous, "restored_from", current.version)
            self._log(client, region, {"at": stamp, "action": "rollback", "version": previous,
                                       "from": current.version, "by": by, "reason": reason})
        return self.release(region, previous)

    def retired(self, region: str) -> dict | None:
        """When, by whom and why ``region`` was retired, and the champion it had; None if it is not."""
        from mlflow.exceptions import MlflowException

        with self._session() as client:
            try:
                tags = client.get_registered_model(registered_name(region)).tags
            except MlflowException:
                return None
            return json.loads(tags[RETIRED_TAG]) if RETIRED_TAG in tags else None

    def retire(self, region: str, by: str, reason: str) -> dict:
        """Take the champion alias away (no version serves the region any more); every version is
        kept, tagged with the retirement, and the model says when, by whom and why."""
        with self.champion_decision(region), self._session() as client:
            name = registered_name(region)
            try:
                client.get_registered_model(name)
            except Exception:  # noqa: BLE001 - MlflowException: nothing was ever registered
                raise RegistryError(f"{name} is not in the registry") from None
            champion = self.champion(region)
            entry = {"at": now(), "by": by, "reason": reason, "champion": champion.version if champion else None}
            if champion is not None:
                client.delete_registered_model_alias(name, CHAMPION)
            for version in self.versions(region):
                client.set_model_version_tag(name, version.version, "retired_at", entry["at"])
                client.set_model_version_tag(name, version.version, "retired_reason", reason)
            client.set_registered_model_tag(name, RETIRED_TAG, json.dumps(entry))
            self._log(client, region, {"at": entry["at"], "action": "retire", "version": entry["champion"] or "",
                                       "by": by, "reason": reason})
        return entry

    def onboard(self, region: str, by: str, reason: str) -> None:
        """End a retirement: the region trains and serves again once its data runs (its old
        versions stay tagged with the retirement; no alias comes back by itself)."""
        with self.champion_decision(region), self._session() as client:
            name = registered_name(region)
            client.delete_registered_model_tag(name, RETIRED_TAG)
            self._log(client, region, {"at": now(), "action": "onboard", "version": "", "by": by, "reason": reason})

    def _log(self, client, region: str, entry: dict, keep: int = 20) -> None:
        name = registered_name(region)
        log = json.loads(client.get_registered_model(name).tags.get(LOG_TAG, "[]"))
        log = (log + [entry])[-keep:]
        text = json.dumps(log)
        while len(text) > TAG_LIMIT and len(log) > 1:
            log = log[1:]
            text = json.dumps(log)
        client.set_registered_model_tag(name, LOG_TAG, text)


def _ensure_registered(client, region: str) -> None:
    from mlflow.exceptions import MlflowException

    name = registered_name(region)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"Weekly demand forecasts for region {region}: "
                                                          "four segment ensembles (LASSO + embedding network).")


def _param(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


SCHEMA_ROWS = 1000


def _training_rows(dataset: dict):
    """The training rows as an MLflow dataset (name, digest, source, schema, row count).

    MLflow infers a pandas dataset's schema value by value, which takes minutes for a seed-scale
    region's 10^6 rows; the columns here are typed (each one dtype), so the first rows give it."""
    import functools

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.models import infer_signature

    class TrainingRows(PandasDataset):
        @functools.cached_property
        def schema(self):
            return infer_signature(self.df.head(SCHEMA_ROWS)).inputs

    return TrainingRows(df=dataset["frame"], source=resolve_dataset_source(dataset["source"]), targets="target",
                        name=dataset["name"], digest=dataset["digest"])

"""The mlops-assets command and the Dagster CLI on this project, as a person runs them."""

import contextlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.cli import main
from mlops_assets.config import SAMPLE_LANDING_DIR
from mlops_assets_tests.conftest import edit_csv, isolated_home


def test_validate_accepts_the_bundled_sample(capsys):
    assert main(["validate", str(SAMPLE_LANDING_DIR)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "valid" in err


def test_validate_rejects_a_broken_folder_with_one_line_per_problem(small_landing, capsys):
    ship = sorted((small_landing / "shipments").glob("*.csv"))[0]
    row = ship.read_text().splitlines()[1].split(",")
    edit_csv(ship, 2, ",".join([*row[:3], "-1"]))
    edit_csv(ship, 3, ",".join([row[0], "ghost_s01", row[2], "2"]))
    assert main(["validate", str(small_landing)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"shipments/{ship.name}:2: units_shipped: must be >= 0 (-1)",
                                f"shipments/{ship.name}:3: store_id: must exist in stores (ghost_s01)"]
    assert "2 problems, 2 rows rejected" in err


def test_sample_command_writes_a_valid_landing_folder(tmp_path, capsys):
    out = tmp_path / "landing"
    assert main(["sample", str(out), "--regions", "2", "--stores-per-region", "2", "--products", "4",
                 "--weeks", "12", "--drift", "south:2026-10-05"]) == 0
    assert (out / "stores.csv").read_text().count("\n") == 5  # header + 2 regions x 2 stores
    assert main(["validate", str(out)]) == 0


@pytest.fixture(scope="module")
def ran(small_landing_template, tmp_path_factory):
    """One `mlops-assets run --regions south` in a home of its own: its output and settings."""
    with isolated_home(small_landing_template, tmp_path_factory, "cli") as landing:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["run", "--landing", str(landing), "--regions", "south"]) == 0
        yield out.getvalue(), landing


def test_run_prints_a_summary_per_region_and_table(ran):
    out, _ = ran
    assert "region" in out and "south" in out and "north" not in out.split("table")[0]
    assert "shipments" in out and "0 rows quarantined" in out


def test_run_names_an_unknown_region(env, capsys):
    assert main(["run", "--landing", str(env), "--regions", "atlantis"]) == 1
    assert "unknown region(s) atlantis; stores.csv has north, south" in capsys.readouterr().err


def test_a_landing_folder_that_does_not_exist_is_one_line_and_is_not_created(env, tmp_path, capsys):
    missing = tmp_path / "no-such-landing"
    assert main(["run", "--landing", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"mlops-assets run: landing folder {missing} does not exist "
                           "(set MLOPS_LANDING_DIR or --landing)")
    assert not missing.exists()


def _dagster(args, env_vars, cwd):
    exe = Path(sys.executable).with_name("dagster")
    return subprocess.run([str(exe), *args], env=env_vars, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_dagster_cli_validates_definitions_and_materializes_one_partition(ran, tmp_path):
    env_vars = {**os.environ}
    validated = _dagster(["definitions", "validate", "-m", "mlops_assets.definitions"], env_vars, tmp_path)
    assert validated.returncode == 0, validated.stderr[-2000:]
    # a fresh partition of one region x week, launched from the Dagster CLI
    storage = Path(env_vars["MLOPS_HOME"]) / "storage" / "weekly_events" / "south" / "2026-11-09.parquet"
    storage.unlink()
    done = _dagster(["asset", "materialize", "-m", "mlops_assets.definitions", "--select", "weekly_events",
                     "--partition", "south|2026-11-09"], env_vars, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert storage.exists()


def test_no_secret_of_a_store_uri_is_printed(env):
    """A tracking URI may carry a database password, a blob URL a SAS signature or account key:
    what the commands print keeps the rest, masks those."""
    import dataclasses

    from mlops_assets.config import Settings, redacted
    from mlops_assets.releases import format_status

    uri = "postgresql+psycopg2://mlflow:s3cret-pw@db.internal:5432/mlflow"
    assert redacted(uri) == "postgresql+psycopg2://mlflow:***@db.internal:5432/mlflow"
    sas = "https://acct.blob.core.windows.net/c/x?sv=2024-01-01&sig=abc%2Bdef&se=2027-01-01"
    assert "abc" not in redacted(sas) and "sv=2024-01-01" in redacted(sas) and "sig=***" in redacted(sas)
    assert redacted("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    settings = dataclasses.replace(Settings.from_env(), mlflow_tracking_uri=uri)
    row = {"region": "north", "champion": "1", "age_days": 7, "stale": False}
    for text in (format_status([], settings), format_status([row], settings)):
        assert "s3cret-pw" not in text and "mlflow:***@db.internal" in text


def test_a_store_that_does_not_answer_is_one_line_without_its_password(env, monkeypatch, capsys):
    """status, lineage, promote and rollback try the store once, briefly: no two minutes of
    MLflow's retries, no traceback, and the password masked in the one line they print."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"postgresql+psycopg2://mlflow:s3cret-pw@127.0.0.1:{port}/mlflow")
    for argv in (["status"], ["rollback", "north", "--reason", "test"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        out, err = capsys.readouterr()
        assert exit_.value.code == 1 and out == ""
        [line] = err.splitlines()
        assert line.startswith(f"mlops-assets {argv[0]}: cannot reach the MLflow store "
                               f"postgresql+psycopg2://mlflow:***@127.0.0.1:{port}/mlflow (OperationalError: ")
        assert "s3cret-pw" not in err


def test_the_mlflow_ui_gets_the_store_uri_from_its_environment_not_its_command_line(env, monkeypatch, capsys):
    """A process's arguments are visible to every user of the machine (`ps`); its environment is not."""
    uri = "postgresql+psycopg2://mlflow:s3cret-pw@db.internal:5432/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = []
    monkeypatch.setattr(os, "execvp", lambda file, argv: started.append((argv, dict(os.environ))))
    main(["mlflow-ui"])
    [(argv, environ)] = started
    assert argv[1] == "server" and not any("s3cret-pw" in a for a in argv)
    assert environ["MLFLOW_BACKEND_STORE_URI"] == uri
    assert "s3cret-pw" not in capsys.readouterr().err


def test_a_store_behind_an_authenticating_proxy_counts_as_reachable():
    """Any HTTP answer (401 here) means the server is there: only a connection that fails is 'cannot reach'."""
    import http.server
    import threading

    from mlops_assets.registry.tracking import store_problem

    class Refuses(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert store_problem(f"http://127.0.0.1:{server.server_port}") is None
    finally:
        server.shutdown()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert store_problem(f"http://127.0.0.1:{port}").startswith(("ConnectionRefusedError", "URLError"))


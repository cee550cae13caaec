"""Real servers the tests start on 127.0.0.1: PostgreSQL (Debian's package) and Azurite (npm),
each installed by `make test` when missing."""

from __future__ import annotations

import glob
import http.server
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlops_assets_tests.browsing import free_port, stop_group


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the package's `postgres` user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def postgres_server(databases: tuple[str, ...] = ("dagster", "mlflow"), password: str | None = None,
                    owners: dict[str, tuple[str, str]] | None = None):
    """A fresh PostgreSQL cluster in a folder of its own under the system's temporary folder
    (its server user must reach it), listening on 127.0.0.1 only; yields ``(host, port, user)``
    with ``databases`` created. Stopped (fast) and removed afterwards.

    With ``password``, a connection over TCP must give its role's password (scram-sha-256, as a
    production server asks), so a deployment that loses a password on its way fails here: the
    superuser gets ``password``, and ``owners`` gives a database a login role of its own
    (``{database: (role, password)}``). Without it, the server trusts every local connection."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed: `make test` installs it (apt-get install postgresql)")
    owners = owners or {}
    folder = Path(tempfile.mkdtemp(prefix="mlops-postgres-"))
    data, sockets, pwfile, log = folder / "pgdata", folder / "pgsock", folder / "pwfile", folder / "postgres.log"
    port = free_port()
    started = False
    try:
        sockets.mkdir()
        auth = ["--auth=trust"]
        if password is not None:
            pwfile.write_text(password + "\n")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (folder, sockets, *([pwfile] if password is not None else [])):
                os.chown(path, user.pw_uid, user.pw_gid)
        # --no-locale: the server's messages in English, whatever this machine's language
        subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", *auth,
                                        "-E", "UTF8", "--no-locale", "--no-sync"]), check=True, capture_output=True)
        pwfile.unlink(missing_ok=True)
        subprocess.run(_as_server_user([
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"]) + ["start"],
            check=True, capture_output=True)
        started = True
        client = {**os.environ, **({"PGPASSWORD": password} if password is not None else {})}
        connect = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        for role, secret in owners.values():  # the SQL on stdin: no password in a process argument
            quoted = secret.replace("'", "''")
            subprocess.run([str(bindir / "psql"), *connect, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q"],
                           input=f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{quoted}';", text=True, env=client,
                           check=True, capture_output=True)
        for name in databases:
            owner = ["-O", owners[name][0]] if name in owners else []
            subprocess.run([str(bindir / "createdb"), *connect, *owner, name], env=client, check=True,
                           capture_output=True)
        yield "127.0.0.1", port, "postgres"
    finally:
        if started:
            subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                           capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def wait_alongside(probe, seconds: float, what: str, proc: subprocess.Popen, log: Path, describe=lambda: "",
                   every: float = 1.0):
    """Poll ``probe`` until it returns something true (returned) while ``proc`` (a daemon) lives;
    fail with ``describe()`` and the tail of its log otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if proc.poll() is not None:
            break
        time.sleep(every)
    pytest.fail(f"{what}: not within {seconds} s (exit {proc.poll()}):\n{describe()}\n{log.read_text()[-4000:]}")


def process_arguments() -> list[str]:
    """The command line of every process of this machine, as `ps` shows them to any user."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # a process that ended meanwhile
            continue
    return out


# Azurite's well-known development account: public, documented, good for the emulator only
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_bin() -> Path | None:
    from mlops_assets.config import REPO_ROOT

    local = REPO_ROOT / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    found = local if local.exists() else shutil.which("azurite-blob")
    return Path(found) if found else None


@contextmanager
def azurite_server(folder: Path, containers: tuple[str, ...] = ("mlflow",)):
    """Azurite's Blob service (the Azure Storage emulator, from npm) on 127.0.0.1; yields the
    connection string, with ``containers`` created. 3.35.0 is the newest that runs on node 20, and
    it must skip the API version check (azure-storage-blob sends a newer version)."""
    binary = azurite_bin()
    if binary is None:
        pytest.fail("Azurite is not installed: `make test` installs it (npm install azurite@3.35.0)")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "azurite.log"
    proc = subprocess.Popen([str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
                             str(folder), "--skipApiVersionCheck", "--loose"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    connection = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                  f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
    try:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(connection)
        deadline = time.monotonic() + 60
        while True:
            try:
                for name in containers:
                    service.create_container(name)
                break
            except Exception:  # not listening yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"azurite did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield connection
    finally:
        stop_group(proc, seconds=20)


@dataclass
class Webhook:
    """What a webhook receiver saw: ``url``, the bodies it took, and those it refused."""

    url: str
    received: list = field(default_factory=list)
    refused: list = field(default_factory=list)


@contextmanager
def webhook_receiver(refuse_first: int = 0):
    """An alert webhook on 127.0.0.1 that answers its first ``refuse_first`` POSTs with HTTP 503
    (down), then takes every POST (204); yields a ``Webhook`` recording the JSON bodies."""
    hook, lock = Webhook(url=""), threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:  # two POSTs at once: exactly ``refuse_first`` refused
                down = len(hook.refused) < refuse_first
                (hook.refused if down else hook.received).append(body)
            self.send_response(503 if down else 204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook.url = f"http://127.0.0.1:{server.server_port}/alerts"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()

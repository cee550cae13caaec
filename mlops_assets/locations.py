"""Where data lives: a local folder, or a folder on Azure Blob Storage / ADLS Gen2.

``MLOPS_LANDING_DIR`` and ``MLOPS_STORAGE_ROOT`` take either a path or a URL:

- ``az://<container>/<prefix>``: Azure Blob Storage;
- ``abfss://<container>@<account>.dfs.core.windows.net/<prefix>``: ADLS Gen2 (the account's
  name comes from the URL).

A URL is opened through fsspec's Azure backend (adlfs) as a ``UPath``: the same ``/``, ``open``,
``exists``, ``glob`` and ``stat`` as a ``pathlib.Path``, so one code path reads and writes both.
Credentials come only from the environment, never from Dagster config, the UI or the logs,
under the names the Azure SDKs use: ``AZURE_STORAGE_CONNECTION_STRING``; or
``AZURE_STORAGE_ACCOUNT_NAME`` with ``AZURE_STORAGE_ACCOUNT_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``;
or a service principal (``AZURE_STORAGE_CLIENT_ID``, ``_CLIENT_SECRET``, ``_TENANT_ID``);
otherwise ``DefaultAzureCredential`` (a managed identity, ``az login``). MLflow's Blob artifact
store (``wasbs://``) reads the same connection string, so one secret serves both; its ADLS store
(``abfss://``) takes only a SAS token or ``DefaultAzureCredential``.
"""


import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

AZURE_SCHEMES = ("az", "abfs", "abfss")


def location(text: str | os.PathLike, variable: str = "a data location") -> Path:
    """A local folder as an absolute ``Path``, or an Azure URL as a ``UPath`` (which reads and
    writes like one), unchanged if it is one already (its text may lack the account: see ``url``).
    Other URL schemes are refused: nothing here is tested against them."""
    if hasattr(text, "protocol") and not is_local(text):
        return text
    text = str(text)
    if "://" not in text or text.startswith("file://"):
        return Path(text.removeprefix("file://")).expanduser().resolve()
    scheme = text.split("://", 1)[0].lower()
    if scheme not in AZURE_SCHEMES:
        shown = text.split("?", 1)[0]  # never echo a query string: it may hold a SAS token
        raise ValueError(f"{variable}={shown}: a local path or an Azure URL "
                         f"({', '.join(s + '://' for s in AZURE_SCHEMES)}) is expected, not {scheme}://")
    from upath import UPath

    # no listings cache: a sensor polls the same folder for hours and must see what lands
    return UPath(text, use_listings_cache=False)


def is_local(path) -> bool:
    """A ``pathlib.Path`` on this machine (``UPath`` of a local folder is one too)."""
    return isinstance(path, Path)


def source(path):
    """What pandas and pyarrow read: a local path as it is (memory-mapped, fastest), or on Azure
    the blob's bytes, fetched in one request (a blob file object asks for its size first, then
    reads in ranges). Use as ``with source(path) as f: pd.read_parquet(f)``."""
    if is_local(path):
        return _as_is(path)
    return io.BytesIO(path.fs.cat_file(path.path))


@contextmanager
def _as_is(path) -> Iterator:
    yield path


def files_in(folder) -> list[tuple[Path, int, int]]:
    """(path, size, modification time in ns) of the files directly in ``folder``, hidden ones left
    out, sorted by name; none if it does not exist. On Azure one listing answers all three."""
    if is_local(folder):
        if not folder.is_dir():
            return []
        return [(p, (st := p.stat()).st_size, st.st_mtime_ns) for p in sorted(folder.iterdir())
                if not p.name.startswith(".") and p.is_file()]
    try:
        entries = folder.fs.ls(folder.path, detail=True)
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry["type"] == "file" and not name.startswith("."):
            modified = entry.get("last_modified")
            out.append((folder / name, int(entry["size"]), int(modified.timestamp() * 1e9) if modified else 0))
    return sorted(out, key=lambda f: f[0].name)


def stamp(path) -> tuple[int, int]:
    """(size, modification time in ns) of one file."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def write_atomically(target, write: Callable[[Path | IO[bytes]], None]) -> None:
    """Write ``target`` so that no reader ever sees it half-written, and a write that fails leaves
    the previous content: locally ``write`` gets a hidden ``.tmp`` path (pyarrow writes a path
    natively, fastest), renamed over the target; on Azure it gets an in-memory file, sent as one
    upload (a blob file object would commit what it holds even when the write raised)."""
    if not is_local(target):
        buffer = io.BytesIO()
        write(buffer)
        target.fs.pipe_file(target.path, buffer.getvalue())
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def remove_tree(path) -> None:
    if is_local(path):
        shutil.rmtree(path)
    else:
        path.fs.rm(path.path, recursive=True)


def upload_folder(local: Path, target) -> None:
    """Copy a local folder's files to ``target`` (a folder; local or on Azure)."""
    if is_local(target):
        shutil.copytree(local, target, dirs_exist_ok=True)
        return
    files = sorted((p for p in Path(local).rglob("*") if p.is_file()), key=lambda p: (p.name == "model.json", p))
    for file in files:  # each one upload, whole or not at all; a model's manifest last
        target.fs.put_file(str(file), (target / file.relative_to(local).as_posix()).path)


@contextmanager
def local_copy(folder) -> Iterator[Path]:
    """A folder as a local path: itself when local, else a temporary download of its files."""
    if is_local(folder):
        yield Path(folder)
        return
    with tempfile.TemporaryDirectory(prefix="mlops-") as tmp:
        for file in folder.rglob("*"):
            if file.is_file():
                local = Path(tmp) / file.relative_to(folder).as_posix()
                local.parent.mkdir(parents=True, exist_ok=True)
                with file.open("rb") as src, open(local, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        yield Path(tmp)


def url(path) -> str:
    """The text ``location`` turns back into ``path``, for config and metadata: UPath's own text of
    an ADLS Gen2 URL drops the account (``abfss://container@account.dfs.core.windows.net/...``)."""
    if is_local(path):
        return str(path)
    account = path.storage_options.get("account_name")
    if account and path.protocol in ("abfs", "abfss"):
        container, _, rest = path.path.partition("/")
        return f"{path.protocol}://{container}@{account}.dfs.core.windows.net/{rest}".rstrip("/")
    return str(path).rstrip("/")


def blob_uri(path) -> str:
    """The location as MLflow's Azure stores name it (``wasbs://container@account.blob.core.windows.net/...``;
    ADLS Gen2 as ``abfss://...``): how a training snapshot is recorded as an MLflow dataset source."""
    if is_local(path) or path.protocol in ("abfs", "abfss"):
        return url(path)
    container, _, rest = path.path.partition("/")
    account = path.fs.account_name or path.fs.service_client.account_name  # or the connection string's
    return f"wasbs://{container}@{account}.blob.core.windows.net/{rest}"

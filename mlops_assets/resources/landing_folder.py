"""The landing folder as a resource: its files, their hashes, and their checked contents."""


import ctypes
import functools
import gc
import hashlib
import json
from pathlib import Path

import dagster as dg

from mlops_assets.contract import validation as contract
from mlops_assets.errors import LandingMissing
from mlops_assets.locations import location, url


def _stamp(landing: Path, table: contract.Table) -> tuple:
    """Cheap identity of a table's files (name, size, modification time) for the in-process cache."""
    return tuple((p.name, size, mtime) for p, size, mtime in contract.table_stamps(landing, table))


@functools.lru_cache(maxsize=1)  # at seed scale a checked landing folder holds gigabytes: keep one
def _checked(landing: str, stamps: tuple) -> dict[str, contract.TableResult]:
    return contract.check_landing(location(landing))


def forget_checked() -> None:
    """Drop the cached check (once the tables are stored, nothing in this process needs it), and
    hand the freed memory back to the system where the C library can (glibc's malloc_trim)."""
    _checked.cache_clear()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the memory is reused by this process instead


class LandingResource(dg.ConfigurableResource):
    """Raw source files laid out as in docs/DATA_CONTRACT.md."""

    path: str

    @property
    def root(self) -> Path:
        """A local folder, or a folder on Azure (see ``mlops_assets.locations``)."""
        return location(self.path, "MLOPS_LANDING_DIR")

    def fingerprint(self, table: str) -> dict[str, str]:
        return contract.fingerprint(self.root, contract.TABLES[table])

    def data_version(self, table: str) -> str:
        files = self.fingerprint(table)
        return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]

    def checked(self) -> dict[str, contract.TableResult]:
        """Every table checked against the contract; cached while no file changes, so the
        steps of one in-process run share one read of the landing folder."""
        if not self.root.is_dir():
            raise LandingMissing(f"landing folder {self.root} does not exist (set MLOPS_LANDING_DIR or --landing)")
        stamps = tuple(_stamp(self.root, t) for t in contract.TABLES.values())
        return _checked(url(self.root), stamps)

    def table(self, name: str) -> contract.TableResult:
        return self.checked()[name]

"""Pure modelling code: DataFrames in, DataFrames or estimators out. Knows nothing of Dagster."""

import hashlib
from pathlib import Path


def code_version() -> str:
    """Changes when the modelling code changes: region models become out of date in the UI, and the
    retrain sensor retrains a region whose champion was trained by other code."""
    here = Path(__file__).resolve().parent
    # the reference saved with each model is built by monitoring/levels.py and monitor.py: part of the
    # model. peers.py is the benchmark's, not the model's: changing it must not retrain every region
    files = [*sorted(p for p in here.glob("*.py") if p.name != "peers.py"),
             here.parent / "monitoring" / "levels.py", here.parent / "monitoring" / "monitor.py"]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def source_version(*modules: str) -> str:
    """A digest of source files (paths relative to the package): the code version of an asset
    whose values those files compute, so its partitions show as out of date when they change."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.encode() + (root / module).read_bytes())
    return digest.hexdigest()[:12]

"""Imports run one way, from the bottom up (docs/DESIGN.md's module map): a module may import its
own layer and the layers below it, never one above. Every import counts, those inside functions
too: a deferred import is still a dependency, only one that fails later."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mlops_assets"

# bottom first; a top-level module or package of mlops_assets -> its layer
LAYERS = [
    {"errors", "locations"},             # plumbing: paths local or on Azure, the project's errors
    {"contract", "ml"},                  # the data contract; pure modelling
    {"monitoring"},                      # pure statistics and decisions about the models
    {"config", "partitions"},            # settings from the environment: builds the pure layers' limits
    {"registry"},                        # MLflow: tracking, gates, lineage; knows no resource
    {"resources"},                       # Dagster resources wrapping storage, landing, MLflow, alerting
    {"dashboard"},                       # the persona dashboards
    {"assets"},                          # the asset graph
    {"automation"},                      # jobs, schedules, sensors
    {"definitions"},                     # the one Definitions
    {"releases", "offline", "sample", "code_location", "app", "cli", "__init__", "__main__"},
]
LAYER = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """``mlops_assets.ml.ensemble`` -> ``ml``; ``mlops_assets.app.pipeline`` -> ``app``."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "mlops_assets" else [f"mlops_assets.{a.name}" for a in node.names]
            found += [(node.lineno, n) for n in names if n.startswith("mlops_assets.")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("mlops_assets.")]
    return found


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        here = _unit(".".join(relative.parts))
        assert here in LAYER, f"{relative}: no layer in test_layers.LAYERS (add it where it belongs)"
        for line, module in _imports(path):
            there = _unit(module)
            if there == "assets" and here not in {"assets", "definitions"}:
                out.append(f"{relative}.py:{line} imports {module}: only definitions.py imports the assets")
            elif LAYER.get(there, -1) > LAYER[here]:
                out.append(f"{relative}.py:{line} ({here}, layer {LAYER[here]}) imports {module} "
                           f"({there}, layer {LAYER[there]})")
    return out


def test_every_import_runs_down_the_layers():
    assert _violations() == []


def test_the_check_sees_a_deferred_import_against_the_order(tmp_path):
    """A function-level import of a higher layer is caught like a top-level one."""
    source = "def f():\n    from mlops_assets.resources.storage import StorageResource\n"
    path = tmp_path / "probe.py"
    path.write_text(source)
    [(line, module)] = _imports(path)
    assert line == 2 and LAYER[_unit(module)] > LAYER["ml"]

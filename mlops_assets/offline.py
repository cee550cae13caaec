"""The graph's transformations for one region, without Dagster.

The same pure functions the assets call (landing checks, conditioning, feature
building), composed in memory: for tests that must compare the graph with a
direct computation, for benchmarks, and for rebuilding a frame outside a run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlops_assets.contract import conditioning
from mlops_assets.contract.validation import TableResult, check_landing
from mlops_assets.ml.featurize import build_features


def region_inputs(landing: Path, region: str, extra_weeks: int = 0,
                  checked: dict[str, TableResult] | None = None) -> dict:
    """The keyword arguments of ``build_features`` for every week of ``region`` in the landing
    folder (and ``extra_weeks`` after the last observed one), conditioned as the graph does: from
    the rows the contract accepts (``checked``: the folder's ``check_landing``, when the caller
    already has it)."""
    checked = checked if checked is not None else check_landing(landing)
    t = {name: result.valid for name, result in checked.items()}
    first, last = t["shipments"]["week_start"].min(), t["shipments"]["week_start"].max()
    observed = pd.date_range(first, last, freq="7D").strftime("%Y-%m-%d").tolist()
    weeks = pd.date_range(first, last + pd.Timedelta(weeks=extra_weeks), freq="7D").strftime("%Y-%m-%d").tolist()
    return {
        "demand": conditioning.net_demand(t["stores"], t["shipments"], t["returns"], region, observed),
        "weeks": weeks,
        "stores": t["stores"], "products": t["products"], "demographics": t["demographics"],
        "weather": conditioning.weekly_weather(t["stores"], t["weather"], region, weeks),
        "events": conditioning.weekly_events(t["events"], region, weeks),
    }


def region_features(landing: Path, region: str, extra_weeks: int = 0,
                    checked: dict[str, TableResult] | None = None) -> pd.DataFrame:
    """Features of every week of ``region``, as the ``features`` partitions hold them."""
    return build_features(**region_inputs(landing, region, extra_weeks, checked))

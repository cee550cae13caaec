"""Turn a features frame into model inputs; everything learned here is saved as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mlops_assets.contract.conditioning import BEFORE
from mlops_assets.ml import lasso
from mlops_assets.ml.featurize import imputed_history

DEMAND_HISTORY = ["lag_1", "lag_2", "lag_3", "lag_4", "lag_52", "mean_4", "mean_13", "mean_52", "nonzero_mean_13"]
OTHER_NUMERIC = ["zero_share_13", "weeks_listed", "temp_max_c", "temp_min_c", "precip_mm"]
CLIP = 5.0  # standard deviations
UNKNOWN = "<unknown>"  # index 0 of every vocabulary: ids first seen after training


def events_of(frame: pd.DataFrame) -> pd.Series:
    return frame["events"].fillna("").astype(str) if "events" in frame else pd.Series("", index=frame.index)


def _column(frame: pd.DataFrame, history: dict, name: str) -> pd.Series:
    return history[name] if name in history else frame[name]


def _median(values: pd.Series) -> float:
    """The median of the values present; 0 where there is none (no weather delivered at all)."""
    present = values.dropna()
    return float(present.median()) if len(present) else 0.0


def event_vocabulary(frame: pd.DataFrame) -> list[str]:
    """The events named in ``frame`` (its ``events`` cells hold ``;``-joined names)."""
    return sorted({e for s in events_of(frame).unique() for e in s.split(";") if e})


def model_events(frame: pd.DataFrame) -> list[str]:
    """The events the models read: those in ``frame`` but the weeks before a national holiday
    (``before_*``, ``contract.conditioning.weekly_events``). Those are the monitor's: its
    expectation drops a lift noise explains and widens a week whose lift was seen once. The models
    have no such guard, and each such indicator is on in one or two weeks of their training: on
    orange juice with its promotions (``bench/peers.py --landing /tmp/oj``) reading them moved the
    ensemble's bias from -27% to -34% and its MAPE at zero bias from 0.774 to 0.798."""
    return [e for e in event_vocabulary(frame) if not e.startswith(BEFORE)]


def event_indicators(frame: pd.DataFrame, events: list[str]) -> np.ndarray:
    """A rows x ``events`` matrix of 0/1: does the row have the event (its week's, its store's or its
    product's: ``featurize.row_events``). A region's rows share a few dozen distinct ``events``
    cells, so each cell is split once, not once a row."""
    codes, cells = pd.factorize(events_of(frame))
    position = {e: i for i, e in enumerate(events)}
    table = np.zeros((len(cells) + 1, len(events)))  # the last row: a missing cell (code -1)
    for i, cell in enumerate(cells):
        for e in cell.split(";"):
            if e in position:
                table[i, position[e]] = 1.0
    return table[codes]


@dataclass
class Preprocessor:
    numeric: list[str]          # numeric columns in order (before event and calendar columns)
    events: list[str]           # event vocabulary seen in training
    fill: dict[str, float]      # training medians for missing numeric values (e.g. no weather)
    mean: list[float]           # standardization of the full numeric matrix
    scale: list[float]
    vocab: dict[str, list[str]]  # categorical vocabularies: store_id, product_id, category

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> "Preprocessor":
        demo = sorted(c for c in frame.columns if c.startswith("demo_"))
        numeric = DEMAND_HISTORY + OTHER_NUMERIC + demo
        history = imputed_history(frame)
        fill = {c: _median(_column(frame, history, c)) if c in history or c in frame else 0.0 for c in numeric}
        events = model_events(frame)
        vocab = {c: [UNKNOWN, *sorted(frame[c].astype(str).unique())] for c in ("store_id", "product_id", "category")}
        pre = cls(numeric, events, fill, [], [], vocab)
        raw = pre._numeric_matrix(frame, history)
        pre.mean = raw.mean(axis=0).tolist()
        pre.scale = np.where(raw.std(axis=0) > 1e-9, raw.std(axis=0), 1.0).tolist()
        return pre

    def _numeric_matrix(self, frame: pd.DataFrame, history: dict | None = None) -> np.ndarray:
        if history is None:  # a frame that went through ``impute_history`` already holds its own
            history = imputed_history(frame) if "history_missing" not in frame else {}
        out = np.empty((len(frame), len(self.feature_names)))
        for i, c in enumerate(self.numeric):
            v = _column(frame, history, c).to_numpy(dtype=float) if c in history or c in frame else \
                np.full(len(frame), np.nan)
            v = np.where(np.isnan(v), self.fill[c], v)
            out[:, i] = np.log1p(np.clip(v, 0, None)) if c in DEMAND_HISTORY else v
        woy = frame["week_of_year"].to_numpy(dtype=float)
        n = len(self.numeric)
        out[:, n], out[:, n + 1] = np.sin(2 * np.pi * woy / 52.18), np.cos(2 * np.pi * woy / 52.18)
        out[:, n + 2:] = event_indicators(frame, self.events)
        return out

    @property
    def feature_names(self) -> list[str]:
        return [*self.numeric, "woy_sin", "woy_cos", *(f"event:{e}" for e in self.events)]

    def numeric_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Standardized, and clipped to +-``CLIP`` standard deviations: a value far outside what
        training saw (a column nearly constant in training, a new extreme) cannot push a
        forecast arbitrarily far."""
        z = self._numeric_matrix(frame)
        z -= np.array(self.mean)
        z /= np.array(self.scale)
        return np.clip(z, -CLIP, CLIP, out=z).astype(np.float32)

    def interaction_columns(self, numeric: np.ndarray) -> np.ndarray:
        """The standardized columns that act differently per category: calendar, weather, events."""
        names = self.feature_names
        keep = [i for i, n in enumerate(names)
                if n in ("woy_sin", "woy_cos", "temp_max_c", "precip_mm") or n.startswith("event:")]
        return numeric[:, keep]

    def lasso_design(self, frame: pd.DataFrame, dtype=np.float64) -> np.ndarray:
        """The LASSO's inputs (the network reads them too, as ``float32``)."""
        numeric = self.numeric_matrix(frame)
        return lasso.design(numeric, self.category_onehot(frame), self.interaction_columns(numeric), dtype)

    def categorical_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Integer ids for store, product, category and week of year (0 = unknown)."""
        out = []
        for c in ("store_id", "product_id", "category"):
            ids = pd.Index(self.vocab[c]).get_indexer(frame[c].astype(str))
            out.append(np.where(ids < 0, 0, ids).astype(np.int64))
        out.append(frame["week_of_year"].clip(1, 53).to_numpy(dtype=np.int64))
        return np.column_stack(out)

    def category_onehot(self, frame: pd.DataFrame) -> np.ndarray:
        cats = self.vocab["category"][1:]
        values = frame["category"].astype(str).to_numpy()
        return np.column_stack([(values == c).astype(np.float32) for c in cats]) if cats else \
            np.zeros((len(frame), 0), np.float32)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Preprocessor":
        return cls(**data)

"""Turn a features frame into model inputs; everything learned here is saved as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mlops_assets.ml import lasso
from mlops_assets.ml.featurize import impute_history

DEMAND_HISTORY = ["lag_1", "lag_2", "lag_3", "lag_4", "lag_52", "mean_4", "mean_13", "mean_52", "nonzero_mean_13"]
OTHER_NUMERIC = ["zero_share_13", "weeks_listed", "temp_max_c", "temp_min_c", "precip_mm"]
CLIP = 5.0  # standard deviations
UNKNOWN = "<unknown>"  # index 0 of every vocabulary: ids first seen after training


def events_of(frame: pd.DataFrame) -> pd.Series:
    return frame["events"].fillna("").astype(str) if "events" in frame else pd.Series("", index=frame.index)


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
        frame = impute_history(frame)
        fill = {c: float(np.nan_to_num(frame[c].median())) if c in frame else 0.0 for c in numeric}
        events = sorted({e for s in events_of(frame) for e in s.split(";") if e})
        vocab = {c: [UNKNOWN, *sorted(frame[c].astype(str).unique())] for c in ("store_id", "product_id", "category")}
        pre = cls(numeric, events, fill, [], [], vocab)
        raw = pre._numeric_matrix(frame)
        pre.mean = raw.mean(axis=0).tolist()
        pre.scale = np.where(raw.std(axis=0) > 1e-9, raw.std(axis=0), 1.0).tolist()
        return pre

    def _numeric_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        if "history_missing" not in frame:
            frame = impute_history(frame)
        cols = []
        for c in self.numeric:
            v = frame[c].astype(float).to_numpy() if c in frame else np.full(len(frame), np.nan)
            v = np.where(np.isnan(v), self.fill[c], v)
            cols.append(np.log1p(np.clip(v, 0, None)) if c in DEMAND_HISTORY else v)
        woy = frame["week_of_year"].to_numpy(dtype=float)
        cols += [np.sin(2 * np.pi * woy / 52.18), np.cos(2 * np.pi * woy / 52.18)]
        ev = events_of(frame)
        for e in self.events:
            cols.append(ev.str.split(";").apply(lambda items, e=e: e in items).to_numpy(dtype=float))
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))

    @property
    def feature_names(self) -> list[str]:
        return [*self.numeric, "woy_sin", "woy_cos", *(f"event:{e}" for e in self.events)]

    def numeric_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Standardized, and clipped to +-``CLIP`` standard deviations: a value far outside what
        training saw (a column nearly constant in training, a new extreme) cannot push a
        forecast arbitrarily far."""
        z = (self._numeric_matrix(frame) - np.array(self.mean)) / np.array(self.scale)
        return np.clip(z, -CLIP, CLIP).astype(np.float32)

    def interaction_columns(self, numeric: np.ndarray) -> np.ndarray:
        """The standardized columns that act differently per category: calendar, weather, events."""
        names = self.feature_names
        keep = [i for i, n in enumerate(names)
                if n in ("woy_sin", "woy_cos", "temp_max_c", "precip_mm") or n.startswith("event:")]
        return numeric[:, keep]

    def lasso_design(self, frame: pd.DataFrame) -> np.ndarray:
        numeric = self.numeric_matrix(frame)
        return lasso.design(numeric, self.category_onehot(frame), self.interaction_columns(numeric))

    def categorical_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Integer ids for store, product, category and week of year (0 = unknown)."""
        out = []
        for c in ("store_id", "product_id", "category"):
            index = {v: i for i, v in enumerate(self.vocab[c])}
            out.append(frame[c].astype(str).map(index).fillna(0).to_numpy(dtype=np.int64))
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

"""Per-region forecasting: one LASSO + embedding-network ensemble per segment, and the baseline.

The protocol (``train_region``):

1. The last ``holdout_weeks`` observed weeks up to the as-of week are the holdout;
   everything before them is training data (after a short warm-up without lags).
2. Inside the training weeks, the last few weeks are a validation slice: the LASSO's
   alpha comes from time-ordered cross-validation, the network stops early on the
   validation loss, and the ensemble weight is chosen on the validation slice.
   The holdout is never used to choose anything.
3. Refit on all training weeks with those choices and forecast each holdout week one
   week ahead (features of week w only know weeks < w): metrics per segment for the
   ensemble, each member and the baseline (trailing 52-week mean per store x product).
4. Refit on every week up to the as-of week: that is the deployed model.

A segment with too little data is skipped with its reason; its rows are forecast by
the baseline, and the forecast says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.ml import embedding_net, lasso, metrics
from mlops_assets.ml.featurize import KEY
from mlops_assets.ml.preprocess import Preprocessor
from mlops_assets.monitoring.profiles import build_profile, reference_rows

SEGMENTS = ("large/fast", "large/slow", "small/fast", "small/slow")
WEIGHTS = np.round(np.linspace(0, 1, 21), 2)
FORMAT_VERSION = 2  # 2: network weights as NPZ (1: torch.save)
PROFILES = ("reference", "holdout_reference")  # JSON files beside model.json
BASELINE_VERSION = "baseline"  # the model_version of forecasts made without a model (no champion)


@dataclass
class TrainConfig:
    holdout_weeks: int = 13
    seed: int = 0
    warmup_weeks: int = 4          # first weeks of history have no lags: not used for training
    min_train_rows: int = 200
    min_train_weeks: int = 12
    validation_share: float = 0.15
    max_epochs: int = 100
    patience: int = 8
    # Fit the models on weeks that sold something: a week with no order is noise in log space
    # that drags every forecast down, and MAPE (the target metric) scores selling weeks only.
    # The cost shows in rmse0 (error on zero weeks), which is reported beside it.
    fit_selling_weeks_only: bool = True

    def to_json(self) -> dict:
        return dict(self.__dict__)


def baseline_forecast(frame: pd.DataFrame) -> np.ndarray:
    """Historical average: the trailing 52-week mean demand of the store x product."""
    return frame["mean_52"].to_numpy(dtype=float)


@dataclass
class SegmentModel:
    pre: Preprocessor
    lasso: dict
    net: embedding_net.EmbeddingNet
    net_sizes: dict
    weight: float  # of the LASSO; the network gets 1 - weight
    hyperparameters: dict = field(default_factory=dict)

    def members(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        X = self.pre.lasso_design(frame)
        lasso_log = lasso.predict_log(self.lasso, X)
        nn_log = embedding_net.predict_log(self.net, X, self.pre.categorical_matrix(frame))
        out = {"lasso": np.clip(np.expm1(lasso_log), 0, None), "nn": np.clip(np.expm1(nn_log), 0, None)}
        out["ensemble"] = self.weight * out["lasso"] + (1 - self.weight) * out["nn"]
        return out


def _net_sizes(pre: Preprocessor, X: np.ndarray) -> dict:
    """The network sees the LASSO's inputs (numeric features and their category interactions)
    next to its embeddings of store, product, category and week of year."""
    return {"n_store": len(pre.vocab["store_id"]), "n_product": len(pre.vocab["product_id"]),
            "n_category": len(pre.vocab["category"]), "n_numeric": X.shape[1]}


def _fit_segment(train: pd.DataFrame, alpha: float, epochs: int, weight: float, seed: int,
                 hyper: dict) -> SegmentModel:
    pre = Preprocessor.fit(train)
    X, y = pre.lasso_design(train), np.log1p(train["target"].to_numpy(dtype=float))
    params = lasso.fit(X, y, alpha)
    sizes = _net_sizes(pre, X)
    net, _ = embedding_net.train(X, pre.categorical_matrix(train), y, sizes, seed=seed, epochs=epochs)
    return SegmentModel(pre, params, net, sizes, weight, hyper)


def _choose(train: pd.DataFrame, config: TrainConfig) -> dict:
    """Hyperparameters from the training weeks alone: alpha, epochs, ensemble weight."""
    weeks = np.sort(train["week_start"].unique())
    n_val = max(4, int(round(len(weeks) * config.validation_share)))
    inner, val = train[train["week_start"] < weeks[-n_val]], train[train["week_start"] >= weeks[-n_val]]
    pre = Preprocessor.fit(inner)
    X_in, y_in = pre.lasso_design(inner), np.log1p(inner["target"].to_numpy(dtype=float))
    alpha = lasso.choose_alpha(X_in, y_in, inner["week_start"].to_numpy())
    params = lasso.fit(X_in, y_in, alpha)
    X_val, y_val = pre.lasso_design(val), np.log1p(val["target"].to_numpy(dtype=float))
    net, history = embedding_net.train(X_in, pre.categorical_matrix(inner), y_in, _net_sizes(pre, X_in),
                                       seed=config.seed, epochs=config.max_epochs, patience=config.patience,
                                       val=(X_val, pre.categorical_matrix(val), y_val))
    val_lasso = np.clip(np.expm1(lasso.predict_log(params, X_val)), 0, None)
    val_nn = np.clip(np.expm1(embedding_net.predict_log(net, X_val, pre.categorical_matrix(val))), 0, None)
    actual = val["target"].to_numpy(dtype=float)
    scores = [metrics.mape(actual, w * val_lasso + (1 - w) * val_nn) for w in WEIGHTS]
    weight = float(WEIGHTS[int(np.nanargmin(scores))])
    return {
        "lasso_alpha": alpha,
        "nn_epochs": int(history["best_epoch"]),
        "nn_start_val_loss": history["start_val_loss"],
        "nn_best_val_loss": history.get("best_val_loss", float("nan")),
        "ensemble_weight_lasso": weight,
        "validation_weeks": int(n_val),
        "validation_mape": float(np.nanmin(scores)),
        "validation_first_week": pd.Timestamp(weeks[-n_val]).strftime("%Y-%m-%d"),
    }


@dataclass
class ForecastModel:
    """What serves a region: a segment model per segment, or the reason it was skipped."""

    region: str
    as_of_week: str
    segments: dict[str, SegmentModel]
    skipped: dict[str, str]
    config: TrainConfig
    evaluation: dict = field(default_factory=dict)
    version: str = ""  # set by the storage that holds it (the training run's id)
    # what the training data and the forecasts looked like (monitoring.profiles): ``reference`` for
    # this model, ``holdout_reference`` for the model fit before the holdout weeks (the replay's)
    reference: dict = field(default_factory=dict)
    holdout_reference: dict = field(default_factory=dict)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Forecast every row; rows of a skipped or unknown segment get the baseline and say so."""
        out = features[["region", "week_start", "store_id", "product_id", "segment"]].copy()
        out["forecast"] = baseline_forecast(features)
        out["model"] = "baseline"
        for name, seg in self.segments.items():
            mask = (features["segment"] == name).to_numpy()
            if mask.any():
                out.loc[mask, "forecast"] = seg.members(features[mask])["ensemble"]
                out.loc[mask, "model"] = "ensemble"
        out["model_version"] = self.version
        out["model_as_of_week"] = pd.Timestamp(self.as_of_week)
        return out

    # -- storage: JSON and NPZ (network weights as arrays); nothing is pickled ---------
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"format_version": FORMAT_VERSION, "region": self.region, "as_of_week": self.as_of_week,
                    "config": self.config.to_json(), "skipped": self.skipped, "evaluation": self.evaluation,
                    "segments": {}}
        for name, seg in self.segments.items():
            stem = name.replace("/", "_")
            np.savez(folder / f"{stem}_lasso.npz", **seg.lasso)
            embedding_net.save(seg.net, folder / f"{stem}_nn.npz")
            manifest["segments"][name] = {"preprocessor": seg.pre.to_json(), "net_sizes": seg.net_sizes,
                                          "weight_lasso": seg.weight, "hyperparameters": seg.hyperparameters,
                                          "files": [f"{stem}_lasso.npz", f"{stem}_nn.npz"]}
        (folder / "model.json").write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
        for name in PROFILES:
            (folder / f"{name}.json").write_text(json.dumps(getattr(self, name), default=_json_default) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "ForecastModel":
        folder = Path(folder)
        manifest = json.loads((folder / "model.json").read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: model format {manifest.get('format_version')} is not {FORMAT_VERSION}")
        segments = {}
        for name, spec in manifest["segments"].items():
            stem = name.replace("/", "_")
            with np.load(folder / f"{stem}_lasso.npz", allow_pickle=False) as npz:
                params = {k: npz[k] for k in npz.files}
            net = embedding_net.load(folder / f"{stem}_nn.npz", spec["net_sizes"])
            segments[name] = SegmentModel(Preprocessor.from_json(spec["preprocessor"]), params, net,
                                          spec["net_sizes"], spec["weight_lasso"], spec["hyperparameters"])
        profiles = {name: json.loads((folder / f"{name}.json").read_text()) if (folder / f"{name}.json").exists()
                    else {} for name in PROFILES}
        return cls(manifest["region"], manifest["as_of_week"], segments, manifest["skipped"],
                   TrainConfig(**manifest["config"]), manifest["evaluation"], **profiles)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _skip_reason(train: pd.DataFrame, holdout: pd.DataFrame, config: TrainConfig) -> str | None:
    weeks = train["week_start"].nunique()
    if len(train) < config.min_train_rows:
        return f"too little data: {len(train)} training rows < {config.min_train_rows}"
    if weeks < config.min_train_weeks:
        return f"too little history: {weeks} training weeks < {config.min_train_weeks}"
    if holdout.empty:
        return "no rows in the holdout weeks"
    if (train["target"] > 0).sum() < 10:
        return "fewer than 10 training weeks with any demand"
    return None


def _evaluate(actual: np.ndarray, members: dict[str, np.ndarray], base: np.ndarray) -> dict:
    out = {name: metrics.summary(actual, pred) for name, pred in members.items()}
    out["baseline"] = metrics.summary(actual, base)
    out["mape_reduction_vs_baseline"] = metrics.reduction(out["ensemble"]["mape"], out["baseline"]["mape"])
    return out


def train_region(features: pd.DataFrame, region: str, config: TrainConfig | None = None,
                 as_of_week: str | None = None) -> tuple[ForecastModel, pd.DataFrame]:
    """Evaluate on the holdout, then refit on everything up to the as-of week.

    Returns the deployed model (its ``evaluation`` holds every metric) and the
    holdout forecasts (one row per store x product x holdout week, each member's forecast).
    """
    config = config or TrainConfig()
    # one canonical row order: the inputs may arrive in any partition order, and the network's
    # minibatches (hence its weights) depend on row order
    missing = {"region", "segment", "target", *KEY} - set(features.columns)
    if missing:
        raise ValueError(f"{region}: features lack columns {sorted(missing)}")
    if features.duplicated(KEY).any():
        dup = features.loc[features.duplicated(KEY, keep=False), KEY].head(3).to_dict("records")
        raise ValueError(f"{region}: features have duplicate store x product x week rows, e.g. {dup}")
    features = features.sort_values(KEY, kind="stable").reset_index(drop=True)
    observed = features[features["target"].notna()].copy()
    if as_of_week is not None:
        observed = observed[observed["week_start"] <= pd.Timestamp(as_of_week)]
    weeks = np.sort(observed["week_start"].unique())
    if len(weeks) <= config.holdout_weeks + config.warmup_weeks:
        raise ValueError(f"{region}: {len(weeks)} observed weeks; need more than holdout "
                         f"({config.holdout_weeks}) + warm-up ({config.warmup_weeks})")
    as_of = pd.Timestamp(weeks[-1])
    holdout_start = pd.Timestamp(weeks[-config.holdout_weeks])
    usable = observed[observed["week_start"] >= pd.Timestamp(weeks[config.warmup_weeks])]
    train_all, holdout_all = usable[usable["week_start"] < holdout_start], usable[usable["week_start"] >= holdout_start]

    segments, skipped, evaluation, holdout_frames = {}, {}, {"segments": {}}, []
    evaluated_segments = {}
    for name in SEGMENTS:
        train = train_all[train_all["segment"] == name]
        holdout = holdout_all[holdout_all["segment"] == name]
        reason = _skip_reason(train, holdout, config)
        if reason:
            skipped[name] = reason
            evaluation["segments"][name] = {"skipped": reason}
            continue
        fit_rows = train[train["target"] > 0] if config.fit_selling_weeks_only else train
        hyper = _choose(fit_rows, config)
        evaluated = _fit_segment(fit_rows, hyper["lasso_alpha"], hyper["nn_epochs"], hyper["ensemble_weight_lasso"],
                                 config.seed, hyper)
        evaluated_segments[name] = evaluated
        members = evaluated.members(holdout)
        actual = holdout["target"].to_numpy(dtype=float)
        base = baseline_forecast(holdout)
        report = _evaluate(actual, members, base)
        report["rows"] = {"train": len(train), "holdout": len(holdout)}
        report["hyperparameters"] = hyper
        evaluation["segments"][name] = report
        frame = holdout[["region", "week_start", "store_id", "product_id", "segment", "target"]].copy()
        frame = frame.assign(**members, baseline=base)
        holdout_frames.append(frame)
        deployed_train = usable[usable["segment"] == name]
        if config.fit_selling_weeks_only:
            deployed_train = deployed_train[deployed_train["target"] > 0]
        segments[name] = _fit_segment(deployed_train, hyper["lasso_alpha"], hyper["nn_epochs"],
                                      hyper["ensemble_weight_lasso"], config.seed, hyper)

    holdout_forecasts = pd.concat(holdout_frames, ignore_index=True) if holdout_frames else pd.DataFrame()
    if len(holdout_forecasts):
        actual = holdout_forecasts["target"].to_numpy(dtype=float)
        evaluation["region"] = _evaluate(actual, {k: holdout_forecasts[k].to_numpy() for k in
                                                  ("ensemble", "lasso", "nn")}, holdout_forecasts["baseline"])
        by_format = {}
        for fmt, part in holdout_forecasts.groupby(holdout_forecasts["segment"].str.split("/").str[0]):
            by_format[fmt] = metrics.summary(part["target"], part["baseline"])
        evaluation["baseline_by_format"] = by_format
    evaluation["holdout"] = {"first_week": holdout_start.strftime("%Y-%m-%d"), "weeks": config.holdout_weeks}
    model = ForecastModel(region, as_of.strftime("%Y-%m-%d"), segments, skipped, config, evaluation)
    model.reference = _profile(model, usable, model.as_of_week)
    before = ForecastModel(region, (holdout_start - pd.Timedelta(weeks=1)).strftime("%Y-%m-%d"), evaluated_segments,
                           skipped, config, evaluation)
    model.holdout_reference = _profile(before, train_all, before.as_of_week)
    return model, holdout_forecasts


def _profile(model: ForecastModel, observed: pd.DataFrame, as_of_week: str) -> dict:
    """The reference a model is monitored against: its last year of training rows and its
    forecasts for them."""
    rows = reference_rows(observed, as_of_week)
    return build_profile(rows, model.predict(rows)["forecast"].to_numpy()) if len(rows) else {}

"""Per-region forecasting: one LASSO + embedding-network ensemble per segment, and the baseline.

Each segment has its own LASSO and its own ensemble weight; the network is the region's,
trained on all its segments with the segment as an embedding, so a thin segment borrows
strength from the others (and store and product ids first seen after training get a trained
"unknown" embedding: see ``embedding_net.ID_DROPOUT``).

The protocol (``train_region``):

1. The last ``holdout_weeks`` observed weeks up to the as-of week are the holdout;
   everything before them is training data (after a short warm-up without lags).
2. Inside the training weeks, the last few weeks are validation weeks: the LASSO's alpha
   comes from time-ordered cross-validation, the network stops early on the validation
   loss, and each segment's ensemble weight minimizes the mean MAPE over three consecutive
   validation windows. The holdout is never used to choose anything.
3. Refit on all training weeks with those choices and forecast each holdout week one
   week ahead (features of week w only know weeks < w, and its weather is the forecast
   where one landed): metrics per segment for the ensemble, each member and the baseline
   (trailing 52-week mean per store x product).
4. Refit on every week up to the as-of week: that is the deployed model.

A segment with too little data is skipped with its reason; its rows are forecast by
the baseline, and the forecast says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.ml import lasso, metrics, parallel, quantiles
from mlops_assets.ml.featurize import KEY, at_forecast_time, impute_history
from mlops_assets.ml.lazy import LazyModule
from mlops_assets.ml.preprocess import Preprocessor

# torch is imported on first use: every process that loads the definitions (each run, the code
# server, the CLI) would otherwise pay about a second and a half for it
embedding_net = LazyModule("mlops_assets.ml.embedding_net")

SEGMENTS = ("large/fast", "large/slow", "small/fast", "small/slow")
MEMBERS = ("ensemble", "lasso", "nn", "baseline")  # what a segment's evaluation reports
WEIGHTS = np.round(np.linspace(0, 1, 21), 2)
VALIDATION_WINDOWS = 3  # the ensemble weight is chosen on this many consecutive validation windows
MIN_CHOICE_ROWS = 50  # a segment's rows before the validation weeks needed to choose its alpha and weight
# 2: history missing not zero, weather as forecast, the region's network (1: before). Metrics
# recorded under another protocol are not compared with this one's.
EVALUATION_PROTOCOL = 2
# 4: the network has quantile heads (P10, P50, P90); 3: one network per region shared by its
# segments (2: a network per segment, weights as NPZ; 1: torch.save). Formats 2 and 3 still load
# (their quantiles: a Poisson count around the forecast).
FORMAT_VERSION = 4
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
    # The network's loss: "mape", the metric the forecasts are judged by (on selling weeks), or
    # "mse_log", squared error of log demand (the LASSO's)
    nn_loss: str = "mape"

    def to_json(self) -> dict:
        return dict(self.__dict__)


def baseline_forecast(frame: pd.DataFrame) -> np.ndarray:
    """Historical average: the trailing 52-week mean demand of the store x product. A pair with
    no observed week gets the mean of the same product's pairs that week among the rows of
    ``frame`` (pass a region's whole week), and 0 only when none has any history of it."""
    own = frame["mean_52"].astype(float)
    if own.notna().all():
        return own.to_numpy()
    product = own.groupby([frame["product_id"], frame["week_start"]]).transform("mean")
    return own.fillna(product).fillna(0.0).to_numpy()


@dataclass
class SegmentModel:
    """A segment's ensemble: its own LASSO, and the region's network (shared by the region's
    segments, which it tells apart by a segment embedding; ``nn_pre`` prepares its inputs)."""

    pre: Preprocessor
    lasso: dict
    net: embedding_net.EmbeddingNet
    net_sizes: dict
    weight: float  # of the LASSO; the network gets 1 - weight
    hyperparameters: dict = field(default_factory=dict)
    nn_pre: Preprocessor | None = None  # None: a per-segment network (model format 2) reads ``pre``

    def members(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each member's forecast and the ensemble's, in units; ``quantiles`` (rows x levels of
        ``quantiles.LEVELS``): the network's spread of quantiles around the ensemble's forecast,
        calibrated for the segment (a network without quantile heads, model format 3: a Poisson
        count around the ensemble)."""
        lasso_log = lasso.predict_log(self.lasso, self.pre.lasso_design(frame))
        nn_out = embedding_net.predict_outputs(self.net, *_nn_inputs(self.nn_pre or self.pre, frame,
                                                                     pooled=self.nn_pre is not None))
        nn_log = nn_out[:, 0] if nn_out.ndim == 2 else nn_out
        out = {"lasso": np.clip(np.expm1(lasso_log), 0, None), "nn": np.clip(np.expm1(nn_log), 0, None)}
        out["ensemble"] = self.weight * out["lasso"] + (1 - self.weight) * out["nn"]
        out["quantiles"] = (quantiles.from_log(quantiles.anchored(np.log1p(out["ensemble"]), nn_out[:, 1:]),
                                               self.hyperparameters.get("quantile_shift"))
                            if nn_out.ndim == 2 else quantiles.poisson(out["ensemble"]))
        return out


def _nn_inputs(pre: Preprocessor, frame: pd.DataFrame, pooled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The network sees the LASSO's inputs (numeric features and their category interactions)
    next to its embeddings of store, product, category, week of year and segment."""
    cat = pre.categorical_matrix(frame)
    if pooled:
        index = {name: i + 1 for i, name in enumerate(SEGMENTS)}  # 0: unknown
        cat = np.column_stack([cat, frame["segment"].map(index).fillna(0).to_numpy(dtype=np.int64)])
    return pre.lasso_design(frame, np.float32), cat


def _net_sizes(pre: Preprocessor, X: np.ndarray) -> dict:
    return {"n_store": len(pre.vocab["store_id"]), "n_product": len(pre.vocab["product_id"]),
            "n_category": len(pre.vocab["category"]), "n_numeric": X.shape[1], "n_segment": len(SEGMENTS) + 1,
            "quantiles": list(quantiles.LEVELS)}


def _log_target(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(frame["target"].to_numpy(dtype=float))


class Progress:
    """Training's progress as it happens: ``report(stage, what, started)`` sends
    "[elapsed s] stage: what (x.x s)" to ``sink`` (a run's log), from any of the fitting threads."""

    def __init__(self, sink: Callable[[str], None] | None = None):
        self.sink, self.start, self._lock = sink, time.perf_counter(), threading.Lock()

    def report(self, stage: str, what: str, started: float | None = None) -> None:
        if self.sink is None:
            return
        now = time.perf_counter()
        took = f" ({now - started:.1f} s)" if started is not None else ""
        with self._lock:
            self.sink(f"[{now - self.start:5.0f} s] {stage}: {what}{took}")


def _fit_region(rows: dict[str, pd.DataFrame], choice: dict, seed: int,
                progress: Progress | None = None, stage: str = "refit") -> dict[str, SegmentModel]:
    """Refit with chosen hyperparameters: the region's network on every segment's rows (exactly
    ``nn_epochs``), then each segment's LASSO on its own rows."""
    progress = progress or Progress()
    started = time.perf_counter()
    pooled = pd.concat(rows.values()).sort_values(KEY, kind="stable")
    nn_pre = Preprocessor.fit(pooled)
    X, cat = _nn_inputs(nn_pre, pooled)
    sizes = _net_sizes(nn_pre, X)
    net, _ = embedding_net.train(X, cat, _log_target(pooled), sizes, seed=seed, epochs=choice["nn_epochs"],
                                 loss=choice["nn_loss"])
    progress.report(stage, f"network on {len(pooled):,} rows of {len(rows)} segments, {choice['nn_epochs']} epochs",
                    started)
    out = {}
    for name, frame in rows.items():
        started = time.perf_counter()
        hyper = choice["segments"][name]
        pre = Preprocessor.fit(frame)
        fitted = lasso.Convergence()
        params = lasso.fit(pre.lasso_design(frame), _log_target(frame), hyper["lasso_alpha"], fitted)
        out[name] = SegmentModel(pre, params, net, sizes, hyper["ensemble_weight_lasso"], hyper, nn_pre)
        progress.report(stage, f"{name} LASSO on {len(frame):,} rows (alpha {hyper['lasso_alpha']:.3g})"
                               f"{fitted.note()}", started)
    return out


def _choose(rows: dict[str, pd.DataFrame], config: TrainConfig, progress: Progress | None = None,
            calibration: dict[str, pd.DataFrame] | None = None, threads: int = 0) -> tuple[dict, pd.DataFrame]:
    """Hyperparameters from the training weeks alone: the network's epochs (early stopping on
    the region's last validation weeks), each segment's LASSO alpha (time-ordered CV) and each
    segment's ensemble weight. The weight minimizes the mean MAPE over ``VALIDATION_WINDOWS``
    consecutive windows of the validation weeks, not one short slice, so a member that is
    good on one window and fails on the next does not take the whole weight.

    ``calibration``: each segment's rows the quantiles are calibrated on, in their validation weeks
    (default ``rows``; with ``rows`` fit on selling weeks only, every week, zeros included: the
    quantiles must hold for the weeks that sell nothing too). Also returns the validation weeks'
    forecasts of those rows at the chosen weights (KEY, actual, forecast): forecasts of weeks the
    models had not seen, which calibrate the monitoring of their bias."""
    calibration = calibration or rows
    pooled = pd.concat(rows.values()).sort_values(KEY, kind="stable")
    weeks = np.sort(pooled["week_start"].unique())
    n_val = max(2 * VALIDATION_WINDOWS, int(round(len(weeks) * config.validation_share)))
    first_val = weeks[-n_val]
    windows = np.array_split(weeks[-n_val:], VALIDATION_WINDOWS)
    inner, val = pooled[pooled["week_start"] < first_val], pooled[pooled["week_start"] >= first_val]
    progress = progress or Progress()
    stage = "choose (training weeks only)"

    def network():
        started = time.perf_counter()
        nn_pre = Preprocessor.fit(inner)
        X_in, cat_in = _nn_inputs(nn_pre, inner)
        net, history = embedding_net.train(X_in, cat_in, _log_target(inner), _net_sizes(nn_pre, X_in),
                                           seed=config.seed, epochs=config.max_epochs, patience=config.patience,
                                           val=(*_nn_inputs(nn_pre, val), _log_target(val)), loss=config.nn_loss)
        progress.report(stage, f"network early-stopped at epoch {history['best_epoch']} of at most "
                               f"{config.max_epochs} on {len(inner):,} rows", started)
        return nn_pre, net, history

    def lassos():  # each segment's alpha and LASSO: independent of the network, so fit beside it
        out = {}
        for name, frame in rows.items():
            seg_in = frame[frame["week_start"] < first_val]
            if len(seg_in) < MIN_CHOICE_ROWS or not (frame["week_start"] >= first_val).any():
                continue
            started = time.perf_counter()
            pre = Preprocessor.fit(seg_in)
            X, y = pre.lasso_design(seg_in), _log_target(seg_in)
            fits = lasso.Convergence()
            alpha = lasso.choose_alpha(X, y, seg_in["week_start"].to_numpy(), fits)
            out[name] = (pre, alpha, lasso.fit(X, y, alpha, fits))
            progress.report(stage, f"{name} LASSO alpha {alpha:.3g} by time-ordered CV on {len(seg_in):,} rows"
                                   f"{fits.note()}", started)
        return out

    (nn_pre, net, history), fitted = parallel.run_both(network, lassos, threads=threads)
    shared = {"nn_epochs": int(history["best_epoch"]), "nn_loss": config.nn_loss,
              "nn_start_val_loss": history["start_val_loss"],
              "nn_best_val_loss": history.get("best_val_loss", float("nan")), "nn_pooled_rows": len(inner),
              "nn_epoch_rows": int(history["epoch_rows"]), "nn_batch_size": int(history["batch_size"]),
              "validation_weeks": int(n_val), "validation_windows": VALIDATION_WINDOWS,
              "validation_first_week": pd.Timestamp(first_val).strftime("%Y-%m-%d")}
    segments, validation = {}, []
    # the network's outputs on every validation row of the calibration rows, and the region's
    # calibration of its quantiles (a segment with too few validation rows of its own takes its region's)
    cal_val = {name: frame[frame["week_start"] >= first_val] for name, frame in calibration.items()}
    pooled_cal = pd.concat(cal_val.values())
    val_out = pd.DataFrame(embedding_net.predict_outputs(net, *_nn_inputs(nn_pre, pooled_cal)), index=pooled_cal.index)
    region_shift = quantiles.calibration_shift(pooled_cal["target"].to_numpy(dtype=float),
                                               quantiles.anchored(val_out.to_numpy()[:, 0], val_out.to_numpy()[:, 1:]))
    for name, frame in rows.items():
        seg_in, seg_val = frame[frame["week_start"] < first_val], frame[frame["week_start"] >= first_val]
        if len(seg_in) < MIN_CHOICE_ROWS or seg_val.empty:
            # too few of this segment's rows before (or in) the validation weeks to choose on: the
            # region's network alone serves it, the LASSO at a middle alpha is kept for the record
            segments[name] = {**shared, "lasso_alpha": float(lasso.ALPHAS[len(lasso.ALPHAS) // 2]),
                              "ensemble_weight_lasso": 0.0, "validation_mape": float("nan"),
                              "validation_window_mapes": [], "quantile_shift": region_shift,
                              "choice": f"{len(seg_in)} rows before and {len(seg_val)} in the validation weeks"}
            continue
        pre, alpha, params = fitted[name]
        val_lasso = np.clip(np.expm1(lasso.predict_log(params, pre.lasso_design(seg_val))), 0, None)
        val_nn = np.clip(np.expm1(val_out.loc[seg_val.index].to_numpy()[:, 0]), 0, None)
        actual = seg_val["target"].to_numpy(dtype=float)
        window_of = seg_val["week_start"].to_numpy()
        masks = [np.isin(window_of, w) for w in windows]
        grid = np.array([[metrics.mape(actual[m], (w * val_lasso + (1 - w) * val_nn)[m]) for m in masks]
                         for w in WEIGHTS])  # weights x windows
        mean = np.nanmean(np.where(np.isfinite(grid), grid, np.nan), axis=1) if np.isfinite(grid).any() else \
            np.full(len(WEIGHTS), np.nan)
        best = int(np.nanargmin(mean)) if np.isfinite(mean).any() else len(WEIGHTS) // 2
        seg_cal = cal_val[name]
        cal_out = val_out.loc[seg_cal.index].to_numpy()
        cal_lasso = np.clip(np.expm1(lasso.predict_log(params, pre.lasso_design(seg_cal))), 0, None)
        cal_point = WEIGHTS[best] * cal_lasso + (1 - WEIGHTS[best]) * np.clip(np.expm1(cal_out[:, 0]), 0, None)
        validation.append(seg_cal[KEY].assign(actual=seg_cal["target"].to_numpy(dtype=float), forecast=cal_point))
        segments[name] = {**shared, "lasso_alpha": alpha, "ensemble_weight_lasso": float(WEIGHTS[best]),
                          "validation_mape": float(metrics.mape(actual, WEIGHTS[best] * val_lasso
                                                                + (1 - WEIGHTS[best]) * val_nn)),
                          "validation_window_mapes": [float(v) for v in grid[best]],
                          "quantile_shift": quantiles.calibration_shift(
                              seg_cal["target"].to_numpy(dtype=float),
                              quantiles.anchored(np.log1p(cal_point), cal_out[:, 1:]))
                          if len(seg_cal) >= MIN_CHOICE_ROWS else region_shift}
    frame = pd.concat(validation, ignore_index=True) if validation else pd.DataFrame(
        columns=[*KEY, "actual", "forecast"])
    return {**shared, "segments": segments}, frame


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
    # what the training data and the forecasts looked like (monitoring.monitor): ``reference`` for
    # this model, ``holdout_reference`` for the model fit before the holdout weeks (the replay's)
    reference: dict = field(default_factory=dict)
    holdout_reference: dict = field(default_factory=dict)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Forecast every row from what was known before its week (``at_forecast_time``: the
        weather forecast, not the observation), with its P10, P50 and P90; rows of a skipped or
        unknown segment get the baseline (quantiles: a Poisson count around it) and say so."""
        features = at_forecast_time(features)
        out = features[["region", "week_start", "store_id", "product_id", "segment"]].copy()
        out["forecast"] = baseline_forecast(features)
        band = quantiles.poisson(out["forecast"].to_numpy())
        out["model"] = "baseline"
        for name, seg in self.segments.items():
            mask = (features["segment"] == name).to_numpy()
            if mask.any():
                members = seg.members(features[mask])
                out.loc[mask, "forecast"] = members["ensemble"]
                band[mask] = members["quantiles"]
                out.loc[mask, "model"] = "ensemble"
        for k, name in enumerate(quantiles.NAMES):
            out[name] = band[:, k]
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
        nets = {id(seg.net): seg for seg in self.segments.values()}
        if len(nets) > 1:
            raise ValueError(f"{self.region}: the segments do not share one network")
        for seg in nets.values():  # the region's network, once
            embedding_net.save(seg.net, folder / "network.npz")
            manifest["network"] = {"preprocessor": seg.nn_pre.to_json(), "net_sizes": seg.net_sizes,
                                   "file": "network.npz"}
        for name, seg in self.segments.items():
            stem = name.replace("/", "_")
            np.savez(folder / f"{stem}_lasso.npz", **seg.lasso)
            manifest["segments"][name] = {"preprocessor": seg.pre.to_json(), "weight_lasso": seg.weight,
                                          "hyperparameters": seg.hyperparameters, "files": [f"{stem}_lasso.npz"]}
        for name in PROFILES:
            (folder / f"{name}.json").write_text(json.dumps(getattr(self, name), default=_json_default) + "\n")
        # the manifest last: a folder without it is an interrupted save, never loaded as a model
        (folder / "model.json").write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "ForecastModel":
        folder = Path(folder)
        manifest = json.loads((folder / "model.json").read_text())
        version = manifest.get("format_version")
        if version not in (2, 3, FORMAT_VERSION):
            raise ValueError(f"{folder}: model format {version} is not one of 2, 3, {FORMAT_VERSION}")
        shared = manifest.get("network")
        if shared:
            net = embedding_net.load(folder / shared["file"], shared["net_sizes"])
            nn_pre = Preprocessor.from_json(shared["preprocessor"])
        segments = {}
        for name, spec in manifest["segments"].items():
            stem = name.replace("/", "_")
            with np.load(folder / f"{stem}_lasso.npz", allow_pickle=False) as npz:
                params = {k: npz[k] for k in npz.files}
            if shared:
                segments[name] = SegmentModel(Preprocessor.from_json(spec["preprocessor"]), params, net,
                                              shared["net_sizes"], spec["weight_lasso"], spec["hyperparameters"],
                                              nn_pre)
            else:  # format 2: a network per segment
                segments[name] = SegmentModel(Preprocessor.from_json(spec["preprocessor"]), params,
                                              embedding_net.load(folder / f"{stem}_nn.npz", spec["net_sizes"]),
                                              spec["net_sizes"], spec["weight_lasso"], spec["hyperparameters"])
        profiles = {name: json.loads((folder / f"{name}.json").read_text()) if (folder / f"{name}.json").exists()
                    else {} for name in PROFILES}
        return cls(manifest["region"], manifest["as_of_week"], segments, manifest["skipped"],
                   TrainConfig(**{"nn_loss": "mse_log", **manifest["config"]}), manifest["evaluation"], **profiles)


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


def naive_forecast(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A history column as the forecast (``lag_1``: last value, ``lag_52``: seasonal naive):
    where it was not observed, the pair's own history fills it (``impute_history``), and the
    baseline where the pair has none."""
    base = pd.Series(baseline_forecast(frame), index=frame.index)
    return impute_history(frame)[column].fillna(base).to_numpy(dtype=float)


def last_value_forecast(frame: pd.DataFrame) -> np.ndarray:
    """The naive peer the ensemble must beat: last week's demand."""
    return naive_forecast(frame, "lag_1")


def _evaluate(actual: np.ndarray, members: dict[str, np.ndarray], base: np.ndarray, last: np.ndarray) -> dict:
    out = {name: metrics.summary(actual, pred) for name, pred in members.items()}
    out["baseline"] = metrics.summary(actual, base)
    out["last_value"] = metrics.summary(actual, last)
    out["mape_reduction_vs_baseline"] = metrics.reduction(out["ensemble"]["mape"], out["baseline"]["mape"])
    return out


Profiler = Callable[[pd.DataFrame, str, Callable[[pd.DataFrame], np.ndarray], pd.DataFrame], dict]


def train_region(features: pd.DataFrame, region: str, config: TrainConfig | None = None,
                 as_of_week: str | None = None, progress: Callable[[str], None] | None = None,
                 profiler: Profiler | None = None, threads: int = 0) -> tuple[ForecastModel, pd.DataFrame]:
    """Evaluate on the holdout, then refit on everything up to the as-of week.

    Returns the deployed model (its ``evaluation`` holds every metric) and the
    holdout forecasts (one row per store x product x holdout week, each member's forecast).
    ``progress``, when given, receives a line per member fitted and per stage, with the time taken.
    ``profiler(observed, as_of_week, predict, out_of_sample)``, when given, builds the reference a
    model is monitored against (``monitoring.monitor.reference_profile``, passed in by the caller:
    modelling knows nothing of monitoring) from the rows observed up to its as-of week (as
    forecast), its forecasts, and forecasts it made of weeks it had not seen: ``reference`` for
    the deployed model (the validation and holdout weeks), ``holdout_reference`` for the model
    fit before the holdout (the validation weeks: the replay's).
    """
    config = config or TrainConfig()
    steps = Progress(progress)
    observed = _observed(features, region, as_of_week)
    weeks = np.sort(observed["week_start"].unique())
    if len(weeks) <= config.holdout_weeks + config.warmup_weeks:
        # a region onboarded lately: nothing to train yet, the baseline serves its rows (no champion)
        return _untrained(region, pd.Timestamp(weeks[-1]), config,
                          f"too little history: {len(weeks)} observed weeks; training needs more than "
                          f"{config.holdout_weeks} holdout + {config.warmup_weeks} warm-up weeks")
    as_of = pd.Timestamp(weeks[-1])
    holdout_start = pd.Timestamp(weeks[-config.holdout_weeks])
    usable = observed[observed["week_start"] >= pd.Timestamp(weeks[config.warmup_weeks])]
    del observed  # a region's frames are hundreds of MB at seed scale: keep only what is used
    # Every row as it was known before its week, the weather its forecast: the holdout is forecast
    # as it would have been, and the models learn from the inputs they will be served with.
    usable = at_forecast_time(usable)
    train_all, holdout_all = usable[usable["week_start"] < holdout_start], usable[usable["week_start"] >= holdout_start]

    evaluation = {"segments": {}}
    skipped, fit_rows, deploy_rows, calibration_rows = _segment_rows(train_all, holdout_all, usable, config, evaluation)
    segments, evaluated_segments = {}, {}
    # the naive forecasts over the region's whole holdout (a new pair's baseline is its product's
    # mean over the region's stores), then split by segment
    holdout_all = holdout_all.assign(_baseline=baseline_forecast(holdout_all),
                                     _last_value=last_value_forecast(holdout_all))
    for name, reason in skipped.items():
        steps.report("segments", f"{name} skipped: {reason}")
    validation = pd.DataFrame(columns=[*KEY, "actual", "forecast"])
    holdout_frames = []
    if fit_rows:
        choice, validation = _choose(fit_rows, config, steps, calibration=calibration_rows, threads=threads)
        # the model evaluated on the holdout and the deployed one are independent fits
        evaluated_segments, segments = parallel.run_both(
            lambda: _fit_region(fit_rows, choice, config.seed, steps, "evaluated fit (before the holdout)"),
            lambda: _fit_region(deploy_rows, choice, config.seed, steps, "deployed fit (up to the as-of week)"),
            threads=threads)
        holdout_frames = _evaluate_segments(evaluated_segments, holdout_all, train_all, evaluation)

    holdout_forecasts = pd.concat(holdout_frames, ignore_index=True) if holdout_frames else pd.DataFrame()
    if len(holdout_forecasts):
        _evaluate_region(holdout_forecasts, evaluation)
        for name in evaluated_segments:
            seg = evaluation["segments"][name]
            steps.report("holdout", f"{name} ensemble MAPE {seg['ensemble']['mape']:.3f}, baseline "
                                     f"{seg['baseline']['mape']:.3f} on {seg['rows']['holdout']:,} rows")
    evaluation["holdout"] = {"first_week": holdout_start.strftime("%Y-%m-%d"), "weeks": config.holdout_weeks}
    evaluation["protocol"] = EVALUATION_PROTOCOL
    model = ForecastModel(region, as_of.strftime("%Y-%m-%d"), segments, skipped, config, evaluation)
    before = ForecastModel(region, (holdout_start - pd.Timedelta(weeks=1)).strftime("%Y-%m-%d"), evaluated_segments,
                           skipped, config, evaluation)
    if profiler is not None and segments:
        unseen = holdout_forecasts.rename(columns={"target": "actual", "ensemble": "forecast"})
        unseen = pd.concat([validation, unseen[[*KEY, "actual", "forecast"]]], ignore_index=True)
        model.reference = profiler(usable, model.as_of_week, _forecasts(model), unseen)
        model.holdout_reference = profiler(train_all, before.as_of_week, _forecasts(before), validation)
    steps.report("done", f"{len(segments)} segments trained, {len(skipped)} skipped"
                         + ("; monitoring references built" if model.reference else ""))
    return model, holdout_forecasts


def _observed(features: pd.DataFrame, region: str, as_of_week: str | None) -> pd.DataFrame:
    """The region's observed rows up to the as-of week, in one canonical order: the inputs may
    arrive in any partition order, and the network's minibatches (hence its weights) depend on it."""
    missing = {"region", "segment", "target", *KEY} - set(features.columns)
    if missing:
        raise ValueError(f"{region}: features lack columns {sorted(missing)}")
    if features.duplicated(KEY).any():
        dup = features.loc[features.duplicated(KEY, keep=False), KEY].head(3).to_dict("records")
        raise ValueError(f"{region}: features have duplicate store x product x week rows, e.g. {dup}")
    observed = features[features["target"].notna()].sort_values(KEY, kind="stable").reset_index(drop=True)
    if as_of_week is not None:
        observed = observed[observed["week_start"] <= pd.Timestamp(as_of_week)]
    if observed.empty:
        raise ValueError(f"{region}: no observed week to train on (no shipments delivered for its stores)")
    return observed


def _segment_rows(train_all: pd.DataFrame, holdout_all: pd.DataFrame, usable: pd.DataFrame, config: TrainConfig,
                  evaluation: dict) -> tuple[dict, dict, dict, dict]:
    """Per segment: why it is skipped (also recorded in ``evaluation``), or its rows to fit before
    the holdout, to deploy on (up to the as-of week) and to calibrate its band on."""
    skipped, fit_rows, deploy_rows, calibration_rows = {}, {}, {}, {}
    selling = (lambda f: f[f["target"] > 0]) if config.fit_selling_weeks_only else (lambda f: f)
    for name in SEGMENTS:
        train = train_all[train_all["segment"] == name]
        reason = _skip_reason(train, holdout_all[holdout_all["segment"] == name], config)
        if reason:
            skipped[name] = reason
            evaluation["segments"][name] = {"skipped": reason}
            continue
        fit_rows[name] = selling(train)
        calibration_rows[name] = train
        deploy_rows[name] = selling(usable[usable["segment"] == name])
    return skipped, fit_rows, deploy_rows, calibration_rows


def _evaluate_segments(evaluated_segments: dict, holdout_all: pd.DataFrame, train_all: pd.DataFrame,
                       evaluation: dict) -> list[pd.DataFrame]:
    """Each segment's holdout forecast by the fit made before it, scored into ``evaluation``;
    returns the holdout forecast rows (each member, the band, the naive forecasts)."""
    frames = []
    for name, evaluated in evaluated_segments.items():
        holdout = holdout_all[holdout_all["segment"] == name]
        members = evaluated.members(holdout)
        band = members.pop("quantiles")
        actual = holdout["target"].to_numpy(dtype=float)
        base, last = holdout["_baseline"].to_numpy(), holdout["_last_value"].to_numpy()
        report = _evaluate(actual, members, base, last)
        report["quantiles"] = quantiles.summary(actual, band)
        report["rows"] = {"train": int((train_all["segment"] == name).sum()), "holdout": len(holdout)}
        report["hyperparameters"] = evaluated.hyperparameters
        evaluation["segments"][name] = report
        frame = holdout[["region", "week_start", "store_id", "product_id", "segment", "target"]].copy()
        frames.append(frame.assign(**members, **dict(zip(quantiles.NAMES, band.T)), baseline=base, last_value=last))
    return frames


def _evaluate_region(holdout_forecasts: pd.DataFrame, evaluation: dict) -> None:
    """The region's holdout as one: every member against the naive forecasts, the band and the
    baseline's band, and the baseline per store format."""
    actual = holdout_forecasts["target"].to_numpy(dtype=float)
    evaluation["region"] = _evaluate(actual, {k: holdout_forecasts[k].to_numpy() for k in ("ensemble", "lasso", "nn")},
                                     holdout_forecasts["baseline"], holdout_forecasts["last_value"])
    evaluation["region"]["quantiles"] = quantiles.summary(actual, holdout_forecasts[list(quantiles.NAMES)])
    # the baseline's band (a Poisson count around it), for comparison
    evaluation["region"]["baseline_quantiles"] = quantiles.summary(
        actual, quantiles.poisson(holdout_forecasts["baseline"].to_numpy()))
    evaluation["baseline_by_format"] = {
        fmt: metrics.summary(part["target"], part["baseline"])
        for fmt, part in holdout_forecasts.groupby(holdout_forecasts["segment"].str.split("/").str[0])}


def _untrained(region: str, as_of: pd.Timestamp, config: TrainConfig,
               reason: str) -> tuple[ForecastModel, pd.DataFrame]:
    """A model of a region too young to train: every segment skipped for ``reason``, no holdout
    (it would begin after the as-of week), no reference to monitor against."""
    evaluation = {"segments": {name: {"skipped": reason} for name in SEGMENTS},
                  "holdout": {"first_week": (as_of + pd.Timedelta(weeks=1)).strftime("%Y-%m-%d"), "weeks": 0},
                  "protocol": EVALUATION_PROTOCOL}
    model = ForecastModel(region, as_of.strftime("%Y-%m-%d"), {}, dict.fromkeys(SEGMENTS, reason), config, evaluation)
    return model, pd.DataFrame()


def _forecasts(model: ForecastModel) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda rows: model.predict(rows)["forecast"].to_numpy()


def evaluation_json(model: ForecastModel) -> dict:
    """The per-segment metrics as `mlops-assets run --json` writes them."""
    out = {}
    for name in SEGMENTS:
        report = model.evaluation["segments"].get(name, {"skipped": "no rows in this segment"})
        if "skipped" in report:
            out[name] = {"skipped": report["skipped"]}
            continue
        out[name] = {m: {k: report[m].get(k) for k in metrics.METRICS} for m in MEMBERS}
        out[name]["mape_reduction_vs_baseline"] = report["mape_reduction_vs_baseline"]
        if "quantiles" in report:  # the ensemble's band: the share of actuals below each quantile, pinball
            out[name]["quantiles"] = report["quantiles"]
    return json.loads(json.dumps(out, default=float))

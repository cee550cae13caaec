"""A small network with categorical embeddings (store, product, category, week of year), torch on CPU."""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

EMBED = {"store": 8, "product": 8, "category": 4, "week": 4, "segment": 2}
# During training, this share of store and product ids is replaced by id 0 (unknown), so the
# row that serves stores and products first seen after training is trained, not random.
ID_DROPOUT = 0.05


class EmbeddingNet(nn.Module):
    """``n_segment`` > 0: one network for a region's segments, the segment as a fifth embedding
    (categorical column 4), so thin segments borrow strength from the others. ``quantiles``:
    levels of further outputs beside the point forecast, each the level's quantile of log demand
    (quantiles survive the log: the level's quantile of demand is its ``expm1``)."""

    def __init__(self, n_store: int, n_product: int, n_category: int, n_numeric: int, hidden: int = 64,
                 n_segment: int = 0, quantiles: tuple | list = ()):
        super().__init__()
        self.store = nn.Embedding(n_store, EMBED["store"])
        self.product = nn.Embedding(n_product, EMBED["product"])
        self.category = nn.Embedding(n_category, EMBED["category"])
        self.week = nn.Embedding(54, EMBED["week"])
        self.segment = nn.Embedding(n_segment, EMBED["segment"]) if n_segment else None
        width = n_numeric + sum(v for k, v in EMBED.items() if k != "segment" or n_segment)
        self.quantiles = tuple(float(q) for q in quantiles)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                 nn.Linear(hidden // 2, 1 + len(self.quantiles)))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric, self.store(categorical[:, 0]), self.product(categorical[:, 1]),
                 self.category(categorical[:, 2]), self.week(categorical[:, 3])]
        if self.segment is not None:
            parts.append(self.segment(categorical[:, 4]))
        out = self.mlp(torch.cat(parts, dim=1))
        return out.squeeze(1) if not self.quantiles else out  # the point alone, or point and quantiles


def _tensors(numeric, categorical, y=None):
    out = [torch.from_numpy(np.ascontiguousarray(numeric, dtype=np.float32)),
           torch.from_numpy(np.ascontiguousarray(categorical, dtype=np.int64))]
    if y is not None:
        out.append(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)))
    return out


def relative_error(pred_log: torch.Tensor, target_log: torch.Tensor) -> torch.Tensor:
    """The absolute percentage error of the forecast ``expm1(pred_log)`` against demand
    ``expm1(target_log)`` (> 0), the metric the forecasts are judged by, as a loss whose gradient
    stays bounded: with r = pred_log - target_log, the error is (1 + y) / y * |e^r - 1|, and above
    r = 1 (a forecast about 2.7 times too high) it continues along its tangent instead of
    exponentially, so one wild forecast cannot blow a training step up. Its optimum lies below
    the mean of a skewed demand distribution, where MAPE's optimum is."""
    r = pred_log - target_log
    actual = torch.expm1(target_log)
    e = torch.exp(torch.ones((), dtype=r.dtype))
    ratio = torch.where(r > 1.0, e + e * (r - 1.0), torch.exp(r.clamp(max=1.0)))
    return (((1.0 + actual) / actual.clamp(min=1.0)) * (ratio - 1.0).abs()).mean()


LOSSES = {"mse_log": nn.MSELoss(), "mape": relative_error}


def pinball(pred_log: torch.Tensor, target_log: torch.Tensor, level: float) -> torch.Tensor:
    """The quantile (pinball) loss of ``level``: its minimum is the level's quantile."""
    d = target_log - pred_log
    return torch.maximum(level * d, (level - 1.0) * d).mean()


def combined_loss(point_loss, quantiles: tuple):
    """The point's loss on output 0, plus each quantile output's pinball loss."""
    if not quantiles:
        return point_loss

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = point_loss(out[:, 0], target)
        for k, level in enumerate(quantiles, start=1):
            total = total + pinball(out[:, k], target, level)
        return total
    return loss


# An epoch is at most this many rows, drawn afresh each epoch, in minibatches of at least
# ``batch_size`` and at most EPOCH_ROWS / STEPS rows: a region of a few tens of thousands of rows
# trains as before (every row each epoch, 128 at a time), one of 10^6 rows does a bounded amount
# of work per epoch instead of 10^4 small steps, and early stopping checks it as often.
EPOCH_ROWS = 2**17
STEPS = 128
_INIT_LOCK = threading.Lock()  # torch's global generator initializes the weights


def epoch_plan(n_rows: int, batch_size: int = 128) -> tuple[int, int]:
    """(rows per epoch, minibatch size) for ``n_rows`` training rows."""
    per_epoch = min(n_rows, EPOCH_ROWS)
    return per_epoch, max(batch_size, per_epoch // STEPS)


def train(numeric, categorical, y, sizes: dict, seed: int, epochs: int, val=None, patience: int = 8,
          lr: float = 1e-3, batch_size: int = 128, loss: str = "mse_log") -> tuple[EmbeddingNet, dict]:
    """Train on log demand ``y`` with ``loss`` (``LOSSES``). With ``val`` = (numeric, categorical, y),
    stop early on its loss and keep the best epoch; without it, train exactly ``epochs`` epochs.
    Seeded and deterministic, also when two networks train at once in two threads."""
    with _INIT_LOCK:
        torch.manual_seed(seed)
        net = EmbeddingNet(**sizes)
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    x_num, x_cat, target = _tensors(numeric, categorical, y)
    val_t = _tensors(*val) if val is not None else None
    loss_fn = combined_loss(LOSSES[loss], tuple(sizes.get("quantiles", ())))

    def val_loss() -> float:
        net.eval()
        with torch.no_grad():
            return float(loss_fn(net(val_t[0], val_t[1]), val_t[2]))

    per_epoch, batch_size = epoch_plan(len(target), batch_size)
    history = {"start_val_loss": val_loss() if val_t else float("nan"), "val_loss": [], "best_epoch": epochs,
               "epoch_rows": per_epoch, "batch_size": batch_size}
    best_state, best, stale = None, float("inf"), 0
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(target), generator=generator)[:per_epoch]
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            cat = x_cat[idx].clone()
            cat[:, :2].masked_fill_(torch.rand(cat[:, :2].shape, generator=generator) < ID_DROPOUT, 0)
            opt.zero_grad()
            loss = loss_fn(net(x_num[idx], cat), target[idx])
            loss.backward()
            opt.step()
        if val_t is None:
            continue
        current = val_loss()
        history["val_loss"].append(current)
        if current < best - 1e-5:
            best, stale, history["best_epoch"] = current, 0, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
        history["best_val_loss"] = best
    net.eval()
    return net, history


def predict_log(net: EmbeddingNet, numeric, categorical) -> np.ndarray:
    """The point forecast, log units."""
    out = predict_outputs(net, numeric, categorical)
    return out[:, 0] if out.ndim == 2 else out


def predict_outputs(net: EmbeddingNet, numeric, categorical) -> np.ndarray:
    """Every output, log units: the point, or a column for the point and one per quantile level."""
    x_num, x_cat = _tensors(numeric, categorical)
    with torch.no_grad():
        return net(x_num, x_cat).numpy().astype(np.float64)


def save(net: EmbeddingNet, path) -> None:
    """The state dict as plain arrays in an NPZ: no pickle anywhere, not even inside a torch zip."""
    np.savez(path, **{k: v.detach().cpu().numpy() for k, v in net.state_dict().items()})


def load(path, sizes: dict) -> EmbeddingNet:
    net = EmbeddingNet(**sizes)
    with np.load(path, allow_pickle=False) as npz:
        state = {k: torch.from_numpy(npz[k]) for k in npz.files}
    net.load_state_dict(state, strict=True)
    net.eval()
    return net

"""Training of the pooled ranking LSTM (torch; imported only to train).

One :class:`~sentinel42.model.network.DirectionLSTM` for the whole universe: a sample is one
ticker's window of cross-sectionally normalised features ending at one timestamp. Its return
head is fitted to the target's cross-sectional z-score (mean squared error) and its direction
head to the target's sign (binary cross-entropy, half weight); the return head is the score
the model ranks by. Each epoch sees a seeded random subset of the training samples, and early
stopping keeps the epoch with the best mean rank IC on the validation block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sentinel42.model.ranking.metrics import rank_ic


@dataclass(frozen=True, slots=True)
class RankerConfig:
    window: int
    hidden_size: int = 32
    layers: int = 1
    dropout: float = 0.1
    epochs: int = 12
    patience: int = 3
    batch_size: int = 512
    learning_rate: float = 1e-3
    samples_per_epoch: int = 120_000
    seed: int = 42


@dataclass
class RankerResult:
    network: object
    best_epoch: int
    best_val_ic: float
    history: list[dict[str, float]] = field(default_factory=list)


def gather(values: np.ndarray, t: np.ndarray, i: np.ndarray, window: int) -> np.ndarray:
    """[samples, window, features] float32 windows ending at rows ``t`` of tickers ``i``."""
    rows = t[:, None] + np.arange(-window + 1, 1)[None, :]
    return values[rows, i[:, None], :]


def predict(network: object, values: np.ndarray, t: np.ndarray, i: np.ndarray, window: int,
            batch: int = 8192) -> np.ndarray:  # fmt: skip
    """The return head's score for each (t, i) sample (torch, eval mode)."""
    import torch

    net = network  # DirectionLSTM
    net.eval()  # type: ignore[attr-defined]
    out = []
    with torch.inference_mode():
        for s in range(0, t.shape[0], batch):
            x = torch.from_numpy(
                np.ascontiguousarray(gather(values, t[s : s + batch], i[s : s + batch], window))
            )
            out.append(net(x)[1].numpy())  # type: ignore[operator]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def scatter(t: np.ndarray, i: np.ndarray, score: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    grid = np.full(shape, np.nan)
    grid[t, i] = score
    return grid


def train_ranker(
    config: RankerConfig,
    values: np.ndarray,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    val_target: np.ndarray,
    *,
    progress: Callable[[str], None] | None = None,
) -> RankerResult:
    """Fit on (t, i, label) samples; early-stop on the validation block's mean rank IC.

    Args:
        values: [T, N, F] float32 normalised features.
        train, val: sample rows, ticker columns and labels (cross-sectional z-scores).
        val_target: [T, N] the validation target (for its rank IC), NaN elsewhere.
    """
    import torch
    from torch import nn

    from sentinel42.model.network import DirectionLSTM, NetworkConfig
    from sentinel42.model.trainer import configure_torch

    configure_torch(config.seed)
    net = DirectionLSTM(NetworkConfig(values.shape[2], config.hidden_size, config.layers,
                                      config.dropout))  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    bce, mse = nn.BCEWithLogitsLoss(), nn.MSELoss()
    rng = np.random.default_rng(config.seed)
    t_tr, i_tr, y_tr = train
    best_ic, best_epoch, best_state, stale = -np.inf, 0, None, 0
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        net.train()
        take = min(config.samples_per_epoch, t_tr.shape[0])
        pick = rng.choice(t_tr.shape[0], size=take, replace=False)
        total = 0.0
        for s in range(0, take, config.batch_size):
            b = pick[s : s + config.batch_size]
            x = torch.from_numpy(
                np.ascontiguousarray(gather(values, t_tr[b], i_tr[b], config.window))
            )
            y = torch.from_numpy(y_tr[b].astype(np.float32))
            logit, ret = net(x)
            loss = mse(ret, y) + 0.5 * bce(logit, (y > 0).float())
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * b.shape[0]
        score = scatter(val[0], val[1], predict(net, values, val[0], val[1], config.window),
                        val_target.shape)  # fmt: skip
        ic = float(np.nanmean(rank_ic(score, val_target)))
        row = {"epoch": epoch, "loss": total / max(take, 1), "val_rank_ic": ic}
        history.append(row)
        if progress is not None:
            progress(f"epoch {epoch}/{config.epochs} loss {row['loss']:.4f} val rank IC {ic:+.4f}")
        if ic > best_ic + 1e-6:
            best_ic, best_epoch, stale = ic, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return RankerResult(net, best_epoch, float(best_ic), history)

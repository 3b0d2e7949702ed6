"""Seeded training with early stopping that restores the best weights, and batched inference."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sentinel42.model.network import DirectionLSTM, NetworkConfig

logger = logging.getLogger(__name__)

RETURN_LOSS_WEIGHT = 0.5  # the direction head drives the gate; the return head only ranks


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Optimization settings (from ``Settings.model_*``)."""

    epochs: int = 30
    patience: int = 5
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 42


@dataclass(slots=True)
class TrainResult:
    network: DirectionLSTM
    best_epoch: int
    best_val_log_loss: float
    history: list[dict[str, float]] = field(default_factory=list)


def torch_threads() -> None:
    """One intra-op thread (see :func:`configure_torch` for the measurement)."""
    torch.set_num_threads(1)


def configure_torch(seed: int) -> None:
    """Seed torch and pin it to one thread, so one seed gives one result on a machine.

    The matrices of an LSTM this small are tiny: on the 2-core target machine one thread runs a
    training step far faster than two, whose second thread spins against whatever else runs
    (``scripts/figures/torch_threads.py`` prints both; docs/benchmarks.md). A fixed count also
    keeps float reductions in one order.
    """
    torch.manual_seed(seed)
    # The CPU kernels used here are deterministic at a fixed thread count; we do not call
    # torch.use_deterministic_algorithms: it imports torch._inductor (about 7 s here).
    torch_threads()


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def predict(
    network: DirectionLSTM, x: np.ndarray, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """P(up) and the scaled expected return for windows ``x`` [samples, window, features]."""
    network.eval()
    probs, rets = [], []
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            logit, ret = network(torch.from_numpy(x[start : start + batch_size]))
            probs.append(torch.sigmoid(logit).numpy())
            rets.append(ret.numpy())
    if not probs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(probs).astype(np.float64), np.concatenate(rets).astype(np.float64)


def train_network(
    net_config: NetworkConfig,
    config: TrainConfig,
    train_x: np.ndarray,
    train_ret: np.ndarray,
    val_x: np.ndarray,
    val_ret: np.ndarray,
    *,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train on (windows, scaled target returns); stop early on validation log-loss.

    Args:
        train_x, val_x: [samples, window, features] float32, already normalized.
        train_ret, val_ret: [samples] target returns divided by the training target std; the
            direction label is ``ret > 0``.
        progress: called once per epoch with a line (epoch, loss, validation metrics).

    Returns:
        The network holding the weights of its best validation epoch.
    """
    configure_torch(config.seed)
    network = DirectionLSTM(net_config)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    bce = nn.BCEWithLogitsLoss()
    huber = nn.SmoothL1Loss()
    xt = torch.from_numpy(train_x)
    rt = torch.from_numpy(train_ret.astype(np.float32))
    yt = (rt > 0).float()
    val_y = (val_ret > 0).astype(np.float64)
    generator = torch.Generator().manual_seed(config.seed)
    best_loss, best_epoch, best_state, stale = float("inf"), 0, None, 0
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        network.train()
        order = torch.randperm(xt.shape[0], generator=generator)
        total = 0.0
        for start in range(0, xt.shape[0], config.batch_size):
            batch = order[start : start + config.batch_size]
            logit, ret = network(xt[batch])
            loss = bce(logit, yt[batch]) + RETURN_LOSS_WEIGHT * huber(ret, rt[batch])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
            total += float(loss.detach()) * batch.shape[0]
        p_val, _ = predict(network, val_x)
        val_loss = _log_loss(p_val, val_y)
        val_acc = float(np.mean((p_val > 0.5) == (val_y > 0.5)))
        row = {"epoch": epoch, "loss": total / xt.shape[0], "val_log_loss": val_loss,
               "val_accuracy": val_acc}  # fmt: skip
        history.append(row)
        line = (
            f"epoch {epoch}/{config.epochs} loss {row['loss']:.4f} "
            f"val_log_loss {val_loss:.4f} val_accuracy {val_acc:.3f}"
        )
        logger.debug("%s", line)
        if progress is not None:
            progress(line)
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                if progress is not None:
                    progress(f"early stop at epoch {epoch}; best epoch {best_epoch}")
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    return TrainResult(network, best_epoch, best_loss, history)

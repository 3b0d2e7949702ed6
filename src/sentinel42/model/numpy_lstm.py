"""The promoted LSTM's forward pass in numpy, so a trading run never imports torch.

Training uses torch (:mod:`sentinel42.model.trainer`); deciding needs only the forward pass of
a one- or two-layer LSTM of a few dozen units over a few hundred windows, which numpy does in
milliseconds. Importing torch costs a trading run 2-3 s, more than everything else it does in
steady state. The arithmetic is torch's ``nn.LSTM`` (gate order input, forget, cell, output)
followed by ``DirectionLSTM``'s linear head, in float32 like the checkpoint; the tests compare
it with the torch network on random checkpoints of several shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sentinel42.errors import ModelError


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Shape of the network; saved in checkpoint metadata and used to rebuild it."""

    input_size: int
    hidden_size: int = 32
    layers: int = 1
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        return cls(
            input_size=int(data["input_size"]),
            hidden_size=int(data["hidden_size"]),
            layers=int(data["layers"]),
            dropout=float(data["dropout"]),
        )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so neither branch overflows exp() (numpy would warn and still be right).
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ez = np.exp(x[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


@dataclass(frozen=True)
class LstmLayer:
    w_ih_t: np.ndarray  # [input, 4 * hidden], transposed once at load
    w_hh_t: np.ndarray  # [hidden, 4 * hidden]
    bias: np.ndarray  # [4 * hidden]: bias_ih + bias_hh


@dataclass(frozen=True)
class NumpyLSTM:
    """``DirectionLSTM`` in eval mode, as arrays (dropout is the identity at inference)."""

    layers: tuple[LstmLayer, ...]
    head_w_t: np.ndarray  # [hidden, 2]
    head_b: np.ndarray  # [2]

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, np.ndarray], *, input_size: int, hidden_size: int, layers: int
    ) -> NumpyLSTM:
        """Build from a ``DirectionLSTM`` state dict (as numpy arrays), strictly.

        Raises:
            ModelError: a tensor is missing, unexpected or of the wrong shape.
        """
        h4 = 4 * hidden_size
        expected: dict[str, tuple[int, ...]] = {"head.weight": (2, hidden_size), "head.bias": (2,)}
        for k in range(layers):
            expected[f"lstm.weight_ih_l{k}"] = (h4, input_size if k == 0 else hidden_size)
            expected[f"lstm.weight_hh_l{k}"] = (h4, hidden_size)
            expected[f"lstm.bias_ih_l{k}"] = (h4,)
            expected[f"lstm.bias_hh_l{k}"] = (h4,)
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise ModelError(f"missing tensors {missing}, unexpected tensors {unexpected}")
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != shape:
                raise ModelError(
                    f"tensor {name} has shape {tuple(tensors[name].shape)}, the network needs "
                    f"{shape}"
                )

        def f32(name: str) -> np.ndarray:
            return np.ascontiguousarray(tensors[name], dtype=np.float32)

        built = tuple(
            LstmLayer(
                w_ih_t=np.ascontiguousarray(f32(f"lstm.weight_ih_l{k}").T),
                w_hh_t=np.ascontiguousarray(f32(f"lstm.weight_hh_l{k}").T),
                bias=f32(f"lstm.bias_ih_l{k}") + f32(f"lstm.bias_hh_l{k}"),
            )
            for k in range(layers)
        )
        return cls(built, np.ascontiguousarray(f32("head.weight").T), f32("head.bias"))

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logit, ret)``, each ``[batch]``, for windows ``x`` ``[batch, time, features]``."""
        seq = np.asarray(x, dtype=np.float32)
        batch, steps = seq.shape[0], seq.shape[1]
        for layer in self.layers:
            hidden = layer.w_hh_t.shape[0]
            # The input projection of every step at once; only the recurrence is sequential.
            gates_x = seq @ layer.w_ih_t + layer.bias  # [batch, time, 4 * hidden]
            h = np.zeros((batch, hidden), dtype=np.float32)
            c = np.zeros((batch, hidden), dtype=np.float32)
            out = np.empty((batch, steps, hidden), dtype=np.float32)
            for t in range(steps):
                g = gates_x[:, t, :] + h @ layer.w_hh_t
                i = _sigmoid(g[:, :hidden])
                f = _sigmoid(g[:, hidden : 2 * hidden])
                cell = np.tanh(g[:, 2 * hidden : 3 * hidden])
                o = _sigmoid(g[:, 3 * hidden :])
                c = f * c + i * cell
                h = o * np.tanh(c)
                out[:, t, :] = h
            seq = out
        y = seq[:, -1, :] @ self.head_w_t + self.head_b  # [batch, 2]
        return y[:, 0], y[:, 1]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(up) and the scaled expected return (float64), as ``trainer.predict`` gives them."""
        if x.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        logit, ret = self.forward(x)
        return _sigmoid(logit).astype(np.float64), ret.astype(np.float64)

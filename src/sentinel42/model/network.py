"""The LSTM network alone (no training, no I/O): windows in, P(up) logit and a return out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


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


class DirectionLSTM(nn.Module):
    """LSTM over a window of bar features with two heads.

    ``forward`` returns ``(logit, ret)``, each ``[batch]``: the logit of P(return > 0) and the
    expected return over the horizon in units of the training target's std.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.layers,
            batch_first=True,
            # torch applies LSTM dropout only between stacked layers; one layer gets it below.
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.lstm(x)  # [batch, time, hidden]
        last = self.dropout(out[:, -1, :])  # [batch, hidden]
        y = self.head(last)  # [batch, 2]
        return y[:, 0], y[:, 1]

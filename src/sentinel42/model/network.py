"""The LSTM network alone (no training, no I/O): windows in, P(up) logit and a return out."""

from __future__ import annotations

import torch
from torch import nn

from sentinel42.model.numpy_lstm import NetworkConfig

__all__ = ["DirectionLSTM", "NetworkConfig"]


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

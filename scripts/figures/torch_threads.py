"""Milliseconds per training step of the default-size direction LSTM, at 1 and at 2 torch threads.

uv run --frozen python scripts/figures/torch_threads.py [--batches N] [--epochs E] [--quick]

Runs ``model.trainer.train_network`` (the real loop: Adam, clipping, the validation pass after
each epoch) on seeded random windows of the default shape (window 32, the feature set's width,
batch 256, hidden 32, one layer), once with the thread count the trainer pins (one) and once with
``trainer.torch_threads`` replaced to set two. Patience is set above the epochs, so every run
makes ``--epochs`` x ``--batches`` steps (default 4 x 20); the step time is the run's wall time
divided by its steps (the validation pass, 256 windows, is included). Markdown on stdout, with
the machine's load average (the second thread competes with whatever else runs). ``--quick``:
2 epochs x 5 batches.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from _cli import Size, parse_sizes

from sentinel42.model import trainer
from sentinel42.model.features import FeatureSpec
from sentinel42.model.network import NetworkConfig
from sentinel42.model.trainer import TrainConfig, train_network

WINDOW, BATCH = 32, 256
SIZES = (
    Size("--batches", "batches per epoch", full=20, quick=5),
    Size("--epochs", "epochs", full=4, quick=2),
)


def step_ms(threads: int, batches: int, epochs: int) -> float:
    original = trainer.torch_threads
    trainer.torch_threads = lambda: torch.set_num_threads(threads)
    try:
        rng = np.random.default_rng(0)
        width = len(FeatureSpec(WINDOW, 4).names)
        x = rng.normal(size=(batches * BATCH, WINDOW, width)).astype(np.float32)
        val = rng.normal(size=(BATCH, WINDOW, width)).astype(np.float32)
        start = time.perf_counter()
        train_network(
            NetworkConfig(width, 32, 1, 0.1), TrainConfig(epochs, epochs + 1, BATCH, 1e-3, 42),
            x, rng.normal(size=len(x)), val, rng.normal(size=len(val)),
        )  # fmt: skip
        if torch.get_num_threads() != threads:
            raise RuntimeError(f"ran with {torch.get_num_threads()} threads, not {threads}")
        return (time.perf_counter() - start) / (batches * epochs) * 1000
    finally:
        trainer.torch_threads = original


def main(argv: list[str] | None = None) -> int:
    batches, epochs = parse_sizes(__doc__.splitlines()[0], SIZES, argv)
    step_ms(1, 1, 1)  # warm-up: the first call pays torch's one-off imports
    rows = [(threads, step_ms(threads, batches, epochs)) for threads in (1, 2)]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"### Training step, default-size LSTM ({epochs} x {batches} steps, batch {BATCH}, "
          f"{os.cpu_count()} CPUs, load {load})\n")  # fmt: skip
    print("| torch threads | ms per step |\n|---:|---:|")
    for threads, ms in rows:
        print(f"| {threads} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The numpy forward pass a trading run uses gives the torch network's outputs, loads strictly,
and keeps torch out of a process that only predicts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sentinel42.errors import ModelError
from sentinel42.model.network import DirectionLSTM, NetworkConfig
from sentinel42.model.numpy_lstm import NumpyLSTM
from sentinel42.model.registry import ModelRegistry
from sentinel42.model.trainer import predict
from tests.conftest import ROOT

SHAPES = [  # (input, hidden, layers, window, batch, input scale)
    (3, 4, 1, 1, 1, 1.0),
    (9, 32, 1, 32, 257, 1.0),
    (9, 32, 1, 32, 64, 40.0),  # saturated gates: sigmoid and tanh at their ends
    (5, 16, 2, 12, 33, 3.0),
    (12, 8, 3, 40, 7, 0.1),
]


def _random_network(seed: int, n_in: int, hidden: int, layers: int) -> DirectionLSTM:
    torch.manual_seed(seed)
    net = DirectionLSTM(NetworkConfig(input_size=n_in, hidden_size=hidden, layers=layers))
    with torch.no_grad():  # wider than the default init, so the gates leave their middle
        for p in net.parameters():
            p.mul_(3.0)
    return net.eval()


def _numpy_of(net: DirectionLSTM) -> NumpyLSTM:
    cfg = net.config
    return NumpyLSTM.from_tensors(
        {k: v.numpy() for k, v in net.state_dict().items()},
        input_size=cfg.input_size,
        hidden_size=cfg.hidden_size,
        layers=cfg.layers,
    )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_numpy_forward_pass_matches_torch(seed, shape):
    n_in, hidden, layers, window, batch, scale = shape
    net = _random_network(seed, n_in, hidden, layers)
    x = (np.random.default_rng(seed).standard_normal((batch, window, n_in)) * scale).astype(
        np.float32
    )
    p_torch, r_torch = predict(net, x)
    p_np, r_np = _numpy_of(net).predict(x)
    assert p_np.dtype == np.float64 and p_np.shape == (batch,)
    np.testing.assert_allclose(p_np, p_torch, rtol=0, atol=2e-6)
    np.testing.assert_allclose(r_np, r_torch, rtol=1e-5, atol=2e-5)
    assert ((p_np > 0.5) == (p_torch > 0.5)).all()


def test_no_windows_give_empty_predictions():
    p, r = _numpy_of(_random_network(0, 3, 4, 1)).predict(np.zeros((0, 5, 3), np.float32))
    assert p.shape == r.shape == (0,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("head.bias"), r"missing tensors \['head.bias'\]"),
        (lambda t: t.update(extra=np.zeros(2, np.float32)), r"unexpected tensors \['extra'\]"),
        (
            lambda t: t.update({"lstm.weight_hh_l0": np.zeros((16, 3), np.float32)}),
            r"lstm.weight_hh_l0 has shape \(16, 3\), the network needs \(16, 4\)",
        ),
    ],
)
def test_a_state_dict_that_does_not_fit_is_refused_by_name(change, message):
    tensors = {k: v.numpy().copy() for k, v in _random_network(0, 3, 4, 1).state_dict().items()}
    change(tensors)
    with pytest.raises(ModelError, match=message):
        NumpyLSTM.from_tensors(tensors, input_size=3, hidden_size=4, layers=1)


def test_a_loaded_checkpoint_predicts_as_its_torch_network(trained: dict):
    registry = ModelRegistry(trained["settings"].models_dir)
    loaded = registry.load(trained["doc"]["version"])
    x = np.random.default_rng(1).standard_normal((50, loaded.spec.window, 9)).astype(np.float32)
    x = x[:, :, : len(loaded.spec.names)]
    assert isinstance(loaded.network, DirectionLSTM) and not loaded.network.training
    np.testing.assert_allclose(loaded.lstm.predict(x)[0], predict(loaded.network, x)[0], atol=2e-6)


PREDICT = """
import json, sys
from datetime import timedelta
from sentinel42.synthetic import synthetic_bars
from sentinel42.model.predictor import predict_with
from sentinel42.model.registry import ModelRegistry

registry = ModelRegistry(sys.argv[1])
loaded = registry.load(sys.argv[2])
bars = synthetic_bars(["AAA", "BBB"], 8, seed=5)
as_of = max(f.index[-1] for f in bars.values()).to_pydatetime() + timedelta(minutes=15)
result = predict_with(loaded, bars, as_of, interval_minutes=15)
print(json.dumps({
    "predicted": sorted(result.predictions),
    "modules": sorted(m for m in ("torch", "transformers") if m in sys.modules),
}))
"""


def test_predicting_with_a_checkpoint_never_imports_torch(trained: dict):
    done = subprocess.run(
        [sys.executable, "-c", PREDICT, str(trained["settings"].models_dir),
         trained["doc"]["version"]],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"predicted": ["AAA", "BBB"], "modules": []}

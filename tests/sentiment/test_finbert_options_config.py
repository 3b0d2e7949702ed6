"""FinBERT's load options are built from the settings, every field from its own env name."""

from __future__ import annotations

from dataclasses import fields

import pytest

from sentinel42.sentiment.finbert_options import FinBertOptions
from sentinel42.sentiment.service import finbert_options
from sentinel42.settings import load_settings

ENV = {
    "SENTINEL42_FINBERT_MODEL": "some/finbert",
    "SENTINEL42_FINBERT_REVISION": "abc123",
    "SENTINEL42_SENTIMENT_MAX_LENGTH": "96",
    "SENTINEL42_SENTIMENT_THREADS": "3",
    "SENTINEL42_SENTIMENT_QUANTIZE": "true",
}


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    """On top of tests/conftest.py's clean environment (data dir ``tmp_path / "data"``)."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def test_finbert_options_take_every_field_from_its_env_name(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTINEL42_SENTIMENT_RUNTIME", "onnx")
    options = FinBertOptions.from_settings(load_settings())
    expected = FinBertOptions(
        model="some/finbert",
        revision="abc123",
        max_length=96,
        threads=3,
        quantize=True,
        onnx_dir=str(tmp_path / "data" / "cache" / "finbert-onnx"),
    )
    assert {f.name for f in fields(FinBertOptions)} == {
        "model",
        "revision",
        "max_length",
        "threads",
        "quantize",
        "onnx_dir",
    }
    assert options == expected != FinBertOptions()
    assert finbert_options(load_settings()) == expected


def test_the_torch_runtime_has_no_onnx_dir(monkeypatch):
    monkeypatch.setenv("SENTINEL42_SENTIMENT_RUNTIME", "torch")
    options = FinBertOptions.from_settings(load_settings())
    assert options.onnx_dir is None and options.model == "some/finbert"

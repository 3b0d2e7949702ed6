"""FinBERT under ONNX Runtime: exported once per weights, scores as transformers does, keeps
torch out of every later process, and never stops scoring when the export cannot be had."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from sentinel42.errors import ModelError
from sentinel42.sentiment import finbert
from sentinel42.sentiment.finbert import FinBertScorer, clear_cache, load_finbert
from sentinel42.sentiment.finbert_onnx import SCORER_FILE, OnnxFinBertScorer
from sentinel42.sentiment.finbert_options import FinBertOptions
from tests.conftest import ROOT
from tests.sentiment.conftest import assert_int8_tracks_fp32, save_tiny_bert

PROSUS = {0: "positive", 1: "negative", 2: "neutral"}
TEXTS = [
    "company beats profit forecasts and raises guidance",
    "shares fall",
    "",
    "weak outlook to hold event " * 20,  # past max_length: truncated alike
    "Zürich apple 📈 record demand",
    "misses",
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _copies(onnx_dir):
    return sorted(p for p in onnx_dir.iterdir() if (p / SCORER_FILE).is_file())


@pytest.mark.parametrize("seed", [0, 1])
def test_the_exported_copy_scores_as_transformers(tmp_path, seed):
    model = save_tiny_bert(tmp_path / "m", PROSUS, 0, bias=0.0, seed=seed)
    torch_scorer = load_finbert(FinBertOptions(model=str(model), max_length=16))
    onnx_scorer = load_finbert(
        FinBertOptions(model=str(model), max_length=16, onnx_dir=str(tmp_path / "onnx"))
    )
    assert isinstance(torch_scorer, FinBertScorer)
    assert isinstance(onnx_scorer, OnnxFinBertScorer)
    assert (onnx_scorer.name, onnx_scorer.revision) == (torch_scorer.name, torch_scorer.revision)
    expected = torch_scorer.probabilities(TEXTS)
    for batch_size in (1, 4, 32):
        got = onnx_scorer.probabilities(TEXTS, batch_size=batch_size)
        for want, have in zip(expected, got, strict=True):
            assert have == pytest.approx(want, abs=1e-5)
    spread = [p["positive"] for p in expected]
    assert max(spread) - min(spread) > 1e-3  # the texts really score differently


SCORE = """
import json, sys
from sentinel42.sentiment.finbert import load_finbert
from sentinel42.sentiment.finbert_options import FinBertOptions
scorer = load_finbert(FinBertOptions(model=sys.argv[1], max_length=16, onnx_dir=sys.argv[2]))
print(json.dumps({
    "runtime": getattr(scorer, "runtime", "torch"),
    "positive": [s.p_positive for s in scorer.score(json.loads(sys.argv[3]))],
    "modules": sorted(m for m in ("torch", "transformers") if m in sys.modules),
}))
"""


def _score_in_fresh_process(model, onnx_dir) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCORE, str(model), str(onnx_dir), json.dumps(TEXTS)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_export_happens_once_and_later_processes_never_import_torch(tmp_path):
    model = save_tiny_bert(tmp_path / "m", PROSUS, 0, bias=0.0)
    onnx_dir = tmp_path / "onnx"
    first = _score_in_fresh_process(model, onnx_dir)  # exports, in a child of its own
    assert first["runtime"] == "onnx"
    assert first["modules"] == []
    (copy,) = _copies(onnx_dir)
    exported_at = json.loads((copy / SCORER_FILE).read_text())["exported_at"]

    second = _score_in_fresh_process(model, onnx_dir)
    assert second == first
    assert _copies(onnx_dir) == [copy]
    assert json.loads((copy / SCORER_FILE).read_text())["exported_at"] == exported_at


def test_new_weights_in_the_same_directory_are_exported_again(tmp_path):
    model = tmp_path / "m"
    options = FinBertOptions(model=str(save_tiny_bert(model, PROSUS, 0)), max_length=16,
                             onnx_dir=str(tmp_path / "onnx"))  # fmt: skip
    before = load_finbert(options)
    save_tiny_bert(model, PROSUS, 1)  # retrained in place: another revision
    stat = (model / "model.safetensors").stat()
    os.utime(model / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    clear_cache()
    after = load_finbert(options)
    assert isinstance(after, OnnxFinBertScorer)
    assert after.revision != before.revision
    assert after.score(["shares fall"])[0].label == "negative"
    assert len(_copies(tmp_path / "onnx")) == 2


def test_an_export_that_cannot_be_written_falls_back_to_transformers(tmp_path, caplog):
    model = save_tiny_bert(tmp_path / "m", PROSUS, 1)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="sentinel42.sentiment.finbert"):
        scorer = load_finbert(FinBertOptions(model=str(model), onnx_dir=str(blocker / "onnx")))
    assert isinstance(scorer, FinBertScorer)
    assert scorer.score(["shares fall"])[0].label == "negative"
    assert "ONNX export failed" in caplog.text


def test_a_damaged_copy_is_removed_scoring_goes_on_and_the_next_load_rebuilds_it(tmp_path, caplog):
    model = save_tiny_bert(tmp_path / "m", PROSUS, 2)
    options = FinBertOptions(model=str(model), onnx_dir=str(tmp_path / "onnx"))
    assert isinstance(load_finbert(options), OnnxFinBertScorer)
    (copy,) = _copies(tmp_path / "onnx")
    (copy / "model.onnx").write_bytes(b"not a model")
    clear_cache()
    with caplog.at_level(logging.WARNING, logger="sentinel42.sentiment.finbert"):
        fallback = load_finbert(options)
    assert isinstance(fallback, FinBertScorer)
    assert "cannot be loaded" in caplog.text and not copy.exists()
    clear_cache()
    rebuilt = load_finbert(options)
    assert isinstance(rebuilt, OnnxFinBertScorer)
    assert rebuilt.score(["apple"])[0].label == "neutral"


def test_a_model_that_is_nowhere_fails_at_once_without_an_export(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def no_child(options):
        raise AssertionError("no export child for a model that cannot be had")

    monkeypatch.setattr(finbert, "_export_in_child", no_child)
    onnx_dir = str(tmp_path / "onnx")
    with pytest.raises(ModelError, match="not in the local cache and HF_HUB_OFFLINE is set"):
        load_finbert(FinBertOptions(model="nobody/no-such-finbert", onnx_dir=onnx_dir))
    with pytest.raises(ModelError, match="does not exist"):
        load_finbert(FinBertOptions(model=str(tmp_path / "a" / "b" / "c"), onnx_dir=onnx_dir))


def test_an_int8_copy_is_its_own_model_and_keeps_the_labels(tmp_path, balanced_bert):
    onnx_dir = str(tmp_path / "onnx")
    options = FinBertOptions(model=str(balanced_bert), max_length=16, onnx_dir=onnx_dir)
    fp32 = load_finbert(options)
    int8 = load_finbert(replace(options, quantize=True))
    assert isinstance(fp32, OnnxFinBertScorer) and isinstance(int8, OnnxFinBertScorer)
    assert int8.revision == fp32.revision + "+ort-int8"
    assert int8.directory != fp32.directory and int8.directory.name.endswith("-int8")
    assert_int8_tracks_fp32(fp32, int8)

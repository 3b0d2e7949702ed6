from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.errors import ConfigError, ModelError
from sentinel42.sentiment.finbert import clear_cache, load_finbert
from sentinel42.sentiment.finbert_options import FinBertOptions
from sentinel42.sentiment.metrics import macro_f1
from sentinel42.sentiment.service import build_scorer
from sentinel42.settings import load_settings
from tests.sentiment.conftest import (
    INT8_TOLERANCE,
    PROSUS,
    assert_int8_tracks_fp32,
    labelled_texts,
    save_tiny_bert,
)

OTHER = {0: "Neutral", 1: "Bullish", 2: "Bearish"}  # another order, other names


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.mark.parametrize(
    ("id2label", "favoured", "expected"),
    [
        (PROSUS, 0, "positive"),
        (PROSUS, 1, "negative"),
        (OTHER, 0, "neutral"),
        (OTHER, 2, "negative"),
    ],
)
def test_labels_come_from_the_models_id2label(tmp_path, id2label, favoured, expected):
    directory = save_tiny_bert(tmp_path / "m", id2label, favoured)
    scorer = load_finbert(FinBertOptions(model=str(directory), max_length=16))
    scores = scorer.score(["company beats profit forecasts", "shares fall", "x " * 100])
    assert [s.label for s in scores] == [expected] * 3
    for s in scores:
        assert abs(s.p_positive + s.p_negative + s.p_neutral - 1) < 1e-5
        assert s.score == pytest.approx(s.p_positive - s.p_negative)
    assert scorer.name == "m"
    assert scorer.revision.startswith("sha256:")


def test_batching_and_padding_do_not_change_the_scores(tmp_path):
    scorer = load_finbert(FinBertOptions(model=str(save_tiny_bert(tmp_path / "m", PROSUS, 2))))
    texts = ["apple", "company beats profit forecasts and raises guidance", "weak outlook"]
    one = [s.p_positive for t in texts for s in scorer.score([t], batch_size=1)]
    many = [s.p_positive for s in scorer.score(texts, batch_size=32)]
    assert one == pytest.approx(many, abs=1e-5)


def test_model_is_loaded_once_per_process(tmp_path):
    options = FinBertOptions(model=str(save_tiny_bert(tmp_path / "m", PROSUS, 0)))
    assert load_finbert(options) is load_finbert(options)


def test_int8_keeps_a_balanced_models_probabilities_and_labels(balanced_bert):
    fp32 = load_finbert(FinBertOptions(model=str(balanced_bert), max_length=16))
    int8 = load_finbert(FinBertOptions(model=str(balanced_bert), max_length=16, quantize=True))
    assert int8.revision == fp32.revision + "+int8"
    assert_int8_tracks_fp32(fp32, int8)


def test_check_quantization_command_reports_both_models_on_a_labelled_set(
    balanced_bert, tmp_path, monkeypatch
):
    labelled = tmp_path / "labelled.csv"
    rows = labelled_texts(2, 30)
    numeric = {"negative": "0", "positive": "1", "neutral": "2"}  # the tweets' coding
    labelled.write_text(
        "text,label\n" + "".join(f"{t},{numeric[label]}\n" for t, label in rows), "utf-8"
    )
    monkeypatch.setenv("SENTINEL42_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SENTINEL42_FINBERT_MODEL", str(balanced_bert))
    monkeypatch.setenv("SENTINEL42_SENTIMENT_RUNTIME", "torch")
    monkeypatch.setenv("SENTINEL42_SENTIMENT_MAX_LENGTH", "16")
    result = CliRunner().invoke(app, ["sentiment", "check-quantization", str(labelled), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)

    options = FinBertOptions(model=str(balanced_bert), max_length=16)
    texts, truth = [t for t, _ in rows], [label for _, label in rows]
    fp32 = [s.label for s in load_finbert(options).score(texts)]
    int8 = [s.label for s in load_finbert(replace(options, quantize=True)).score(texts)]
    assert report["model"] == "balanced-bert" and report["texts"] == 30
    assert report["int8_revision"] == report["revision"] + "+int8"
    same = sum(a == b for a, b in zip(fp32, int8, strict=True))
    assert report["agreement"] == round(same / 30, 4)
    assert 0.0 < report["max_abs_diff"] <= INT8_TOLERANCE
    assert report["fp32_macro_f1"] == round(macro_f1(truth, fp32), 4)
    assert report["int8_macro_f1"] == round(macro_f1(truth, int8), 4)
    assert report["fp32_macro_f1"] > 0.2  # the labels were read from the file, not ignored


def test_missing_model_fails_fast_and_falls_back_with_the_scorer_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="not in the local cache"):
        load_finbert(FinBertOptions(model="nobody/no-such-finbert"))
    settings = load_settings(data_dir=tmp_path, finbert_model="nobody/no-such-finbert")
    scorer = build_scorer(settings)
    assert scorer.name == "sentinel42-fallback"
    assert scorer.score(["Company beats profit forecasts"])[0].scorer == "sentinel42-fallback"


def test_required_finbert_turns_the_fallback_into_an_error(tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        finbert_model=str(tmp_path / "absent" / "dir" / "finbert"),
        sentiment_require_finbert=True,
    )
    with pytest.raises(ConfigError, match="REQUIRE_FINBERT"):
        build_scorer(settings)


def test_build_scorer_uses_a_local_model_directory(tmp_path):
    directory = save_tiny_bert(tmp_path / "my-finbert", OTHER, 1)
    scorer = build_scorer(load_settings(data_dir=tmp_path, finbert_model=str(directory)))
    assert scorer.name == "my-finbert"
    assert scorer.score(["apple"])[0].label == "positive"

from __future__ import annotations

import pytest

from sentinel42.errors import ConfigError, ModelError
from sentinel42.sentiment.finbert import FinBertOptions, clear_cache, load_finbert
from sentinel42.sentiment.service import build_scorer
from sentinel42.settings import load_settings
from tests.sentiment.conftest import save_tiny_bert

PROSUS = {0: "positive", 1: "negative", 2: "neutral"}
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


def test_quantized_model_records_its_own_revision(tmp_path):
    directory = save_tiny_bert(tmp_path / "m", PROSUS, 0)
    fp32 = load_finbert(FinBertOptions(model=str(directory)))
    int8 = load_finbert(FinBertOptions(model=str(directory), quantize=True))
    assert int8.revision == fp32.revision + "+int8"
    assert int8.score(["company beats"])[0].label == "positive"


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

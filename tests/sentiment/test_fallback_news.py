"""The fallback on news sentences (not tweets), its finance rules, and its held-out floor.

The floor is on the holdout half of the labelled tweets (written and labelled by others, never
used to choose anything), a little under the figure ``scripts/figures/fallback_sentiment.py``
prints for the shipped model (docs/news-sentiment.md), so a retrained model that generalises
worse fails here. ``news_sentences_test.csv`` is hand-written by the project, with the rules it
would measure: a smoke test only, without a floor (see tests/sentiment/data/README.md).
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sentinel42.sentiment.fallback import (
    DENSE_NAMES,
    FallbackScorer,
    LexiconScorer,
    dense_features,
    save_model,
)
from sentinel42.sentiment.finance_rules import finance_signals
from tests.sentiment.conftest import SHARED_DATA

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[2]
LABELS = {"0": "negative", "1": "positive", "2": "neutral"}


def _read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [LABELS.get(r["label"], r["label"]) for r in rows]


def _training_script():
    spec = importlib.util.spec_from_file_location(
        "train_fallback_sentiment", ROOT / "scripts" / "train_fallback_sentiment.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn", "positive"),
        ("Net sales decreased by 12 percent", "negative"),
        ("Operating loss narrowed to EUR 2.0 mn from EUR 5.3 mn", "positive"),
        ("Operating loss widened to EUR 5.3 mn from EUR 2.0 mn", "negative"),
        ("The company will cut 120 jobs at its plant in Lahti", "negative"),
        ("The company's head office is located in Lahti", "neutral"),
    ],
)
def test_fallback_reads_the_direction_of_news_sentences(text, label):
    assert FallbackScorer().score([text])[0].label == label


@pytest.mark.parametrize(
    ("text", "good", "bad"),
    [
        # direction x figure: a falling loss is good news, a falling profit bad
        ("Operating loss narrowed to EUR 1.2 mn from EUR 4.5 mn", 2, 0),
        ("Pretax profit dropped to GBP 12 million from GBP 19 million", 0, 2),
        # transitive verbs look at their object: jobs are wanted, costs are not
        ("Norvik will cut about 250 jobs", 0, 1),
        ("The programme cut costs by a fifth", 1, 0),
        # a comparison without a verb: "X (Y)" and "X compared with a loss of Y"
        ("Cash flow from operations was EUR 55 mn (EUR 38 mn).", 1, 0),
        ("Profit before taxes was EUR 4.6 mn, compared to a loss of EUR 1.3 mn.", 1, 0),
        ("Net loss was EUR 2 mn compared with a net loss of EUR 4 mn.", 1, 0),
        # years are dates, not figures; "up to" and "set up" are not moves
        ("The programme covers the period 2024-2026.", 0, 0),
        ("The company will set up a unit of up to 40 people.", 0, 0),
        ("The company returned to profit in the third quarter.", 1, 0),
        ("The company swung to a loss in the third quarter.", 0, 1),
        ("Sales did not increase in the quarter.", 0, 1),
    ],
)
def test_finance_signals_compose_direction_with_the_figure(text, good, bad):
    sig = finance_signals(text)
    assert sig.moves_good + sig.compared_good + sig.events_good == good
    assert sig.moves_bad + sig.compared_bad + sig.events_bad == bad


def test_dense_features_follow_the_declared_names():
    assert len(dense_features("Net sales rose 5%")) == len(DENSE_NAMES)
    assert FallbackScorer().dense_names == DENSE_NAMES


def test_news_test_sentences_are_scored_by_both_offline_scorers():
    # A smoke test, no floor: the project wrote these sentences and the rules, so a figure on
    # them says little about news written by others (docs/news-sentiment.md).
    texts, truth = _read(DATA / "news_sentences_test.csv")
    assert len(texts) == 210 and set(truth) == {"positive", "negative", "neutral"}
    for scorer in (FallbackScorer(), LexiconScorer()):
        labels = [s.label for s in scorer.score(texts)]
        assert len(labels) == 210 and set(labels) == {"positive", "negative", "neutral"}


def _figures_script():
    spec = importlib.util.spec_from_file_location(
        "fallback_sentiment", ROOT / "scripts" / "figures" / "fallback_sentiment.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tweet_holdout_half_beats_the_floor_and_the_majority_class():
    # Tweets and labels nobody here wrote; the holdout half never chose anything.
    path = SHARED_DATA / "labeled" / "twitter_financial_news_sentiment_valid.csv"
    if not path.exists():
        pytest.skip(f"labelled data {path} is absent (it lives beside the repository)")
    script = _figures_script()
    result = script.figures(script.read(path), _training_script().is_holdout)
    holdout = result["holdout"]
    assert holdout["rows"] + result["tune"]["rows"] == result["all"]["rows"] == 2388
    assert holdout["model_macro_f1"] >= 0.77  # measured 0.785; the first shipped model 0.766
    assert holdout["majority_macro_f1"] < 0.3 < holdout["model_macro_f1"]
    assert holdout["majority_accuracy"] < holdout["model_accuracy"]


def test_figures_script_scores_each_half_against_the_majority_class(tmp_path, capsys):
    csv_path = tmp_path / "labeled" / "twitter_financial_news_sentiment_valid.csv"
    csv_path.parent.mkdir()
    rows = [("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn", "1"),
            ("Net sales decreased by 12 percent", "0"),
            ("The company's head office is located in Lahti", "2"),
            ("The company will cut 120 jobs at its plant in Lahti", "0"),
            ("Pretax profit dropped to GBP 12 million from GBP 19 million", "0"),
            ("The meeting is on Tuesday", "2")]  # fmt: skip
    csv_path.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), "utf-8")
    script = _figures_script()
    assert script.main(["--data", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    whole = result["all"]
    # The majority class is the train split's (neutral), not this file's commonest (negative).
    assert whole["rows"] == 6 and whole["labels"] == {"negative": 3, "neutral": 2, "positive": 1}
    assert whole["majority_accuracy"] == round(2 / 6, 4)
    assert whole["majority_macro_f1"] == round((0 + 0 + 2 * 2 / (2 * 2 + 4)) / 3, 4)
    assert whole["model_accuracy"] == 1.0 and whole["model_macro_f1"] == 1.0
    assert result["holdout"]["rows"] + result["tune"]["rows"] == 6
    assert [r["independent"] for r in result.values()] == [True, False, False]
    csv_path.write_text("text,label\nsomething,bullish\n", "utf-8")
    with pytest.raises(ValueError, match="not 0, 1 or 2"):
        script.main(["--data", str(tmp_path)])


def test_validation_halves_are_disjoint_and_do_not_depend_on_row_order():
    script = _training_script()
    texts = [f"headline {i}" for i in range(200)]
    labels = ["neutral"] * 200
    tune, holdout = script.halve((texts, labels))
    again_tune, again_holdout = script.halve((texts[::-1], labels))
    assert not set(tune[0]) & set(holdout[0])
    assert sorted(tune[0]) == sorted(again_tune[0])
    assert sorted(holdout[0]) == sorted(again_holdout[0])
    assert 70 < len(holdout[0]) < 130


def test_news_dev_and_test_sentences_do_not_overlap():
    dev, _ = _read(DATA / "news_sentences_dev.csv")
    test, _ = _read(DATA / "news_sentences_test.csv")
    assert not set(dev) & set(test)


def test_a_model_without_the_dense_block_still_loads_and_scores(tmp_path):
    # The first shipped file had no dense columns; --evaluate --compare reads such files.
    path = tmp_path / "old.npz"
    vocab = ["w:beats", "w:misses"]
    coef = np.array([[-2.0, 2.0], [0.0, 0.0], [2.0, -2.0]])  # [classes, features]
    save_model(
        path,
        vocab,
        np.ones(2),
        coef,
        np.zeros(3),
        ["negative", "neutral", "positive"],
        {},
    )
    scorer = FallbackScorer(path)
    assert scorer.dense_names == ()
    assert [s.label for s in scorer.score(["X beats", "X misses", ""])] == [
        "positive",
        "negative",
        "neutral",
    ]

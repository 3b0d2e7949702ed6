from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
WORDS = [
    "company",
    "beats",
    "profit",
    "forecasts",
    "and",
    "raises",
    "guidance",
    "misses",
    "cuts",
    "shares",
    "fall",
    "rise",
    "apple",
    "record",
    "demand",
    "weak",
    "outlook",
    "to",
    "hold",
    "event",
]


def save_tiny_bert(
    directory: Path, id2label: dict[int, str], favoured: int, *, bias: float = 6.0, seed: int = 0
) -> Path:
    """A tiny BERT classifier, saved like a FinBERT directory; its bias favours one output
    (``bias=0``: the random weights alone decide, so scores vary from text to text)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab_file=str(directory / "vocab.txt"))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
        num_labels=3,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        if not bias:  # widen the random weights (std 0.02) so texts score apart
            for p in model.parameters():
                p.mul_(8.0)
        model.classifier.bias.zero_()
        model.classifier.bias[favoured] = bias
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def settings(tmp_path):
    from sentinel42.settings import load_settings

    return load_settings(data_dir=tmp_path, tickers=["AAPL", "MSFT"])


@pytest.fixture
def store(settings):
    from sentinel42.persistence import open_store

    with open_store(settings) as s:
        yield s

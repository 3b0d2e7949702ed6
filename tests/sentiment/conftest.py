from __future__ import annotations

import random
from collections import Counter
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


POSITIVE_WORDS = ("beats", "raises", "rise", "record")
NEGATIVE_WORDS = ("misses", "cuts", "fall", "weak")
PROSUS = {0: "positive", 1: "negative", 2: "neutral"}


def labelled_texts(seed: int, n: int) -> list[tuple[str, str]]:
    """Varied texts over :data:`WORDS`, a third each with a positive word, a negative word or
    neither, labelled by that rule."""
    rng = random.Random(seed)
    plain = [w for w in WORDS if w not in POSITIVE_WORDS + NEGATIVE_WORDS]
    out = []
    for i in range(n):
        label = ("positive", "negative", "neutral")[i % 3]
        words = rng.sample(plain, rng.randint(1, 5))
        if label != "neutral":
            pool = POSITIVE_WORDS if label == "positive" else NEGATIVE_WORDS
            words += rng.sample(pool, rng.randint(1, 2))
        rng.shuffle(words)
        out.append((" ".join(words), label))
    return out


def save_balanced_bert(directory: Path, *, steps: int = 100, seed: int = 0) -> Path:
    """A tiny BERT trained a few steps on :func:`labelled_texts`, so that its fp32 labels vary
    from text to text (unlike :func:`save_tiny_bert`'s, which a bias or random weights make
    one class): int8 quantization then has labels to keep or lose. Saved like FinBERT, with
    :data:`PROSUS` labels."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizer

    save_tiny_bert(directory, PROSUS, 0, bias=0.0, seed=seed)
    tokenizer = BertTokenizer.from_pretrained(directory)
    model = BertForSequenceClassification.from_pretrained(
        directory, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    train = labelled_texts(seed, 48)
    batch = tokenizer([t for t, _ in train], padding=True, return_tensors="pt")
    index = {v: k for k, v in PROSUS.items()}
    target = torch.tensor([index[label] for _, label in train])
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains 4x slower on threads fighting for cores
    try:
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(directory)
    return directory


# Texts the balanced model was not trained on; and how far int8 may move a probability.
VARIED = [text for text, _ in labelled_texts(1, 45)]
INT8_TOLERANCE = 0.02


def _margin(probs: dict[str, float]) -> float:
    top, second = sorted(probs.values(), reverse=True)[:2]
    return top - second


def assert_int8_tracks_fp32(fp32, int8) -> None:
    """int8 moves every probability a little (not zero: it is another model) and keeps the
    label of every text fp32 is not torn on; the model's labels vary, so a scrambled int8
    cannot keep them by luck."""
    p32, p8 = fp32.probabilities(VARIED), int8.probabilities(VARIED)
    labels32 = [s.label for s in fp32.score(VARIED)]
    labels8 = [s.label for s in int8.score(VARIED)]
    counts = Counter(labels32)
    assert len(counts) == 3 and max(counts.values()) <= 0.75 * len(VARIED), counts
    diff = max(abs(a[k] - b[k]) for a, b in zip(p32, p8, strict=True) for k in a)
    assert 0.0 < diff <= INT8_TOLERANCE
    clear = [i for i, p in enumerate(p32) if _margin(p) > 2 * INT8_TOLERANCE]
    assert len(clear) >= 0.8 * len(VARIED)
    assert [labels8[i] for i in clear] == [labels32[i] for i in clear]


@pytest.fixture(scope="session")
def balanced_bert(tmp_path_factory) -> Path:
    return save_balanced_bert(tmp_path_factory.mktemp("balanced") / "balanced-bert")


@pytest.fixture
def settings(tmp_path):
    from sentinel42.settings import load_settings

    return load_settings(data_dir=tmp_path, tickers=["AAPL", "MSFT"])


@pytest.fixture
def store(settings):
    from sentinel42.persistence import open_store

    with open_store(settings) as s:
        yield s

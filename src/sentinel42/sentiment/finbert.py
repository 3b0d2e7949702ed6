"""FinBERT: loading through transformers (the only module importing it), scoring through ONNX
Runtime from a copy exported once (:mod:`sentinel42.sentiment.finbert_onnx`) or through torch.

``ProsusAI/finbert`` by default, or any local directory saved with ``save_pretrained``. Labels
are read from the model's ``id2label`` (FinBERT variants order them differently). Inference is
batched with dynamic padding (each batch is padded to its own longest text, texts sorted by
length first), truncated at ``max_length``, under ``torch.inference_mode``. The model is loaded
once per process (:func:`load_finbert` caches it by model, revision and options). With
``onnx_dir`` set the export runs in a child process, so a scoring process never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sentinel42.errors import ModelError
from sentinel42.sentiment.base import LABELS, ProbabilityScorer, canonical_label, make_score
from sentinel42.sentiment.finbert_options import (
    EXIT_NOT_LOADABLE,
    EXPORT_MODULE,
    WEIGHT_FILES,
    FinBertOptions,
)

logger = logging.getLogger(__name__)

HUB_PROBE_TIMEOUT_S = 3.0
EXPORT_TIMEOUT_S = 900.0  # a first run may download the weights (about 440 MB) before exporting
_cache: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def _looks_local(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    # transformers retries an unreachable hub for a long time; one TCP connect says it fast.
    parts = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def weights_fingerprint(directory: Path) -> str | None:
    """``sha256:<16 hex>`` of the first weights file found in ``directory``."""
    for name in WEIGHT_FILES:
        path = directory / name
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            return "sha256:" + digest.hexdigest()[:16]
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _require_local_dir(options: FinBertOptions) -> None:
    """A model named by a path must be a directory (checked before anything is imported)."""
    if _looks_local(options.model) and not Path(options.model).expanduser().is_dir():
        raise ModelError(f"FinBERT directory {options.model} does not exist")


def _from_pretrained(options: FinBertOptions) -> tuple[Any, Any]:
    _require_local_dir(options)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stderr belongs to our logs, not per-shard bars

    if Path(options.model).expanduser().is_dir():
        path = str(Path(options.model).expanduser())
        kwargs: dict[str, Any] = {"local_files_only": True}
        return (
            AutoTokenizer.from_pretrained(path, **kwargs),
            AutoModelForSequenceClassification.from_pretrained(path, **kwargs),
        )
    kwargs = {"revision": options.revision}
    try:  # a copy in the local Hugging Face cache needs no network at all
        return (
            AutoTokenizer.from_pretrained(options.model, local_files_only=True, **kwargs),
            AutoModelForSequenceClassification.from_pretrained(
                options.model, local_files_only=True, **kwargs
            ),
        )
    except OSError as exc:
        cached_error = exc
    if _offline() or not _hub_reachable():
        raise ModelError(_not_cached(options.model)) from cached_error
    return (
        AutoTokenizer.from_pretrained(options.model, **kwargs),
        AutoModelForSequenceClassification.from_pretrained(options.model, **kwargs),
    )


def _not_cached(model: str) -> str:
    why = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face hub cannot be reached"
    return f"FinBERT {model!r} is not in the local cache and {why}"


class FinBertScorer(ProbabilityScorer):
    """A loaded FinBERT (use :func:`load_finbert`, which caches it per process).

    Attributes:
        name: the hub id, or the directory's name for a local model.
        revision: the hub commit hash when known, else a fingerprint of the weights file;
            ``+int8`` is appended when dynamically quantized (its scores are another model's).
        label_map: model output index -> ``positive``/``negative``/``neutral``.
    """

    def __init__(self, tokenizer: Any, model: Any, options: FinBertOptions) -> None:
        import torch

        if options.threads:
            torch.set_num_threads(options.threads)
        self.options = options
        self.tokenizer = tokenizer
        model.eval()
        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        try:
            self.label_map = {i: canonical_label(name) for i, name in id2label.items()}
        except ValueError as exc:
            raise ModelError(f"FinBERT {options.model}: {exc} (id2label={id2label})") from exc
        if sorted(self.label_map.values()) != sorted(LABELS):
            raise ModelError(f"FinBERT {options.model}: id2label {id2label} is not 3 polarities")
        local = Path(options.model).expanduser()
        self.name = local.resolve().name if local.is_dir() else options.model
        commit = getattr(model.config, "_commit_hash", None)
        name_or_path = Path(str(getattr(model.config, "_name_or_path", "") or options.model))
        revision = commit or (weights_fingerprint(name_or_path) if name_or_path.is_dir() else None)
        revision = revision or options.revision or "unknown"
        if options.quantize:
            import warnings

            with warnings.catch_warnings():
                # torch marks eager dynamic quantization deprecated (torchao replaces it); it
                # is what ships with torch here and is measured in docs/news-sentiment.md.
                warnings.simplefilter("ignore", category=DeprecationWarning)
                warnings.simplefilter("ignore", category=UserWarning)
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
            revision += "+int8"
        self.model = model
        self.revision: str = revision

    def probabilities(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, float]]:
        """Label probabilities per text, in input order."""
        import torch

        out: list[dict[str, float]] = [{} for _ in texts]
        # Sorting by length keeps each batch's padding (to its own longest text) small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.options.max_length,
                    return_tensors="pt",
                )
                logits = self.model(**enc).logits  # [batch, labels]
                probs = torch.softmax(logits.float(), dim=-1).tolist()
                for row, i in zip(probs, idx, strict=True):
                    out[i] = {self.label_map[j]: float(p) for j, p in enumerate(row)}
        return out


def _export_in_child(options: FinBertOptions) -> Path | None:
    """Export the model in a child process (torch stays out of this one); its folder or None.

    Raises:
        ModelError: the model itself cannot be loaded (not only exported).
    """
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", EXPORT_MODULE, json.dumps(asdict(options))],
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("FinBERT %s: ONNX export did not finish (%s)", options.model, exc)
        return None
    why = (done.stderr.strip().splitlines() or ["no message"])[-1]
    if done.returncode == EXIT_NOT_LOADABLE:
        raise ModelError(why)
    if done.returncode != 0:
        logger.warning("FinBERT %s: ONNX export failed: %s", options.model, why)
        return None
    folder = Path(json.loads(done.stdout.strip().splitlines()[-1])["dir"])
    logger.info("FinBERT %s exported to ONNX in %.1f s", options.model, time.monotonic() - started)
    return folder


def _load_exported(options: FinBertOptions) -> Any:
    """The exported copy of the model under ONNX Runtime, exported first if needed; None if
    it cannot be had (the caller then loads through transformers)."""
    from sentinel42.sentiment import finbert_onnx

    assert options.onnx_dir is not None
    key = finbert_onnx.source_key(options.model, options.revision, WEIGHT_FILES)
    folder = (
        finbert_onnx.copy_dir(Path(options.onnx_dir), options.model, key, quantize=options.quantize)
        if key
        else None
    )
    if folder is None or not (folder / finbert_onnx.SCORER_FILE).is_file():
        # A hub model that is neither cached nor reachable fails here, without a child process.
        local = Path(options.model).expanduser()
        if key is None and not local.is_dir() and (_offline() or not _hub_reachable()):
            raise ModelError(_not_cached(options.model))
        folder = _export_in_child(options)
        if folder is None:
            return None
    try:
        return finbert_onnx.OnnxFinBertScorer(
            folder, max_length=options.max_length, threads=options.threads
        )
    except ModelError as exc:
        logger.warning("%s; removed, the next run exports it again", exc)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        return None


def _load(options: FinBertOptions) -> Any:
    _require_local_dir(options)
    if options.onnx_dir:
        exported = _load_exported(options)
        if exported is not None:
            return exported
    tokenizer, model = _from_pretrained(options)
    return FinBertScorer(tokenizer, model, replace(options, onnx_dir=None))


def load_finbert(options: FinBertOptions) -> Any:
    """The FinBERT for ``options``, loaded once per process (failures are cached too).

    With ``options.onnx_dir`` (and no quantization) it is an
    :class:`~sentinel42.sentiment.finbert_onnx.OnnxFinBertScorer` when the model can be
    exported, else a :class:`FinBertScorer`; both score alike.

    Raises:
        ModelError: the model cannot be loaded (no local copy and no hub, bad labels).
    """
    key = tuple(asdict(options).values())
    with _lock:
        cached = _cache.get(key)
        if cached is None:
            try:
                cached = _load(options)
            except ModelError as exc:
                cached = exc
            except (OSError, ValueError, RuntimeError) as exc:
                cached = ModelError(f"FinBERT {options.model!r} could not be loaded: {exc}")
                cached.__cause__ = exc
            _cache[key] = cached
    if isinstance(cached, ModelError):
        raise cached
    return cached


def clear_cache() -> None:
    """Forget loaded models and load failures (tests; a long-lived process after a fix)."""
    with _lock:
        _cache.clear()


@dataclass(frozen=True, slots=True)
class QuantizationCheck:
    """How the int8 version of a model scores the same texts as its fp32 version.

    Attributes:
        model: the model's name.
        fp32_revision: the fp32 model's revision.
        int8_revision: the int8 model's (``+int8`` under torch, ``+ort-int8`` under ONNX Runtime).
        fp32_labels: the fp32 label of each text, in input order.
        int8_labels: the int8 label of each text.
        max_abs_diff: the largest difference of any label's probability on any text.
    """

    model: str
    fp32_revision: str
    int8_revision: str
    fp32_labels: list[str]
    int8_labels: list[str]
    max_abs_diff: float

    @property
    def agreement(self) -> float | None:
        """The share of texts both versions label alike (None without texts)."""
        if not self.fp32_labels:
            return None
        same = sum(a == b for a, b in zip(self.fp32_labels, self.int8_labels, strict=True))
        return same / len(self.fp32_labels)


def check_quantization(
    texts: Sequence[str], options: FinBertOptions, batch_size: int = 32
) -> QuantizationCheck:
    """Score ``texts`` with the fp32 and the int8 version of the model ``options`` name.

    Raises:
        ModelError: the model cannot be loaded.
    """
    fp32 = load_finbert(replace(options, quantize=False))
    int8 = load_finbert(replace(options, quantize=True))
    if int8.revision == fp32.revision:  # the same model twice would agree by construction
        raise ModelError(f"FinBERT {options.model}: the int8 model is the fp32 one")
    p32 = fp32.probabilities(texts, batch_size)
    p8 = int8.probabilities(texts, batch_size)
    diffs = [abs(a[k] - b[k]) for a, b in zip(p32, p8, strict=True) for k in LABELS]
    return QuantizationCheck(
        model=fp32.name,
        fp32_revision=fp32.revision,
        int8_revision=int8.revision,
        fp32_labels=[make_score("", p, fp32.name, fp32.revision).label for p in p32],
        int8_labels=[make_score("", p, int8.name, int8.revision).label for p in p8],
        max_abs_diff=max(diffs, default=0.0),
    )

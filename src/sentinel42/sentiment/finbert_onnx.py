"""FinBERT under ONNX Runtime: the same weights without torch or transformers at scoring time.

A refresh that finds new headlines used to import torch and transformers and load FinBERT
through them before scoring: about 8-11 s on the 2-core target machine for a 50-headline batch
that then scores in under 2 s. ONNX Runtime and the ``tokenizers`` library load the same model in
about 1.5 s and score it as fast (``docs/benchmarks.md``).

The first process that needs FinBERT loads it through transformers
(:mod:`sentinel42.sentiment.finbert`), exports it with ``torch.onnx.export`` into
``<data dir>/cache/finbert-onnx/<name>-<key>/`` together with its fast tokenizer and a
``scorer.json`` (name, revision, labels), and scores with the exported copy. Every later process
finds the copy by a key it computes without loading anything: for a local directory, its
resolved path and the size and modification time of its weights file; for a hub id, the commit
that the local Hugging Face cache resolves the revision to. A copy is written under a temporary
name and renamed whole, so a reader never sees half of one; two processes exporting at once each
write their own and the first rename wins. Scores carry the revision of the weights, as under
transformers: the exported graph computes the same function (within float32 rounding, checked
by the tests), so switching runtime rescores nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sentinel42.errors import ModelError
from sentinel42.sentiment.base import ProbabilityScorer

logger = logging.getLogger(__name__)

FORMAT = 1
MODEL_FILE = "model.onnx"
SCORER_FILE = "scorer.json"
TOKENIZER_FILE = "tokenizer.json"
OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"
    )
    return Path(home).expanduser() / "hub"


def source_key(model: str, revision: str | None, weights_files: Sequence[str]) -> str | None:
    """A cheap key that changes whenever the weights ``model`` names change; None if unknown.

    A local directory: its resolved path and its weights file's size and mtime. A hub id: the
    commit its revision resolves to in the local Hugging Face cache (None when it is not there).
    """
    local = Path(model).expanduser()
    if local.is_dir():
        for name in weights_files:
            weights = local / name
            if weights.is_file():
                stat = weights.stat()
                raw = f"{local.resolve()}|{name}|{stat.st_size}|{stat.st_mtime_ns}"
                return hashlib.sha256(raw.encode()).hexdigest()[:16]
        return None
    if revision and _HEX40.match(revision):
        commit: str | None = revision
    else:
        ref = _hub_cache() / f"models--{model.replace('/', '--')}" / "refs" / (revision or "main")
        try:
            commit = ref.read_text(encoding="utf-8").strip() or None
        except OSError:
            commit = None
    if commit is None:
        return None
    return hashlib.sha256(f"{model}|{commit}".encode()).hexdigest()[:16]


def copy_dir(root: Path, model: str, key: str, *, quantize: bool = False) -> Path:
    """Where the exported copy of ``model`` with ``key`` (int8 or not) lives under ``root``."""
    stem = re.sub(r"[^0-9A-Za-z._-]+", "_", Path(model).name if Path(model).is_dir() else model)
    return root / f"{stem[:60]}-{key}{'-int8' if quantize else ''}"


def export(scorer: Any, target: Path, key: str, *, quantize: bool = False) -> Path:
    """Export a loaded transformers scorer (``FinBertScorer``) into ``target``, atomically.

    With ``quantize`` the exported graph's weights are then quantized to int8 by ONNX Runtime
    (dynamic quantization, as ``SENTINEL42_SENTIMENT_QUANTIZE`` does under torch); its scores
    are another model's: the revision gets ``+ort-int8`` (torch's own int8 scores differ again:
    ``+int8``).

    Raises:
        ModelError: the model cannot be exported or has no fast tokenizer to save.
    """
    import torch

    if getattr(scorer.options, "quantize", False):
        raise ModelError("an int8-quantized torch model is not exported; export the fp32 one")
    tokenizer, model = scorer.tokenizer, scorer.model
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"FinBERT {scorer.name}: no fast tokenizer, nothing to export with")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        sample = tokenizer(["Shares rise", "Profit falls short of estimates"], padding=True,
                           return_tensors="pt")  # fmt: skip
        names = [n for n in _INPUTS if n in sample]
        axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                model,
                tuple(sample[n] for n in names),
                str(tmp / MODEL_FILE),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter: needs onnx, not onnxscript
            )
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            fp32 = tmp / f"fp32-{MODEL_FILE}"
            (tmp / MODEL_FILE).rename(fp32)
            quantize_dynamic(fp32, tmp / MODEL_FILE, weight_type=QuantType.QInt8)
            fp32.unlink()
        tokenizer.backend_tokenizer.save(str(tmp / TOKENIZER_FILE))
        meta = {
            "format": FORMAT,
            "name": scorer.name,
            "revision": scorer.revision + ("+ort-int8" if quantize else ""),
            "label_map": {str(i): label for i, label in scorer.label_map.items()},
            "inputs": names,
            "pad_id": int(tokenizer.pad_token_id or 0),
            "pad_token": str(tokenizer.pad_token or "[PAD]"),
            "source_key": key,
            "exported_at": datetime.now(UTC).isoformat(),
            "opset": OPSET,
        }
        (tmp / SCORER_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process renamed its copy first: use that one
            if not (target / SCORER_FILE).is_file():
                raise
    except ModelError:
        raise
    except Exception as exc:  # the exporter raises many kinds; none may stop scoring
        raise ModelError(f"FinBERT {scorer.name}: ONNX export failed: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class OnnxFinBertScorer(ProbabilityScorer):
    """An exported FinBERT scored by ONNX Runtime (same ``score`` as ``FinBertScorer``).

    Attributes:
        name, revision: those of the weights the copy was exported from.
        label_map: model output index -> ``positive``/``negative``/``neutral``.
    """

    runtime = "onnx"

    def __init__(self, directory: Path, *, max_length: int, threads: int | None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        try:
            meta = json.loads((directory / SCORER_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ModelError(f"{directory}: format {meta.get('format')!r} unknown")
            self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or 0  # 0: one per core, as torch does
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(
                str(directory / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime's own errors, a torn JSON, a missing file
            raise ModelError(f"exported FinBERT {directory.name} cannot be loaded: {exc}") from exc
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=int(meta["pad_id"]), pad_token=str(meta["pad_token"]))
        self.directory = directory
        self.inputs: list[str] = list(meta["inputs"])
        self.name: str = meta["name"]
        self.revision: str = meta["revision"]
        self.label_map = {int(i): str(label) for i, label in meta["label_map"].items()}

    def probabilities(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, float]]:
        """Label probabilities per text, in input order (texts sorted by length per batch)."""
        out: list[dict[str, float]] = [{} for _ in texts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in idx])
            feed = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            (logits,) = self.session.run(["logits"], {n: feed[n] for n in self.inputs})
            logits = logits.astype(np.float64)
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = exp / exp.sum(axis=1, keepdims=True)
            for row, i in zip(probs.tolist(), idx, strict=True):
                out[i] = {self.label_map[j]: float(p) for j, p in enumerate(row)}
        return out

"""What both FinBERT runtimes share: the load options, the weights files and the export child's
contract. The transformers runtime (:mod:`sentinel42.sentiment.finbert`) and the ONNX one
(:mod:`sentinel42.sentiment.finbert_onnx`) import these names from here, not from each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentinel42.settings import Settings

# The child process that loads FinBERT through transformers and exports it to ONNX.
EXPORT_MODULE = "sentinel42.sentiment.finbert_export"
EXIT_NOT_LOADABLE = 3  # the export child's exit code when the model itself cannot be loaded
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True, slots=True)
class FinBertOptions:
    """How to load and run the model (``SENTINEL42_FINBERT_*``, ``SENTINEL42_SENTIMENT_*``)."""

    model: str = "ProsusAI/finbert"
    revision: str | None = None
    max_length: int = 128
    threads: int | None = None
    quantize: bool = False
    onnx_dir: str | None = None  # where exported copies live; None: score through transformers

    @classmethod
    def from_settings(cls, settings: Settings) -> FinBertOptions:
        onnx = settings.sentiment_runtime == "onnx"
        return cls(
            model=settings.finbert_model,
            revision=settings.finbert_revision,
            max_length=settings.sentiment_max_length,
            threads=settings.sentiment_threads,
            quantize=settings.sentiment_quantize,
            onnx_dir=str(settings.finbert_onnx_dir) if onnx else None,
        )

"""The export child: ``python -m sentinel42.sentiment.finbert_export OPTIONS_JSON`` loads FinBERT
through transformers (:mod:`sentinel42.sentiment.finbert`) and writes its ONNX copy
(:mod:`sentinel42.sentiment.finbert_onnx`). It imports both runtimes; neither imports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sentinel42.errors import ModelError
from sentinel42.sentiment.finbert import FinBertScorer, _from_pretrained
from sentinel42.sentiment.finbert_onnx import SCORER_FILE, copy_dir, export, source_key
from sentinel42.sentiment.finbert_options import EXIT_NOT_LOADABLE, WEIGHT_FILES, FinBertOptions


def export_main(argv: Sequence[str]) -> int:
    """``python -m sentinel42.sentiment.finbert_export OPTIONS_JSON``: load through transformers,
    export, print ``{"dir": ...}``. Exit 3 when the model cannot be loaded, 1 when it loads but
    cannot be exported (the message is the last line of stderr)."""
    options = FinBertOptions(**json.loads(argv[0]))
    assert options.onnx_dir is not None
    try:
        plain = dataclasses.replace(options, onnx_dir=None, quantize=False)
        scorer = FinBertScorer(*_from_pretrained(plain), plain)
    except ModelError as exc:
        print(exc, file=sys.stderr)
        return EXIT_NOT_LOADABLE
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"FinBERT {options.model!r} could not be loaded: {exc}", file=sys.stderr)
        return EXIT_NOT_LOADABLE
    key = source_key(options.model, options.revision, WEIGHT_FILES)
    key = key or hashlib.sha256(f"{options.model}|{scorer.revision}".encode()).hexdigest()[:16]
    target = copy_dir(Path(options.onnx_dir), options.model, key, quantize=options.quantize)
    try:
        if not (target / SCORER_FILE).is_file():
            export(scorer, target, key, quantize=options.quantize)
    except ModelError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps({"dir": str(target)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(export_main(sys.argv[1:]))

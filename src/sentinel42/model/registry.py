"""Model registry: versioned folders of safetensors weights plus JSON metadata.

Layout under ``<data dir>/models/``::

    <version>/model.safetensors   weights (no pickle: safetensors holds tensors only)
    <version>/metadata.json       feature spec, network, normalization, ranges, metrics, ...
    current                       the promoted version's name, swapped atomically
    promotions.jsonl              every promotion decision, refusals included, with numbers
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from sentinel42.errors import ModelError
from sentinel42.model.features import FeatureSpec, Normalizer
from sentinel42.model.numpy_lstm import NetworkConfig, NumpyLSTM

logger = logging.getLogger(__name__)

METADATA_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
CURRENT_FILE = "current"
DECISIONS_FILE = "promotions.jsonl"
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,120}$")


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint ready for inference.

    ``lstm`` is its forward pass in numpy (what a trading run uses, without importing torch);
    ``network`` builds the torch ``DirectionLSTM`` in eval mode on first use (evaluation,
    re-saving).
    """

    version: str
    spec: FeatureSpec
    normalizer: Normalizer
    lstm: NumpyLSTM
    metadata: dict[str, Any]
    tensors: dict[str, Any] = field(repr=False)

    @cached_property
    def network(self) -> Any:  # DirectionLSTM; typed loosely so this module imports torch lazily
        import torch

        from sentinel42.model.network import DirectionLSTM

        network = DirectionLSTM(NetworkConfig.from_dict(self.metadata["network"]))
        network.load_state_dict({k: torch.from_numpy(v) for k, v in self.tensors.items()})
        return network.eval()

    @property
    def accuracy(self) -> float | None:
        """Directional accuracy on the block that decided the gate (the untouched test block).

        Older checkpoints without a ``gate`` record give their test-block accuracy.
        """
        value = (self.metadata.get("gate") or {}).get("model_accuracy")
        if value is None:
            test = self.metadata.get("metrics", {}).get("test", {})
            value = test.get("model", {}).get("accuracy")
        return float(value) if value is not None else None

    @property
    def edge(self) -> float | None:
        """Accuracy minus the best baseline's on the deciding block; None for older checkpoints."""
        value = (self.metadata.get("gate") or {}).get("edge")
        return float(value) if value is not None else None

    @property
    def data_end(self) -> datetime | None:
        """Start (aware UTC) of the newest target bar any training window reached.

        Older checkpoints without ``data_end`` give their test block's last target bar.
        """
        value = self.metadata.get("data_end")
        if value is None:
            value = self.metadata.get("ranges", {}).get("test", {}).get("target_end")
        if value is None:
            return None
        stamp = datetime.fromisoformat(str(value))
        if stamp.tzinfo is None:  # written by this code as UTC; never guess another zone
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_remote(location: str | os.PathLike[str]) -> bool:
    """True for a URL other than ``file://`` (``s3://...``, ``memory://...``, ``a::b://...``)."""
    if not isinstance(location, str):
        return False
    if "::" in location:  # fsspec chaining, e.g. simplecache::s3://bucket/models
        return True
    scheme = urlsplit(location).scheme
    return "://" in location and len(scheme) > 1 and scheme != "file"


def local_path(location: str | os.PathLike[str]) -> Path:
    """The folder a path or a ``file://`` URL names.

    Raises:
        ModelError: a remote URL, or a ``file://`` URL naming another host.
    """
    if isinstance(location, str) and location.startswith("file:"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise ModelError(
                f"{location}: a file:// URL names a folder on this host; mount the other "
                "host's folder here and give its local path"
            )
        return Path(url2pathname(unquote(parts.path)))
    if is_remote(location):
        raise ModelError(f"{location} is not a local folder")
    return Path(location)


class ModelRegistry:
    """Versioned checkpoints in ``models_dir`` with one atomically swapped ``current`` pointer.

    ``models_dir`` is a folder (a shared mount for several hosts) or a ``file://`` URL. For a
    remote fsspec URL such as ``s3://bucket/models`` :func:`sentinel42.model.storage.open_registry`
    gives the mirroring subclass (see there).
    """

    def __init__(self, models_dir: Path | str) -> None:
        self.models_dir = local_path(models_dir)

    def _folder(self, version: str) -> Path:
        if not _VERSION_RE.match(version):
            raise ModelError(f"{version!r} is not a model version name")
        return self.models_dir / version

    def current_version(self) -> str | None:
        """The promoted version, or None when none was ever promoted (or its folder is gone)."""
        pointer = self.models_dir / CURRENT_FILE
        if not pointer.is_file():
            return None
        version = pointer.read_text(encoding="utf-8").strip()
        if not version or not (self._folder(version) / METADATA_FILE).is_file():
            logger.warning("model pointer names %r, which has no checkpoint", version)
            return None
        return version

    def versions(self) -> list[str]:
        """Saved versions, oldest first (names start with their UTC creation time)."""
        if not self.models_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.models_dir.iterdir()
            if p.is_dir()
            and not p.name.startswith(".")  # a save in progress
            and (p / METADATA_FILE).is_file()
            and (p / WEIGHTS_FILE).is_file()
        )

    def newest_version(self) -> str | None:
        found = self.versions()
        return found[-1] if found else None

    def metadata(self, version: str) -> dict[str, Any]:
        path = self._folder(version) / METADATA_FILE
        if not path.is_file():
            raise ModelError(f"model {version!r} not found in {self.models_dir}")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"model {version!r}: unreadable metadata: {exc}") from exc

    def list(self) -> list[dict[str, Any]]:
        """One summary per version: created time, ranges, test metrics, gate edge, promotion."""
        current = self.current_version()
        rows = []
        for version in self.versions():
            meta = self.metadata(version)
            test = meta.get("metrics", {}).get("test", {}).get("model", {})
            rows.append(
                {
                    "version": version,
                    "created_at": meta.get("created_at"),
                    "current": version == current,
                    "promoted": meta.get("promotion", {}).get("promoted"),
                    "reason": meta.get("promotion", {}).get("reason"),
                    "tickers": meta.get("tickers", []),
                    "train_range": meta.get("ranges", {}).get("train"),
                    "accuracy": test.get("accuracy"),
                    "edge": (meta.get("gate") or {}).get("edge"),
                    "data_end": meta.get("data_end"),
                    "log_loss": test.get("log_loss"),
                    "brier": test.get("brier"),
                    "ic": test.get("ic"),
                }
            )
        return rows

    def save(self, version: str, network: Any, metadata: dict[str, Any]) -> Path:
        """Write weights and metadata into a new version folder (never overwrites one)."""
        from safetensors.torch import save_file

        from sentinel42.paths import secure_dir

        folder = self._folder(version)
        if folder.exists():
            if (folder / METADATA_FILE).is_file():
                raise ModelError(f"model version {version} exists already; never overwritten")
            # A folder without metadata is what a killed save left behind: it holds nothing
            # usable, and keeping it would make every retrain at the same clock fail.
            logger.warning("removing the partly written model folder %s", folder)
            shutil.rmtree(folder)
        # Written beside its final name, then renamed: a reader never sees half a checkpoint.
        staging = secure_dir(self.models_dir) / f".{version}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        weights = staging / WEIGHTS_FILE
        state = {k: v.detach().contiguous() for k, v in network.state_dict().items()}
        save_file(state, str(weights), metadata={"version": version})
        meta = dict(metadata, format=METADATA_FORMAT, version=version)
        meta["weights_sha256"] = _sha256(weights)
        _atomic_write(staging / METADATA_FILE, json.dumps(meta, indent=2, sort_keys=True))
        os.replace(staging, folder)
        logger.info("saved model %s to %s", version, folder)
        return folder

    def update_metadata(self, version: str, **fields: Any) -> None:
        meta = self.metadata(version)
        meta.update(fields)
        path = self._folder(version) / METADATA_FILE
        _atomic_write(path, json.dumps(meta, indent=2, sort_keys=True))

    def promote(self, version: str) -> None:
        """Point ``current`` at ``version``: write a temp file, then ``os.replace`` it."""
        if version not in self.versions():
            raise ModelError(f"cannot promote {version!r}: no such checkpoint")
        _atomic_write(self.models_dir / CURRENT_FILE, version + "\n")
        logger.info("promoted model %s", version)

    def record_decision(self, entry: dict[str, Any], at: datetime) -> None:
        """Append one promotion decision (promoted or refused, with the numbers)."""
        from sentinel42.paths import secure_dir

        secure_dir(self.models_dir)
        line = json.dumps(dict(entry, at=at.astimezone(UTC).isoformat()), sort_keys=True)
        with (self.models_dir / DECISIONS_FILE).open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def decisions(self) -> builtins.list[dict[str, Any]]:
        path = self.models_dir / DECISIONS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def load(self, version: str) -> LoadedModel:
        """Rebuild a checkpoint: JSON metadata + safetensors weights, never a pickle.

        Raises:
            ModelError: missing files, a weights file that does not match its recorded hash, a
                feature spec this code does not compute, or tensors that do not fit the network.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        meta = self.metadata(version)
        weights = self._folder(version) / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelError(f"model {version!r}: {WEIGHTS_FILE} is missing")
        if meta.get("format") != METADATA_FORMAT:
            raise ModelError(f"model {version!r}: metadata format {meta.get('format')!r} unknown")
        if meta.get("weights_sha256") and meta["weights_sha256"] != _sha256(weights):
            raise ModelError(f"model {version!r}: weights do not match their recorded hash")
        spec = FeatureSpec.from_dict(meta.get("feature_spec", {}))
        try:
            config = NetworkConfig.from_dict(meta["network"])
            normalizer = Normalizer.from_dict(meta["normalization"], len(spec.names))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model {version!r}: malformed metadata: {exc}") from exc
        if config.input_size != len(spec.names):
            raise ModelError(
                f"model {version!r}: network input size {config.input_size} does not match "
                f"{len(spec.names)} features {list(spec.names)}"
            )
        try:
            tensors = load_file(str(weights))
            lstm = NumpyLSTM.from_tensors(
                tensors,
                input_size=config.input_size,
                hidden_size=config.hidden_size,
                layers=config.layers,
            )
        except (ModelError, SafetensorError, OSError) as exc:
            raise ModelError(f"model {version!r}: weights do not fit the network: {exc}") from exc
        return LoadedModel(version, spec, normalizer, lstm, meta, tensors)

    def prune(self, keep: int) -> builtins.list[str]:
        """Delete every version but the newest ``keep`` and the promoted one.

        Args:
            keep: Versions kept besides the promoted one (``settings.models_keep``), >= 1.

        Returns:
            The deleted versions, oldest first. A second call deletes nothing.

        Raises:
            ValueError: ``keep`` is below 1.
        """
        import shutil

        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        current = self.current_version()
        doomed = [v for v in self.versions()[:-keep] if v != current]
        for version in doomed:
            shutil.rmtree(self._folder(version))
            logger.info("pruned model %s (the newest %d and the promoted one stay)", version, keep)
        return doomed


def new_version_name(now: datetime, fingerprint: str) -> str:
    """``YYYYmmddTHHMMSSZ-<fingerprint prefix>``: sorts by creation time."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{fingerprint[:8]}"

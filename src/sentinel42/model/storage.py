"""Where the model registry lives: a folder (local or a shared mount), or an fsspec URL.

Workers on several hosts must load the same promoted model. A registry location is one of:

- a path or a ``file://`` URL: that folder. A folder on storage every host mounts (NFS, SMB, a
  cloud file share) is a registry all of them read; saving renames a finished folder into
  place and promotion swaps the ``current`` pointer with ``os.replace`` (one atomic rename on
  the server, so a reader sees the old or the new version, never half of one).
- any other URL fsspec understands (``s3://bucket/models`` once ``s3fs`` is installed,
  ``gcs://`` with ``gcsfs``, ``memory://`` in tests): the remote is the registry, and each
  process works on a local mirror of it under ``~/.cache/sentinel42/models/``
  (:class:`MirroredModelRegistry`). Each object is written whole (one PUT), weights before
  metadata, so a reader sees a version only once both are there; loading checks the weights
  against the sha256 in the metadata either way.

:func:`open_registry` picks :class:`MirroredModelRegistry` for a remote URL and a plain
:class:`~sentinel42.model.registry.ModelRegistry` for a folder, so callers only pass the location.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sentinel42.errors import ModelError
from sentinel42.model.registry import (
    CURRENT_FILE,
    DECISIONS_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    LoadedModel,
    ModelRegistry,
    _atomic_write,
    is_remote,
)

logger = logging.getLogger(__name__)


def _default_cache(url: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return Path(base) / "sentinel42" / "models" / digest


class RemoteFolder:
    """The registry's files at an fsspec URL, mirrored into a local folder.

    The remote holds the truth; the mirror is a cache that :meth:`pull` brings up to date
    (finished versions are downloaded once: a version never changes but for its metadata).
    """

    def __init__(self, url: str, mirror: Path) -> None:
        try:
            from fsspec.core import url_to_fs
        except ImportError as exc:  # a dependency of prefect and torch, so normally present
            raise ModelError(f"{url}: remote model storage needs fsspec ({exc})") from exc
        try:
            self.fs, self.root = url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise ModelError(
                f"{url}: no filesystem for this URL ({exc}); install its fsspec backend "
                "(s3fs for s3://, gcsfs for gcs://, adlfs for az://) or mount the storage and "
                "give its folder"
            ) from exc
        self.url = url
        self.root = self.root.rstrip("/")
        self.mirror = mirror

    def _remote(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def _remote_versions(self) -> set[str]:
        """Versions whose weights and metadata are both uploaded (metadata goes last)."""
        try:
            entries = self.fs.find(self.root, maxdepth=2, withdirs=False)
        except FileNotFoundError:
            return set()
        files: dict[str, set[str]] = {}
        prefix = self.root + "/"
        for path in entries:
            relative = str(path).removeprefix(prefix).split("/")
            if len(relative) == 2 and not relative[0].startswith("."):
                files.setdefault(relative[0], set()).add(relative[1])
        return {v for v, names in files.items() if {WEIGHTS_FILE, METADATA_FILE} <= names}

    def _get_text(self, name: str) -> str | None:
        try:
            data: bytes = self.fs.cat_file(self._remote(name))
        except FileNotFoundError:
            return None
        return data.decode("utf-8")

    def pull(self) -> None:
        """Bring the mirror up to the remote: versions, their metadata, pointer, decisions."""
        from sentinel42.paths import secure_dir

        secure_dir(self.mirror)
        remote = self._remote_versions()
        for folder in self.mirror.iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and folder.name not in remote:
                shutil.rmtree(folder, ignore_errors=True)  # pruned by another host
        for version in sorted(remote):
            folder = self.mirror / version
            if not (folder / WEIGHTS_FILE).is_file():
                self._download(version)
            else:  # only the metadata of a saved version changes (promotion records)
                text = self._get_text(f"{version}/{METADATA_FILE}")
                if text is not None:
                    _atomic_write(folder / METADATA_FILE, text)
        for name in (CURRENT_FILE, DECISIONS_FILE):
            text = self._get_text(name)
            if text is None:
                (self.mirror / name).unlink(missing_ok=True)
            else:
                _atomic_write(self.mirror / name, text)

    def _download(self, version: str) -> None:
        staging = self.mirror / f".{version}.download-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        try:
            for name in (WEIGHTS_FILE, METADATA_FILE):
                self.fs.get_file(self._remote(version, name), str(staging / name))
            shutil.rmtree(self.mirror / version, ignore_errors=True)
            os.replace(staging, self.mirror / version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("downloaded model %s from %s", version, self.url)

    def push_file(self, name: str) -> None:
        """Upload one mirrored file (``current``, ``promotions.jsonl``, ``<v>/metadata.json``)."""
        self.fs.pipe_file(self._remote(name), (self.mirror / name).read_bytes())

    def push_version(self, version: str) -> None:
        """Upload a saved version: the weights, then the metadata that makes it visible."""
        for name in (WEIGHTS_FILE, METADATA_FILE):
            self.fs.put_file(str(self.mirror / version / name), self._remote(version, name))

    def remove_version(self, version: str) -> None:
        # The metadata first: a version without it is no version to a reader.
        for name in (METADATA_FILE, WEIGHTS_FILE):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._remote(version, name))
        with contextlib.suppress(FileNotFoundError):  # object stores have no folders
            self.fs.rm(self._remote(version), recursive=True)


class MirroredModelRegistry(ModelRegistry):
    """A :class:`ModelRegistry` whose files live at an fsspec URL, through a local mirror.

    Each call brings the mirror up to the remote first (once per call: ``list()`` reads the
    remote once, not once per version); writes go to the mirror, then to the remote. Promotion
    decisions are appended by reading, appending and writing back the whole file: the training
    deployment (concurrency limit 1) is their only writer.
    """

    def __init__(self, models_dir: Path | str, *, cache_dir: Path | None = None) -> None:
        url = str(models_dir)
        mirror = Path(cache_dir) if cache_dir is not None else _default_cache(url)
        self.remote = RemoteFolder(url, mirror)
        self.models_dir = mirror
        self._depth = 0

    @contextmanager
    def _synced(self) -> Iterator[None]:
        """Pull unless an enclosing call of this object has just done so."""
        if self._depth == 0:
            self.remote.pull()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def current_version(self) -> str | None:
        with self._synced():
            return super().current_version()

    def versions(self) -> builtins.list[str]:
        with self._synced():
            return super().versions()

    def metadata(self, version: str) -> dict[str, Any]:
        with self._synced():
            return super().metadata(version)

    def list(self) -> builtins.list[dict[str, Any]]:
        with self._synced():
            return super().list()

    def decisions(self) -> builtins.list[dict[str, Any]]:
        with self._synced():
            return super().decisions()

    def load(self, version: str) -> LoadedModel:
        with self._synced():
            return super().load(version)

    def save(self, version: str, network: Any, metadata: dict[str, Any]) -> Path:
        with self._synced():
            folder = super().save(version, network, metadata)
            self.remote.push_version(version)
        return folder

    def update_metadata(self, version: str, **fields: Any) -> None:
        with self._synced():
            super().update_metadata(version, **fields)
            self.remote.push_file(f"{version}/{METADATA_FILE}")

    def promote(self, version: str) -> None:
        with self._synced():
            super().promote(version)
            self.remote.push_file(CURRENT_FILE)

    def record_decision(self, entry: dict[str, Any], at: datetime) -> None:
        with self._synced():
            super().record_decision(entry, at)
            self.remote.push_file(DECISIONS_FILE)

    def prune(self, keep: int) -> builtins.list[str]:
        with self._synced():
            doomed = super().prune(keep)
            for version in doomed:
                self.remote.remove_version(version)
        return doomed


def open_registry(location: Path | str, *, cache_dir: Path | None = None) -> ModelRegistry:
    """The registry at ``location``: mirrored for a remote URL, a plain folder otherwise.

    ``cache_dir`` (remote only) overrides the mirror's folder under ``~/.cache/sentinel42``.
    """
    if is_remote(location):
        return MirroredModelRegistry(location, cache_dir=cache_dir)
    return ModelRegistry(location)

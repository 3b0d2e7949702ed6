"""Owner-only folders for what Sentinel42 writes: the store, backups, the model registry."""

from __future__ import annotations

import contextlib
from pathlib import Path


def secure_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents owner-only (``0700``); existing folders are kept.

    Returns:
        ``path``.
    """
    missing: list[Path] = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=0o700)
    return Path(path)

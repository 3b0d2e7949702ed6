from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
AS_OF = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def shared_dir(name: str) -> Path:
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"recorded data {folder} is absent (it lives beside the repository)")
    return folder


@pytest.fixture
def settings(tmp_path):
    from sentinel42.settings import load_settings

    return load_settings(
        data_dir=tmp_path,
        tickers=["AAPL", "MSFT", "NVDA", "AMZN", "SPY"],
        data_source="live",
    )


@pytest.fixture
def store(settings):
    from sentinel42.persistence import open_store

    with open_store(settings) as s:
        yield s

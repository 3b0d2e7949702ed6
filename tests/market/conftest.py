"""Shared fixtures of the market-data tests: the real recordings and a throw-away store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel42.market.calendar import NyseCalendar

SHARED_PRICES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "prices"


@pytest.fixture(scope="session")
def calendar() -> NyseCalendar:
    return NyseCalendar()


@pytest.fixture
def shared_prices() -> Path:
    if not SHARED_PRICES.is_dir():
        pytest.skip("real recordings not found in ../shared/data/prices (not in this checkout)")
    return SHARED_PRICES


@pytest.fixture
def replay_dir(tmp_path: Path, shared_prices: Path) -> Path:
    """A replay folder whose prices/ and daily/ link to the real yfinance exports."""
    (tmp_path / "prices").mkdir()
    (tmp_path / "daily").mkdir()
    for ticker in ("AAPL", "MSFT", "SPY"):
        (tmp_path / "prices" / f"{ticker}.csv").symlink_to(
            next(shared_prices.glob(f"{ticker}_15m_*.csv")).resolve()
        )
        (tmp_path / "daily" / f"{ticker}.csv").symlink_to(
            next(shared_prices.glob(f"{ticker}_1d_*.csv")).resolve()
        )
    return tmp_path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    from sentinel42.persistence import open_store

    with open_store(url=f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened

"""Shared fixtures: a temporary data folder, a generated replay set, pinned settings."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REPLAY_TICKERS = ("AAPL", "MSFT", "NVDA")


# The product gives news weight only after `model validate-news` passed; the tests of the
# fusion's mechanics (thresholds, confidence, revisions, backtests) need news that counts. The
# news leg's gate has its own tests (tests/model/ranking/test_news_leg.py), which set it to true.
UNVALIDATED_NEWS_COUNTS = ("SENTINEL42_NEWS_REQUIRES_VALIDATION", "false")


@pytest.fixture(scope="session", autouse=True)
def _unvalidated_news_counts():
    """Also for module- and session-scoped fixtures, which run before ``_isolated_env``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(*UNVALIDATED_NEWS_COUNTS)
        yield


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's SENTINEL42_* environment, .env, or the hub."""
    for key in list(os.environ):
        if key.startswith("SENTINEL42_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SENTINEL42_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(*UNVALIDATED_NEWS_COUNTS)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def replay_dir(tmp_path_factory) -> Path:
    """A small seeded synthetic replay set: 3 tickers, 12 sessions ending 2026-11-25."""
    from sentinel42.synthetic import generate_replay

    out = tmp_path_factory.mktemp("replay")
    generate_replay(out, REPLAY_TICKERS, end=date(2026, 11, 25), sessions=12, seed=7)
    return out


@pytest.fixture
def replay_env(monkeypatch, replay_dir):
    monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(replay_dir))
    monkeypatch.setenv("SENTINEL42_TICKERS", ",".join(REPLAY_TICKERS))
    return replay_dir


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"recorded data not found at {SHARED_DATA} (it sits beside the checkout in CI)")
    return SHARED_DATA

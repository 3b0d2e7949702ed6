"""``bench ranking``: the generated universe reads as the shared files do; figures meet targets.

No timing is asserted here: the benchmark prints figures beside its targets.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from sentinel42.bench.ranking import TARGETS, checks, generate_universe, kind_folder
from sentinel42.market.replay import ReplayPriceSource


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate_universe(tmp_path_factory.mktemp("universe"), 24)


def test_the_generated_universe_has_every_ticker_in_both_kinds(generated, tmp_path):
    held, problems = ReplayPriceSource(generated).held_tickers()
    assert len(held) == 24 and problems == []
    daily = ReplayPriceSource(kind_folder(generated, "daily", tmp_path / "d"))
    # A daily-only folder's clock is the close of its last session, as with the shared file.
    assert daily.data_end() == pd.Timestamp("2018-02-07 16:00", tz="America/New_York")
    batch = daily.fetch_daily(held[:2], datetime(2010, 1, 1, tzinfo=UTC), daily.data_end())
    assert batch.errors == {} and len(batch.frames) == 2
    assert all(len(frame) == 1259 for frame in batch.frames.values())


def test_a_figure_over_its_target_or_torch_in_inference_fails_its_check():
    row = {"wall_s": 10.0, "process": {"peak_rss_mb": 500.0}}
    figures = {
        "train": {"daily": row, "intraday": row | {"wall_s": TARGETS["train_intraday_s"] + 1}},
        "inference": {
            "daily": {"seconds_median": 0.2, "torch_imported": True, "process": {"peak_rss_mb": 1}},
        },
    }
    result = checks(figures)
    assert result["train_daily_s"] and not result["train_intraday_s"]
    assert result["inference_daily_s"] and not result["inference_daily_no_torch"]

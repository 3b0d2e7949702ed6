"""The shared S&P 500 files (real data nobody here wrote): defects flagged, figures checked
against independent pandas computations. Skipped where ../shared/data is absent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinel42.market.replay import ReplayPriceSource
from sentinel42.model.ranking import features as F
from sentinel42.model.ranking.metrics import rank_ic
from sentinel42.model.ranking.panel import build_panel

DAILY = "universe/sp500_daily_2013-02-08_2018-02-07.csv.gz"


@pytest.fixture(scope="module")
def daily_panel(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / DAILY
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared data sits beside the checkout)")
    replay = tmp_path_factory.mktemp("sp500")
    (replay / "daily").mkdir()
    (replay / "daily" / "sp500.csv.gz").symlink_to(path)
    source = ReplayPriceSource(Path(replay))
    tickers, _ = source.held_tickers()
    batch = source.fetch_daily(sorted(tickers), datetime(2013, 1, 1, tzinfo=UTC),
                               datetime(2018, 3, 1, tzinfo=UTC))  # fmt: skip
    return path, build_panel(batch.frames, "daily")


def _flag_days(panel, ticker: str) -> list[str]:
    j = panel.tickers.index(ticker)
    return [
        str(np.datetime64(int(panel.ts[r]), "ns"))[:10] for r in np.flatnonzero(panel.flagged[:, j])
    ]


def test_unadjusted_corporate_actions_are_flagged_not_learnt(daily_panel):
    _, panel = daily_panel
    assert panel.shape == (1259, 505)
    assert _flag_days(panel, "EBAY") == ["2015-07-20"]  # PayPal spin-off, -57 %
    assert _flag_days(panel, "BAX") == ["2015-07-01"]  # Baxalta spin-off
    assert _flag_days(panel, "NI") == ["2015-07-02"]
    assert _flag_days(panel, "DISCA") == _flag_days(panel, "DISCK") == ["2014-08-07"]
    # No target and no window of a flagged name spans the jump.
    fwd, _ = F.forward_log_return(panel, 1)
    j, t = (
        panel.tickers.index("EBAY"),
        int(np.flatnonzero(panel.flagged[:, panel.tickers.index("EBAY")])[0]),
    )
    assert np.isnan(fwd[t - 1, j])
    block = F.compute(panel, 1)
    assert not F.usable_windows(block.valid, 20)[t : t + 20, j].any()


def test_reversal_and_momentum_rank_ic_equal_pandas_on_the_real_file(daily_panel):
    path, panel = daily_panel
    raw = pd.read_csv(path)
    raw = raw.dropna(subset=["open", "high", "low", "close"])
    ok = (raw["high"] >= raw[["open", "close"]].max(axis=1)) & (
        raw["low"] <= raw[["open", "close"]].min(axis=1)
    )
    close = raw[ok].pivot(index="date", columns="Name", values="close").sort_index()
    ret = np.log(close / close.shift(1))
    fwd = np.log(close.shift(-1) / close)
    excess = fwd.sub(fwd.mean(axis=1), axis=0)
    mom = np.log(close.shift(21) / close.shift(252))
    # The same rows as the panel, flagged bars aside (the check is of the formulas, not flags).
    block = F.compute(panel, 1)
    target = F.target(F.forward_log_return(panel, 1)[0], "excess")
    ours = {name: np.nanmean(rank_ic(s, target)) for name, s in
            F.baseline_scores("daily", block.raw).items()}  # fmt: skip
    jumps = panel.flagged.any(axis=1)
    keep = ~jumps & ~np.r_[jumps[1:], False]  # no flag on the day or the next
    for name, score in (("reversal_1", -ret), ("momentum_12_1", mom)):
        both_finite = score.notna() & excess.notna()
        a, b = score.where(both_finite), excess.where(both_finite)
        theirs = a.rank(axis=1).corrwith(b.rank(axis=1), axis=1).to_numpy()
        ours_rows = rank_ic(F.baseline_scores("daily", block.raw)[name], target)
        both = keep & np.isfinite(ours_rows) & np.isfinite(theirs)
        np.testing.assert_allclose(ours_rows[both], theirs[both], atol=1e-9)
        assert abs(ours[name] - np.nanmean(theirs)) < 0.002
    assert 0.005 < ours["reversal_1"] < 0.03  # the known short-term reversal, modest

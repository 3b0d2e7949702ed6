"""Validation looks only at the bar itself and earlier bars (issue 17, item 5).

A change to the bars strictly after a time ``t`` (a planted spike, calmer or wilder ranges,
spoilt values, bars dropped or added) must leave every bar at or before ``t`` as it was: kept or
rejected, flagged or not, with the same values and reason. And validating new bars with the
stored ones as ``context`` (what an incremental refresh does) flags them as validating the whole
history at once does.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from sentinel42.domain import BAR_COLUMNS
from sentinel42.market.calendar import NyseCalendar
from sentinel42.market.validate import SPIKE_LOOKBACK, ValidationResult, validate_bars

AS_OF = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
SHAPES = ("intraday", "prepost", "daily", "context", "spoilt")
CHANGES = ("spike", "calm", "wild", "spoil", "drop", "more")


def _bars(index: pd.DatetimeIndex, close: np.ndarray, spread: np.ndarray) -> pd.DataFrame:
    n = len(index)
    frame = pd.DataFrame(
        {
            "open": close * (1 + 0.001 * np.sin(np.arange(n))),
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": np.full(n, 1000.0) + np.arange(n),
        },
        index=index,
    )
    frame["open"] = frame["open"].clip(frame["low"], frame["high"])
    return frame


def _case(
    calendar: NyseCalendar, seed: int, shape: str
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, object]]:
    """A frame (a few spikes already in it), its stored context and validate_bars' options."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 160))
    if shape == "daily":  # weekdays at New York midnight (holidays among them get rejected)
        index = pd.bdate_range("2026-05-01", periods=n + 20).tz_localize("America/New_York")
    else:  # 15-minute bars over a week and more: the sessions and a few bars outside them
        index = pd.date_range("2026-11-12 13:00", "2026-11-26 22:00", freq="15min", tz=UTC)
        index = index[calendar.session_mask(index, 15) | (rng.random(len(index)) < 0.05)]
        start = int(rng.integers(0, len(index) - n - 20))
        index = index[start : start + n + 20]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
    spread = np.abs(rng.normal(0, 0.3, len(index))) + 0.01
    spread[rng.random(len(index)) < 0.08] *= 20
    whole = _bars(index, close, spread)
    frame, context = whole.iloc[20:].copy(), whole.iloc[:20]
    if shape == "spoilt":
        for _ in range(4):
            frame.iloc[int(rng.integers(len(frame))), int(rng.integers(5))] = float(
                rng.choice([np.nan, np.inf, -1.0])
            )
    options: dict[str, object] = {
        "ticker": "T",
        "interval_minutes": 15,
        "calendar": calendar,
        "as_of": AS_OF,
        "spike_threshold": float(rng.choice([2.0, 3.0, 8.0])),
        "prepost": shape in ("prepost", "context"),
        "daily": shape == "daily",
    }
    return frame, (context if shape == "context" else None), options


def _change_after(
    frame: pd.DataFrame, t: pd.Timestamp, change: str, rng: np.random.Generator
) -> pd.DataFrame:
    """``frame`` with the bars strictly after ``t`` changed; those at or before untouched."""
    later = frame.index > t
    out = frame.copy()
    close, spread = out["close"].to_numpy(), (out["high"] - out["low"]).to_numpy() / 2
    if change == "spike":  # one huge bar just after t, and another a little later
        for k in np.flatnonzero(later)[[0, -1]]:
            spread[k] *= 200
    elif change in ("calm", "wild"):  # every later range far smaller or larger
        spread = np.where(later, spread * (0.001 if change == "calm" else 1000), spread)
    if change in ("spike", "calm", "wild"):
        changed = _bars(out.index, close, spread)
        out.loc[later] = changed.loc[later]
    elif change == "spoil":  # bad values in later bars: they get rejected
        rows = np.flatnonzero(later)
        for k in rng.choice(rows, size=min(len(rows), 3), replace=False):
            out.iloc[k, int(rng.integers(5))] = np.nan
    elif change == "drop":
        out = out.loc[~later | (rng.random(len(out)) < 0.3)]
    elif change == "more":  # bars appended after the last one, a spike among them
        step = out.index[-1] - out.index[-2]
        extra = pd.DatetimeIndex([out.index[-1] + step * (i + 1) for i in range(8)])
        spread_more = np.full(8, float(np.median(spread)))
        spread_more[2] *= 100
        more = _bars(extra, np.full(8, float(close[-1])), spread_more)
        out = pd.concat([out, more])
    return out


def _up_to(result: ValidationResult, t: pd.Timestamp) -> pd.DataFrame:
    return result.frame.loc[result.frame.index <= t]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", range(4))
def test_bars_after_t_change_no_flag_nor_kept_bar_at_or_before_t(
    calendar: NyseCalendar, seed: int, shape: str, change: str
) -> None:
    frame, context, options = _case(calendar, seed, shape)
    rng = np.random.default_rng(seed + 100)
    before = validate_bars(frame, context=context, **options)  # type: ignore[arg-type]
    kept = before.frame.index
    # t on a kept bar (so that bars after it are kept ones too), neither first nor last.
    cuts = [kept[int(i)] for i in rng.choice(np.arange(5, len(kept) - 3), size=3, replace=False)]
    for t in cuts:
        changed = _change_after(frame, t, change, rng)
        after = validate_bars(changed, context=context, **options)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(
            _up_to(after, t), _up_to(before, t), check_exact=True, check_freq=False
        )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", range(6))
def test_new_bars_with_stored_context_are_flagged_as_the_whole_history(
    calendar: NyseCalendar, seed: int, shape: str
) -> None:
    """Validate in pieces (each piece's context: the bars kept so far), as a refresh does."""
    frame, context, options = _case(calendar, seed, shape)
    whole = validate_bars(frame, context=context, **options)  # type: ignore[arg-type]
    assert whole.n_flagged  # there is something to get right
    rng = np.random.default_rng(seed)
    stored = None if context is None else context[list(BAR_COLUMNS)]
    pieces = []
    edges = np.sort(rng.choice(np.arange(1, len(frame)), size=5, replace=False))
    for piece in np.split(np.arange(len(frame)), edges):
        # Only the last SPIKE_LOOKBACK stored bars are needed (the refresh loads no more).
        ctx = None if stored is None else stored.tail(SPIKE_LOOKBACK)
        got = validate_bars(frame.iloc[piece], context=ctx, **options)  # type: ignore[arg-type]
        pieces.append(got.frame)
        kept = got.frame[list(BAR_COLUMNS)]
        stored = kept if stored is None else pd.concat([stored, kept])
    pd.testing.assert_frame_equal(pd.concat(pieces), whole.frame, check_freq=False)

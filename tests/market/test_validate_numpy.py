"""validate_bars in numpy gives what its pandas version gave: frames, counts, flags and logs."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from sentinel42.domain import BAR_COLUMNS
from sentinel42.errors import DataError
from sentinel42.market import validate
from sentinel42.market.base import daily_bar_end
from sentinel42.market.calendar import NyseCalendar
from sentinel42.market.validate import ValidationResult, validate_bars

AS_OF = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def _reference(  # the pandas version of validate_bars, kept as the yardstick (spikes: past only)
    frame: pd.DataFrame,
    *,
    ticker: str,
    interval_minutes: int,
    calendar: NyseCalendar,
    as_of: datetime,
    prepost: bool = False,
    spike_threshold: float = 8.0,
    context: pd.DataFrame | None = None,
    daily: bool = False,
) -> ValidationResult:
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{ticker}: bar frame lacks column(s) {', '.join(missing)}")
    bars = validate.normalize_index(frame[list(BAR_COLUMNS)]).astype("float64")
    who = f"{ticker} {'1d' if daily else f'{interval_minutes}m'}"
    if not bars.index.is_monotonic_increasing:
        bars = bars.sort_index(kind="stable")
    rejected: Counter[str] = Counter()
    idx = bars.index
    keep = np.ones(len(bars), dtype=bool)
    if daily:
        ends_ns = np.array(
            [pd.Timestamp(daily_bar_end(ts)).as_unit("ns").value for ts in idx], dtype=np.int64
        )
    else:
        ends_ns = idx.asi8 + interval_minutes * 60_000_000_000
    forming_mask = ends_ns > pd.Timestamp(as_of).as_unit("ns").value
    forming = int(forming_mask.sum())
    if forming:
        logging.getLogger(validate.__name__).debug(
            "%s: %d bar(s) not final at %s (still forming)", who, forming, as_of
        )
    keep &= ~forming_mask
    validate._reject(keep, idx.duplicated(keep="last"), "duplicate timestamp", rejected, idx, who)
    for reason, bad, _cells in validate.bar_rules(bars.to_numpy()):
        validate._reject(keep, bad, reason, rejected, idx, who)
    if daily:
        not_session = np.array(
            [not calendar.is_session(ts.date()) for ts in idx.tz_convert("America/New_York")],
            dtype=bool,
        )
        validate._reject(keep, not_session, "not a trading day", rejected, idx, who)
    elif not prepost:
        outside = ~calendar.session_mask(idx, interval_minutes)
        validate._reject(keep, outside, "outside the regular session", rejected, idx, who)
    kept = bars[keep]
    flagged: Counter[str] = Counter()
    flags = np.zeros(len(kept), dtype=bool)
    rng = (kept["high"] - kept["low"]).to_numpy()
    n_ctx = 0
    if len(kept) and context is not None and len(context):
        ctx = context.loc[context.index < kept.index[0]].tail(validate.SPIKE_LOOKBACK)
        n_ctx = len(ctx)
        rng = np.concatenate([(ctx["high"] - ctx["low"]).to_numpy(dtype="float64"), rng])
    if len(kept) and len(rng) >= validate.MIN_NEIGHBOURS + 1:
        # Issue 17: the trailing window (the bar and the SPIKE_LOOKBACK bars before it), no
        # longer the centred one; pandas' own rolling median, not validate's fast one.
        med = (
            pd.Series(rng)
            .rolling(validate.SPIKE_LOOKBACK + 1, min_periods=validate.MIN_NEIGHBOURS + 1)
            .median()
            .to_numpy()
        )
        with np.errstate(invalid="ignore"):
            flags = ((med > 0) & (rng > spike_threshold * med))[n_ctx:]
        if flags.sum():
            flagged[f"spike: range > {spike_threshold:g}x the trailing median range"] = int(
                flags.sum()
            )
            logging.getLogger(validate.__name__).warning(
                "%s: flagged %d suspicious bar(s) (range spike), first at %s",
                who,
                int(flags.sum()),
                kept.index[np.argmax(flags)],
            )
    reasons = pd.Series(None, index=kept.index, dtype="object")
    reasons[flags] = "spike"
    kept = kept.assign(flagged=flags, flag_reason=reasons)
    return ValidationResult(kept, rejected, flagged, forming)


def _frame(rng: np.random.Generator, n: int, *, start: str, freq: str) -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq=freq, tz=UTC, name="ts")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.abs(rng.normal(0, 0.3, n))
    spread[rng.random(n) < 0.05] *= 30  # a few spikes
    frame = pd.DataFrame(
        {
            "open": close * (1 + rng.normal(0, 0.001, n)),
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.integers(0, 10**6, n).astype("float64"),
        },
        index=index,
    )
    frame["open"] = frame["open"].clip(frame["low"], frame["high"])
    return frame


def _spoil(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    n = len(out)
    for value in (np.nan, np.inf, -1.0, 0.0):
        if n and rng.random() < 0.5:
            out.iloc[int(rng.integers(n)), int(rng.integers(5))] = value
    if n > 3 and rng.random() < 0.5:  # a duplicate and an out-of-order bar
        out = pd.concat([out, out.iloc[[1]]]).iloc[rng.permutation(n + 1)]
    return out


def _assert_same(frame: pd.DataFrame, caplog: pytest.LogCaptureFixture, **kw: object) -> None:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=validate.__name__):
        expected = _reference(frame.copy(), **kw)  # type: ignore[arg-type]
        want_logs = [r.getMessage() for r in caplog.records]
        caplog.clear()
        before = frame.copy()
        got = validate_bars(frame, **kw)  # type: ignore[arg-type]
        got_logs = [r.getMessage() for r in caplog.records]
    pd.testing.assert_frame_equal(frame, before)  # the input is not touched
    pd.testing.assert_frame_equal(got.frame, expected.frame, check_exact=True, check_freq=True)
    assert got.frame.index.freq == expected.frame.index.freq
    assert str(got.frame.index.tz) == str(expected.frame.index.tz)
    assert got.frame.columns.dtype == expected.frame.columns.dtype
    assert list(got.frame.dtypes) == list(expected.frame.dtypes)
    assert got.frame.to_numpy().tolist() == expected.frame.to_numpy().tolist()
    assert (got.rejected, got.flagged, got.forming) == (
        expected.rejected,
        expected.flagged,
        expected.forming,
    )
    assert got_logs == want_logs


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [0, 1, 3, 12, 40, 300])
def test_intraday_frames_with_bad_bars_validate_as_before(
    calendar: NyseCalendar, caplog: pytest.LogCaptureFixture, seed: int, n: int
) -> None:
    rng = np.random.default_rng(seed * 1000 + n)
    whole = _frame(rng, n + 12, start="2026-11-23 13:00", freq="15min")
    frame = whole.iloc[12:]
    if seed % 2:
        frame = _spoil(rng, frame)
    context = whole.iloc[: int(rng.integers(0, 14))] if seed % 4 < 2 else None
    if seed % 4 == 1 and context is not None:
        context = context.astype({"high": "int64"})  # an unusual store frame
    _assert_same(
        frame,
        caplog,
        ticker="T",
        interval_minutes=15,
        calendar=calendar,
        as_of=AS_OF,
        prepost=seed % 3 == 0,
        spike_threshold=float(rng.choice([3.0, 8.0])),
        context=context,
    )


@pytest.mark.parametrize("seed", range(4))
def test_daily_frames_validate_as_before(
    calendar: NyseCalendar, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    frame = _frame(rng, 30, start="2026-10-20", freq="D")
    frame.index = frame.index.tz_localize(None).tz_localize("America/New_York")
    if seed % 2:
        frame = _spoil(rng, frame)
    _assert_same(
        frame, caplog, ticker="T", interval_minutes=15, calendar=calendar, as_of=AS_OF, daily=True
    )


@pytest.mark.parametrize(
    "shape",
    ["object_columns", "int_volume", "extra_columns", "new_york_index", "second_unit", "no_freq"],
)
def test_frames_of_other_shapes_validate_as_before(
    calendar: NyseCalendar, caplog: pytest.LogCaptureFixture, shape: str
) -> None:
    frame = _frame(np.random.default_rng(3), 40, start="2026-11-24 14:30", freq="15min")
    if shape == "object_columns":
        frame.columns = pd.Index(list(frame.columns), dtype=object)
    elif shape == "int_volume":
        frame["volume"] = frame["volume"].astype("int64")
    elif shape == "extra_columns":
        frame = frame.assign(symbol="T", dividends=0.0)[["symbol", *BAR_COLUMNS, "dividends"]]
    elif shape == "new_york_index":
        frame.index = frame.index.tz_convert("America/New_York").rename("Datetime")
    elif shape == "second_unit":
        frame.index = frame.index.as_unit("s")
    else:
        frame.index = pd.DatetimeIndex(list(frame.index), name="ts")
    context = _frame(np.random.default_rng(4), 10, start="2026-11-24 12:00", freq="15min")
    _assert_same(
        frame,
        caplog,
        ticker="T",
        interval_minutes=15,
        calendar=calendar,
        as_of=AS_OF,
        spike_threshold=3.0,
        context=context,
    )


def test_naive_index_is_refused_as_before(calendar: NyseCalendar) -> None:
    frame = _frame(np.random.default_rng(0), 5, start="2026-11-24 14:30", freq="15min")
    frame.index = frame.index.tz_localize(None)
    with pytest.raises(DataError, match="naive"):
        validate_bars(frame, ticker="T", interval_minutes=15, calendar=calendar, as_of=AS_OF)

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentinel42.errors import ModelError
from sentinel42.model.features import (
    INTRADAY_FEATURES,
    FeatureSpec,
    Normalizer,
    build_table,
    samples,
)
from sentinel42.synthetic import BARS_PER_SESSION, synthetic_bars

SPEC = FeatureSpec(window=8, horizon=4)


def test_target_never_spans_the_overnight_gap() -> None:
    bars = synthetic_bars(["AAA"], 5, seed=1)
    table = build_table(bars, SPEC)
    day = pd.DatetimeIndex(table.ts).tz_localize("UTC").tz_convert("America/New_York").date
    has_target = np.isfinite(table.target)
    for d in sorted(set(day)):
        in_day = np.flatnonzero(day == d)
        # the last `horizon` bars of every session have no target; the others do
        assert not has_target[in_day[-SPEC.horizon :]].any()
        assert has_target[in_day[: -SPEC.horizon]].all()
    ends = np.flatnonzero(has_target)
    close = bars["AAA"]["close"].to_numpy()
    np.testing.assert_allclose(table.target[ends], np.log(close[ends + 4] / close[ends]))


def test_features_of_a_bar_ignore_every_later_bar() -> None:
    bars = synthetic_bars(["AAA"], 6, seed=2)
    cut = 3 * BARS_PER_SESSION + 5
    changed = bars["AAA"].copy()
    changed.iloc[cut + 1 :, :] *= 1.5  # rewrite the future only
    a = build_table(bars, SPEC).features
    b = build_table({"AAA": changed}, SPEC).features
    np.testing.assert_allclose(a[: cut + 1], b[: cut + 1])
    assert not np.allclose(a[cut + 1 :], b[cut + 1 :])


def test_time_of_day_starts_at_zero_on_both_sides_of_a_dst_switch() -> None:
    # 2025-03-10 is the first session after the switch to EDT: the open moves from 14:30 UTC
    # to 13:30 UTC, and the time-of-day feature must not move with it.
    bars = synthetic_bars(["AAA"], 4, first_day=pd.Timestamp("2025-03-06").date())
    table = build_table(bars, SPEC)
    tod = table.features[:, INTRADAY_FEATURES.index("time_of_day")]
    starts = table.features[:, INTRADAY_FEATURES.index("session_start")] == 1.0
    utc_hours = pd.DatetimeIndex(table.ts).tz_localize("UTC").hour[starts]
    assert set(utc_hours) == {13, 14}
    np.testing.assert_allclose(tod[starts], 0.0)
    assert tod.max() == pytest.approx(25 / 26)


def test_a_flagged_bar_removes_every_window_and_target_touching_it() -> None:
    bars = synthetic_bars(["AAA"], 5, seed=3)
    frame = bars["AAA"].copy()
    frame["flagged"] = False
    bad = 2 * BARS_PER_SESSION + 10
    frame.iloc[bad, frame.columns.get_loc("flagged")] = True
    s = samples(build_table({"AAA": frame}, SPEC), SPEC)
    clean = samples(build_table(bars, SPEC), SPEC)
    window_hits = (s.ends >= bad) & (s.ends - SPEC.window + 1 <= bad)
    target_hits = (s.ends < bad) & (s.ends + SPEC.horizon >= bad)
    assert not window_hits.any() and not target_hits.any()
    assert 0 < len(clean) - len(s) <= SPEC.window + SPEC.horizon


def test_normalization_is_fitted_on_the_training_window_only() -> None:
    bars = synthetic_bars(["AAA"], 6, seed=5)
    frame = bars["AAA"].copy()
    split = 3 * BARS_PER_SESSION
    table = build_table({"AAA": frame}, SPEC)
    s = samples(table, SPEC)
    train = s.subset(s.ends < split - SPEC.horizon)
    before = Normalizer.fit(table, train)
    frame.iloc[split:, frame.columns.get_loc("volume")] *= 1000.0  # later data only
    table2 = build_table({"AAA": frame}, SPEC)
    after = Normalizer.fit(table2, train)
    np.testing.assert_allclose(before.mean, after.mean)
    np.testing.assert_allclose(before.std, after.std)


@pytest.mark.parametrize(
    ("field", "value"),
    [("names", ["ret_1", "gap"]), ("version", 99), ("session_tz", "Europe/London")],
)
def test_a_spec_this_code_cannot_compute_is_refused(field: str, value: object) -> None:
    data = SPEC.to_dict()
    data[field] = value
    with pytest.raises(ModelError, match=r"retrain|features"):
        FeatureSpec.from_dict(data)


def test_daily_features_use_only_days_before_the_session() -> None:
    bars = synthetic_bars(["AAA"], 30, seed=6)
    days = pd.bdate_range("2024-12-02", "2025-02-28", tz="America/New_York")
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    daily = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1.0},
        index=days.tz_convert("UTC"),
    )
    spec = FeatureSpec(window=8, horizon=4, use_daily=True)
    table = build_table(bars, spec, daily={"AAA": daily})
    ts = pd.DatetimeIndex(table.ts).tz_localize("UTC").tz_convert("America/New_York")
    day = pd.Timestamp("2025-01-15", tz="America/New_York")
    row = int(np.flatnonzero(ts.normalize() == day)[0])
    pos = days.get_loc(pd.Timestamp("2025-01-14", tz="America/New_York"))
    expected = np.log(close[pos] / close[pos - 1])
    assert table.features[row, len(INTRADAY_FEATURES)] == pytest.approx(expected)
    with pytest.raises(ModelError, match="daily"):
        build_table(bars, spec, daily={})

"""Cross-sectional metrics of a ranking model: rank IC, its bootstrap bound, a quintile book.

Every input is a ``[T, N]`` array (T timestamps in time order, N tickers), NaN where a (time,
ticker) has no score or no target; ``session`` is ``[T]`` int64, the trading-day id of each row
(one row per session for daily data, ~20-26 for 15-minute bars); ``horizon`` is the target length
in rows, and the target is the forward return over those ``horizon`` rows.

Rank IC: per row, the Spearman correlation (average ranks for ties) of score and target over the
names where both are finite. Rows overlap (a horizon-5 target shares 4 days with its neighbour)
and ICs persist, so the bound of the mean IC comes from a circular moving-block bootstrap over
*whole sessions* (all of a session's rows move together), with blocks of at least one horizon.

The long-short book is the top score quintile long and the bottom one short (each side sums to
1 in absolute weight), held as a staggered book of ``horizon`` sleeves: the sleeve opened at row
t holds the quintile weights ``w_t`` for ``horizon`` rows, so each row carries ``1 / horizon`` of
the capital and

* gross return ``r_t = sum_i w_t,i * target_t,i / horizon`` (a NaN target counts 0);
* the sleeve rebalances from ``w_prev`` = its previous weights, those of row ``t - horizon``
  (0 before the first). With ``flat_at_close`` (intraday books never hold over the close), a
  sleeve whose previous row lies in another session starts flat (``w_prev = 0``), and a sleeve
  whose next rebalance row lies in another session (or past the end) is closed at the close, so
  ``traded_t = sum_i |w_t,i - w_prev,i| + (sum_i |w_t,i| when closed at the close)``; without it
  the position simply rolls, across sessions too;
* ``cost_t = traded_t / horizon * cost_bps / 1e4`` (one-way cost on the traded notional);
* ``long_short_gross_annual = mean_t(r_t) * periods_per_year``, net likewise of ``r_t - cost_t``,
  the mean over all T rows (a row without a book is a sleeve in cash);
* ``turnover = mean_t(traded_t) / (2 * horizon)``: the fraction of the gross book (2) traded per
  period.

With a full book on every row (gross 2), charging each flat sleeve's close at its close equals
charging ``2 * sum|w_t|`` when it opens; the totals differ only at rows without a book.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

MIN_NAMES = 5  # a rank IC over fewer names is noise
N_GROUPS = 5  # quintiles
MIN_BOOTSTRAP = 2000
TAIL_DRAWS = 20  # at least this many replicates beyond the bound's quantile
_CHUNK_ROWS = 2048  # rows ranked at once (bounds the temporaries at ~2048 x N)
_CHUNK_BOOT = 20_000  # bootstrap replicates drawn at once
_TINY = 1e-12
_CF_DF = 100  # t quantiles past this many degrees of freedom by Cornish-Fisher


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Row-wise ranks 1..n of the finite entries, ties sharing their average rank.

    Args:
        x: [T, N] values, NaN (or inf) where missing.

    Returns:
        [T, N] float64 ranks, NaN where ``x`` is not finite.
    """
    x = np.where(np.isfinite(x), x, np.nan).astype(np.float64)
    t, n = x.shape
    out = np.full((t, n), np.nan)
    if t == 0 or n == 0:
        return out
    pos = np.arange(n)
    for lo in range(0, t, _CHUNK_ROWS):
        chunk = x[lo : lo + _CHUNK_ROWS]
        order = np.argsort(chunk, axis=1, kind="stable")  # NaN sorts last
        ordered = np.take_along_axis(chunk, order, axis=1)
        differs = ordered[:, 1:] != ordered[:, :-1]  # NaN != NaN: every NaN is its own tie group
        edge = np.ones((chunk.shape[0], 1), dtype=bool)
        starts = np.concatenate((edge, differs), axis=1)
        ends = np.concatenate((differs, edge), axis=1)
        first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
        last = np.minimum.accumulate(np.where(ends, pos, n)[:, ::-1], axis=1)[:, ::-1]
        ranks = np.empty_like(ordered)
        np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
        out[lo : lo + _CHUNK_ROWS] = ranks
    out[np.isnan(x)] = np.nan
    return out


def _paired(score: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score and target with NaN wherever either is not finite, and that [T, N] mask."""
    both = np.isfinite(score) & np.isfinite(target)
    return np.where(both, score, np.nan), np.where(both, target, np.nan), both


def rank_ic(score: np.ndarray, target: np.ndarray, min_names: int = MIN_NAMES) -> np.ndarray:
    """Per-row Spearman rank correlation of score and target.

    Args:
        score: [T, N] model scores, NaN where none.
        target: [T, N] forward returns, NaN where none.
        min_names: rows with fewer names having both a score and a target give NaN.

    Returns:
        [T] the rank IC of each row, over the names where both are finite (average ranks for
        ties); NaN where there are fewer than ``min_names`` such names or either side is
        constant.
    """
    s, y, both = _paired(np.asarray(score, np.float64), np.asarray(target, np.float64))
    count = both.sum(axis=1)
    centre = (count[:, None] + 1.0) / 2.0  # the mean of ranks 1..n, ties or not
    rs = np.nan_to_num(average_ranks(s) - centre)
    ry = np.nan_to_num(average_ranks(y) - centre)
    cov = (rs * ry).sum(axis=1)
    var_s = (rs * rs).sum(axis=1)
    var_y = (ry * ry).sum(axis=1)
    ok = (count >= max(min_names, 2)) & (var_s > _TINY) & (var_y > _TINY)
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = cov / np.sqrt(var_s * var_y)
    return np.where(ok, np.clip(ic, -1.0, 1.0), np.nan)


def score_groups(score: np.ndarray, n_groups: int = N_GROUPS) -> np.ndarray:
    """Quantile group of each score within its row, 0 = lowest.

    Names are grouped by average rank (``floor((rank - 1) * n_groups / n)``), so tied scores
    share a group and groups differ in size by at most one when there are no ties.

    Args:
        score: [T, N] scores, NaN where none.
        n_groups: quantiles per row (5: quintiles).

    Returns:
        [T, N] int64 group in ``0..n_groups-1``; -1 where the score is not finite and on rows
        with fewer than ``2 * n_groups`` finite scores (too thin to sort into groups).
    """
    ranks = average_ranks(np.asarray(score, np.float64))
    count = np.isfinite(ranks).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        group = np.floor((ranks - 1.0) * n_groups / np.maximum(count, 1))
    usable = np.isfinite(group) & (count >= 2 * n_groups)
    return np.where(usable, np.clip(np.nan_to_num(group), 0, n_groups - 1), -1).astype(np.int64)


def long_short_weights(score: np.ndarray, n_groups: int = N_GROUPS) -> np.ndarray:
    """Quantile long-short weights: long the top score group, short the bottom one.

    Args:
        score: [T, N] scores, NaN where none.
        n_groups: quantiles per row (5: quintiles).

    Returns:
        [T, N] ``+1 / n_top`` on the top group, ``-1 / n_bottom`` on the bottom group, 0
        elsewhere and where the score is NaN. Rows with fewer than ``2 * n_groups`` finite
        scores, or whose top or bottom group is empty (ties), are all zeros.
    """
    group = score_groups(score, n_groups)
    top = group == n_groups - 1
    bottom = group == 0
    n_top = top.sum(axis=1, keepdims=True)
    n_bottom = bottom.sum(axis=1, keepdims=True)
    book = (n_top > 0) & (n_bottom > 0)
    w = top / np.maximum(n_top, 1) - bottom / np.maximum(n_bottom, 1)
    return np.where(book, w, 0.0)


def quantile_returns(score: np.ndarray, target: np.ndarray, n_groups: int = N_GROUPS) -> np.ndarray:
    """Mean target of each score quantile, row by row.

    Args:
        score: [T, N] scores, NaN where none (groups as in :func:`score_groups`).
        target: [T, N] forward returns, NaN where none (left out of the means).
        n_groups: quantiles per row.

    Returns:
        [T, n_groups] the mean finite target of each group, lowest score first; NaN where a
        group has no name with a finite target.
    """
    group = score_groups(score, n_groups)
    target = np.asarray(target, np.float64)
    has = np.isfinite(target)
    y = np.where(has, target, 0.0)
    out = np.full((group.shape[0], n_groups), np.nan)
    for g in range(n_groups):
        member = (group == g) & has
        count = member.sum(axis=1)
        total = np.where(member, y, 0.0).sum(axis=1)
        out[:, g] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def n_bootstrap(confidence: float) -> int:
    """Replicates for a one-sided bound: 2000, or enough to leave 20 beyond its quantile."""
    return max(MIN_BOOTSTRAP, math.ceil(round(TAIL_DRAWS / (1.0 - confidence), 6)))


def block_sessions(n_sessions: int, horizon: int, rows_per_session: float) -> int:
    """Sessions per bootstrap block: at least the sessions one target spans, and n^(1/3).

    Args:
        n_sessions: sessions in the sample.
        horizon: target length in rows.
        rows_per_session: typical rows of one session (1 for daily data).
    """
    span = math.ceil(horizon / max(rows_per_session, 1.0))
    return max(1, min(n_sessions, max(span, math.ceil(n_sessions ** (1 / 3)))))


def _session_units(session: np.ndarray) -> tuple[np.ndarray, float]:
    """Session index of each row (in order of first appearance) and median rows per session."""
    _, first, inverse, counts = np.unique(
        session, return_index=True, return_inverse=True, return_counts=True
    )
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return rank[inverse.reshape(-1)], float(np.median(counts))


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with integer ``df`` degrees of freedom (p >= 0.5).

    Bisection on the closed-form CDF for integer degrees of freedom (Abramowitz & Stegun
    26.7.3-4), so it needs no scipy; past 100 degrees of freedom, the Cornish-Fisher expansion
    around the normal quantile (26.7.5, exact to ~1e-7 there).
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if df > _CF_DF:
        z = NormalDist().inv_cdf(p)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
        return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4

    def cdf(t: float) -> float:
        theta = math.atan(t / math.sqrt(df))
        c2 = math.cos(theta) ** 2
        term, total = 1.0, 1.0
        if df % 2:  # odd: (2/pi)(theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
            for k in range(1, (df - 1) // 2):
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
            inner = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
            two_sided = 2.0 / math.pi * (theta + inner)
        else:  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
            for k in range(1, df // 2):
                term *= c2 * (2 * k - 1) / (2 * k)
                total += term
            two_sided = math.sin(theta) * total
        return 0.5 + 0.5 * two_sided

    lo, hi = 0.0, 1.0
    while cdf(hi) < p and hi < 1e12:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def small_sample_factor(confidence: float, n_blocks: int) -> float:
    """How far to stretch the bootstrap's distance from the mean when there are few blocks.

    A percentile bound from ``n_blocks`` blocks is too narrow: the bootstrap variance of a
    mean is ``(n - 1) / n`` of the unbiased one, and the normal tail ignores that the variance
    itself is estimated from ~n blocks. The factor ``sqrt(n / (n - 1)) * t_{n-1} / z`` corrects
    both (it tends to 1 as blocks grow: 1.06 at 36 blocks, 1.28 at 10).

    Args:
        confidence: one-sided level of the bound.
        n_blocks: blocks per bootstrap replicate (>= 2).
    """
    z = NormalDist().inv_cdf(confidence)
    df = n_blocks - 1
    return math.sqrt(n_blocks / df) * t_quantile(confidence, df) / z


def ic_bound(
    ic: np.ndarray,
    session: np.ndarray,
    *,
    horizon: int,
    confidence: float,
    seed: int = 0,
    upper: bool = False,
) -> float:
    """One-sided bound of the mean of a per-row series, by a circular block bootstrap of sessions.

    The resampling unit is a whole session (the sum and the count of its finite values, so all
    of a session's rows move together); blocks are ``block_sessions`` consecutive sessions
    (circular, so every session is equally likely to be drawn); a replicate's mean is its
    resampled sum over its resampled count, so sessions weigh by their rows as in the plain
    mean. The percentile's distance from the sample mean is then stretched by
    :func:`small_sample_factor` (a plain percentile bound from 6 blocks of noise clears 0 at
    "99%" in ~6% of samples, not 1%). Works for any per-row series, e.g. the paired difference
    ``model_ic - baseline_ic`` (NaN wherever either is NaN).

    Args:
        ic: [T] per-row values (rank ICs), NaN where undefined (left out).
        session: [T] int64 session id of each row, rows in time order.
        horizon: target length in rows (sets the minimum block length).
        confidence: one-sided level, e.g. 0.99.
        seed: seeds the resampling, so one input gives one bound.
        upper: the upper bound instead of the lower one.

    Returns:
        The bound: the sample mean plus ``small_sample_factor`` times the distance to the
        ``1 - confidence`` quantile (``confidence`` with ``upper``) of ``n_bootstrap(confidence)``
        resampled means. NaN when no row is finite or the finite rows fill fewer than two blocks
        (nothing to resample).
    """
    ic = np.asarray(ic, np.float64).reshape(-1)
    session = np.asarray(session).reshape(-1)
    if ic.shape != session.shape:
        raise ValueError(f"ic has {ic.shape[0]} rows but session has {session.shape[0]}")
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    finite = np.isfinite(ic)
    if not finite.any():
        return float("nan")
    unit, rows_per_session = _session_units(session)
    used, kept = np.unique(unit[finite], return_inverse=True)  # sessions with a finite value
    n_sessions = used.shape[0]
    sums = np.bincount(kept, weights=ic[finite], minlength=n_sessions)
    counts = np.bincount(kept, minlength=n_sessions).astype(np.float64)
    length = block_sessions(n_sessions, horizon, rows_per_session)
    n_blocks = math.ceil(n_sessions / length)
    if n_blocks < 2:
        return float("nan")
    cum_sums = np.concatenate(([0.0], np.cumsum(np.tile(sums, 2))))
    cum_counts = np.concatenate(([0.0], np.cumsum(np.tile(counts, 2))))
    rng = np.random.default_rng(seed)
    total = n_bootstrap(confidence)
    means = np.empty(total)
    for lo in range(0, total, _CHUNK_BOOT):
        size = min(_CHUNK_BOOT, total - lo)
        starts = rng.integers(0, n_sessions, size=(size, n_blocks))
        s = (cum_sums[starts + length] - cum_sums[starts]).sum(axis=1)
        c = (cum_counts[starts + length] - cum_counts[starts]).sum(axis=1)
        means[lo : lo + size] = s / c  # every session kept has a finite row, so c > 0
    centre = float(sums.sum() / counts.sum())
    quantile = float(np.quantile(means, confidence if upper else 1.0 - confidence))
    return centre + small_sample_factor(confidence, n_blocks) * (quantile - centre)


def book(
    weights: np.ndarray,
    target: np.ndarray,
    session: np.ndarray,
    *,
    horizon: int,
    flat_at_close: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """[T] gross return and traded notional of the staggered book (see the module docstring).

    The report's equity curve uses it too, so the chart and the figures are one computation.
    """
    t = weights.shape[0]
    gross = (weights * np.nan_to_num(target, nan=0.0, posinf=0.0, neginf=0.0)).sum(axis=1)
    gross = gross / horizon
    prev = np.zeros_like(weights)
    if horizon < t:
        prev[horizon:] = weights[:-horizon]
    if flat_at_close:
        same_prev = np.zeros(t, dtype=bool)
        same_prev[horizon:] = session[horizon:] == session[:-horizon]
        prev[~same_prev] = 0.0
        same_next = np.zeros(t, dtype=bool)
        same_next[: max(t - horizon, 0)] = same_prev[horizon:]
        closing = np.where(same_next, 0.0, np.abs(weights).sum(axis=1))
    else:
        closing = np.zeros(t)
    traded = np.abs(weights - prev).sum(axis=1) + closing
    return gross, traded


def _direction(score: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Accuracy and MCC of "score above its row's median" against "target > 0".

    Over the names with both a score and a nonzero target; the median is over the names with
    both finite. MCC is 0 when undefined (a constant call or outcome).
    """
    s, y, both = _paired(score, target)
    if not both.any():
        return float("nan"), 0.0
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(both.any(axis=1, keepdims=True), s, 0.0), axis=1)
    use = both & (y != 0)
    call = (s > median[:, None])[use]
    up = (y > 0)[use]
    if call.size == 0:
        return float("nan"), 0.0
    tp = float(np.sum(call & up))
    tn = float(np.sum(~call & ~up))
    fp = float(np.sum(call & ~up))
    fn = float(np.sum(~call & up))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = (tp * tn - fp * fn) / denom if denom > 0 else 0.0
    return (tp + tn) / call.size, mcc


def evaluate(
    score: np.ndarray,
    target: np.ndarray,
    session: np.ndarray,
    *,
    horizon: int,
    periods_per_year: float,
    cost_bps: float,
    confidence: float = 0.99,
    seed: int = 0,
    n_groups: int = N_GROUPS,
    flat_at_close: bool = False,
) -> dict[str, Any]:
    """Every metric of a ranking model on one block of rows.

    Args:
        score: [T, N] model scores, NaN where none.
        target: [T, N] forward returns over ``horizon`` rows, NaN where none.
        session: [T] int64 session id of each row, rows in time order.
        horizon: target length in rows.
        periods_per_year: rows per year (252 daily, 252 * 26 for 15-minute bars).
        cost_bps: one-way cost per unit of traded notional, in basis points.
        confidence: one-sided level of ``rank_ic_lower``.
        seed: seeds the bootstrap.
        n_groups: quantiles of the long-short book (5: quintiles).
        flat_at_close: intraday books close every position at the session close.

    Returns:
        Plain floats and ints: ``rank_ic_mean``, ``rank_ic_std`` (sample), ``icir`` (mean / std
        per period, not annualized), ``rank_ic_t`` (mean / (std / sqrt(n)): naive, since
        overlapping horizons and persistent scores make rows dependent; trust
        ``rank_ic_lower``), ``rank_ic_lower`` (:func:`ic_bound` at ``confidence``),
        ``long_short_gross_annual``, ``long_short_net_annual``, ``turnover`` (see the module
        docstring), ``hit_rate`` (share of rows with a book whose gross return is > 0),
        ``accuracy`` and ``mcc`` (score above its row's median vs target > 0, over samples with
        a nonzero target), ``n_periods`` (rows with a finite IC), ``n_samples`` (finite score
        and target pairs), ``n_sessions`` (sessions with a finite IC).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    score = np.asarray(score, np.float64)
    target = np.asarray(target, np.float64)
    session = np.asarray(session).reshape(-1)
    if score.shape != target.shape or score.ndim != 2 or session.shape[0] != score.shape[0]:
        raise ValueError(
            f"score {score.shape}, target {target.shape} and session {session.shape} disagree"
        )
    ic = rank_ic(score, target)
    finite = np.isfinite(ic)
    n_periods = int(finite.sum())
    mean = float(np.mean(ic[finite])) if n_periods else float("nan")
    std = float(np.std(ic[finite], ddof=1)) if n_periods > 1 else float("nan")
    weights = long_short_weights(score, n_groups)
    gross, traded = book(weights, target, session, horizon=horizon, flat_at_close=flat_at_close)
    cost = traded / horizon * cost_bps / 1e4
    booked = np.abs(weights).sum(axis=1) > 0
    accuracy, mcc = _direction(score, target)
    icir = mean / std if std > 0 else float("nan")  # NaN std compares False
    nan = float("nan")
    return {
        "rank_ic_mean": mean,
        "rank_ic_std": std,
        "icir": icir,
        "rank_ic_t": icir * math.sqrt(n_periods),
        "rank_ic_lower": ic_bound(ic, session, horizon=horizon, confidence=confidence, seed=seed),
        "long_short_gross_annual": float(np.mean(gross)) * periods_per_year if gross.size else nan,
        "long_short_net_annual": float(np.mean(gross - cost)) * periods_per_year
        if gross.size
        else nan,
        "turnover": float(np.mean(traded)) / (2 * horizon) if traded.size else nan,
        "hit_rate": float(np.mean(gross[booked] > 0)) if booked.any() else nan,
        "accuracy": float(accuracy),
        "mcc": float(mcc),
        "n_periods": n_periods,
        "n_samples": int((np.isfinite(score) & np.isfinite(target)).sum()),
        "n_sessions": int(np.unique(session[finite]).shape[0]),
    }

"""Live monitoring statistics: per-bar rank IC and long-short, per-session series, and a CUSUM
with hysteresis that tells a leg's noise from its decay (issue 17, item 6).

Pure numpy, no I/O, no clock. The validate flow (:mod:`sentinel42.decision_scoring`) feeds it each
leg's scores and realised returns; ``scripts/figures/monitor_power.py`` prints the rule's size on
noise and its delay on decay from :func:`operating_characteristics`.

The rule (docs/validation.md, "Live monitoring"): each NYSE session gives one figure ``x_s`` (the
mean over its bars of the leg's rank IC, or the direction model's hit rate). In control the leg
earns its validated figure ``mu1``; decayed it earns its baseline ``mu0`` (no edge: IC 0, or the
best baseline's accuracy). With ``sigma`` the sample standard deviation of the session figures
so far (whole sessions, so the overlap of horizons and the market's common moves inside a
session are in it), ``delta = (mu1 - mu0) / sigma`` and ``k = delta / 2``:

- decay CUSUM ``S = max(0, S + (mu1 - x_s) / sigma - k)``; the leg is degraded when ``S >= h``;
- while degraded, a recovery CUSUM ``R = max(0, R + (x_s - mu0) / sigma - k)``; it recovers when
  ``R >= h`` and ``S`` starts again from 0.

``h`` is set, by Siegmund's approximation of the CUSUM's average run length, so that a healthy
leg looked at once a session raises a false alarm with probability ``alpha_year`` over a year of
252 daily looks (in-control ARL ``252 / -ln(1 - alpha_year)``). Both directions need a full ``h``
of evidence from 0: a leg cannot flip on one session (the hysteresis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sentinel42.model.ranking.metrics import average_ranks

LOOKS_PER_YEAR = 252
# Siegmund's correction for the overshoot of a Gaussian CUSUM over its threshold.
_OVERSHOOT = 1.166
# Bars need this many names with a score and a return for a cross-sectional figure.
MIN_NAMES = 3


# --- per bar ----------------------------------------------------------------------------------
def spearman_ic(scores: np.ndarray, returns: np.ndarray) -> float:
    """Cross-sectional Spearman rank correlation of ``scores`` and ``returns`` (NaN pairs
    dropped); NaN with fewer than :data:`MIN_NAMES` names or a constant side."""
    ok = np.isfinite(scores) & np.isfinite(returns)
    if ok.sum() < MIN_NAMES:
        return math.nan
    a, b = average_ranks(np.stack((scores[ok], returns[ok])))  # one row each
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def long_short(scores: np.ndarray, returns: np.ndarray) -> float:
    """Equal-weight mean return of the top half of ``scores`` minus the bottom half (an odd
    count leaves the middle name out); NaN with fewer than :data:`MIN_NAMES` names."""
    ok = np.isfinite(scores) & np.isfinite(returns)
    n = int(ok.sum())
    if n < MIN_NAMES:
        return math.nan
    r = returns[ok][np.argsort(scores[ok], kind="mergesort")]
    half = n // 2
    return float(r[n - half :].mean() - r[:half].mean())


def hit_rate(p_up: np.ndarray, returns: np.ndarray) -> float:
    """Share of names where ``P(up)`` said the way the price went (0.5 exactly: no signal)."""
    side = np.sign(p_up - 0.5)
    ok = np.isfinite(side) & (side != 0) & np.isfinite(returns)
    if not ok.any():
        return math.nan
    return float(np.mean(side[ok] * returns[ok] > 0))


# --- per session --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SessionSeries:
    """One figure per session (mean over its bars), oldest first; ``bars`` counts the bars."""

    sessions: list[Any]
    ic: np.ndarray
    long_short: np.ndarray
    hit_rate: np.ndarray
    bars: np.ndarray


def session_series(
    session: np.ndarray, bar_ic: np.ndarray, bar_ls: np.ndarray, bar_hit: np.ndarray | None = None
) -> SessionSeries:
    """Average per-bar figures over each session (label per bar, bars in time order).

    A bar without a figure (NaN) does not count; a session none of whose bars has an IC is left
    out.
    """
    hit = bar_hit if bar_hit is not None else np.full(len(bar_ic), np.nan)
    labels = list(dict.fromkeys(session.tolist()))
    kept: list[Any] = []
    ic, ls, hr, n = [], [], [], []
    for label in labels:
        rows = session == label
        good = rows & np.isfinite(bar_ic)
        if not good.any():
            continue
        kept.append(label)
        ic.append(float(bar_ic[good].mean()))
        ls_rows = rows & np.isfinite(bar_ls)
        ls.append(float(bar_ls[ls_rows].mean()) if ls_rows.any() else math.nan)
        hit_rows = rows & np.isfinite(hit)
        hr.append(float(hit[hit_rows].mean()) if hit_rows.any() else math.nan)
        n.append(int(good.sum()))
    return SessionSeries(kept, np.array(ic), np.array(ls), np.array(hr), np.array(n, dtype=int))


# --- the CUSUM ----------------------------------------------------------------------------------
def siegmund_arl(drift: float, h: float) -> float:
    """Average run length of ``S = max(0, S + Y - k)`` to cross ``h``, with ``Y - k`` of mean
    ``drift`` and unit variance (Siegmund's approximation)."""
    b = h + _OVERSHOOT
    if abs(drift) < 1e-9:
        return b * b
    return (math.exp(-2.0 * drift * b) + 2.0 * drift * b - 1.0) / (2.0 * drift * drift)


def in_control_arl(alpha_year: float, looks_per_year: int = LOOKS_PER_YEAR) -> float:
    """The in-control ARL at which a year of daily looks alarms with probability ``alpha_year``
    (run lengths taken as geometric)."""
    return looks_per_year / -math.log1p(-alpha_year)


def threshold(k: float, arl0: float) -> float:
    """The decision interval ``h`` whose in-control ARL (increments of mean ``-k``) is ``arl0``."""
    lo, hi = 0.0, 1.0
    while siegmund_arl(-k, hi) < arl0:
        hi *= 2.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if siegmund_arl(-k, mid) < arl0 else (lo, mid)
    return hi


@dataclass(frozen=True, slots=True)
class Verdict:
    """A leg's monitor after its newest session.

    ``transitions`` lists ``(session index, "degraded" | "recovered")``; ``delay_sessions`` is
    the expected number of sessions the rule takes to flag a complete decay at today's sigma.
    """

    tested: bool
    degraded: bool
    sessions: int
    validated: float | None
    baseline: float | None
    live_mean: float | None
    sigma: float | None
    k: float | None
    threshold: float | None
    cusum: float  # the decay statistic S
    recovery: float  # the recovery statistic R (0 while healthy)
    delay_sessions: float | None
    transitions: list[tuple[int, str]] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tested": self.tested, "degraded": self.degraded, "sessions": self.sessions,
            "validated": self.validated, "baseline": self.baseline, "live_mean": self.live_mean,
            "sigma": self.sigma, "k": self.k, "threshold": self.threshold, "cusum": self.cusum,
            "recovery": self.recovery, "delay_sessions": self.delay_sessions, "note": self.note,
        }  # fmt: skip


def run_monitor(
    series: np.ndarray, validated: float | None, baseline: float, *, min_sessions: int,
    alpha_year: float,
) -> Verdict:  # fmt: skip
    """Run the decay and recovery CUSUMs over ``series`` (one figure per session, oldest first),
    looking once per session from the ``min_sessions``-th on (see the module docstring)."""
    x = np.asarray(series, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    live = float(x.mean()) if n else None
    base: dict[str, Any] = {"sessions": n, "validated": validated, "baseline": baseline,
                            "live_mean": live}  # fmt: skip
    if validated is None or not validated > baseline:
        return Verdict(False, False, **base, sigma=None, k=None, threshold=None, cusum=0.0,
                       recovery=0.0, delay_sessions=None,
                       note="no validated edge recorded; not tested")  # fmt: skip
    if n < min_sessions:
        return Verdict(False, False, **base, sigma=None, k=None, threshold=None, cusum=0.0,
                       recovery=0.0, delay_sessions=None,
                       note=f"{n} of {min_sessions} sessions scored; not tested yet")  # fmt: skip
    arl0 = in_control_arl(alpha_year)
    s = r = 0.0
    degraded = False
    transitions: list[tuple[int, str]] = []
    sigma = k = h = math.nan
    for t in range(min_sessions - 1, n):
        sigma = max(float(np.std(x[: t + 1], ddof=1)), 1e-12)
        k = (validated - baseline) / sigma / 2.0
        h = threshold(k, arl0)
        # The first look takes in every session so far, at the first look's sigma.
        for xs in x[: t + 1] if t == min_sessions - 1 else x[t : t + 1]:
            if not degraded:
                s = max(0.0, s + (validated - xs) / sigma - k)
            else:
                r = max(0.0, r + (xs - baseline) / sigma - k)
        if not degraded and s >= h:
            degraded, r = True, 0.0
            transitions.append((t, "degraded"))
        elif degraded and r >= h:
            degraded, s, r = False, 0.0, 0.0
            transitions.append((t, "recovered"))
    delay = siegmund_arl(k, h)
    state = "DEGRADED" if degraded else "healthy"
    note = (
        f"{state}: live mean {live:+.4f} over {n} sessions against validated {validated:+.4f} "
        f"(no edge: {baseline:+.4f}); decay CUSUM {s:.2f}, recovery CUSUM {r:.2f}, threshold "
        f"{h:.2f} (k {k:.3f}, sigma {sigma:.4f}; {alpha_year:.0%} false alarms a year)"
    )
    return Verdict(True, degraded, **base, sigma=sigma, k=k, threshold=h, cusum=s, recovery=r,
                   delay_sessions=delay, transitions=transitions, note=note)  # fmt: skip


# --- generated histories: the rule's size and delay ---------------------------------------------
def simulate_bars(
    rng: np.random.Generator, *, sessions: int, bars: int, names: int, ic: np.ndarray,
    horizon: int = 4, market: float = 2.0, persistence: float = 0.8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """A generated history: ``(session [S*B], scores [S*B, N], forward returns [S*B, N])``.

    Per bar, each name's return is a common market move (``market`` times the idiosyncratic
    volatility) plus its own; the forward return sums ``horizon`` bars inside the session (so
    consecutive bars overlap, and the last bars of a session hold fewer). The score carries
    correlation ``ic[s]`` (per session) with the idiosyncratic part of the forward return, plus
    noise that persists from bar to bar (AR(1), ``persistence``) as a model's scores do.
    """
    total = sessions * bars
    session = np.repeat(np.arange(sessions), bars)
    moves = rng.standard_normal((sessions, bars + horizon, names))
    common = market * rng.standard_normal((sessions, bars + horizon, 1))
    fwd_idio = np.stack([moves[:, i + 1 : i + 1 + horizon].sum(axis=1) for i in range(bars)], 1)
    fwd_all = fwd_idio + np.stack(
        [common[:, i + 1 : i + 1 + horizon].sum(axis=1) for i in range(bars)], 1
    )
    z = fwd_idio / math.sqrt(horizon)
    noise = np.empty((sessions, bars, names))
    noise[:, 0] = rng.standard_normal((sessions, names))
    for b in range(1, bars):
        noise[:, b] = persistence * noise[:, b - 1] + math.sqrt(
            1 - persistence**2
        ) * rng.standard_normal((sessions, names))
    rho = np.asarray(ic, dtype=float)[:, None, None]
    # Spearman's IC of a Gaussian pair is (6/pi) asin(rho/2): plant the Pearson rho giving it.
    rho = 2.0 * np.sin(np.pi * rho / 6.0)
    scores = rho * z + np.sqrt(1.0 - rho**2) * noise
    return session, scores.reshape(total, names), fwd_all.reshape(total, names) * 1e-3


def bar_figures(scores: np.ndarray, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar rank IC and long-short of ``scores`` and ``returns`` [bars, names] (NaN: no
    figure). Rows complete and without ties are ranked at once; the others one by one."""
    scores, returns = np.asarray(scores, float), np.asarray(returns, float)
    n = scores.shape[1] if scores.ndim == 2 else 0
    ic, ls = np.full(len(scores), np.nan), np.full(len(scores), np.nan)
    if n == 0:
        return ic, ls
    fast = np.isfinite(scores).all(1) & np.isfinite(returns).all(1)
    for a in (scores, returns):
        srt = np.sort(a, axis=1)
        fast &= ~(np.diff(srt, axis=1) == 0).any(1)
    if n >= MIN_NAMES and fast.any():
        order = np.argsort(scores[fast], axis=1)
        rs = np.argsort(order, axis=1).astype(float)
        rr = np.argsort(np.argsort(returns[fast], axis=1), axis=1).astype(float)
        rs -= rs.mean(1, keepdims=True)
        rr -= rr.mean(1, keepdims=True)
        ic[fast] = (rs * rr).sum(1) / np.sqrt((rs * rs).sum(1) * (rr * rr).sum(1))
        ranked = np.take_along_axis(returns[fast], order, axis=1)
        half = n // 2
        ls[fast] = ranked[:, n - half :].mean(1) - ranked[:, :half].mean(1)
    for i in np.flatnonzero(~fast):
        ic[i], ls[i] = spearman_ic(scores[i], returns[i]), long_short(scores[i], returns[i])
    return ic, ls


def leg_sessions(session: np.ndarray, scores: np.ndarray, returns: np.ndarray) -> SessionSeries:
    """Per-bar IC and long-short of a [bars, names] history, averaged per session."""
    return session_series(session, *bar_figures(scores, returns))


def operating_characteristics(
    *, seeds: int, ic: float, names: int, bars: int, min_sessions: int, alpha_year: float,
    sessions: int = LOOKS_PER_YEAR, decay_at: int = 40, within: int = 60, seed0: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """The rule on generated histories (see :func:`simulate_bars`), a leg validated at ``ic``:

    - size: the share of seeds in which a healthy leg (scores at ``ic`` throughout) is degraded
      within ``sessions`` daily looks;
    - delay: for a leg whose IC drops to 0 after ``decay_at`` sessions, the sessions until it is
      degraded (median, 90th percentile; inf when not within ``2 * within``), and the share
      degraded within ``within`` sessions;
    - recovery: the share of those that recover within ``2 * within`` sessions of the IC coming
      back, ``2 * within`` sessions after the decay.
    """
    false_alarms, delays, recovered = 0, [], 0
    for i in range(seeds):
        rng = np.random.default_rng(seed0 + i)
        healthy = np.full(sessions, ic)
        series = leg_sessions(*simulate_bars(rng, sessions=sessions, bars=bars, names=names,
                                             ic=healthy)).ic  # fmt: skip
        false_alarms += run_monitor(series, ic, 0.0, min_sessions=min_sessions,
                                    alpha_year=alpha_year).degraded  # fmt: skip
        back_at = decay_at + 2 * within
        path = np.where((np.arange(back_at + 2 * within) < decay_at), ic, 0.0)
        path[back_at:] = ic
        series = leg_sessions(*simulate_bars(rng, sessions=len(path), bars=bars, names=names,
                                             ic=path)).ic  # fmt: skip
        v = run_monitor(series, ic, 0.0, min_sessions=min_sessions, alpha_year=alpha_year)
        first = next((t for t, what in v.transitions if what == "degraded" and t >= decay_at),
                     None)  # fmt: skip
        delays.append(math.inf if first is None or first >= back_at else first - decay_at + 1)
        recovered += any(w == "recovered" and t >= back_at for t, w in v.transitions)
    d = np.array(delays)
    return {
        "seeds": seeds, "ic": ic, "names": names, "bars": bars, "min_sessions": min_sessions,
        "alpha_year": alpha_year, "looks": sessions, "false_alarm_rate": false_alarms / seeds,
        "delay_median": float(np.median(d)), "delay_p90": float(np.quantile(d, 0.9)),
        "within": within, "detected_within_rate": float(np.mean(d <= within)),
        "recovered_rate": recovered / seeds,
    }  # fmt: skip

"""The dashboard's charts, as PNG bytes sized for the Prefect UI's markdown column.

The UI shows an artifact's markdown about 700 px wide and scales larger images down, so the
figures are drawn 8 inches wide at 100 dpi with 10 pt text: readable after that scaling.
matplotlib is imported inside the functions (a trading run that publishes no chart never pays
for it) and drawn on a bare ``Figure`` with the Agg canvas: no pyplot state, no display.

The x axes count bars, not time, so nights and weekends take no room; a thin line and a date
mark each session's first bar (New York dates).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel42.domain import EquityPoint
from sentinel42.errors import DataError
from sentinel42.market.calendar import NEW_YORK
from sentinel42.persistence import ledger

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from sentinel42.persistence.store import Store
    from sentinel42.settings import Settings

WIDTH_IN = 8.0
DPI = 100
COLORS = {"BUY": "#1a9641", "SELL": "#d7191c", "HOLD": "#7f7f7f"}
PRICE = "#1f4e79"
BENCHMARK = "#7f7f7f"
SESSIONS_SHOWN = 20  # sessions in the validate chart's hit-rate panel
MAX_PANELS = 8  # ticker panels in the decisions chart; every decision is in the table anyway


def _figure(height_in: float, *, top_in: float = 0.4, bottom_in: float = 0.35) -> Figure:
    """A figure with fixed margins (inches at the top and bottom, room for the y labels on the
    left): matplotlib's constrained layout took 0.8 s of a trading run's 2 s chart."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    fig.subplots_adjust(
        left=0.09,
        right=0.92,  # room for the last close written beside each line
        top=1 - top_in / height_in,
        bottom=bottom_in / height_in,
        hspace=0.5,  # of an axes' height: a title and the tick dates between two rows
        wspace=0.25,
    )
    return fig


def png_bytes(fig: Figure) -> bytes:
    from PIL import Image  # Pillow: matplotlib's own dependency

    drawn = io.BytesIO()
    fig.savefig(drawn, format="png", dpi=DPI)
    # Every run stores its chart in Prefect's database, so keep it small: 128 colours look the
    # same for line charts and take about a third of the bytes. No text chunks are written.
    image = Image.open(drawn).convert("RGB")
    image = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _session_ticks(ax: Axes, stamps: Sequence[datetime], *, max_ticks: int = 8) -> None:
    """Vertical lines at each session's first step; New York dates under some of them."""
    days = [s.astimezone(NEW_YORK).date() for s in stamps]
    starts = [i for i, d in enumerate(days) if i == 0 or d != days[i - 1]]
    for i in starts[1:]:
        ax.axvline(i - 0.5, color="#cccccc", linewidth=0.8, zorder=0)
    # Labels at least a tick's share of the axis apart: a session with one point (the first
    # day of a curve) would otherwise print its date over the next one.
    gap = max(1.0, len(days) / max_ticks)
    keep: list[int] = []
    for i in starts:
        if not keep or i - keep[-1] >= gap:
            keep.append(i)
    ax.set_xticks(keep)
    ax.set_xticklabels([days[i].strftime("%a %m-%d") for i in keep], fontsize=9)


def _message(fig: Figure, text: str) -> None:
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555555")


def decisions_chart_png(
    store: Store, settings: Settings, as_of: datetime, *, sessions: int = 3
) -> bytes:
    """Each ticker's closes over its last ``sessions`` sessions with the BUY/SELL decisions,
    then the paper portfolio's equity against buy-and-hold (when there is a curve).

    One small panel per watchlist ticker (two columns), its title the newest standing decision;
    bars that have closed by ``as_of`` only. Never raises for missing data: an empty store
    gives a chart that says so.

    Returns:
        PNG bytes, 800 px wide.
    """
    from sentinel42.factory import build_calendar

    interval = timedelta(minutes=settings.interval_minutes)
    try:
        start = build_calendar(settings).session_open_back(as_of, sessions)
    except DataError:  # the calendar starts later than that: take what there is
        start = as_of - timedelta(days=7 * sessions)
    tickers = list(settings.tickers)
    bars = store.load_bars(tickers, settings.interval, start=start, end=as_of - interval)
    decided: dict[str, list[Any]] = {}
    for d in ledger.standing_decisions(store, after=start - interval, until=as_of):
        decided.setdefault(d.ticker, []).append(d)
    curve = ledger.equity_curve(store)
    with_bars = [t for t in tickers if t in bars and len(bars[t])]
    shown = panel_tickers(with_bars, decided)
    hidden = len(with_bars) - len(shown)
    cols = 1 if len(shown) <= 1 else 2
    rows = math.ceil(len(shown) / cols)
    height = 2.3 * rows + (2.6 if curve else 0.0) + 0.6
    fig = _figure(max(height, 2.5), top_in=0.7)
    if not shown:
        _message(fig, f"No stored {settings.interval} bars for the watchlist up to as_of.")
        return png_bytes(fig)
    grid = fig.add_gridspec(
        rows + (1 if curve else 0), cols, height_ratios=[1.0] * rows + ([1.15] if curve else [])
    )
    for k, ticker in enumerate(shown):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        _ticker_panel(ax, ticker, bars[ticker], decided.get(ticker, []))
    if curve:
        _equity_panel(fig.add_subplot(grid[rows, :]), curve, settings.portfolio_starting_cash)
    fig.suptitle(
        f"As of {as_of.astimezone(NEW_YORK):%Y-%m-%d %H:%M} ET · last {sessions} sessions "
        f"of {settings.interval} closes · ▲ BUY ▼ SELL (paper)"
        + (f" · {hidden} more tickers in the table" if hidden else ""),
        fontsize=10,
    )
    return png_bytes(fig)


def panel_tickers(
    tickers: Sequence[str], decided: Mapping[str, Sequence[Any]], limit: int = MAX_PANELS
) -> list[str]:
    """The tickers that get a panel: those whose newest decision in view is BUY or SELL first,
    then the rest, each group in watchlist order, ``limit`` in all (a chart of 500 panels helps
    nobody, and took minutes to draw)."""
    acted = [t for t in tickers if decided.get(t) and decided[t][-1].action.value != "HOLD"]
    return list(dict.fromkeys([*acted, *tickers]))[:limit]


def _ticker_panel(ax: Axes, ticker: str, frame: Any, decisions: Sequence[Any]) -> None:
    import pandas as pd

    closes = frame["close"].to_numpy(float)
    stamps = [t.to_pydatetime() for t in frame.index]
    ax.plot(range(len(closes)), closes, color=PRICE, linewidth=1.2)
    position = {int(k): i for i, k in enumerate(frame.index.asi8)}
    for action, marker in (("BUY", "^"), ("SELL", "v")):
        # A decision is drawn on its own bar only (a flagged bar may be missing from the frame).
        xs = [
            position[key]
            for d in decisions
            if d.action.value == action
            and (key := pd.Timestamp(d.bar_ts).as_unit("ns").value) in position
        ]
        ax.scatter(
            xs,
            [closes[x] for x in xs],
            marker=marker,
            s=46,
            color=COLORS[action],
            zorder=3,
            edgecolors="white",
            linewidths=0.5,
        )
    if decisions:
        newest = decisions[-1]
        title = f"{ticker} · {newest.action.value} ({newest.confidence:.2f})"
        ax.set_title(title, fontsize=10, loc="left", color=COLORS[newest.action.value])
    else:
        ax.set_title(f"{ticker} · no decision in view", fontsize=10, loc="left")
    ax.annotate(
        f"{closes[-1]:,.2f}",
        (len(closes) - 1, closes[-1]),
        fontsize=8,
        xytext=(3, 0),
        textcoords="offset points",
        va="center",
    )
    ax.tick_params(axis="y", labelsize=9)
    ax.grid(alpha=0.25)
    _session_ticks(ax, stamps, max_ticks=4)


def _equity_panel(ax: Axes, curve: Sequence[EquityPoint], starting_cash: float) -> None:
    from matplotlib.ticker import StrMethodFormatter

    steps = range(len(curve))
    equity = [p.equity for p in curve]
    bench = [p.buy_and_hold_equity for p in curve]
    dots = "." if len(curve) < 30 else None  # a short curve (one point at first) stays visible
    mine, theirs = (round(v[-1] / starting_cash - 1, 4) + 0.0 for v in (equity, bench))
    ax.plot(
        steps, equity, color=PRICE, linewidth=1.4, marker=dots, label=f"paper portfolio {mine:+.2%}"
    )
    ax.plot(
        steps,
        bench,
        color=BENCHMARK,
        linestyle="--",
        linewidth=1.2,
        marker=dots,
        label=f"buy and hold {theirs:+.2%}",
    )
    ax.axhline(starting_cash, color="#bbbbbb", linewidth=0.8, zorder=0)
    ax.set_title("Paper equity (USD), returns since the starting cash", fontsize=10, loc="left")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.legend(loc="upper left", fontsize=8)
    ax.tick_params(axis="y", labelsize=9)
    ax.grid(alpha=0.25)
    _session_ticks(ax, [p.ts for p in curve])


def validate_chart_png(
    store: Store, settings: Settings, trend: Sequence[Mapping[str, Any]]
) -> bytes:
    """Hit rates per session (BUY/SELL decisions, the model alone, the news alone) and the
    paper portfolio's equity against buy-and-hold.

    Args:
        store: read for the equity curve.
        settings: for the portfolio's starting cash.
        trend: :func:`sentinel42.dashboard.score_trend` of the same store.

    Returns:
        PNG bytes, 800 px wide.
    """
    curve = ledger.equity_curve(store)
    fig = _figure(2.8 + (2.6 if curve else 0.0))
    if not trend and not curve:
        _message(fig, "Nothing scored yet: decisions are scored once their horizon has passed.")
        return png_bytes(fig)
    axes = fig.subplots(2 if curve else 1, 1, squeeze=False)[:, 0]
    ax = axes[0]
    trend = list(trend)[-SESSIONS_SHOWN:]
    days = [t["date"][5:] for t in trend]
    for key, label, color, style in (
        ("decisions", "BUY/SELL decisions", PRICE, "-"),
        ("model", "model alone", "#ff7f0e", "--"),
        ("sentiment", "news alone", "#9467bd", ":"),
    ):
        rates = [t[f"{key}_hits"] / t[f"{key}_n"] if t[f"{key}_n"] else math.nan for t in trend]
        ax.plot(range(len(trend)), rates, style, marker="o", markersize=4, color=color, label=label)
    ax.plot(
        range(len(trend)),
        [math.nan if t["cumulative_hit_rate"] is None else t["cumulative_hit_rate"] for t in trend],
        color=PRICE,
        alpha=0.35,
        linewidth=3,
        label="BUY/SELL cumulative",
    )
    ax.axhline(0.5, color="#999999", linewidth=0.8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"Hit rate per session of the decision bars (newest {SESSIONS_SHOWN} at most)",
        fontsize=10,
        loc="left",
    )
    every = max(1, math.ceil(len(trend) / 10))
    ax.set_xticks(range(0, len(trend), every))
    ax.set_xticklabels(days[::every], fontsize=9)
    ax.tick_params(axis="y", labelsize=9)
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    ax.grid(alpha=0.25)
    if curve:
        _equity_panel(axes[1], curve, settings.portfolio_starting_cash)
    return png_bytes(fig)

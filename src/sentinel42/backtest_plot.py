"""The backtest chart: per ticker its price, BUY/SELL marks and news sentiment; then equity.

The x axis counts steps (one per bar), so nights, weekends and holidays take no room; ticks
mark the first step of each session with its New York date.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentinel42.backtest import BacktestResult

MAX_DATE_TICKS = 12


def plot_backtest(result: BacktestResult, path: Path) -> None:
    """Write a PNG of ``result`` to ``path`` (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sentinel42.market.calendar import NEW_YORK

    tickers = list(result.closes)
    steps = range(len(result.steps))
    fig, axes = plt.subplots(
        len(tickers) + 1,
        1,
        figsize=(14, 2.8 * len(tickers) + 3.2),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [1.0] * len(tickers) + [1.2]},
    )
    panels = [row[0] for row in axes]
    for ax, ticker in zip(panels, tickers, strict=False):
        ax.plot(steps, result.closes[ticker], color="#1f4e79", linewidth=1.0, label="close")
        mine = [r for r in result.records if r.ticker == ticker]
        for action, marker, color in (("BUY", "^", "#1a9641"), ("SELL", "v", "#d7191c")):
            hits = [r for r in mine if r.action == action]
            ax.scatter(
                [r.step for r in hits],
                [r.close for r in hits],
                marker=marker,
                color=color,
                s=36,
                zorder=3,
                label=f"{action} ({len(hits)})",
            )
        ax.set_ylabel(f"{ticker} price")
        news = ax.twinx()
        scores = [math.nan if r.sentiment is None else r.sentiment for r in mine]
        news.plot(
            [r.step for r in mine],
            scores,
            color="#ff7f0e",
            linewidth=0.8,
            alpha=0.7,
            label="news sentiment" if any(r.sentiment is not None for r in mine) else "no news",
        )
        news.axhline(0.0, color="#ff7f0e", linewidth=0.5, linestyle=":")
        news.set_ylim(-1.05, 1.05)
        news.set_ylabel("sentiment", color="#ff7f0e")
        handles, labels = ax.get_legend_handles_labels()
        more, more_labels = news.get_legend_handles_labels()
        ax.legend(handles + more, labels + more_labels, loc="upper left", fontsize=8, ncol=4)
        ax.grid(alpha=0.3)
    equity = panels[-1]
    equity.plot(range(len(result.equity)), result.equity, color="#1f4e79", label="strategy")
    equity.plot(
        range(len(result.buy_and_hold)),
        result.buy_and_hold,
        color="#7f7f7f",
        linestyle="--",
        label="buy and hold (equal split)",
    )
    equity.set_ylabel("equity (USD)")
    equity.legend(loc="upper left", fontsize=8)
    equity.grid(alpha=0.3)

    starts = [
        i for i, s in enumerate(result.steps) if i == 0 or s.session != result.steps[i - 1].session
    ]
    keep = starts[:: max(1, math.ceil(len(starts) / MAX_DATE_TICKS))]
    equity.set_xticks(keep)
    equity.set_xticklabels(
        [result.steps[i].clock.astimezone(NEW_YORK).strftime("%Y-%m-%d") for i in keep],
        rotation=30,
        ha="right",
        fontsize=8,
    )
    for ax in panels:
        for i in starts:
            ax.axvline(i, color="#cccccc", linewidth=0.5, zorder=0)
    summary = result.summary
    sharpe = "n/a" if summary["sharpe"] is None else f"{summary['sharpe']:.2f}"
    fig.suptitle(
        f"Sentinel42 backtest {summary['first_step'][:10]} .. {summary['last_step'][:10]}: "
        f"return {summary['total_return']:+.2%} (buy and hold "
        f"{summary['buy_and_hold_return']:+.2%}), Sharpe {sharpe}, "
        f"max drawdown {summary['max_drawdown']:.2%}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

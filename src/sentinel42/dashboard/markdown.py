"""The dashboard's markdown: a trading run's summary and a validate run's report.

Inputs are aware UTC (datetimes or ISO strings); people read New York time, the exchange's.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sentinel42.market.calendar import NEW_YORK

NONE = "–"
DISCLAIMER = "Simulated paper trading; not investment advice."
TRADES_SHOWN = 10


# --- formatting ---------------------------------------------------------------------------------
def _ny(value: str | datetime | None) -> str:
    """``2026-11-25 15:45 ET`` from an aware datetime or ISO string."""
    if value is None or value == "":
        return NONE
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    if stamp.tzinfo is None:  # everything stored is UTC; say so rather than guess silently
        return f"{stamp.isoformat()} (no zone)"
    return stamp.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M ET")


def _num(value: Any, digits: int = 3) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return NONE
    return f"{value:.{digits}f}"


def _pct(value: Any, *, signed: bool = True, digits: int = 2) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return NONE
    value = round(value, digits + 2) + 0.0  # no "-0.00%" for a loss too small to show
    return f"{value:+.{digits}%}" if signed else f"{value:.{digits}%}"


def _usd(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return NONE
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _cell(value: Any) -> str:
    """Text safe inside a markdown table cell (the UI renders raw HTML, so escape it too)."""
    text = NONE if value is None else str(value)
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        text = text.replace(old, new)
    return " ".join(text.split())


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _rate(hits: Any, n: Any) -> str:
    if not isinstance(n, int) or n <= 0 or not isinstance(hits, int):
        return NONE
    return f"{hits / n:.1%} ({hits}/{n})"


def chart_markdown(png: bytes, title: str) -> str:
    """A markdown image embedding ``png`` as a data URI (rendered by Prefect's UIs)."""
    alt = " ".join(title.replace("[", "(").replace("]", ")").split())
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


# --- the trading run ----------------------------------------------------------------------------
def _changes(result: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    if previous is None:
        return ["First recorded run: nothing to compare with."]
    before = {d["ticker"]: d for d in previous.get("decisions", [])}
    lines = []
    for d in result.get("decisions", []):
        old = before.get(d["ticker"])
        if old is None:
            lines.append(f"- **{d['ticker']}**: new, {d['action']}")
        elif old["action"] != d["action"]:
            lines.append(
                f"- **{d['ticker']}**: {old['action']} → **{d['action']}** "
                f"(confidence {_num(old.get('confidence'), 2)} → {_num(d.get('confidence'), 2)})"
            )
    flips = len(lines)
    if previous.get("model_version") != result.get("model_version"):
        lines.append(
            f"- Model: `{previous.get('model_version') or 'none'}` → "
            f"`{result.get('model_version') or 'none'}`"
        )
    head = f"Against run `{previous.get('run_id')}` as of {_ny(previous.get('as_of'))}: "
    head += f"{flips} action(s) changed." if flips else "no action changed."
    return [head, *lines]


def _portfolio_section(portfolio: Mapping[str, Any] | None) -> list[str]:
    if not portfolio:
        return ["No paper portfolio yet."]
    bh = portfolio.get("buy_and_hold_return")
    excess = None if bh is None else portfolio.get("return", 0.0) - bh
    lines = [
        f"Equity **{_usd(portfolio.get('equity'))}** ({_pct(portfolio.get('return'))} since "
        f"{_usd(portfolio.get('starting_cash'))}); buy-and-hold {_pct(bh)} "
        f"({_usd(portfolio.get('buy_and_hold_equity'))}), excess {_pct(excess)}.",
        "",
        f"Cash {_usd(portfolio.get('cash'))} · realized P&L {_usd(portfolio.get('realized_pnl'))}"
        f" · unrealized {_usd(portfolio.get('unrealized_pnl'))} · fees "
        f"{_usd(portfolio.get('fees_paid'))} · newest applied bar {_ny(portfolio.get('bar_ts'))}",
    ]
    positions = portfolio.get("positions") or {}
    if positions:
        rows = [
            [
                t,
                _num(p.get("quantity"), 4),
                _usd(p.get("avg_price")),
                _usd(p.get("last_price")),
                _usd(p.get("market_value")),
                _usd(p.get("unrealized_pnl")),
            ]
            for t, p in positions.items()
        ]
        header = ["Ticker", "Shares", "Avg price", "Last", "Value", "Unrealized"]
        lines += ["", _table(header, rows)]
    else:
        lines += ["", "No open positions."]
    trades = portfolio.get("trades") or []
    if trades:
        shown = trades[-TRADES_SHOWN:]
        rows = [
            [
                t.get("ticker"),
                t.get("side"),
                _num(t.get("quantity"), 4),
                _ny(t.get("decided_at")),
                _ny(t.get("fill_bar")),
                _usd(t.get("fill_price")),
                _usd(t.get("fee")),
                t.get("reason"),
            ]
            for t in shown
        ]
        more = f", the newest {len(shown)} shown" if len(shown) < len(trades) else ""
        lines += [
            "",
            f"Trades this run ({len(trades)}{more}):",
            "",
            _table(["Ticker", "Side", "Shares", "Decided", "Fill bar", "Fill", "Fee", "Why"], rows),
        ]
    pending = portfolio.get("pending") or []
    if pending:
        rows = [
            [o.get("ticker"), _num(o.get("target_weight"), 4), _ny(o.get("decided_at")),
             o.get("reason")]
            for o in pending
        ]  # fmt: skip
        lines += [
            "",
            f"Pending orders, waiting for their fill bar ({len(pending)}):",
            "",
            _table(["Ticker", "Target weight", "Decided", "Why"], rows),
        ]
    return lines


def _decisions_table(decisions: Sequence[Mapping[str, Any]]) -> str:
    if not decisions:
        return "No decisions this run."
    header = ["Ticker", "Bar", "Action", "Confidence", "Fused", "Why"]
    return _table(
        header,
        [
            [d["ticker"], _ny(d.get("bar_ts")), f"**{d['action']}**",
             _num(d.get("confidence"), 2), _num(d.get("fused"), 3), d.get("reason")]
            for d in decisions
        ],
    )  # fmt: skip


def _age(row: Mapping[str, Any]) -> str:
    age = row.get("bar_age_minutes")
    text = NONE if age is None else f"{_num(age, 0)} min"
    return f"{text} ⚠ stale" if row.get("stale") else text


def _model_line(model: Mapping[str, Any]) -> list[str]:
    if not model.get("version"):
        return ["No promoted model: decisions rest on the news alone (or HOLD)."]
    state = "**DEGRADED** (fusion weight 0)" if model.get("degraded") else "healthy"
    live = _rate(model.get("live_hits"), model.get("live_n"))
    if live == NONE:
        live = "not measured yet"
    accuracy = _pct(model.get("validated_accuracy"), signed=False, digits=1)
    return [
        f"`{model['version']}`: validated accuracy {accuracy}, edge over the best baseline "
        f"{_pct(model.get('edge'), digits=1)}; live hit rate {live} over the newest "
        f"{model.get('window', NONE)} scored signals; {state}.",
    ]


def trading_summary_markdown(
    result: Mapping[str, Any],
    portfolio: Mapping[str, Any] | None,
    freshness: Mapping[str, Mapping[str, Any]],
    model: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    *,
    chart: bytes | None = None,
) -> str:
    """The trading run's summary: decisions, what changed, chart, portfolio, freshness, model.

    Args:
        result: ``TradingResult.to_dict()`` of this run.
        portfolio: ``update_portfolio``'s snapshot, or None before the first one.
        freshness: :func:`sentinel42.dashboard.freshness` of the store at this run's ``as_of``.
        model: :func:`sentinel42.dashboard.model_status`.
        previous: the previous run's result (:func:`sentinel42.dashboard.previous_result`), or None.
        chart: a PNG (:func:`sentinel42.dashboard.decisions_chart_png`) to embed after the
            decisions.
    """
    decisions = result.get("decisions", [])
    counts = {a: sum(d["action"] == a for d in decisions) for a in ("BUY", "SELL", "HOLD")}
    out = [
        f"# Trading run as of {_ny(result.get('as_of'))}",
        "",
        f"Run `{result.get('run_id') or NONE}` · model `{result.get('model_version') or 'none'}`"
        f" · {counts['BUY']} BUY, {counts['SELL']} SELL, {counts['HOLD']} HOLD. {DISCLAIMER}",
        "",
        "## Decisions",
        "",
        _decisions_table(decisions),
        "",
        "## What changed since the last run",
        "",
        *_changes(result, previous),
    ]
    skipped = result.get("skipped_tickers") or {}
    if skipped:
        out += ["", "Not decided: " + "; ".join(f"{t} ({w})" for t, w in skipped.items())]
    saved = result.get("saved") or {}
    if saved:
        out += [
            "",
            f"Saved {saved.get('standing', 0)} standing, {saved.get('revisions', 0)} "
            f"revision(s), {saved.get('unchanged', 0)} unchanged.",
        ]
    if chart is not None:
        out += ["", "## Chart", "", chart_markdown(chart, "Closes with BUY/SELL; equity")]
    out += ["", "## Paper portfolio", "", *_portfolio_section(portfolio)]
    out += ["", "## Data freshness", ""]
    rows = [
        [t, _ny(f.get("newest_bar")), _age(f), _ny(f.get("newest_headline"))]
        for t, f in freshness.items()
    ]
    out.append(_table(["Ticker", "Newest bar (start)", "Bar age", "Newest headline"], rows))
    out += ["", "## Model", "", *_model_line(model)]
    legs = result.get("legs") or {}
    if legs:
        out += ["", "## Fusion legs", ""]
        rows = [
            [name, "live" if leg.get("live") else "off", leg.get("version") or NONE,
             str(leg.get("why") or "promoted")]
            for name, leg in legs.items()
        ]  # fmt: skip
        out.append(_table(["Leg", "State", "Version", "Why"], rows))
    return "\n".join(out) + "\n"


# --- the validate run ---------------------------------------------------------------------------
def validate_report_markdown(
    report: Mapping[str, Any],
    trend: Sequence[Mapping[str, Any]] | None = None,
    *,
    chart: bytes | None = None,
) -> str:
    """The validate run's report: hit rates, each signal alone, portfolio, model health, trend.

    Args:
        report: ``ValidationReport.to_dict()``.
        trend: :func:`sentinel42.dashboard.score_trend`, for a table of its newest 10 sessions.
        chart: a PNG (:func:`sentinel42.dashboard.validate_chart_png`) to embed at the end.
    """
    model = report.get("model") or {}
    out = [f"# Validation as of {_ny(report.get('as_of'))}", ""]
    if report.get("degraded_model"):
        news = "newly marked" if report.get("newly_degraded") else "marked earlier"
        out += [
            f"> **Model `{report['degraded_model']}` is DEGRADED** ({news}): its fusion "
            "weight is zero until a retrained model is promoted.",
            "",
        ]
    out += [
        f"{report.get('scored', 0)} decisions scored ({report.get('newly_scored', 0)} new this "
        f"run); {report.get('pending', 0)} waiting for their horizon. {DISCLAIMER}",
        "",
        "## Decisions by action",
        "",
        _table(
            ["Action", "Scored", "Hit rate", "Mean forward return"],
            [
                [
                    a,
                    s.get("n", 0),
                    _rate(s.get("hits"), s.get("n")),
                    _pct(s.get("mean_forward_return"), digits=3),
                ]
                for a, s in (report.get("actions") or {}).items()
            ],
        ),
        "",
        "## Each signal alone",
        "",
        _table(
            ["Signal", "Spoke", "Hit rate", "Mean signed return"],
            [
                [
                    name,
                    s.get("n", 0),
                    _rate(s.get("hits"), s.get("n")),
                    _pct(s.get("mean_signed_return"), digits=3),
                ]
                for name, s in (
                    ("Model alone (P(up) vs 0.5)", report.get("model_signal") or {}),
                    ("News sentiment alone", report.get("sentiment_signal") or {}),
                )
            ],
        ),
        "",
        "## Paper portfolio vs buy-and-hold",
        "",
    ]
    p = report.get("portfolio")
    if p:
        out.append(
            f"{_ny(p.get('start'))} → {_ny(p.get('end'))} ({p.get('points')} points): portfolio "
            f"{_pct(p.get('return'))} ({_usd(p.get('equity'))}), buy-and-hold "
            f"{_pct(p.get('buy_and_hold_return'))} ({_usd(p.get('buy_and_hold_equity'))}); "
            f"excess **{_pct(p.get('excess_return'))}**."
        )
    else:
        out.append("No equity curve yet.")
    out += ["", "## Model health", ""]
    if model:
        state = "**DEGRADED**" if model.get("degraded") else "healthy"
        out += [
            f"`{model.get('version')}`: {state}. Validated accuracy "
            f"{_pct(model.get('validated_accuracy'), signed=False, digits=1)}, threshold "
            f"{_pct(model.get('threshold'), signed=False, digits=1)}, live "
            f"{_rate(model.get('live_hits'), model.get('live_n'))} of a {model.get('window')}"
            f"-signal window, p = {_num(model.get('p_value'), 4)}.",
            "",
            _cell(model.get("note") or ""),
        ]
    else:
        out.append("No model has decided yet.")
    if trend:
        out += [
            "",
            "## Trend by session",
            "",
            _table(
                ["Session", "Scored", "BUY/SELL hits", "Cumulative", "Model alone", "News alone"],
                [
                    [
                        t["date"],
                        t["scored"],
                        _rate(t["decisions_hits"], t["decisions_n"]),
                        _pct(t.get("cumulative_hit_rate"), signed=False, digits=1),
                        _rate(t["model_hits"], t["model_n"]),
                        _rate(t["sentiment_hits"], t["sentiment_n"]),
                    ]
                    for t in list(trend)[-10:]
                ],
            ),
        ]
    if chart is not None:
        out += ["", chart_markdown(chart, "Hit rate per session; equity against buy-and-hold")]
    return "\n".join(out) + "\n"

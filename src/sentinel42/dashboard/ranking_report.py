"""The training report of a ranking model: one PNG and one markdown page for people.

Everything here reads the document :func:`~sentinel42.model.ranking.train.train_ranking` returns
(with its in-memory ``_report``: per-row rank ICs, the score grids, the target and the test
rows) and computes nothing the metrics do not define:

- :func:`cumulative_ic`: each scorer's running sum of its per-row rank IC over the test rows (a
  row without an IC adds 0), so a curve ends at ``n_periods * rank_ic_mean`` and its slope is
  the IC;
- :func:`quintile_means`: the mean target of each score quintile, bottom to top, averaged over
  the test rows (:func:`~sentinel42.model.ranking.metrics.quantile_returns`);
- :func:`long_short_curve`: the model's quintile long-short book per test row, gross and net of
  ``cost_bps`` per side, with the staggered-sleeve accounting of the
  :mod:`~sentinel42.model.ranking.metrics` docstring (its ``mean * periods_per_year`` is the
  document's ``long_short_gross_annual`` / ``long_short_net_annual``).

:func:`report_png` draws the three panels; :func:`report_markdown` is the Prefect artifact's
page: the chart, the metrics of the model and every baseline, and the gate's reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import numpy as np

from sentinel42.model.ranking.metrics import (
    N_GROUPS,
    book,
    long_short_weights,
    quantile_returns,
)

TABLE_METRICS: tuple[str, ...] = (
    "rank_ic_mean", "icir", "rank_ic_lower", "long_short_net_annual", "turnover", "hit_rate",
    "accuracy", "mcc",
)  # fmt: skip
WIDTH_IN = 8.0  # the Prefect UI shows an artifact's markdown about 700 px wide
HEIGHT_IN = 9.0
DPI = 100
MODEL_COLOR = "#1f4e79"
BEST_COLOR = "#d95f02"
OTHER_COLORS = ("#7f7f7f", "#66a61e", "#e7298a", "#a6761d", "#7570b3")


def _test_block(document: Mapping[str, Any]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The in-memory report, the test rows and their target (NaN outside the model's samples)."""
    report = document["_report"]
    rows = np.asarray(report["rows"], dtype=np.int64)
    tested = np.isfinite(np.asarray(report["scores"]["model"], np.float64)[rows])
    target = np.where(tested, np.asarray(report["target"], np.float64)[rows], np.nan)
    return report, rows, target


def cumulative_ic(document: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Each scorer's running sum of per-row rank IC over the test rows.

    Returns:
        name -> [R] cumulative rank IC (``model`` first, then the baselines); a row without
        an IC (too few names) adds 0, so the last value is ``n_periods * rank_ic_mean``. A
        scorer without any IC on the test rows (momentum before a year of history) is left out.
    """
    ics = {n: np.asarray(v, np.float64) for n, v in document["_report"]["ics"].items()}
    names = ["model", *(n for n in ics if n != "model")]
    return {
        n: np.cumsum(np.nan_to_num(ics[n], nan=0.0)) for n in names if np.isfinite(ics[n]).any()
    }


def quintile_means(document: Mapping[str, Any], name: str, n_groups: int = N_GROUPS) -> np.ndarray:
    """[n_groups] mean target of each score quantile of ``name``, bottom first, over the test rows.

    Each row's group means (:func:`~.metrics.quantile_returns`) averaged over the rows where the
    group has a name; NaN for a group that never does.
    """
    report, rows, target = _test_block(document)
    score = np.asarray(report["scores"][name], np.float64)[rows]
    per_row = quantile_returns(score, target, n_groups)  # [R, n_groups]
    has = np.isfinite(per_row)
    total = np.where(has, per_row, 0.0).sum(axis=0)
    count = has.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def long_short_curve(document: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's quintile long-short book over the test rows.

    Returns:
        ``gross`` and ``net`` ([R] per-row returns; net of ``cost_bps`` one way on the traded
        notional) and ``cum_gross`` and ``cum_net`` (their running sums).
    """
    report, rows, target = _test_block(document)
    session = np.asarray(report["session"]).reshape(-1)
    horizon = int(document["horizon"])
    score = np.asarray(report["scores"]["model"], np.float64)[rows]
    weights = long_short_weights(score)
    gross, traded = book(
        weights, target, session, horizon=horizon, flat_at_close=document["kind"] == "intraday"
    )
    net = gross - traded / horizon * float(document["cost_bps"]) / 1e4
    return {"gross": gross, "net": net, "cum_gross": np.cumsum(gross), "cum_net": np.cumsum(net)}


def _day(session: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(session))


def _date_ticks(ax: Any, session: np.ndarray, max_ticks: int = 7) -> None:
    """x ticks at the first row of some sessions, labelled with their dates."""
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
    step = max(1, math.ceil(starts.shape[0] / max_ticks))
    shown = starts[::step]
    ax.set_xticks(shown)
    ax.set_xticklabels([_day(session[i]).isoformat() for i in shown], fontsize=8)


def report_png(document: Mapping[str, Any]) -> bytes:
    """Three panels: cumulative rank IC of the model and every baseline over the test rows; mean
    quintile returns of the model and the best baseline; the model's long-short equity curve,
    gross and net of costs.

    Args:
        document: :func:`~sentinel42.model.ranking.train.train_ranking`'s document, with its
            ``_report``.

    Returns:
        PNG bytes, 800 px wide.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    session = np.asarray(document["_report"]["session"]).reshape(-1)
    best = str(document["best_baseline"])
    kind, horizon = document["kind"], int(document["horizon"])
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)  # the Agg canvas, without pyplot's global backend state
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.05, hspace=0.45)
    ic_ax, q_ax, ls_ax = (fig.add_subplot(3, 1, k) for k in (1, 2, 3))

    others = iter(OTHER_COLORS * 4)
    for name, curve in cumulative_ic(document).items():
        color = MODEL_COLOR if name == "model" else BEST_COLOR if name == best else next(others)
        ic_ax.plot(curve, color=color, linewidth=2.0 if name == "model" else 1.0, label=name)
    ic_ax.axhline(0.0, color="#999999", linewidth=0.8)
    ic_ax.set_title("Cumulative rank IC over the test rows", fontsize=10)
    ic_ax.legend(fontsize=8, ncol=3, loc="upper left")
    _date_ticks(ic_ax, session)

    x = np.arange(N_GROUPS)
    bars = (
        (-0.2, "model", "model", MODEL_COLOR),
        (0.2, best, f"{best} (best baseline)", BEST_COLOR),
    )
    for offset, name, label, color in bars:
        q_ax.bar(x + offset, 1e4 * quintile_means(document, name), width=0.4, color=color,
                 label=label)  # fmt: skip
    q_ax.axhline(0.0, color="#999999", linewidth=0.8)
    q_ax.set_xticks(x)
    q_ax.set_xticklabels(["bottom", *(f"Q{g + 1}" for g in range(1, N_GROUPS - 1)), "top"])
    q_ax.set_ylabel("bps", fontsize=9)
    q_ax.set_title(f"Mean {kind} target by score quintile (horizon {horizon})", fontsize=10)
    q_ax.legend(fontsize=8)

    book = long_short_curve(document)
    ls_ax.plot(100 * book["cum_gross"], color=MODEL_COLOR, label="gross")
    ls_ax.plot(100 * book["cum_net"], color=BEST_COLOR,
               label=f"net of {document['cost_bps']:g} bps per side")  # fmt: skip
    ls_ax.axhline(0.0, color="#999999", linewidth=0.8)
    ls_ax.set_ylabel("% (sum of returns)", fontsize=9)
    ls_ax.set_title("Model's quintile long-short book, cumulative", fontsize=10)
    ls_ax.legend(fontsize=8, loc="upper left")
    _date_ticks(ls_ax, session)

    state = "promoted" if document["promoted"] else "not promoted"
    fig.suptitle(_title(document) + f" ({state})", fontsize=11)
    from sentinel42.dashboard.charts import png_bytes

    return png_bytes(fig)


def _title(document: Mapping[str, Any]) -> str:
    return " ".join(filter(None, (document["kind"], "ranking model", document.get("version"))))


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def metrics_table(document: Mapping[str, Any]) -> str:
    """A markdown table: the model then every baseline, one column per :data:`TABLE_METRICS`."""
    lines = ["| scorer | " + " | ".join(TABLE_METRICS) + " |",
             "|---|" + "---:|" * len(TABLE_METRICS)]  # fmt: skip
    rows = [("model", document["model"]), *document["baselines"].items()]
    for name, m in rows:
        label = f"{name} (best baseline)" if name == document.get("best_baseline") else name
        lines.append(f"| {label} | " + " | ".join(_cell(m.get(k)) for k in TABLE_METRICS) + " |")
    return "\n".join(lines)


def report_markdown(document: Mapping[str, Any], png: bytes | None = None) -> str:
    """The artifact's page: verdict, gate reason, metrics table, test block and the chart."""
    from sentinel42.dashboard.markdown import chart_markdown

    kind = document["kind"]
    state = "promoted" if document["promoted"] else "not promoted"
    test = document["test"]
    parts = [
        f"### {_title(document)}: {state}",
        f"**Gate:** {document['reason']}",
        metrics_table(document),
        f"Test {test['start']} .. {test['end']}: {test['n_periods']} periods, "
        f"{test['n_samples']} samples, {test['n_sessions']} sessions; horizon "
        f"{document['horizon']} ({document['target']} return); long-short net of "
        f"{document['cost_bps']:g} bps per side.",
    ]
    if png is not None:
        parts.append(chart_markdown(png, f"{kind} ranking model report"))
    return "\n\n".join(parts) + "\n"


def report_description(document: Mapping[str, Any]) -> str:
    """One line for the artifact card: verdict and the headline numbers."""
    m = document["model"]
    state = "promoted" if document["promoted"] else "not promoted"
    return (
        f"{_title(document)} {state}: rank IC "
        f"{_cell(m.get('rank_ic_mean'))} (lower {_cell(m.get('rank_ic_lower'))}), long-short net "
        f"{_cell(m.get('long_short_net_annual'))}/yr; best baseline {document['best_baseline']}"
    )


def report_artifact(document: Mapping[str, Any]) -> tuple[str, str]:
    """The training artifact of one kind: ``(markdown with the chart embedded, description)``."""
    return report_markdown(document, report_png(document)), report_description(document)

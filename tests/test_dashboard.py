"""The dashboard: markdown with the right numbers, charts that decode, nothing secret in either."""

from __future__ import annotations

import base64
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from PIL import Image

from sentinel42 import dashboard
from sentinel42.decision_scoring import score_decisions
from sentinel42.domain import Action, Decision, NewsItem
from sentinel42.persistence import open_store
from sentinel42.portfolio import update_portfolio
from sentinel42.settings import load_settings

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 09:30 New York, a Tuesday
BAR = timedelta(minutes=15)
SECRET = "sk-test-DO-NOT-LEAK-4242"


def _result(actions: dict[str, str], *, run_id: str = "flow-2", model: str | None = "m1") -> dict:
    return {
        "as_of": (T0 + 6 * BAR).isoformat(),
        "run_id": run_id,
        "model_version": model,
        "decisions": [
            {
                "ticker": t,
                "bar_ts": (T0 + 5 * BAR).isoformat(),
                "action": a,
                "confidence": 0.62,
                "fused": 0.31,
                "reason": f"{a}: fused 0.31 | news <b>up</b>",
            }
            for t, a in actions.items()
        ],
        "skipped_tickers": {"TSLA": "no stored bars up to as_of"},
        "saved": {"standing": len(actions), "revisions": 0, "unchanged": 0},
    }


PORTFOLIO = {
    "ts": (T0 + 6 * BAR).isoformat(),
    "starting_cash": 100_000.0,
    "cash": 90_000.0,
    "equity": 101_234.5,
    "return": 0.012345,
    "positions": {
        "AAA": {
            "quantity": 50.0,
            "avg_price": 200.0,
            "last_price": 224.69,
            "market_value": 11_234.5,
            "unrealized_pnl": 1_234.5,
        }
    },
    "realized_pnl": 0.0,
    "unrealized_pnl": 1_234.5,
    "fees_paid": 1.0,
    "bar_ts": (T0 + 5 * BAR).isoformat(),
    "applied": 2,
    "trades": [
        {
            "ticker": "AAA",
            "side": "buy",
            "quantity": 50.0,
            "decided_at": (T0 + 5 * BAR + timedelta(minutes=2)).isoformat(),
            "fill_bar": (T0 + 6 * BAR).isoformat(),
            "fill_price": 200.0,
            "fee": 1.0,
            "reason": "buy to target",
        },
    ],
    "pending": [
        {
            "ticker": "BBB",
            "target_weight": 0.0,
            "decided_at": (T0 + 6 * BAR + timedelta(minutes=2)).isoformat(),
            "bar_ts": (T0 + 6 * BAR).isoformat(),
            "action": "SELL",
            "confidence": 0.4,
            "reason": "SELL: exit long",
        }
    ],
    "buy_and_hold_equity": 100_500.0,
    "buy_and_hold_return": 0.005,
}
FRESHNESS = {
    "AAA": {
        "newest_bar": (T0 + 5 * BAR).isoformat(),
        "bar_age_minutes": 0.0,
        "newest_headline": T0.isoformat(),
        "stale": False,
    },
    "BBB": {
        "newest_bar": T0.isoformat(),
        "bar_age_minutes": 75.0,
        "newest_headline": None,
        "stale": True,
    },
}
MODEL = {
    "version": "m1",
    "validated_accuracy": 0.58,
    "edge": 0.04,
    "live_hits": 55,
    "live_n": 100,
    "live_hit_rate": 0.55,
    "window": 100,
    "degraded": False,
}


def test_trading_summary_shows_flips_portfolio_freshness_and_model() -> None:
    previous = _result({"AAA": "HOLD", "BBB": "SELL"}, run_id="flow-1")
    md = dashboard.trading_summary_markdown(
        _result({"AAA": "BUY", "BBB": "SELL"}), PORTFOLIO, FRESHNESS, MODEL, previous
    )
    assert "# Trading run as of 2026-11-24 11:00 ET" in md
    assert "1 BUY, 1 SELL, 0 HOLD" in md
    assert "**AAA**: HOLD → **BUY**" in md
    assert "BBB**:" not in md  # unchanged: not listed as a change
    assert "Against run `flow-1`" in md and "1 action(s) changed" in md
    assert "Equity **$101,234.50** (+1.23% since $100,000.00)" in md
    assert "buy-and-hold +0.50% ($100,500.00), excess +0.73%" in md
    assert "| AAA | 50.0000 | $200.00 | $224.69 | $11,234.50 | $1,234.50 |" in md
    assert (
        "| AAA | buy | 50.0000 | 2026-11-24 10:47 ET | 2026-11-24 11:00 ET | $200.00 | $1.00 | "
        "buy to target |"
    ) in md
    assert "Pending orders, waiting for their fill bar (1)" in md
    assert "| BBB | 0.0000 | 2026-11-24 11:02 ET | SELL: exit long |" in md
    assert "| AAA | 2026-11-24 10:45 ET | 0 min | 2026-11-24 09:30 ET |" in md
    assert "| BBB | 2026-11-24 09:30 ET | 75 min ⚠ stale | – |" in md
    assert "validated accuracy 58.0%, edge over the best baseline +4.0%" in md
    assert "live hit rate 55.0% (55/100) over the newest 100 scored signals; healthy" in md
    assert "Not decided: TSLA (no stored bars up to as_of)" in md
    assert "data:image" not in md


def test_trading_summary_escapes_cells_and_embeds_the_chart() -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    md = dashboard.trading_summary_markdown(
        _result({"AAA": "BUY"}), None, {}, {"version": None}, None, chart=png
    )
    assert "fused 0.31 \\| news &lt;b&gt;up&lt;/b&gt;" in md
    assert "<b>" not in md
    assert "First recorded run" in md
    assert "No paper portfolio yet." in md
    assert "No promoted model" in md
    uri = re.search(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    assert uri is not None and base64.b64decode(uri.group(1)) == png


def test_a_model_change_and_degradation_are_said() -> None:
    previous = _result({"AAA": "BUY"}, run_id="flow-1", model="m0")
    md = dashboard.trading_summary_markdown(
        _result({"AAA": "BUY"}), PORTFOLIO, FRESHNESS, MODEL | {"degraded": True}, previous
    )
    assert "no action changed" in md
    assert "Model: `m0` → `m1`" in md
    assert "**DEGRADED** (fusion weight 0)" in md


REPORT = {
    "as_of": (T0 + 8 * BAR).isoformat(),
    "newly_scored": 3,
    "scored": 5,
    "pending": 1,
    "actions": {
        "BUY": {"n": 3, "hits": 2, "hit_rate": 2 / 3, "mean_forward_return": 0.01},
        "SELL": {"n": 1, "hits": 0, "hit_rate": 0.0, "mean_forward_return": 0.02},
        "HOLD": {"n": 1, "hits": None, "hit_rate": None, "mean_forward_return": -0.005},
    },
    "model_signal": {"n": 4, "hits": 3, "hit_rate": 0.75, "mean_signed_return": 0.0125},
    "sentiment_signal": {"n": 2, "hits": 1, "hit_rate": 0.5, "mean_signed_return": None},
    "portfolio": {
        "start": T0.isoformat(),
        "end": (T0 + 5 * BAR).isoformat(),
        "points": 6,
        "starting_cash": 100_000.0,
        "equity": 102_000.0,
        "return": 0.02,
        "buy_and_hold_equity": 101_000.0,
        "buy_and_hold_return": 0.01,
        "excess_return": 0.01,
    },
    "model": {
        "version": "m1",
        "validated_accuracy": 0.6,
        "threshold": 0.58,
        "live_hits": 3,
        "live_n": 4,
        "live_hit_rate": 0.75,
        "window": 4,
        "p_value": 0.87,
        "tested": True,
        "degraded": True,
        "newly_degraded": True,
        "note": "live hit rate 3/4 = 0.750 below <0.58>",
    },
    "degraded_model": "m1",
    "newly_degraded": True,
}


def test_validate_report_shows_hit_rates_signals_portfolio_health_and_trend() -> None:
    trend = [
        {
            "date": "2026-11-24",
            "scored": 5,
            "decisions_n": 4,
            "decisions_hits": 2,
            "model_n": 4,
            "model_hits": 3,
            "sentiment_n": 2,
            "sentiment_hits": 1,
            "cumulative_hit_rate": 0.5,
        },
    ]
    md = dashboard.validate_report_markdown(REPORT, trend, chart=b"png")
    assert "# Validation as of 2026-11-24 11:30 ET" in md
    assert "**Model `m1` is DEGRADED** (newly marked)" in md
    assert "5 decisions scored (3 new this run); 1 waiting for their horizon" in md
    assert "| BUY | 3 | 66.7% (2/3) | +1.000% |" in md
    assert "| SELL | 1 | 0.0% (0/1) | +2.000% |" in md
    assert "| HOLD | 1 | – | -0.500% |" in md
    assert "| Model alone (P(up) vs 0.5) | 4 | 75.0% (3/4) | +1.250% |" in md
    assert "| News sentiment alone | 2 | 50.0% (1/2) | – |" in md
    assert "portfolio +2.00% ($102,000.00), buy-and-hold +1.00% ($101,000.00)" in md
    assert "excess **+1.00%**" in md
    assert "live 75.0% (3/4) of a 4-signal window, p = 0.8700" in md
    assert "below &lt;0.58&gt;" in md
    assert "| 2026-11-24 | 5 | 50.0% (2/4) | 50.0% | 75.0% (3/4) | 50.0% (1/2) |" in md
    assert "data:image/png;base64,cG5n" in md


def test_validate_report_before_anything_was_scored() -> None:
    empty = {"as_of": T0.isoformat(), "actions": {}, "model_signal": {}, "sentiment_signal": {}}
    md = dashboard.validate_report_markdown(empty)
    assert "0 decisions scored" in md
    assert "No equity curve yet." in md and "No model has decided yet." in md
    assert "DEGRADED" not in md and "Trend by session" not in md


# --- from a store ---------------------------------------------------------------------------------
def _bars(closes: list[float]) -> pd.DataFrame:
    """Each bar opens at the previous close: a decision fills at the next bar's open."""
    stamps = [T0 + i * BAR for i in range(len(closes))]
    opens = [closes[0], *closes[:-1]]
    return pd.DataFrame(
        {
            "open": opens,
            "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": 1_000.0,
        },
        index=pd.DatetimeIndex(stamps, name="ts"),
    )


def _decision(ticker: str, i: int, action: Action, close: float, run: str) -> Decision:
    return Decision(
        ticker=ticker,
        bar_ts=T0 + i * BAR,
        action=action,
        confidence=0.6,
        reason="test",
        inputs={"close": close, "p_up": 0.7 if action is Action.BUY else 0.4, "sentiment": 0.2},
        models={"lstm": "m1", "lstm_validated_accuracy": 0.6, "lstm_horizon_bars": 1},
        decided_at=T0 + (i + 1) * BAR,
        run_id=run,
    )


@pytest.fixture
def settings(tmp_path):
    return load_settings(
        require_replay_dir=False,
        tickers=["AAA", "BBB"],
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        data_dir=tmp_path / "data",
        model_horizon=1,
        max_bar_age_minutes=30,
        newsapi_key=SECRET,
        notify_webhook_url=f"https://hooks.example.invalid/{SECRET}",
    )


@pytest.fixture
def filled(settings):
    """Two tickers, six bars; decisions at bars 0-2 by two runs; a portfolio; scores."""
    aaa, bbb = [100.0, 102.0, 101.0, 103.0, 104.0, 105.0], [50.0, 49.0, 48.0, 49.0, 47.0, 46.0]
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", _bars(aaa))
        store.upsert_bars("BBB", "15m", _bars(bbb))
        store.upsert_news(
            [
                NewsItem(
                    url="https://n/1",
                    title="AAA beats",
                    published_at=T0,
                    source="t",
                    tickers=("AAA",),
                )
            ],
            seen_at=T0,
        )
        store.save_decisions(
            [
                _decision("AAA", 0, Action.BUY, 100.0, "flow-1"),
                _decision("BBB", 0, Action.HOLD, 50.0, "flow-1"),
            ],
            run_id="flow-1",
        )
        store.save_decisions(
            [
                _decision("AAA", 2, Action.SELL, 101.0, "flow-2"),
                _decision("BBB", 2, Action.SELL, 48.0, "flow-2"),
            ],
            run_id="flow-2",
        )
        as_of = T0 + 6 * BAR
        update_portfolio(store, settings, as_of)
        score_decisions(store, settings, as_of)
        yield store, as_of


def test_freshness_measures_bar_age_from_the_bar_end(filled, settings) -> None:
    store, as_of = filled
    fresh = dashboard.freshness(store, settings, as_of + timedelta(minutes=35))
    assert fresh["AAA"] == {
        "newest_bar": (T0 + 5 * BAR).isoformat(),
        "bar_age_minutes": 35.0,
        "newest_headline": T0.isoformat(),
        "stale": True,  # 35 > max_bar_age_minutes=30
    }
    assert fresh["BBB"]["newest_headline"] is None
    assert dashboard.freshness(store, settings, as_of)["AAA"]["stale"] is False


def test_model_status_reads_the_registry_and_the_live_scores(filled, settings) -> None:
    store, _ = filled
    assert dashboard.model_status(store, settings)["version"] is None
    folder = settings.models_dir / "m1"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(
        json.dumps({"gate": {"model_accuracy": 0.6, "edge": 0.05}})
    )
    (settings.models_dir / "current").write_text("m1")
    status = dashboard.model_status(store, settings)
    # Scored: AAA BUY@0 (p .7, 100->102 up: hit), BBB HOLD@0 (p .4, down: hit),
    # AAA SELL@2 (p .4, 101->103 up: miss), BBB SELL@2 (p .4, 48->49 up: miss).
    assert status | {"tested_at": None} == {
        "version": "m1",
        "validated_accuracy": 0.6,
        "edge": 0.05,
        "live_hits": 2,
        "live_n": 4,
        "live_hit_rate": 0.5,
        "window": settings.validate_window,
        "degraded": False,
        "p_value": None,
        "tested_at": None,
    }


def test_previous_result_is_the_newest_other_run(filled) -> None:
    store, _ = filled
    previous = dashboard.previous_result(store, "flow-3")
    assert previous is not None and previous["run_id"] == "flow-2"
    assert [(d["ticker"], d["action"]) for d in previous["decisions"]] == [
        ("AAA", "SELL"),
        ("BBB", "SELL"),
    ]
    assert dashboard.previous_result(store, "flow-2")["run_id"] == "flow-1"


def test_score_trend_groups_by_new_york_session(filled) -> None:
    store, _ = filled
    [day] = dashboard.score_trend(store)
    # Next closes: AAA 100->102 (up), 101->103 (up); BBB 50->49 (down), 48->49 (up).
    # Decisions: AAA BUY hit, AAA SELL miss, BBB SELL miss (BBB HOLD has no hit).
    # Model says up for the BUY only: hits AAA@0, BBB@0. News says up everywhere: 3 of 4.
    assert day == {
        "date": "2026-11-24",
        "scored": 4,
        "decisions_n": 3,  # the HOLD has no hit
        "decisions_hits": 1,
        "model_n": 4,
        "model_hits": 2,
        "sentiment_n": 4,
        "sentiment_hits": 3,
        "cumulative_hit_rate": pytest.approx(1 / 3),
    }


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_decisions_chart_is_a_readable_png(filled, settings) -> None:
    store, as_of = filled
    png = dashboard.decisions_chart_png(store, settings, as_of)
    image = _decode(png)
    assert image.format == "PNG"
    assert len(png) < 80_000  # stored in Prefect's database with every run
    assert image.width == 800  # the UI's markdown column is about 700 px: little scaling
    assert 500 <= image.height <= 1200  # two ticker panels side by side, then the equity


def test_charts_of_an_empty_store_say_so_instead_of_failing(settings) -> None:
    with open_store(settings) as store:
        as_of = T0 + 6 * BAR
        assert _decode(dashboard.decisions_chart_png(store, settings, as_of)).width == 800
        assert _decode(dashboard.validate_chart_png(store, settings, [])).width == 800


def test_validate_chart_is_a_png(filled, settings) -> None:
    store, _ = filled
    image = _decode(dashboard.validate_chart_png(store, settings, dashboard.score_trend(store)))
    assert (image.width, image.format) == (800, "PNG")
    assert image.height >= 400


def test_nothing_secret_or_local_reaches_the_dashboard(filled, settings, tmp_path) -> None:
    store, as_of = filled
    result = _result({"AAA": "BUY", "BBB": "SELL"}, run_id="flow-3")
    chart = dashboard.decisions_chart_png(store, settings, as_of)
    md = dashboard.trading_summary_markdown(
        result,
        PORTFOLIO,
        dashboard.freshness(store, settings, as_of),
        dashboard.model_status(store, settings),
        dashboard.previous_result(store, "flow-3"),
        chart=chart,
    )
    trend = dashboard.score_trend(store)
    report = score_decisions(store, settings, as_of).to_dict()
    vmd = dashboard.validate_report_markdown(
        report, trend, chart=dashboard.validate_chart_png(store, settings, trend)
    )
    for text in (md, vmd):
        assert SECRET not in text and "example.invalid" not in text
        assert str(tmp_path) not in text  # no local path of the data folder
    for png in (chart, dashboard.validate_chart_png(store, settings, trend)):
        assert SECRET.encode() not in png and str(tmp_path).encode() not in png
        assert b"tEXt" not in png  # no text chunks at all (no "Software" line either)


def test_trading_and_validate_dashboards_compose_markdown_chart_and_card_line(
    filled, settings
) -> None:
    store, as_of = filled
    portfolio = update_portfolio(store, settings, as_of)
    result = _result({"AAA": "BUY", "BBB": "SELL"}, run_id="flow-3")
    markdown, description = dashboard.trading_dashboard(settings, as_of, result, portfolio)
    assert "Against run `flow-2`" in markdown
    assert "**BBB**: SELL" not in markdown  # SELL before and now
    assert "**AAA**: SELL → **BUY**" in markdown
    assert markdown.count("data:image/png;base64,") == 1
    assert description.startswith("AAA BUY · BBB SELL · paper equity $")
    report = score_decisions(store, settings, as_of).to_dict()
    markdown, description = dashboard.validate_dashboard(settings, report)
    assert "## Trend by session" in markdown and "data:image/png;base64," in markdown
    assert description.startswith("4 scored · BUY/SELL hit rate 33.3% (1/3)")


def test_a_large_watchlist_gets_eight_panels_with_the_buys_and_sells_first() -> None:
    from types import SimpleNamespace

    from sentinel42.dashboard.charts import MAX_PANELS, panel_tickers

    def said(*actions: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(action=Action(a)) for a in actions]

    watchlist = [f"T{i:03d}" for i in range(500)]
    decided = {"T400": said("HOLD", "BUY"), "T007": said("SELL"), "T002": said("BUY", "HOLD")}
    shown = panel_tickers(watchlist, decided)
    assert len(shown) == MAX_PANELS == 8
    assert shown[:2] == ["T007", "T400"]  # newest BUY/SELL first, in watchlist order
    assert shown[2:] == ["T000", "T001", "T002", "T003", "T004", "T005"]
    assert panel_tickers(["A", "B"], {}) == ["A", "B"]

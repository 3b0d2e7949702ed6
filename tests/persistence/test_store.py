from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from sentinel42.domain import Action, Decision, NewsItem, Prediction, SentimentScore, text_hash
from sentinel42.persistence import (
    SavedDecisions,
    Store,
    current_revision,
    make_engine,
    migrate,
    open_store,
)
from sentinel42.persistence.db import MIGRATIONS_DIR

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _bars(n: int, start: datetime = T0, close: float = 100.0) -> pd.DataFrame:
    idx = pd.DatetimeIndex([start + timedelta(minutes=15 * i) for i in range(n)], name="ts")
    c = [close + i for i in range(n)]
    return pd.DataFrame(
        {
            "open": c,
            "high": [x + 1 for x in c],
            "low": [x - 1 for x in c],
            "close": c,
            "volume": [1000.0] * n,
        },
        index=idx,
    )


@pytest.fixture
def store(tmp_path):
    with open_store(url=f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s


def test_upsert_bars_twice_writes_nothing_the_second_time(store):
    first = store.upsert_bars("AAPL", "15m", _bars(5))
    second = store.upsert_bars("AAPL", "15m", _bars(5))
    assert (first.new, first.updated) == (5, 0)
    assert (second.new, second.updated) == (0, 0)
    assert store.count_bars("15m") == 5


def test_upsert_bars_counts_revised_bars_as_updated(store):
    store.upsert_bars("AAPL", "15m", _bars(5))
    revised = _bars(6)
    revised.iloc[4, revised.columns.get_loc("close")] = 150.0
    counts = store.upsert_bars("AAPL", "15m", revised)
    assert (counts.new, counts.updated) == (1, 1)
    loaded = store.load_bars(["AAPL"], "15m")["AAPL"]
    assert loaded["close"].iloc[4] == 150.0
    assert str(loaded.index.tz) == "UTC"
    assert loaded.index[0] == pd.Timestamp(T0)


def test_load_bars_keeps_tickers_and_intervals_apart(store):
    store.upsert_bars("AAPL", "15m", _bars(3))
    store.upsert_bars("MSFT", "15m", _bars(2, close=300))
    store.upsert_bars("AAPL", "1d", _bars(4))
    loaded = store.load_bars(["AAPL", "MSFT", "NVDA"], "15m")
    assert sorted(loaded) == ["AAPL", "MSFT"]
    assert len(loaded["AAPL"]) == 3
    newest = store.newest_bar_ts(["AAPL", "NVDA"], "15m")
    assert newest["AAPL"] == T0 + timedelta(minutes=30)
    assert newest["NVDA"] is None


@pytest.mark.parametrize("seed", range(3))
def test_load_bars_gives_each_ticker_its_own_rows_in_time_order(store, seed):
    rng = np.random.default_rng(seed)
    tickers = [f"T{i}" for i in range(int(rng.integers(1, 12)))]
    written = {}
    for t in tickers:
        n = int(rng.integers(1, 40))
        frame = _bars(n, start=T0 + timedelta(minutes=15 * int(rng.integers(0, 50))),
                      close=float(rng.uniform(1, 500)))  # fmt: skip
        store.upsert_bars(t, "15m", frame)
        store.upsert_bars(t, "1d", _bars(2))
        written[t] = frame
    window = (T0 + timedelta(minutes=15 * 10), T0 + timedelta(minutes=15 * 60))
    for start, end in [(None, None), window]:
        loaded = store.load_bars([*tickers, "NONE"], "15m", start=start, end=end)
        for t, frame in written.items():
            want = frame.loc[start:end] if start is not None else frame
            if want.empty:
                assert t not in loaded
                continue
            got = loaded[t]
            assert list(got.columns) == ["open", "high", "low", "close", "volume", "flagged"]
            assert got.index.name == "ts" and str(got.index.tz) == "UTC"
            assert got.index.unit == "ns" and got["flagged"].dtype == bool
            pd.testing.assert_frame_equal(
                got.drop(columns="flagged"), want.set_axis(want.index.as_unit("ns")),
                check_freq=False, check_index_type=False,
            )  # fmt: skip
        assert set(loaded) <= set(tickers)


def test_replace_bars_drops_the_old_history(store):
    store.upsert_bars("AAPL", "15m", _bars(5))
    store.replace_bars("AAPL", "15m", _bars(2, close=50))
    loaded = store.load_bars(["AAPL"], "15m")["AAPL"]
    assert list(loaded["close"]) == [50.0, 51.0]


def test_naive_bar_index_is_refused(store):
    frame = _bars(2)
    frame.index = frame.index.tz_localize(None)
    with pytest.raises(ValueError, match="tz-aware"):
        store.upsert_bars("AAPL", "15m", frame)


def _item(title: str, tickers=("AAPL",), url="https://example.com/a", origin="rss") -> NewsItem:
    return NewsItem(
        url=url, title=title, published_at=T0, source="Example", tickers=tickers, origin=origin
    )


def test_same_story_from_two_sources_is_stored_once_with_merged_tickers(store):
    new1 = store.upsert_news([_item("Apple beats estimates!")], seen_at=T0)
    new2 = store.upsert_news(
        [
            _item(
                "Apple  beats estimates", tickers=("MSFT",), url="https://other/x", origin="newsapi"
            )
        ],
        seen_at=T0 + timedelta(hours=1),
    )
    assert len(new1) == 1 and new2 == []
    assert store.count_news() == 1
    rows = store.headlines(None)
    assert sorted(rows["ticker"]) == ["AAPL", "MSFT"]
    assert rows["first_seen_at"].iloc[0] == T0


def test_a_story_re_dated_across_midnight_is_still_one_story(store):
    late = _item("Apple beats estimates")
    store.upsert_news([replace(late, published_at=datetime(2026, 11, 24, 23, 50, tzinfo=UTC))], T0)
    store.upsert_news([replace(late, published_at=datetime(2026, 11, 25, 0, 10, tzinfo=UTC))], T0)
    assert store.count_news() == 1


def test_a_recurring_headline_days_later_is_a_new_story(store):
    item = _item("Stocks making the biggest moves midday")
    store.upsert_news([item], T0)
    later = replace(item, published_at=T0 + timedelta(days=7))
    assert store.upsert_news([later], T0 + timedelta(days=7)) == [
        replace(later, first_seen_at=T0 + timedelta(days=7))
    ]
    assert store.count_news() == 2


def test_scores_are_cached_per_scorer_and_revision(store):
    store.upsert_news([_item("Apple beats"), _item("Apple misses", url="u2")], seen_at=T0)
    pending = store.pending_texts("lexicon", "v1")
    assert len(pending) == 2
    scores = [
        SentimentScore(h, "positive", 0.8, 0.1, 0.1, "lexicon", "v1")
        for h, t in pending
        if t == "Apple beats"
    ]
    assert store.save_scores(scores, T0) == 1
    assert store.save_scores(scores, T0) == 0
    assert len(store.pending_texts("lexicon", "v1")) == 1
    assert len(store.pending_texts("lexicon", "v2")) == 2
    head = store.headlines(["AAPL"])
    scored = head[head["text_hash"] == text_hash("Apple beats")]
    assert scored["score"].iloc[0] == pytest.approx(0.7)


def test_a_model_score_wins_over_a_later_fallback_score(store):
    store.upsert_news([_item("Apple beats")], seen_at=T0)
    h = text_hash("Apple beats")
    store.save_scores(
        [SentimentScore(h, "positive", 0.9, 0.05, 0.05, "ProsusAI/finbert", "abc")], T0
    )
    store.save_scores(
        [SentimentScore(h, "negative", 0.1, 0.8, 0.1, "sentinel42-fallback", "f1")], T0
    )
    row = store.headlines(["AAPL"]).iloc[0]
    assert row["scorer"] == "ProsusAI/finbert"
    assert row["score"] == pytest.approx(0.85)


# Friday 2026-11-27 is a half day: its last bar starts 12:45 New York.
FRIDAY_LAST_BAR = datetime(2026, 11, 27, 17, 45, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def _decision(
    action: Action = Action.BUY,
    reason: str = "friday",
    decided_at: datetime = FRIDAY_LAST_BAR + timedelta(minutes=17),
    *,
    ticker: str = "AAPL",
    bar_ts: datetime = FRIDAY_LAST_BAR,
    inputs: dict | None = None,
) -> Decision:
    return Decision(
        ticker,
        bar_ts,
        action,
        0.7,
        reason,
        inputs if inputs is not None else {"close": 100.0},
        {"model": "v1"},
        decided_at,
    )


def _stored(store, ticker: str = "AAPL") -> list[tuple]:
    """Every stored row of a ticker as written (``forced`` is not on the domain type)."""
    with store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT revision, run_id, action, reason, decided_at, forced FROM decisions"
                    " WHERE ticker = :t ORDER BY bar_ts, revision"
                ),
                {"t": ticker},
            )
        ]


def test_a_forced_weekend_run_does_not_rewrite_fridays_decision(store):
    # The pipeline's call today: no run id, so each call is a run of its own.
    store.save_decisions([_decision()])
    store.save_decisions(
        [_decision(Action.SELL, "saturday", SATURDAY, inputs={"close": 99.0})], forced=True
    )
    (standing,) = store.decisions()
    assert (standing.action, standing.reason) == (Action.BUY, "friday")
    assert standing.decided_at == FRIDAY_LAST_BAR + timedelta(minutes=17)
    assert standing.revision == 0


def test_a_second_run_at_the_same_bar_is_stored_as_revision_1_with_its_own_time_and_inputs(
    store,
):
    first = store.save_decisions([_decision()], run_id="flow-run-friday")
    second = store.save_decisions(
        [_decision(Action.SELL, "saturday", SATURDAY, inputs={"close": 99.0})],
        forced=True,
        run_id="flow-run-saturday",
    )
    assert first == SavedDecisions(standing=1, revisions=0, unchanged=0)
    assert second == SavedDecisions(standing=0, revisions=1, unchanged=0)
    assert store.count_decisions() == 1
    assert store.count_decisions(all_revisions=True) == 2
    standing, revision = store.decisions(all_revisions=True)
    assert (standing.revision, standing.run_id, standing.reason) == (0, "flow-run-friday", "friday")
    assert standing.inputs == {"close": 100.0}
    assert (revision.revision, revision.run_id) == (1, "flow-run-saturday")
    assert (revision.action, revision.reason) == (Action.SELL, "saturday")
    assert revision.decided_at == SATURDAY
    assert revision.inputs == {"close": 99.0}
    assert revision.bar_ts == standing.bar_ts == FRIDAY_LAST_BAR


def test_a_retried_run_stores_nothing_new_even_if_it_decides_differently(store):
    store.save_decisions([_decision()], run_id="flow-run-1")
    retry = store.save_decisions(
        [_decision(Action.HOLD, "retry", SATURDAY)], forced=True, run_id="flow-run-1"
    )
    assert retry == SavedDecisions(standing=0, revisions=0, unchanged=1)
    assert store.count_decisions(all_revisions=True) == 1
    assert _stored(store) == [
        (0, "flow-run-1", "BUY", "friday", "2026-11-27 18:02:00.000000", 0),
    ]


def test_a_batch_with_a_decision_lacking_decided_at_is_refused_whole(store):
    # The store has no clock: the run records when it decided, and a batch missing that for
    # one decision is refused before any row of it is written (the good ones sort first).
    undated = replace(_decision(ticker="MSFT"), decided_at=None)
    with pytest.raises(ValueError, match=r"MSFT at 2026-11-27T17:45:00\+00:00 has no decided_at"):
        store.save_decisions([_decision(ticker="AAPL"), undated], run_id="run-1")
    assert store.count_decisions(all_revisions=True) == 0
    assert _stored(store, "AAPL") == []
    # The same run, retried with the time recorded, stores both as standing decisions.
    saved = store.save_decisions(
        [_decision(ticker="AAPL"), _decision(ticker="MSFT")], run_id="run-1"
    )
    assert saved == SavedDecisions(standing=2, revisions=0, unchanged=0)


def test_the_standing_decision_is_never_changed_by_later_runs(store):
    store.save_decisions([_decision()], run_id="friday")
    for n in (1, 2, 3):
        store.save_decisions(
            [_decision(Action.SELL, f"weekend {n}", SATURDAY + timedelta(hours=n))],
            forced=True,
            run_id=f"weekend-{n}",
        )
        store.save_decisions(  # and each run retried
            [_decision(Action.HOLD, "retry", SATURDAY)], forced=True, run_id=f"weekend-{n}"
        )
    rows = _stored(store)
    assert rows[0] == (0, "friday", "BUY", "friday", "2026-11-27 18:02:00.000000", 0)
    assert [(r[0], r[1], r[3], r[5]) for r in rows[1:]] == [
        (1, "weekend-1", "weekend 1", 1),
        (2, "weekend-2", "weekend 2", 1),
        (3, "weekend-3", "weekend 3", 1),
    ]


def test_decisions_show_the_standing_ones_unless_all_revisions_are_asked_for(store):
    earlier = FRIDAY_LAST_BAR - timedelta(minutes=15)
    store.save_decisions(
        [_decision(ticker="MSFT", bar_ts=earlier), _decision(ticker="AAPL", bar_ts=earlier)],
        run_id="run-1",
    )
    store.save_decisions(
        [_decision(ticker="MSFT"), _decision(ticker="AAPL")],
        run_id="run-2",
    )
    saved = store.save_decisions(
        [_decision(Action.SELL, "forced", ticker=t) for t in ("MSFT", "AAPL")],
        forced=True,
        run_id="run-3",
    )
    assert saved == SavedDecisions(standing=0, revisions=2, unchanged=0)

    standing = store.decisions()
    assert [(d.bar_ts, d.ticker, d.revision) for d in standing] == [
        (FRIDAY_LAST_BAR, "AAPL", 0),
        (FRIDAY_LAST_BAR, "MSFT", 0),
        (earlier, "AAPL", 0),
        (earlier, "MSFT", 0),
    ]
    every = store.decisions(all_revisions=True)
    assert [(d.bar_ts, d.ticker, d.revision, d.run_id) for d in every] == [
        (FRIDAY_LAST_BAR, "AAPL", 0, "run-2"),
        (FRIDAY_LAST_BAR, "AAPL", 1, "run-3"),
        (FRIDAY_LAST_BAR, "MSFT", 0, "run-2"),
        (FRIDAY_LAST_BAR, "MSFT", 1, "run-3"),
        (earlier, "AAPL", 0, "run-1"),
        (earlier, "MSFT", 0, "run-1"),
    ]
    assert [d.revision for d in store.decisions("MSFT", 2, all_revisions=True)] == [0, 1]
    assert [d.bar_ts for d in store.decisions("MSFT", 1)] == [FRIDAY_LAST_BAR]
    assert store.count_decisions() == 4
    assert store.count_decisions(all_revisions=True) == 6


def test_concurrent_runs_at_the_same_bar_get_distinct_revision_numbers(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url=url):
        pass
    bars = [FRIDAY_LAST_BAR - timedelta(minutes=15 * i) for i in range(5)]

    def run(n: int) -> SavedDecisions:
        # An engine per writer, as separate worker processes have (Alembic's migrate, which
        # open_store runs, is not thread-safe, hence Store over an engine of its own).
        engine = make_engine(url)
        try:
            return Store(engine).save_decisions(
                [_decision(reason=f"run {n}", bar_ts=b) for b in bars], run_id=f"run-{n}"
            )
        finally:
            engine.dispose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(4)))
    assert sum(r.standing for r in results) == len(bars)
    assert sum(r.revisions for r in results) == 3 * len(bars)
    with open_store(url=url) as store:
        every = store.decisions(limit=100, all_revisions=True)
    for bar in bars:
        assert sorted(d.revision for d in every if d.bar_ts == bar) == [0, 1, 2, 3]


@pytest.mark.parametrize("run_id", ["", "x" * 65])
def test_a_run_id_that_cannot_be_stored_is_refused(store, run_id):
    with pytest.raises(ValueError, match="run_id"):
        store.save_decisions([_decision()], run_id=run_id)


def test_predictions_are_idempotent(store):
    p = Prediction("AAPL", T0, 0.6, 0.001, "v1", 0.55, 4)
    assert store.save_predictions([p], T0) == 1
    assert store.save_predictions([p], T0) == 0


def test_request_budget_and_feed_state_round_trip(store):
    day = T0.date()
    store.add_requests("newsapi", day)
    store.add_requests("newsapi", day, 2)
    assert store.count_requests("newsapi", day) == 3
    store.set_feed_state("https://f", '"e1"', None)
    store.set_feed_state("https://f", '"e2"', "Tue")
    assert store.get_feed_state("https://f") == ('"e2"', "Tue")


def test_upgrade_from_first_schema_keeps_the_data(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO bars (ticker, interval, ts, open, high, low, close, volume) "
                "VALUES ('AAPL', '15m', 1764000000, 1, 2, 0.5, 1.5, 10)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO news (dedupe_key, url, title, summary, source, origin, published_at,"
                " first_seen_at, text_hash) VALUES ('k1', 'https://e/1', 'Old story', '', 'E',"
                " 'rss', '2026-11-24 14:30:00', '2026-11-24 14:30:00', 'h1')"
            )
        )
        conn.execute(text("INSERT INTO news_tickers (news_id, ticker) VALUES (1, 'AAPL')"))
    engine.dispose()
    with open_store(url=f"sqlite:///{tmp_path / 'old.db'}") as store:
        assert current_revision(store.engine) == HEAD
        bars = store.load_bars(["AAPL"], "15m")["AAPL"]
        assert bars["close"].iloc[0] == 1.5
        assert not bars["flagged"].iloc[0]
        # A story stored by the first schema is recognised again, not duplicated.
        assert store.upsert_news([_item("Old story", tickers=("MSFT",))], seen_at=T0) == []
        assert store.count_news() == 1
        assert sorted(store.headlines(None)["ticker"]) == ["AAPL", "MSFT"]


def test_upgrade_from_0002_keeps_every_decision_as_the_standing_one(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0002")
    with engine.begin() as conn:
        for ticker, action, forced in (("AAPL", "BUY", 0), ("MSFT", "HOLD", 1)):
            conn.execute(
                text(
                    "INSERT INTO decisions (ticker, bar_ts, action, confidence, reason, inputs,"
                    " models, decided_at, forced) VALUES (:ticker, '2026-11-27 17:45:00.000000',"
                    ' :action, 0.5, :reason, \'{"close": 1.5}\', \'{"model": "v1"}\','
                    " '2026-11-27 18:02:00.000000', :forced)"
                ),
                {"ticker": ticker, "action": action, "reason": f"old {ticker}", "forced": forced},
            )
    engine.dispose()
    with open_store(url=f"sqlite:///{tmp_path / 'old.db'}") as store:
        assert current_revision(store.engine) == HEAD
        old = store.decisions(all_revisions=True)
        assert [(d.ticker, d.action, d.reason, d.revision, d.run_id) for d in old] == [
            ("AAPL", Action.BUY, "old AAPL", 0, "legacy-1"),
            ("MSFT", Action.HOLD, "old MSFT", 0, "legacy-2"),
        ]
        assert all(d.bar_ts == FRIDAY_LAST_BAR for d in old)
        assert all(d.decided_at == FRIDAY_LAST_BAR + timedelta(minutes=17) for d in old)
        assert all(d.inputs == {"close": 1.5} and d.models == {"model": "v1"} for d in old)
        assert [r[5] for r in _stored(store, "MSFT")] == [1]
        # A decision stored before revisions existed stands; a new run adds a revision.
        saved = store.save_decisions([_decision(Action.SELL, "new")], run_id="new-run")
        assert saved == SavedDecisions(standing=0, revisions=1, unchanged=0)
        assert store.decisions("AAPL")[0].reason == "old AAPL"

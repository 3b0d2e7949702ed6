from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sentinel42.domain import NewsItem
from sentinel42.news.normalize import (
    AMBIGUOUS_SYMBOLS,
    COMPANY_NAMES,
    canonical_url,
    clean_text,
    dedupe,
    make_item,
    match_tickers,
    title_key,
    to_utc,
)

WATCH = ["AAPL", "MSFT", "NVDA", "AMZN", "SPY", "ON", "ALL", "NOW", "A", "IT"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://seekingalpha.com/article/4879882-x?source=feed_symbol_AAPL",
            "https://seekingalpha.com/article/4879882-x",
        ),
        (
            "HTTPS://WWW.Example.com:443/a/b/?utm_source=rss&utm_medium=x&b=2&a=1#top",
            "https://www.example.com/a/b?a=1&b=2",
        ),
        (
            "https://finance.yahoo.com/news/x.html?.tsrc=rss",
            "https://finance.yahoo.com/news/x.html",
        ),
        ("https://example.com/story?id=42&fbclid=abc", "https://example.com/story?id=42"),
        (
            "https://example.com:8443/p?source=homepage",
            "https://example.com:8443/p?source=homepage",
        ),
    ],
)
def test_canonical_url_strips_tracking_but_keeps_identity(url, expected):
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Apple beats estimates", ("AAPL",)),
        ("Nvidia and Microsoft gain in late trading", ("MSFT", "NVDA")),
        ("ON the move: stocks fall", ()),
        ("$ON surges after results", ("ON",)),
        ("onsemi rallies on AI demand", ("ON",)),
        ("All stocks rise as it is NOW time to buy", ()),
        ("ServiceNow falls", ("NOW",)),
        ("A new day for Wall Street", ()),
        ("Agilent cuts outlook", ("A",)),
        ("Shares of (NASDAQ:AAPL) move", ("AAPL",)),
        ("IT spending slows", ()),
        ("AAPL hits a record", ("AAPL",)),
        ("S&P 500 closes at a record", ("SPY",)),
        ("apple pie prices rise", ()),
    ],
)
def test_match_tickers_counts_ordinary_word_symbols_only_as_cashtag_or_name(text, expected):
    assert match_tickers(text, WATCH) == expected


def _match_tickers_by_regex_alone(text, watchlist, names):
    """The matcher as first written: every pattern searched for every symbol, no shortcuts."""
    found = []
    for symbol in watchlist:
        sym = re.escape(symbol)
        explicit = re.search(
            rf"(?:\$|\b(?:NASDAQ|NYSE|NYSEARCA|AMEX|ARCA)\s?:\s?){sym}(?![\w-])",
            text,
            flags=re.IGNORECASE,
        )
        bare = (
            len(symbol) > 1
            and symbol not in AMBIGUOUS_SYMBOLS
            and re.search(rf"(?<![\w$-]){sym}(?![\w-])", text) is not None
        )
        named = any(
            re.search(r"(?<![\w&])" + re.escape(n) + r"(?![\w&])", text)
            for n in names.get(symbol, ())
        )
        if explicit or bare or named:
            found.append(symbol)
    return tuple(found)


@pytest.mark.parametrize("seed", range(5))
def test_match_tickers_shortcuts_find_exactly_what_the_patterns_alone_find(seed):
    # The candidate pre-check must never hide a match: random headlines built from symbols in
    # every case, cashtags, exchange prefixes, company names, dots, hyphens and the characters
    # that re's case-blind matching folds specially (long s, Kelvin sign, dotless and dotted I,
    # sharp s, a combining mark that casefolds to a letter).
    rng = random.Random(seed)
    watch = [
        *WATCH,
        "BRK.B",
        "BF-B",
        "KSS",
        "SIRI",
        "T",
        "GS",
        "IBM",
        "B",
        *rng.sample(sorted(COMPANY_NAMES), 5),
    ]
    if seed % 2:
        watch += ["AAPL", "GS"]  # a watchlist with repeats answers in its own order
    pieces = [
        *watch,
        *(s.lower() for s in watch),
        *(f"${s.lower()}" for s in watch),
        *(f"NYSE: {s}" for s in watch),
        *(f"nasdaq:{s.lower()}" for s in watch),
        *(n for s in watch for n in COMPANY_NAMES.get(s, ())),
        "shares",
        "rise",
        "-",
        "&",
        "$",
        "ſ",
        "\u212a",
        "İ",
        "ß",
        "KẞS",
        "$\u212ass",
        "$ſiri",
        "NYSE:Gſ",
        "$ıbm",
        "NYSE:İBM",
        "\u0345AAPL",
        "x.aapl.",
        "BRK.B.",
        "(",
        ")",
        "S&P 500",
    ]
    names = {"AAPL": ("Apple",), "IBM": ("Big Blue", "IBM Corp"), "B": ("Barnes",)}
    pieces += ["Big Blue", "Barnes", "IBM Corp"]
    for _ in range(400):
        text = "".join(
            rng.choice(pieces) + rng.choice(["", " ", "-", ".", "\n"])
            for _ in range(rng.randint(1, 9))
        )
        assert match_tickers(text, watch) == _match_tickers_by_regex_alone(
            text, watch, COMPANY_NAMES
        ), text
        assert match_tickers(text, watch, names) == _match_tickers_by_regex_alone(
            text, watch, names
        ), text


def test_title_key_ignores_case_punctuation_and_entities():
    assert title_key("Apple&apos;s profit  beats!") == title_key("apple's PROFIT beats")
    assert title_key("Apple beats") != title_key("Apple misses")


def test_make_item_converts_to_utc_and_cleans_text():
    est = timezone(timedelta(hours=-5))
    item = make_item(
        url="https://x.example/a?utm_campaign=1",
        title="  <b>Microsoft</b> &amp; partners  ",
        published_at=datetime(2026, 3, 8, 7, 0, tzinfo=est),
        source="Wire",
        summary="<p>Azure grows</p>",
        origin="rss",
        watchlist=["AAPL", "MSFT"],
        hinted=["AAPL", "ZZZZ"],
    )
    assert item is not None
    assert item.published_at == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert item.title == "Microsoft & partners"
    assert item.summary == "Azure grows"
    assert item.url == "https://x.example/a"
    assert item.tickers == ("AAPL", "MSFT")  # hint kept (on the watchlist), name matched


def test_make_item_without_title_is_dropped_and_naive_time_refused():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert (
        make_item(url="u", title=" ", published_at=now, source="s", origin="x", watchlist=[])
        is None
    )
    with pytest.raises(ValueError, match="naive"):
        to_utc(datetime(2026, 1, 1))


def test_dedupe_merges_same_story_from_two_sources_keeping_earliest():
    t0 = datetime(2026, 3, 8, 23, 50, tzinfo=UTC)
    rss = NewsItem(
        url="https://a/1",
        title="Apple beats",
        published_at=t0 + timedelta(minutes=20),
        source="Yahoo",
        tickers=("AAPL",),
        origin="rss",
    )
    api = NewsItem(
        url="https://b/2",
        title="APPLE BEATS!",
        published_at=t0,
        source="Reuters",
        tickers=("MSFT",),
        origin="newsapi",
    )
    out = dedupe([rss, api])
    assert len(out) == 1
    assert out[0].published_at == t0
    assert out[0].origin == "newsapi"
    assert out[0].tickers == ("MSFT", "AAPL")


def test_clean_text_handles_double_escaped_html():
    assert clean_text("Dow &amp;amp; S&amp;P <i>fall</i>") == "Dow & S&P fall"

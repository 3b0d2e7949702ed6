"""Normalization shared by every news source: canonical URLs, clean text, UTC times, tickers.

A story is recognised across sources and refreshes by :func:`title_key` (its normalized title);
the same story from RSS and NewsAPI, or seen again four minutes later, is stored once.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sentinel42.domain import STORY_WINDOW, NewsItem, title_hash


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Query parameters that identify a campaign or a referrer, never the article.
_TRACKING_KEYS = _words(
    "fbclid gclid dclid msclkid yclid mc_cid mc_eid _hsenc _hsmi ref ref_src cmpid ncid "
    "guccounter soc_src soc_trk mbid ocid taid yptr tsrc .tsrc cid __source"
)
_TRACKING_PREFIXES = ("utm_", "guce_", "at_", "pk_")
# Seeking Alpha and others tag the feed that linked: "?source=feed_symbol_AAPL".
_FEED_SOURCE_VALUE = re.compile(r"^(feed|rss)", re.IGNORECASE)

# Bounds on what one item may store and score: a headline is a line, a teaser a paragraph.
# Longer text is cut (and the replay reports it); a longer link is refused.
MAX_TITLE_CHARS = 500
MAX_SUMMARY_CHARS = 2_000
MAX_SOURCE_CHARS = 200
MAX_URL_CHARS = 2_048
WEB_SCHEMES = ("http", "https")

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")

# Symbols that are also ordinary words (or read as them in headlines): matched only as a
# cashtag ($ON), an exchange prefix (NASDAQ:ON) or through the company's name. Every
# one-letter symbol is treated the same way.
AMBIGUOUS_SYMBOLS: frozenset[str] = _words(
    "ALL ARE IT NOW ON ONE CAN BIG GO SO BE AN AT BY FOR HAS HE KEY LOW MAN NEW OUT REAL RUN "
    "SEE SHE TWO WELL YOU ANY CAR DAY EAT FUN GOOD HOME LIFE LOVE MAIN MOST NICE OPEN PLAY "
    "SAFE SAVE TRUE WORK CASH BILL PEAK EDIT FAST HOPE JOB LAND PLAN POST RARE ROCK SNOW TECH "
    "TELL TRIP WISH AI CEO USA UK EU US GDP IPO ETF CPI FED SEC FOR OR AM PM TV PC DD ED EV "
    "AWAY BEST BOX CAT COST DOW FIVE FLY GAIN HUGE JOBS LULU MET MO NOK PAY PINS RACE RH SIX "
    "SPOT STAY TEAM TEN WAY WOW ZION"
)

# Company names (and common short forms) of well-known US large caps and ETFs; matched
# case-sensitively on word boundaries, so "Apple" counts and "apple pie" does not.
COMPANY_NAMES: dict[str, tuple[str, ...]] = {
    "AAPL": ("Apple", "iPhone"),
    "MSFT": ("Microsoft",),
    "NVDA": ("Nvidia", "NVIDIA"),
    "AMZN": ("Amazon", "AWS"),
    "SPY": ("S&P 500", "S&P500", "SPDR S&P"),
    "QQQ": ("Nasdaq 100", "Nasdaq-100", "Invesco QQQ"),
    "DIA": ("Dow Jones Industrial", "SPDR Dow"),
    "IWM": ("Russell 2000",),
    "GOOGL": ("Alphabet", "Google"),
    "GOOG": ("Alphabet", "Google"),
    "META": ("Meta Platforms", "Facebook", "Instagram"),
    "TSLA": ("Tesla",),
    "BRK-B": ("Berkshire Hathaway", "Berkshire"),
    "JPM": ("JPMorgan", "JP Morgan", "J.P. Morgan"),
    "V": ("Visa",),
    "MA": ("Mastercard",),
    "JNJ": ("Johnson & Johnson",),
    "UNH": ("UnitedHealth",),
    "XOM": ("Exxon Mobil", "ExxonMobil", "Exxon"),
    "CVX": ("Chevron",),
    "WMT": ("Walmart",),
    "PG": ("Procter & Gamble",),
    "HD": ("Home Depot",),
    "KO": ("Coca-Cola",),
    "PEP": ("PepsiCo",),
    "COST": ("Costco",),
    "DIS": ("Disney",),
    "NFLX": ("Netflix",),
    "ADBE": ("Adobe",),
    "CRM": ("Salesforce",),
    "ORCL": ("Oracle",),
    "INTC": ("Intel",),
    "AMD": ("Advanced Micro Devices", "AMD"),
    "AVGO": ("Broadcom",),
    "QCOM": ("Qualcomm",),
    "CSCO": ("Cisco",),
    "IBM": ("IBM",),
    "TXN": ("Texas Instruments",),
    "MU": ("Micron",),
    "PYPL": ("PayPal",),
    "UBER": ("Uber",),
    "ABNB": ("Airbnb",),
    "SHOP": ("Shopify",),
    "BAC": ("Bank of America",),
    "WFC": ("Wells Fargo",),
    "C": ("Citigroup", "Citi"),
    "GS": ("Goldman Sachs", "Goldman"),
    "MS": ("Morgan Stanley",),
    "BA": ("Boeing",),
    "CAT": ("Caterpillar",),
    "GE": ("General Electric", "GE Aerospace"),
    "F": ("Ford",),
    "GM": ("General Motors",),
    "T": ("AT&T",),
    "VZ": ("Verizon",),
    "PFE": ("Pfizer",),
    "MRK": ("Merck",),
    "LLY": ("Eli Lilly",),
    "ABBV": ("AbbVie",),
    "NKE": ("Nike",),
    "MCD": ("McDonald's", "McDonalds"),
    "SBUX": ("Starbucks",),
    "PLTR": ("Palantir",),
    "SNOW": ("Snowflake",),
    "ON": ("ON Semiconductor", "onsemi"),
    "NOW": ("ServiceNow",),
    "ALL": ("Allstate",),
    "A": ("Agilent",),
}


def clean_text(text: str | None) -> str:
    """Plain text: HTML entities decoded, tags removed, whitespace collapsed."""
    if not text:
        return ""
    return _SPACE.sub(" ", _TAG.sub(" ", html.unescape(html.unescape(text)))).strip()


def cut(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def item_problem(*, url: str, title: str) -> str | None:
    """Why an entry cannot become a :class:`NewsItem` (no title, no usable link), or None.

    Only ``http(s)`` links are kept: a ``javascript:``, ``data:`` or ``file:`` link from a feed
    is never stored or shown.
    """
    if not clean_text(title):
        return "no title"
    link = url.strip()
    if not link:
        return "no url"
    if len(link) > MAX_URL_CHARS:
        return f"url of {len(link)} characters (at most {MAX_URL_CHARS})"
    try:
        parts = urlsplit(link)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return f"url {cut(link, 80)!r} is not a valid link"
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.netloc:
        return f"url {cut(link, 80)!r} is not an http(s) link"
    return None


def oversized(*, title: str, summary: str | None) -> list[str]:
    """What :func:`make_item` will cut: one note each, ``title of 102400 characters cut to 500``."""
    notes = []
    for name, text, limit in (
        ("title", title, MAX_TITLE_CHARS),
        ("summary", summary, MAX_SUMMARY_CHARS),
    ):
        n = len(clean_text(text))
        if n > limit:
            notes.append(f"{name} of {n} characters cut to {limit}")
    return notes


def canonical_url(url: str) -> str:
    """The URL without tracking parameters, fragment, default port or host case.

    Redirect links (news aggregators) are kept as given: following them would cost a request
    per item. Remaining query parameters are sorted so equal links compare equal.
    """
    url = url.strip()
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    port = parts.port
    if port and not (
        (parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)
    ):
        host = f"{host}:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _TRACKING_KEYS
        and not k.lower().startswith(_TRACKING_PREFIXES)
        and not (k.lower() == "source" and _FEED_SOURCE_VALUE.match(v))
    ]
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), host.lower(), path, urlencode(sorted(query)), ""))


def title_key(title: str) -> str:
    """Dedupe key of a story: sha1 of the lower-cased title with punctuation collapsed."""
    return title_hash(clean_text(title))


def to_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC.

    Raises:
        ValueError: ``value`` is naive (a source that gives no offset must say which it means).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no UTC offset")
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w&])" + re.escape(name) + r"(?![\w&])")


def _fold(text: str) -> str:
    """Case-fold as ``re.IGNORECASE`` matches: also the dotless and the dotted I fold to ``i``
    (``casefold`` keeps those apart, the regex engine does not)."""
    return text.casefold().replace("\u0131", "i").replace("i\u0307", "i")


@functools.lru_cache(maxsize=4096)
def _symbol_patterns(symbol: str) -> tuple[re.Pattern[str], re.Pattern[str] | None]:
    """``symbol``'s explicit pattern and its bare pattern (None: never bare).

    Compiled once per symbol: a watchlist of 500 needs 1,000 patterns, more than ``re``'s own
    cache holds, and recompiling them for every headline made matching quadratic in practice.
    """
    sym = re.escape(symbol)
    explicit = re.compile(
        rf"(?:\$|\b(?:NASDAQ|NYSE|NYSEARCA|AMEX|ARCA)\s?:\s?){sym}(?![\w-])", re.IGNORECASE
    )
    bare_ok = len(symbol) > 1 and symbol not in AMBIGUOUS_SYMBOLS
    bare = re.compile(rf"(?<![\w$-]){sym}(?![\w-])") if bare_ok else None
    return explicit, bare


_TOKEN = re.compile(r"[\w.\-]+")


def _candidates(text: str) -> set[str]:
    """Every piece of ``text`` a symbol pattern could match, folded.

    Both patterns end a symbol before a character that is neither a word character nor ``-``,
    and start it after ``$``, ``:``, a space or a character that is neither of those nor
    ``-``; a symbol is made of word characters, ``.`` and ``-``. So a match is a run of
    ``[\\w.-]`` cut at its ends or at one of its dots, on both sides.
    """
    out: set[str] = set()
    for token in _TOKEN.findall(text):
        if "." not in token:
            out.add(_fold(token))
            continue
        dots = [i for i, ch in enumerate(token) if ch == "."]
        for a in (0, *(i + 1 for i in dots)):
            for b in (*dots, len(token)):
                if a < b:
                    out.add(_fold(token[a:b]))
    return out


@dataclass(frozen=True, slots=True)
class _Watch:
    by_key: dict[str, tuple[str, ...]]  # folded symbol -> the watchlist's symbols
    named: tuple[tuple[str, str], ...]  # (company name, symbol), watchlist order
    position: dict[str, int]  # symbol -> its first place in the watchlist
    unique: bool


def _watch(watchlist: Sequence[str], names: Mapping[str, Sequence[str]]) -> _Watch:
    by_key: dict[str, tuple[str, ...]] = {}
    for symbol in dict.fromkeys(watchlist):
        by_key[_fold(symbol)] = (*by_key.get(_fold(symbol), ()), symbol)
    named = tuple((n, symbol) for symbol in watchlist for n in names.get(symbol, ()))
    position = {symbol: i for i, symbol in reversed(list(enumerate(watchlist)))}
    return _Watch(by_key, named, position, len(position) == len(watchlist))


@functools.lru_cache(maxsize=16)
def _default_watch(watchlist: tuple[str, ...]) -> _Watch:
    return _watch(watchlist, COMPANY_NAMES)


def match_tickers(
    text: str,
    watchlist: Sequence[str],
    company_names: Mapping[str, Sequence[str]] | None = None,
) -> tuple[str, ...]:
    """Watchlist symbols that ``text`` is about, in watchlist order.

    A symbol counts as a cashtag (``$AAPL``), with an exchange prefix (``NASDAQ:AAPL``), as a
    bare upper-case word unless it is an ordinary word (:data:`AMBIGUOUS_SYMBOLS`, one letter),
    or through one of its company names. Only the symbols among the text's
    :func:`_candidates` and the names found in it as a substring are searched for, so the cost
    grows with the text, not with the watchlist.
    """
    if company_names is None:
        watch = _default_watch(tuple(watchlist))
    else:
        watch = _watch(watchlist, company_names)
    hits: set[str] = set()
    for key in _candidates(text):
        for symbol in watch.by_key.get(key, ()):
            explicit, bare = _symbol_patterns(symbol)
            if (bare is not None and bare.search(text)) or explicit.search(text):
                hits.add(symbol)
    for name, symbol in watch.named:
        if symbol not in hits and name in text and _name_pattern(name).search(text):
            hits.add(symbol)
    if watch.unique:
        return tuple(sorted(hits, key=watch.position.__getitem__))
    return tuple(symbol for symbol in watchlist if symbol in hits)


def make_item(
    *,
    url: str,
    title: str,
    published_at: datetime,
    source: str,
    origin: str,
    watchlist: Sequence[str],
    summary: str | None = "",
    hinted: Iterable[str] = (),
    company_names: Mapping[str, Sequence[str]] | None = None,
) -> NewsItem | None:
    """Build a normalized :class:`NewsItem`, or None when :func:`item_problem` finds one.

    ``hinted`` are symbols the source itself attached (the ticker of a per-symbol feed, a
    NewsAPI query, publisher tags); they are never trusted as they come: only those equal to a
    watchlist symbol are kept, and the title and summary add any other watchlist symbols they
    mention. Title, summary and source are cut to ``MAX_TITLE_CHARS``, ``MAX_SUMMARY_CHARS``
    and ``MAX_SOURCE_CHARS``.
    """
    if item_problem(url=url, title=title) is not None:
        return None
    clean_title = cut(clean_text(title), MAX_TITLE_CHARS)
    clean_summary = cut(clean_text(summary), MAX_SUMMARY_CHARS)
    watch = [t.upper() for t in watchlist]
    hinted_set = {h.strip().upper() for h in hinted if isinstance(h, str)}
    matched = set(match_tickers(f"{clean_title}\n{clean_summary}", watch, company_names))
    tickers = tuple(t for t in watch if t in hinted_set or t in matched)
    return NewsItem(
        url=canonical_url(url),
        title=clean_title,
        published_at=to_utc(published_at),
        source=cut(clean_text(source), MAX_SOURCE_CHARS) or "unknown",
        summary=clean_summary,
        tickers=tickers,
        origin=origin,
    )


def dedupe(items: Iterable[NewsItem]) -> list[NewsItem]:
    """One item per story, tickers merged, the earliest publication kept.

    A story is a :func:`title_key` plus a time window (``domain.STORY_WINDOW``): the same
    headline from two sources or a re-dated copy merges; the same headline days later (a
    recurring column) stays a separate story, as the store keeps it.
    """
    groups: dict[str, list[NewsItem]] = {}
    for item in sorted(items, key=lambda i: i.published_at):
        stories = groups.setdefault(title_key(item.title), [])
        if stories and item.published_at - stories[-1].published_at <= STORY_WINDOW:
            first = stories[-1]
            stories[-1] = NewsItem(
                url=first.url,
                title=first.title,
                published_at=first.published_at,
                source=first.source,
                summary=first.summary or item.summary,
                tickers=tuple(dict.fromkeys((*first.tickers, *item.tickers))),
                first_seen_at=first.first_seen_at,
                origin=first.origin,
            )
        else:
            stories.append(item)
    return [story for stories in groups.values() for story in stories]

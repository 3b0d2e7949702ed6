"""A small, seeded synthetic replay set, so the offline mode works with no outside data.

Prices carry two patterns a model can find and a trader would recognise: short-lived drifts
after news (the headline is published at the start of the drift, so sentiment leads price) and a
weak sign-product pattern in consecutive 15-minute returns (learnable by the LSTM, invisible to
persistence or momentum). Everything else is noise. The folder follows docs/replay-format.md.

Also the generators tests and benchmarks share: :func:`synthetic_bars` (15-minute bars with or
without a learnable rule) and :func:`synthetic_headlines` (headline-like sentences). Their series
are real inputs, not fixtures of expected output: ``pattern="sign_product"`` hides a rule no
baseline can express (the next return's sign is the product of the last two returns' signs with
probability ``p``); ``pattern="random_walk"`` has nothing to learn.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from sentinel42.market.calendar import NEW_YORK, SESSION_MINUTES

COMPANY_NAMES = {
    "AAPL": "Apple",
    "MSFT": "Microsoft",
    "NVDA": "Nvidia",
    "AMZN": "Amazon",
    "SPY": "S&P 500 ETF",
    "GOOGL": "Alphabet",
    "META": "Meta",
    "TSLA": "Tesla",
    "QQQ": "Nasdaq-100 ETF",
}
# {pct} and {target} make each headline distinct, as real ones are (identical titles within
# days of each other are one story to the store).
POSITIVE = (
    "{name} beats quarterly profit estimates by {pct}% and raises full-year guidance",
    "{name} shares jump {pct}% after record revenue and strong demand",
    "Analysts upgrade {name} to buy, lifting price target to ${target}",
    "{name} wins major contract, boosting revenue forecast by {pct}%",
)
NEGATIVE = (
    "{name} misses earnings estimates by {pct}% and cuts its outlook",
    "{name} shares fall {pct}% after weak guidance and margin warning",
    "Analyst downgrades {name} to sell, cutting price target to ${target}",
    "{name} faces regulatory probe, shares drop {pct}%",
)
NEUTRAL = (
    "{name} to present at investor conference on {day}",
    "{name} schedules quarterly earnings call for {day}",
    "{name} announces board meeting on {day}",
)


@dataclass(frozen=True, slots=True)
class GeneratedSet:
    path: Path
    tickers: tuple[str, ...]
    bars: int
    headlines: int
    start: datetime
    end: datetime


def _sessions(end: date, n_sessions: int, interval_minutes: int) -> list[pd.DatetimeIndex]:
    """Bar starts (UTC) of the last ``n_sessions`` NYSE sessions ending on or before ``end``."""
    from sentinel42.market.calendar import NyseCalendar

    until = datetime.combine(end + timedelta(days=1), time(), UTC)
    # Two calendar days per session, plus slack for holiday clusters, always reaches far enough.
    sessions = NyseCalendar().sessions_between(until - timedelta(days=2 * n_sessions + 10), until)
    return [
        pd.date_range(open_, close, freq=f"{interval_minutes}min", inclusive="left")
        for open_, close in sessions[-n_sessions:]
    ]


def generate_replay(
    out: Path,
    tickers: Sequence[str],
    *,
    end: date,
    sessions: int = 30,
    interval_minutes: int = 15,
    seed: int = 42,
    news_rate: float = 0.04,
) -> GeneratedSet:
    """Write ``prices/<T>.csv`` and ``news/synthetic.jsonl`` under ``out``.

    Args:
        out: target folder (created; existing files of the same names are overwritten).
        tickers: symbols to generate.
        end: last calendar day (the set ends at the close of the last session on or before it).
        sessions: number of NYSE sessions.
        interval_minutes: bar length.
        seed: RNG seed; the same arguments give byte-identical files.
        news_rate: probability per bar and ticker of a price-moving headline.
    """
    rng = np.random.default_rng(seed)
    days = _sessions(end, sessions, interval_minutes)
    (out / "prices").mkdir(parents=True, exist_ok=True)
    (out / "news").mkdir(parents=True, exist_ok=True)
    total_bars = 0
    news_lines: list[dict[str, object]] = []
    for ticker in tickers:
        name = COMPANY_NAMES.get(ticker, f"{ticker} Corp")
        price = float(rng.uniform(40, 400))
        vol = 0.0025
        rows = []
        r1 = r2 = 0.0
        drift, drift_left = 0.0, 0
        for starts in days:
            price *= math.exp(rng.normal(0, 0.006))  # overnight gap
            n = len(starts)
            for i, ts in enumerate(starts):
                if drift_left == 0 and rng.random() < news_rate:
                    polarity = 1 if rng.random() < 0.5 else -1
                    drift, drift_left = polarity * 0.0012, 10
                    template = rng.choice(POSITIVE if polarity > 0 else NEGATIVE)
                    news_lines.append(_headline(ticker, name, str(template), ts, rng))
                elif rng.random() < news_rate / 2:
                    news_lines.append(_headline(ticker, name, str(rng.choice(NEUTRAL)), ts, rng))
                size = abs(rng.normal(0, vol))
                patterned = r1 and r2 and rng.random() < 0.62
                sign = np.sign(r1 * r2) if patterned else rng.choice([-1, 1])
                r = float(sign * size + drift)
                drift_left = max(0, drift_left - 1)
                if drift_left == 0:
                    drift = 0.0
                open_ = price
                close = open_ * math.exp(r)
                wick = abs(rng.normal(0, vol / 2, size=2))
                high = max(open_, close) * (1 + wick[0])
                low = min(open_, close) * (1 - wick[1])
                u_shape = 1.0 + 1.5 * ((i - n / 2) / (n / 2)) ** 2
                volume = int(rng.lognormal(11, 0.4) * u_shape)
                rows.append((ts, open_, high, low, close, volume))
                price, r2, r1 = close, r1, r
        frame = pd.DataFrame(rows, columns=["Datetime", "Open", "High", "Low", "Close", "Volume"])
        frame["Datetime"] = frame["Datetime"].dt.tz_convert("America/New_York")
        frame.round({"Open": 4, "High": 4, "Low": 4, "Close": 4}).to_csv(
            out / "prices" / f"{ticker}.csv", index=False
        )
        total_bars += len(frame)
    news_lines.sort(key=lambda line: (str(line["published_at"]), str(line["title"])))
    with (out / "news" / "synthetic.jsonl").open("w", encoding="utf-8") as fh:
        for line in news_lines:
            fh.write(json.dumps(line) + "\n")
    return GeneratedSet(
        path=out,
        tickers=tuple(tickers),
        bars=total_bars,
        headlines=len(news_lines),
        start=days[0][0].to_pydatetime(),
        end=(days[-1][-1] + timedelta(minutes=interval_minutes)).to_pydatetime().astimezone(UTC),
    )


def _headline(
    ticker: str, name: str, template: str, ts: pd.Timestamp, rng: np.random.Generator
) -> dict[str, object]:
    title = template.format(
        name=name,
        pct=f"{rng.uniform(1, 12):.1f}",
        target=int(rng.integers(20, 900)),
        day=(ts + timedelta(days=int(rng.integers(3, 30)))).strftime("%B %d"),
    )
    if rng.random() < 0.5:
        title = f"${ticker}: {title}"
    slug = int(rng.integers(0, 10**10))
    published = ts + timedelta(minutes=int(rng.integers(0, 10)))
    return {
        "published_at": published.isoformat(),
        "title": title,
        "summary": "",
        "url": f"https://news.example.com/{ticker.lower()}/{ts.strftime('%Y%m%d%H%M')}-{slug}",
        "source": "Synthetic Wire",
        "tickers": [ticker],
    }


# --- generators for tests and benchmarks -------------------------------------------------
BARS_PER_SESSION = SESSION_MINUTES // 15  # 09:30-16:00 New York in 15-minute bars (26)


def synthetic_bars(
    tickers: list[str] | tuple[str, ...],
    sessions: int,
    *,
    pattern: Literal["sign_product", "random_walk"] = "sign_product",
    p: float = 0.7,
    seed: int = 0,
    first_day: date = date(2025, 1, 6),
    sigma: float = 0.002,
) -> dict[str, pd.DataFrame]:
    """Domain bar frames of ``sessions`` weekdays of regular-session 15-minute bars per ticker.

    Each session opens at 09:30 New York time (UTC offset follows DST) at the previous close.
    """
    days = pd.bdate_range(first_day, periods=sessions)
    starts = []
    for d in days:
        open_ny = pd.Timestamp(d.year, d.month, d.day, 9, 30, tz=NEW_YORK)
        starts.append(
            open_ny.tz_convert(UTC) + pd.to_timedelta(np.arange(BARS_PER_SESSION) * 15, "m")
        )
    index = starts[0].append(starts[1:]).as_unit("ns").rename("ts")
    n = len(index)
    rng = np.random.default_rng(seed)
    out = {}
    for ticker in tickers:
        size = np.abs(rng.normal(0.0, sigma, n)) + sigma * 0.05
        sign = rng.choice([-1.0, 1.0], n)
        if pattern == "sign_product":
            keep = rng.random(n) < p
            for t in range(2, n):
                rule = sign[t - 1] * sign[t - 2]
                sign[t] = rule if keep[t] else -rule
        ret = sign * size
        close = 100.0 * np.exp(np.cumsum(ret))
        open_ = np.concatenate(([100.0], close[:-1]))
        wiggle = np.abs(rng.normal(0.0, sigma / 2, n))
        high = np.maximum(open_, close) * np.exp(wiggle)
        low = np.minimum(open_, close) * np.exp(-wiggle)
        volume = np.round(rng.lognormal(12.0, 0.5, n))
        out[ticker] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
            index=index,
        )
    return out


_SUBJECTS = ["Apple", "Microsoft", "Nvidia", "Amazon", "Tesla", "Alphabet", "Meta", "Oracle"]
_VERBS = ["beats", "misses", "raises", "cuts", "reaffirms", "withdraws", "tops", "trails"]
_OBJECTS = ["quarterly profit estimates", "full-year revenue guidance", "its dividend"]
_TAILS = [
    "as demand for data-centre chips stays strong",
    "after a slowdown in cloud spending weighs on margins",
    "while analysts question the pace of AI investment",
    "and shares move in extended trading on heavy volume",
    "citing tariffs, a stronger dollar and weaker consumer demand in Europe",
]


def synthetic_headlines(n: int, seed: int = 7) -> list[str]:
    """``n`` headline-like sentences of 12-30 words (deterministic for a seed)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test text, not security
    out = []
    for _ in range(n):
        words = (
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_TAILS)}"
        )
        if rng.random() < 0.5:
            words += f" {rng.choice(_TAILS)}"
        out.append(words)
    return out

"""A small, seeded synthetic replay set, so the offline mode works with no outside data.

Prices carry two patterns a model can find and a trader would recognise: short-lived drifts
after news (the headline is published at the start of the drift, so sentiment leads price) and a
weak sign-product pattern in consecutive 15-minute returns (learnable by the LSTM, invisible to
persistence or momentum). Everything else is noise. The folder follows docs/replay-format.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

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

"""All configuration, in one place: environment variables prefixed ``SENTINEL42_`` and ``.env``.

Build it once with :func:`load_settings` at an entry point (a flow, a CLI command) and pass it
down. A bad value raises :class:`~sentinel42.errors.ConfigError` with one line naming the setting
and what is allowed.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sentinel42.errors import ConfigError

ENV_PREFIX = "SENTINEL42_"
PACKAGE_ROOT = Path(__file__).resolve().parent
# A source checkout (the usual install: `make install` in a clone) keeps its data beside the code.
PROJECT_ROOT: Path | None = (
    PACKAGE_ROOT.parents[1] if (PACKAGE_ROOT.parents[1] / "pyproject.toml").exists() else None
)
DEFAULT_DATA_DIR = (
    PROJECT_ROOT / "data" if PROJECT_ROOT else Path.home() / ".local" / "share" / "sentinel42"
)
TICKER_PATTERN = re.compile(r"^\^?[A-Z]{1,5}([.-][A-Z]{1,2})?$")


def normalize_ticker(symbol: str) -> str:
    """``symbol`` as Sentinel42 stores it: upper case, a share class written with a hyphen, as
    yfinance expects (``brk.b`` -> ``BRK-B``); anything that is not a symbol only upper-cased."""
    text = symbol.strip().upper()
    return text.replace(".", "-") if TICKER_PATTERN.match(text) else text


INTERVALS = ("1m", "5m", "15m", "30m", "60m")
DEFAULT_TICKER_FEEDS = (
    "https://feeds.finance.yahoo.com/rss/2.0/headline?s={ticker}&region=US&lang=en-US",
)
DEFAULT_MARKET_FEEDS = ("https://www.cnbc.com/id/10000664/device/rss/rss.html",)
# Live polling sees a headline some time after it is published; a replay must not see it sooner.
DEFAULT_REPLAY_NEWS_LATENCY_SECONDS = 60


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_url(url: str, *, needs_ticker: bool = False) -> str:
    parsed = urlparse(url.replace("{ticker}", "AAPL"))
    if parsed.scheme not in ("http", "https", "file") or (
        parsed.scheme != "file" and not parsed.netloc
    ):
        raise ValueError(f"{url!r} is not an http(s) URL")
    if needs_ticker and "{ticker}" not in url:
        raise ValueError(f"{url!r} has no {{ticker}} placeholder")
    return url


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))  # fmt: skip
_CRON_NAMES = {
    **{d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
    **{m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                        "sep", "oct", "nov", "dec"))},
}  # fmt: skip
_CRON_ITEM = re.compile(r"^(\*|(\w+)(-(\w+))?)(/(\d+))?$")


def _check_cron(expr: str) -> str:
    """A five-field cron expression, checked here so a typo stops start-up, not deployment."""
    fields = expr.split()
    if len(fields) != len(_CRON_FIELDS):
        raise ValueError(f"{expr!r} is not a cron expression (five fields: m h dom mon dow)")
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            match = _CRON_ITEM.match(item.lower())
            if match is None or (match.group(6) is not None and int(match.group(6)) == 0):
                raise ValueError(f"{expr!r}: {name} field {text!r} is not valid cron")
            for value in (match.group(2), match.group(4)):
                if value is None:
                    continue
                number = int(value) if value.isdigit() else _CRON_NAMES.get(value)
                if number is None or not low <= number <= high:
                    raise ValueError(f"{expr!r}: {name} {value!r} is out of range ({low}-{high})")
    return expr


def _env_files() -> tuple[Path, ...]:
    files = [Path(".env")]
    if PROJECT_ROOT is not None:
        files.insert(0, PROJECT_ROOT / ".env")
    return tuple(files)


class Settings(BaseSettings):
    """Sentinel42 configuration. Every field maps to ``SENTINEL42_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=_env_files(),
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- watchlist and storage -------------------------------------------------------------
    tickers: Annotated[list[str], NoDecode] = Field(
        default=["AAPL", "MSFT", "NVDA", "AMZN", "SPY"],
        description="Comma-separated watchlist of US ticker symbols (e.g. AAPL,MSFT,BRK-B).",
    )
    universe: str = Field(
        default="watchlist",
        description="The tickers the models learn from and rank within (the watchlist is what "
        "is decided and traded, and is always part of it): watchlist; all (every ticker the "
        "replay data holds; not in live mode); a comma-separated list; or @path, a file of one "
        "ticker a line (# comments, blank lines) relative to the current folder.",
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="Holds the store, the model registry (models/), logs and backups.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; default sqlite:///<data dir>/sentinel42.db.",
    )

    # --- prices ------------------------------------------------------------------------------
    models_url: str | None = Field(
        default=None,
        description="Where the model registry lives when several hosts share it: a folder on "
        "shared storage, a file:// URL, or an fsspec URL (s3://bucket/models with s3fs "
        "installed); default <data dir>/models.",
    )
    interval: Literal["1m", "5m", "15m", "30m", "60m"] = Field(
        default="15m", description="Intraday bar interval."
    )
    prepost: bool = Field(default=False, description="Keep pre- and post-market bars.")
    daily_history_days: int = Field(
        default=730, ge=30, le=3650, description="Days of daily bars kept for model context."
    )
    daily_history_years: int = Field(
        default=10,
        ge=1,
        le=30,
        description="Years of daily bars the universe's models load (before the clock).",
    )
    spike_threshold: float = Field(
        default=8.0,
        gt=1.0,
        description="A bar whose range exceeds this many times the median range of itself and "
        "the 10 bars before it is flagged as suspicious (kept, never changed; never looks ahead).",
    )
    revision_tolerance: float = Field(
        default=0.005,
        gt=0.0,
        lt=0.5,
        description="Relative change of an already stored close that counts as a rewrite "
        "(split/dividend adjustment) and triggers a history re-fetch.",
    )
    extra_closures: Annotated[list[date], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated dates (YYYY-MM-DD) the NYSE is closed that the calendar "
        "library does not know yet.",
    )
    extra_early_closes: Annotated[dict[date, time], NoDecode] = Field(
        default_factory=dict,
        description="Comma-separated early closes the library does not know, as "
        "YYYY-MM-DD@HH:MM (New York time).",
    )

    # --- data source --------------------------------------------------------------------------
    data_source: Literal["live", "replay"] = Field(
        default="live", description="live: yfinance, RSS, NewsAPI. replay: a recorded folder."
    )
    replay_dir: Path | None = Field(
        default=None, description="Folder in the replay format (docs/replay-format.md)."
    )
    replay_as_of: datetime | None = Field(
        default=None,
        description="Replay clock, ISO 8601 with offset; default: the end of the replay data.",
    )
    replay_news_latency_seconds: int = Field(
        default=DEFAULT_REPLAY_NEWS_LATENCY_SECONDS,
        ge=0,
        le=86_400,
        description="Seconds after its published_at that a replayed headline without a "
        "recorded first_seen_at is served (one with it is served at its first_seen_at): a "
        "backtest gets no news before Sentinel42 could have seen it.",
    )

    # --- news --------------------------------------------------------------------------------
    rss_ticker_feeds: Annotated[list[str], NoDecode] = Field(
        default=list(DEFAULT_TICKER_FEEDS),
        description="Comma-separated RSS URL templates with a {ticker} placeholder.",
    )
    rss_market_feeds: Annotated[list[str], NoDecode] = Field(
        default=list(DEFAULT_MARKET_FEEDS),
        description="Comma-separated general market RSS feeds.",
    )
    newsapi_key: SecretStr | None = Field(
        default=None, description="NewsAPI key; without one the NewsAPI source is skipped."
    )
    newsapi_daily_requests: int = Field(
        default=100, ge=1, le=100_000, description="NewsAPI request budget per UTC day."
    )
    http_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Timeout of one HTTP request to a news source, in seconds.",
    )
    feed_max_bytes: int = Field(
        default=5_000_000,
        ge=10_000,
        le=100_000_000,
        description="Largest feed body read; bigger responses are cut off and reported.",
    )

    # --- sentiment ---------------------------------------------------------------------------
    finbert_model: str = Field(
        default="ProsusAI/finbert", description="Hub id or local directory of a FinBERT model."
    )
    finbert_revision: str | None = Field(default=None, description="Hub revision to pin.")
    sentiment_require_finbert: bool = Field(
        default=False,
        description="Fail instead of falling back to the offline scorer when FinBERT "
        "cannot be loaded.",
    )
    sentiment_batch_size: int = Field(
        default=32, ge=1, le=1024, description="Headlines per FinBERT forward pass."
    )
    sentiment_max_length: int = Field(
        default=128,
        ge=8,
        le=512,
        description="Tokens kept per headline (longer ones are truncated).",
    )
    sentiment_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Threads for FinBERT scoring; default: one per core.",
    )
    sentiment_quantize: bool = Field(
        default=False,
        description="Dynamic int8 quantization of FinBERT, by ONNX Runtime or torch (faster; "
        "its scores are another model's, with their own revision: check first).",
    )
    sentiment_runtime: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="Score FinBERT with ONNX Runtime from a copy exported once per model "
        "(under <data dir>/cache; no torch import when scoring), or through transformers. "
        "Falls back to transformers when the export fails.",
    )
    sentiment_window_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="Headlines older than this are left out of a ticker's sentiment.",
    )
    sentiment_half_life_hours: float = Field(
        default=6.0,
        gt=0,
        le=24 * 30,
        description="Half-life of a headline's weight in the per-ticker sentiment.",
    )

    # --- model -------------------------------------------------------------------------------
    model_window: int = Field(default=32, ge=4, le=512, description="Bars per input window.")
    model_horizon: int = Field(default=4, ge=1, le=64, description="Bars ahead predicted.")
    model_hidden_size: int = Field(default=32, ge=4, le=1024, description="LSTM hidden units.")
    model_layers: int = Field(default=1, ge=1, le=4, description="Stacked LSTM layers.")
    model_dropout: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Dropout between LSTM layers and before the heads."
    )
    model_epochs: int = Field(
        default=30,
        ge=1,
        le=1000,
        description="Most training epochs (early stopping usually ends sooner).",
    )
    model_patience: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Epochs without validation improvement before training stops.",
    )
    model_batch_size: int = Field(
        default=256, ge=8, le=8192, description="Training windows per batch."
    )
    model_learning_rate: float = Field(default=1e-3, gt=0, lt=1, description="Adam learning rate.")
    model_seed: int = Field(
        default=42,
        ge=0,
        description="Seed of every random draw in training (same data + seed = same model).",
    )
    model_training_cron: str = Field(
        default="30 17 * * 5",
        description="Cron (America/New_York) of the weekly retraining after the close.",
    )
    model_gate_confidence: float = Field(
        default=0.99,
        ge=0.5,
        lt=1.0,
        description="One-sided confidence of the promotion gate: on the untouched test block "
        "the lower bound of the model's accuracy edge over the best baseline must be above zero "
        "at this level, and the candidate must not be significantly worse than the incumbent.",
    )
    model_gate_window_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Promotion attempts within this many days count as repeated tries: the "
        "gate's confidence is corrected for them.",
    )
    cost_bps: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="Trading cost per side, in basis points, charged when a model is evaluated.",
    )
    model_max_age_sessions: int = Field(
        default=15,
        ge=1,
        le=260,
        description="NYSE sessions after its training data ends that a model may be used for "
        "decisions (15 = three trading weeks); older, it is ignored until retrained.",
    )

    # --- decisions ---------------------------------------------------------------------------
    buy_threshold: float = Field(
        default=0.15, gt=0.0, le=1.0, description="Fused score at or above which we BUY."
    )
    sell_threshold: float = Field(
        default=-0.15, ge=-1.0, lt=0.0, description="Fused score at or below which we SELL."
    )
    exit_threshold: float = Field(
        default=0.05,
        ge=0.0,
        lt=1.0,
        description="Hysteresis: a ticker that entered BUY stays BUY while its fused score is "
        "above +this (a SELL while below -this); it exits when the score crosses back. Must be "
        "below the entry thresholds.",
    )
    model_weight: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Fusion weight of the LSTM."
    )
    sentiment_weight: float = Field(
        default=0.4, ge=0.0, le=1.0, description="Fusion weight of news sentiment."
    )
    news_requires_validation: bool = Field(
        default=True,
        description="News sentiment gets fusion weight only after `sentinel42 model validate-news` "
        "found its rank IC significant on the stored history (false: always, unvalidated).",
    )
    max_bar_age_minutes: int = Field(
        default=60, ge=1, le=10_080, description="Older newest bar: the decision is HOLD."
    )
    trading_delay_minutes: int = Field(
        default=2,
        ge=0,
        le=14,
        description="Minutes after each bar ends that the trading deployment runs (the vendor "
        "publishes a bar a minute or more after it ends).",
    )

    # --- paper portfolio ---------------------------------------------------------------------
    portfolio_starting_cash: float = Field(
        default=100_000.0, gt=0, le=1e12, description="Cash the paper portfolio starts with (USD)."
    )
    portfolio_max_position: float = Field(
        default=0.1,
        gt=0,
        le=1.0,
        description="Largest position in one name, as a fraction of equity (long or short); "
        "the target weight grows with the decision's score up to it.",
    )
    portfolio_max_gross: float = Field(
        default=1.0,
        gt=0,
        le=4.0,
        description="Largest gross exposure (sum of |position values|) as a fraction of "
        "equity; targets are scaled down together to fit.",
    )
    portfolio_max_short: float = Field(
        default=0.3,
        ge=0,
        le=2.0,
        description="Largest total short exposure as a fraction of equity.",
    )
    portfolio_news_only_fraction: float = Field(
        default=0.02,
        ge=0,
        le=1.0,
        description="While the news leg is not validated, a decision that stands on news "
        "alone moves at most this fraction of equity.",
    )
    portfolio_rebalance_band: float = Field(
        default=0.005,
        ge=0,
        le=0.5,
        description="An add to an open position smaller than this fraction of equity is skipped "
        "(opens, closes, flips and trims always trade), so a drifting score does not trade "
        "every bar.",
    )
    portfolio_spread_bps: float = Field(
        default=4.0,
        ge=0,
        le=1000,
        description="Quoted spread in basis points: an order fills at the fill bar's open plus "
        "(buy) or minus (sell) half of it.",
    )
    portfolio_borrow_bps: float = Field(
        default=50.0,
        ge=0,
        le=10_000,
        description="Annual borrow fee on short positions, in basis points of their market "
        "value, charged for the calendar time they are held.",
    )
    portfolio_fee_bps: float = Field(
        default=1.0, ge=0, le=1000, description="Fee per trade, in basis points of its notional."
    )
    portfolio_allow_short: bool = Field(
        default=False, description="Let a SELL open a short position (otherwise it only closes)."
    )

    # --- validation --------------------------------------------------------------------------
    validate_window: int = Field(
        default=100,
        ge=10,
        le=100_000,
        description="The model's live hit rate shown by status and the dashboard covers its "
        "last this many scored signals (the monitor itself uses whole sessions).",
    )
    validate_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Live monitoring: the chance that a healthy leg is degraded by mistake "
        "over a year of daily looks (sets the CUSUM's decision interval).",
    )
    validate_margin: float = Field(
        default=0.02,
        ge=0,
        le=0.5,
        description="Retired: live monitoring tests each leg against its validated figure "
        "with a CUSUM (validate_alpha); kept so existing configurations still load.",
    )
    validate_min_sessions: int = Field(
        default=20,
        ge=5,
        le=1000,
        description="Live monitoring judges a leg (rank IC, long-short) only once this many "
        "sessions of its decisions are scored.",
    )
    backtest_retrain_sessions: int = Field(
        default=5,
        ge=1,
        le=260,
        description="A backtest retrains its model walk-forward every this many sessions.",
    )

    # --- alerts and notifications ------------------------------------------------------------
    notify_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack-compatible incoming webhook (JSON POST with a `text` field) that "
        "receives every alert; https, or http on loopback only (secret).",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail alerts.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    smtp_tls: Literal["none", "starttls", "ssl"] = Field(
        default="starttls", description="SMTP transport security."
    )
    smtp_user: str | None = Field(default=None, description="SMTP user name, if it needs one.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password (secret).")
    notify_email_from: str | None = Field(default=None, description="Sender of e-mail alerts.")
    notify_email_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated recipients of e-mail alerts."
    )
    notify_decisions: bool = Field(
        default=False, description="Also send a notice for every BUY or SELL decision."
    )
    alert_run_minutes: int = Field(
        default=5, ge=1, le=1440, description="Alert when a flow run is still Running after this."
    )
    alert_refresh_gap_minutes: int = Field(
        default=20,
        ge=5,
        le=1440,
        description="During a session, alert when no data refresh completed for this long.",
    )

    # --- metrics and retention -------------------------------------------------------------
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the Prometheus exporter listens on."
    )
    metrics_port: int = Field(
        default=9420, ge=1, le=65535, description="Port of the Prometheus exporter."
    )
    bars_retention_days: int = Field(
        default=730,
        ge=30,
        le=36_500,
        description="Intraday bars older than this are pruned (training needs the history).",
    )
    news_retention_days: int = Field(
        default=365, ge=7, le=36_500, description="Headlines older than this are pruned."
    )
    models_keep: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Model versions kept besides the promoted one; older ones are pruned.",
    )
    prefect_run_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Prefect's own database vacuum prunes flow runs older than this.",
    )

    # --- backups and run limits --------------------------------------------------------------
    backup_dir: Path | None = Field(
        default=None, description="Where backups go (default: <data dir>/backups)."
    )
    backup_keep: int = Field(
        default=7, ge=1, le=1000, description="Backups kept; older ones are deleted."
    )
    backup_cron: str = Field(
        default="45 18 * * *",
        description="Cron (America/New_York) of the daily backup deployment.",
    )

    # --- validators --------------------------------------------------------------------------
    @field_validator(
        "tickers",
        "rss_ticker_feeds",
        "rss_market_feeds",
        "extra_closures",
        "notify_email_to",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("extra_early_closes", mode="before")
    @classmethod
    def _early_closes(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        out: dict[str, str] = {}
        for part in _split_csv(value):
            day, sep, hhmm = part.partition("@")
            if not sep:
                raise ValueError(f"{part!r} is not YYYY-MM-DD@HH:MM")
            out[day] = hhmm
        return out

    @field_validator("tickers")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        cleaned = [t.strip().upper() for t in value]
        if not cleaned:
            raise ValueError("the watchlist is empty; give at least one symbol, e.g. AAPL,MSFT")
        bad = [t for t in cleaned if not TICKER_PATTERN.match(t)]
        if bad:
            raise ValueError(
                f"{', '.join(repr(b) for b in bad)} is not a ticker symbol "
                "(1-5 letters, optional class suffix like BRK-B)"
            )
        spelled: dict[str, str] = {}  # the normalized symbol: how the list first wrote it
        for ticker in cleaned:
            first = spelled.setdefault(normalize_ticker(ticker), ticker)
            if first != ticker:
                raise ValueError(
                    f"{first} and {ticker} are one ticker ({normalize_ticker(ticker)}); "
                    "list it once"
                )
        return list(spelled)

    @field_validator("universe", mode="before")
    @classmethod
    def _universe(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.lower() in ("watchlist", "all"):
            return text.lower()
        if text.startswith("@"):
            if not text[1:].strip():
                raise ValueError("'@' needs a file name, e.g. @universe.txt")
            return "@" + text[1:].strip()
        symbols = [t.upper() for t in _split_csv(text)]
        if not symbols:
            raise ValueError("is empty; give watchlist, all, a comma-separated list or @path")
        bad = [t for t in symbols if not TICKER_PATTERN.match(t)]
        if bad:
            raise ValueError(
                f"{', '.join(repr(b) for b in bad)} is not a ticker symbol; give watchlist, all, "
                "a comma-separated list of tickers or @path"
            )
        return ",".join(symbols)  # a repeated one is reported when the universe is resolved

    @field_validator("rss_ticker_feeds")
    @classmethod
    def _ticker_feeds(cls, value: list[str]) -> list[str]:
        return [_check_url(url, needs_ticker=True) for url in value]

    @field_validator("rss_market_feeds")
    @classmethod
    def _market_feeds(cls, value: list[str]) -> list[str]:
        return [_check_url(url) for url in value]

    @field_validator("model_training_cron", "backup_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @field_validator("notify_webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parsed = urlparse(value.get_secret_value().strip())
        loopback = parsed.hostname in ("127.0.0.1", "localhost", "::1")
        if parsed.scheme == "https" and parsed.hostname:
            return value
        if parsed.scheme == "http" and loopback:
            return value
        # The URL is a secret: name the rule, never echo it.
        raise ValueError("must be an https:// URL (http:// only on 127.0.0.1 or localhost)")

    @field_validator("replay_dir", mode="before")
    @classmethod
    def _replay_dir(cls, value: Any) -> Any:
        # Path("") is the current folder: an empty variable would replay whatever is there.
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty; give a folder in the replay format or leave it unset")
        return value

    @field_validator("replay_as_of")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2025-08-28T16:00:00-04:00")
        return value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(f"{value!r} is not a SQLAlchemy URL (e.g. sqlite:///path.db)")
        return value

    @model_validator(mode="after")
    def _weights(self) -> Settings:
        if self.model_weight + self.sentiment_weight <= 0:
            raise ValueError("model_weight + sentiment_weight must be > 0")
        if self.exit_threshold >= min(self.buy_threshold, -self.sell_threshold):
            raise ValueError(
                f"exit_threshold {self.exit_threshold} must be below the entry thresholds "
                f"(buy {self.buy_threshold}, sell {self.sell_threshold})"
            )
        return self

    # --- derived -----------------------------------------------------------------------------
    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sentinel42.db'}"

    @property
    def backups_dir(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def finbert_onnx_dir(self) -> Path:
        """Exported FinBERT copies: derived data, rebuilt when missing (not backed up)."""
        return self.data_dir / "cache" / "finbert-onnx"

    @property
    def models_location(self) -> str | Path:
        """The model registry: ``models_url`` when set (shared by several hosts), else local."""
        return self.models_url or self.models_dir

    @property
    def interval_minutes(self) -> int:
        return int(self.interval.removesuffix("m"))


def _describe(error: Any) -> str:
    field = ".".join(str(p) for p in error.get("loc", ()) if not isinstance(p, int))
    name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{name}: {message}"


def load_settings(*, require_replay_dir: bool = True, **overrides: Any) -> Settings:
    """Read and validate the settings.

    Args:
        require_replay_dir: in replay mode, insist that ``replay_dir`` exists. Commands that
            create the folder (``replay generate``, ``record``) pass False.
        **overrides: field values that win over the environment (tests, CLI options).

    Raises:
        ConfigError: one line naming the setting and what is allowed.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None
    except (ValueError, TypeError) as exc:  # pydantic-settings' own parsing of the environment
        raise ConfigError(f"invalid setting: {exc}") from None
    if settings.data_source == "replay" and require_replay_dir:
        if settings.replay_dir is None:
            raise ConfigError(
                f"{ENV_PREFIX}REPLAY_DIR: required when {ENV_PREFIX}DATA_SOURCE=replay "
                "(make one with `sentinel42 replay generate --out DIR`)"
            )
        if not settings.replay_dir.is_dir():
            raise ConfigError(
                f"{ENV_PREFIX}REPLAY_DIR: {settings.replay_dir} does not exist or is not a folder"
            )
    return settings

"""Write docs/configuration.md from the Settings model (a test checks it is up to date).

uv run python scripts/gen_config_docs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic.fields import FieldInfo

from sentinel42.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "configuration.md"
HEADER = """# Configuration

Sentinel42 reads environment variables prefixed `SENTINEL42_` and a `.env` file (in the repository
root, then in the current folder). Lists are comma-separated. A bad value stops start-up with one
line naming the setting and what is allowed; nothing is written. Secrets are never logged.

This page is generated from `src/sentinel42/settings.py` by `scripts/gen_config_docs.py`.

| variable | default | bounds | meaning |
|---|---|---|---|
"""


FOOTER = """
## The universe

`SENTINEL42_UNIVERSE` is the set of tickers the models learn from and rank within; the watchlist
(`SENTINEL42_TICKERS`) is what is decided and traded, and is always part of it. Values:
`watchlist` (the default), `all` (every ticker the replay folder's price files hold: a
configuration error in live mode, where yfinance has no listing), a comma-separated list, or
`@path`: a file of one ticker a line, relative to the current folder, with blank lines and `#`
comments allowed. A ticker the replay data lacks, a malformed line or a repeated ticker is left
out with one logged line naming it (and the file's line number); a missing file stops with one
line naming it. `SENTINEL42_DAILY_HISTORY_YEARS` is how far back the universe's daily bars go.

Replay folders may hold files of many tickers (a `ticker`, `symbol` or `Name` column) and
gzip-compressed files (`.csv.gz`, `.jsonl.gz`), read as they are: see
[market-data.md](market-data.md#the-universe) and [replay-format.md](replay-format.md).
"""


def _bounds(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for name, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, name, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _default(name: str, info: FieldInfo) -> str:
    if name == "data_dir":
        return "`./data` in a checkout, else `~/.local/share/sentinel42`"
    factory = info.default_factory
    value = factory() if factory is not None else info.default  # type: ignore[call-arg]
    if value is None or value in ([], {}):
        return "—"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    return f"`{value}`"


def render() -> str:
    rows = []
    for name, info in Settings.model_fields.items():
        annotation = getattr(info.annotation, "__args__", None)
        allowed = ""
        if annotation and all(isinstance(a, str) for a in annotation):
            allowed = " / ".join(f"`{a}`" for a in annotation)
        description = (info.description or "").replace("|", "\\|")
        rows.append(
            f"| `{ENV_PREFIX}{name.upper()}` | {_default(name, info)} | "
            f"{allowed or _bounds(info)} | {description} |"
        )
    return HEADER + "\n".join(rows) + "\n" + FOOTER


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if TARGET.read_text() == text else 1)
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")

"""``sentinel42 bench ranking``: training time and peak RSS of each ranking kind, and inference.

Cases, each in its own fresh process (:func:`~sentinel42.bench.measure.run_isolated`: its peak
RSS is its own):

- **train daily** and **train intraday**: :func:`~sentinel42.model.ranking.service.train_kind`
  with the weekly flow's request (:func:`~sentinel42.model.ranking.weekly.ranking_request`), the
  universe ``all`` of a replay folder holding only that kind's files (``daily/`` or
  ``prices/``, linked from ``--replay-dir``), into an empty data folder: the wall time counts
  the first load of the bars into the store (``load_s``) and the training (``train_s``:
  walk-forward, the baselines, the gate); the checkpoint is registered there.
- **inference** of each trained kind: :func:`~sentinel42.model.ranking.predict.load` of that
  checkpoint, then :func:`~sentinel42.model.ranking.predict.score_latest` on the newest window
  of every universe ticker (the stored bars of the last ``rows_needed`` timestamps, as the
  trading run loads them), timed ``--runs`` times: the median and the maximum; and whether
  ``torch`` was imported in that process (it must not be: the trading run scores in numpy).

Without ``--replay-dir``, a universe of ``--tickers`` random walks is generated first, shaped
like the shared S&P 500 files (1,259 daily sessions to 2018-02-07; 15-minute bars of the
sessions from 2026-01-26 to 2026-03-31).
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

from sentinel42.bench.measure import machine, run_isolated

logger = logging.getLogger(__name__)

KIND_FOLDERS = {"daily": "daily", "intraday": "prices"}
# What the figures are compared with (the ranking models' requirements).
TARGETS: dict[str, float] = {
    "train_daily_s": 600.0,  # on the 505 x 1,259 S&P 500 daily file
    "train_intraday_s": 600.0,  # on the 484-ticker 15-minute file
    "inference_s": 1.0,  # score_latest for 500 tickers, median
    "peak_rss_mb": 4096.0,  # 4 GiB, each process
}
DAILY_SESSIONS = 1259
DAILY_END = datetime(2018, 2, 8, tzinfo=UTC)  # the shared daily file ends on 2018-02-07
INTRADAY_START = datetime(2026, 1, 26, tzinfo=UTC)
INTRADAY_END = datetime(2026, 4, 1, tzinfo=UTC)  # the shared 15-minute file ends on 2026-03-31
Progress = Callable[[str], None]


# --- a generated universe --------------------------------------------------------------------
def generate_universe(out: Path, tickers: int, *, seed: int = 7) -> Path:
    """Write ``daily/universe.csv.gz`` and ``prices/universe.csv.gz`` of ``tickers`` names.

    Random walks (a market factor plus each name's own noise) on the NYSE sessions of the
    shared S&P 500 files, in their shapes: daily ``date,open,high,low,close,volume,Name``;
    15-minute ``ticker,Datetime,Open,High,Low,Close,Volume`` (New York offsets).

    Returns:
        ``out``, a replay folder.
    """
    import numpy as np
    import pandas as pd

    from sentinel42.market.calendar import NEW_YORK, NyseCalendar

    rng = np.random.default_rng(seed)
    names = ["".join(p) for p in product("ABCDEFGHIJKLMNOPQRSTUVWXYZ", repeat=3)][:tickers]
    calendar = NyseCalendar()
    daily = calendar.sessions_between(datetime(2012, 1, 1, tzinfo=UTC), DAILY_END)
    days = pd.DatetimeIndex([o.astimezone(NEW_YORK).date() for o, _ in daily[-DAILY_SESSIONS:]])
    bars = pd.DatetimeIndex(
        [ts for o, c in calendar.sessions_between(INTRADAY_START, INTRADAY_END)
         for ts in pd.date_range(o, c, freq="15min", inclusive="left")]
    ).tz_convert(NEW_YORK)  # fmt: skip
    for folder, index, sigma in (("daily", days, 0.015), ("prices", bars, 0.002)):
        n = len(index)
        ret = rng.normal(0, sigma, (n, tickers)) + rng.normal(0, sigma / 2, (n, 1))
        close = 50.0 * np.exp(np.cumsum(ret, axis=0))
        open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, sigma / 10, close.shape))
        wick = np.abs(rng.normal(0, sigma / 4, (2, *close.shape)))
        frame = pd.DataFrame(
            {
                "ts": np.repeat(index.to_numpy(), tickers),
                "name": np.tile(names, n),
                "open": open_.ravel(),
                "high": (np.maximum(open_, close) * (1 + wick[0])).ravel(),
                "low": (np.minimum(open_, close) * (1 - wick[1])).ravel(),
                "close": close.ravel(),
                "volume": np.exp(rng.normal(12, 0.5, close.shape)).round().ravel(),
            }
        ).round({"open": 4, "high": 4, "low": 4, "close": 4})
        (out / folder).mkdir(parents=True, exist_ok=True)
        path = out / folder / "universe.csv.gz"
        if folder == "daily":
            frame["date"] = frame.pop("ts").dt.strftime("%Y-%m-%d")
            frame = frame[["date", "open", "high", "low", "close", "volume", "name"]]
            frame.rename(columns={"name": "Name"}).to_csv(path, index=False)
        else:
            frame["Datetime"] = frame.pop("ts").map(pd.Timestamp.isoformat)
            frame = frame.rename(columns={"name": "ticker"} | {c: c.title() for c in
                                 ("open", "high", "low", "close", "volume")})  # fmt: skip
            frame[["ticker", "Datetime", "Open", "High", "Low", "Close", "Volume"]].to_csv(
                path, index=False
            )
    return out


# --- the cases (each run in a fresh process) ---------------------------------------------------
def _settings(replay_dir: str, data_dir: str) -> Any:
    from sentinel42.market.replay import ReplayPriceSource
    from sentinel42.settings import load_settings

    held, _ = ReplayPriceSource(Path(replay_dir)).held_tickers()
    return load_settings(
        data_source="replay", replay_dir=Path(replay_dir), data_dir=Path(data_dir),
        universe="all", tickers=held[:1],
    )  # fmt: skip


def train_case(
    kind: str, replay_dir: str, data_dir: str, progress: Progress | None = None
) -> dict[str, Any]:
    """Train one kind on ``replay_dir`` into ``data_dir`` (a fresh store and registry)."""
    from sentinel42.clock import resolve_as_of
    from sentinel42.model.ranking import weekly

    settings = _settings(replay_dir, data_dir)
    as_of = resolve_as_of(settings)
    started = time.perf_counter()
    document = weekly.train(settings, kind, now=datetime.now(UTC), as_of=as_of, progress=progress)
    wall = time.perf_counter() - started
    train_s = float(document["timing"]["train_s"])
    return {
        "kind": kind,
        "version": document["version"],
        "tickers": document["data"]["tickers"],
        "periods": document["data"]["periods"],
        "sessions": document["data"]["sessions"],
        "wall_s": round(wall, 1),
        "load_s": round(wall - train_s, 1),
        "train_s": train_s,
        "promoted": document["promoted"],
        "reason": document["reason"],
        "rank_ic_mean": document["model"]["rank_ic_mean"],
    }


def inference_case(
    kind: str, version: str, replay_dir: str, data_dir: str, runs: int = 7
) -> dict[str, Any]:
    """Load the checkpoint, then score the newest window of every universe ticker ``runs`` times."""
    import pandas as pd

    from sentinel42.model.ranking.predict import load, score_latest
    from sentinel42.model.ranking.service import registry_for
    from sentinel42.persistence import open_store

    settings = _settings(replay_dir, data_dir)
    started = time.perf_counter()
    model = load(registry_for(settings, kind), version)
    load_s = time.perf_counter() - started
    interval = "1d" if kind == "daily" else settings.interval
    with open_store(settings) as store:
        stored = store.load_bars(list(model.tickers), interval)
    stamps = pd.DatetimeIndex(sorted(set().union(*(f.index for f in stored.values()))))
    first = stamps[-model.rows_needed]  # the newest rows_needed timestamps, as the trading run
    bars = {t: f[f.index >= first] for t, f in stored.items()}
    seconds, scored = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        scored = len(score_latest(model, bars))
        seconds.append(time.perf_counter() - began)
    return {
        "kind": kind,
        "version": version,
        "tickers": len(bars),
        "scored": scored,
        "rows": model.rows_needed,
        "runs": runs,
        "seconds_median": round(statistics.median(seconds), 4),
        "seconds_max": round(max(seconds), 4),
        "load_s": round(load_s, 3),
        "torch_imported": "torch" in sys.modules,
    }


# --- the benchmark -------------------------------------------------------------------------
def kind_folder(replay_dir: Path, kind: str, into: Path) -> Path:
    """A replay folder holding only ``kind``'s files of ``replay_dir`` (its clock is theirs)."""
    source = (replay_dir / KIND_FOLDERS[kind]).resolve()
    if not source.is_dir():
        from sentinel42.errors import ConfigError

        raise ConfigError(f"--replay-dir: {replay_dir} has no {KIND_FOLDERS[kind]}/ folder")
    into.mkdir(parents=True, exist_ok=True)
    (into / KIND_FOLDERS[kind]).symlink_to(source, target_is_directory=True)
    return into


def bench_ranking(
    replay_dir: Path | None,
    *,
    tickers: int = 500,
    kinds: tuple[str, ...] = ("daily", "intraday"),
    runs: int = 7,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every case of the module docstring, each in a fresh process; figures beside the targets.

    Returns:
        ``source`` (the replay folder or the generated universe), ``train`` and ``inference``
        (kind -> figures, each with the process's ``peak_rss_mb`` and ``wall_s``),
        ``targets``, ``checks`` (figure name -> within its target), ``load_avg_at_start`` and
        ``machine`` (with the load average at the end).
    """
    say = progress or (lambda line: None)
    out: dict[str, Any] = {"train": {}, "inference": {}, "targets": TARGETS}
    out["load_avg_at_start"] = machine()["load_avg_1_5_15"]  # the end's is in ``machine``
    with tempfile.TemporaryDirectory(prefix="sentinel42-bench-ranking-") as tmp:
        work = Path(tmp)
        if replay_dir is None:
            say(f"generating a universe of {tickers} tickers")
            replay_dir = generate_universe(work / "generated", tickers)
            out["source"] = f"generated: {tickers} random-walk tickers"
        else:
            out["source"] = str(replay_dir)
        for kind in kinds:
            folder = kind_folder(replay_dir, kind, work / f"replay-{kind}")
            data = work / f"data-{kind}"
            say(f"train {kind} (fresh process)")
            trained = run_isolated("sentinel42.bench.ranking:train_case",
                                   {"kind": kind, "replay_dir": str(folder),
                                    "data_dir": str(data)})  # fmt: skip
            out["train"][kind] = trained
            say(f"inference {kind} (fresh process)")
            out["inference"][kind] = run_isolated(
                "sentinel42.bench.ranking:inference_case",
                {"kind": kind, "version": trained["version"], "replay_dir": str(folder),
                 "data_dir": str(data), "runs": runs},
            )  # fmt: skip
    out["checks"] = checks(out)
    out["machine"] = machine()
    return out


def checks(figures: dict[str, Any]) -> dict[str, bool]:
    """Each measured figure against its target (:data:`TARGETS`); torch must stay unimported."""
    result: dict[str, bool] = {}
    for kind, row in figures["train"].items():
        result[f"train_{kind}_s"] = row["wall_s"] <= TARGETS[f"train_{kind}_s"]
        result[f"train_{kind}_peak_rss_mb"] = (
            row["process"]["peak_rss_mb"] <= TARGETS["peak_rss_mb"]
        )
    for kind, row in figures["inference"].items():
        result[f"inference_{kind}_s"] = row["seconds_median"] <= TARGETS["inference_s"]
        result[f"inference_{kind}_no_torch"] = not row["torch_imported"]
        result[f"inference_{kind}_peak_rss_mb"] = (
            row["process"]["peak_rss_mb"] <= TARGETS["peak_rss_mb"]
        )
    return result


def lines(figures: dict[str, Any]) -> list[str]:
    """The figures as text, each beside its target."""

    def mark(ok: bool) -> str:
        return "ok" if ok else "OVER TARGET"

    ok = figures["checks"]
    rss = TARGETS["peak_rss_mb"]
    out = [f"source: {figures['source']}"]
    for kind, t in figures["train"].items():
        out.append(
            f"train {kind}: {t['tickers']} tickers x {t['periods']} rows ({t['sessions']} "
            f"sessions): {t['wall_s']:.1f} s (load {t['load_s']:.1f} s + train {t['train_s']:.1f}"
            f" s; target <= {TARGETS[f'train_{kind}_s']:.0f} s: {mark(ok[f'train_{kind}_s'])}); "
            f"peak RSS {t['process']['peak_rss_mb']:.0f} MiB (target <= {rss:.0f}: "
            f"{mark(ok[f'train_{kind}_peak_rss_mb'])}); "
            f"{'promoted' if t['promoted'] else 'refused'}, rank IC {t['rank_ic_mean']:+.4f}"
        )
    for kind, i in figures["inference"].items():
        out.append(
            f"inference {kind}: score_latest for {i['tickers']} tickers ({i['scored']} scored, "
            f"{i['rows']} rows each): median {i['seconds_median']:.3f} s, max "
            f"{i['seconds_max']:.3f} s over {i['runs']} runs (target <= "
            f"{TARGETS['inference_s']:.0f} s: {mark(ok[f'inference_{kind}_s'])}); load "
            f"{i['load_s']:.3f} s; torch imported: {i['torch_imported']} "
            f"({mark(ok[f'inference_{kind}_no_torch'])}); peak RSS "
            f"{i['process']['peak_rss_mb']:.0f} MiB"
        )
    m = figures["machine"]
    out.append(
        f"machine: {m['cores']} cores, {m['cpu']}; load average (1/5/15 min) "
        f"{figures.get('load_avg_at_start')} at the start, {m['load_avg_1_5_15']} at the end"
    )
    return out

"""Every figure of the ranking models' evidence, measured through the CLI, as markdown tables.

uv run --frozen python scripts/figures/ranking_evidence.py [--data DIR] [--out DIR] [--only NAME]

Runs ``sentinel42 model train --kind ... --json`` in a subprocess per experiment, each with its
own temporary data folder (store, registry) and a replay folder of symlinks to the recorded
data, so every figure comes through the real path (replay readers, refresh, store, news refresh
and scoring, training, gate):

- ``sp500-daily-h1``, ``sp500-daily-h5``: ``--kind daily`` on the S&P 500 daily universe;
- ``sp500-15m-h1``, ``sp500-15m-h4``: ``--kind intraday`` on the 15-minute universe;
- ``stocknet``: the StockNet task (raw next-day move, dead zone -0.5 % .. +0.55 %, held-out
  Aug-Sep 2015), with news features from the tweets and the prices-only ablation.

A data set that is absent is skipped with a message. ``--data`` defaults to ``../shared/data``
beside the checkout. ``--out`` keeps each run's JSON document and log (default: a temp folder,
removed). Prints the markdown tables on stdout, progress on stderr. ``UV`` names the uv command
(default: ``uv`` on the PATH). ``--render DIR`` trains nothing and prints the tables of an
earlier ``--out DIR`` again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
METRICS = ("rank_ic_mean", "icir", "rank_ic_lower", "long_short_gross_annual",
           "long_short_net_annual", "turnover", "hit_rate", "accuracy", "mcc")  # fmt: skip
# StockNet (Xu & Cohen, ACL 2018), its best model on its own test period (2015-10-01 .. 2016-01-01).
PAPER_ACCURACY = 0.5823
PAPER_MCC = 0.081


@dataclass(frozen=True)
class Run:
    name: str
    title: str
    files: dict[str, str]  # replay path -> data path (relative to --data)
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


SP500_DAILY = {"daily/sp500.csv.gz": "universe/sp500_daily_2013-02-08_2018-02-07.csv.gz"}
SP500_15M = {"prices/sp500.csv.gz": "universe/sp500_15m_2026-01-26_2026-03-31.csv.gz"}
STOCKNET = {
    "daily/stocknet.csv.gz": "stocknet/prices_daily_2012-09-04_2017-09-01.csv.gz",
    "news/tweets.jsonl.gz": "stocknet/news/tweets_2014-01-01_2015-09-30.jsonl.gz",
}
RUNS = (
    Run("sp500-daily-h1", "S&P 500 daily, next-session excess return", SP500_DAILY,
        ("--kind", "daily", "--horizon", "1")),
    Run("sp500-daily-h5", "S&P 500 daily, five-session excess return", SP500_DAILY,
        ("--kind", "daily", "--horizon", "5")),
    Run("sp500-15m-h1", "S&P 500 15-minute, next-bar excess return", SP500_15M,
        ("--kind", "intraday", "--horizon", "1")),
    Run("sp500-15m-h4", "S&P 500 15-minute, next-hour (4 bars) excess return", SP500_15M,
        ("--kind", "intraday", "--horizon", "4")),
    Run("stocknet", "StockNet: next-day rise/fall, tweets as news features", STOCKNET,
        ("--kind", "daily", "--target", "raw", "--dead-zone=-0.005,0.0055",
         "--test-start", "2015-08-01", "--test-end", "2015-09-30"),
        {"SENTINEL42_REPLAY_AS_OF": "2015-10-01T00:00:00+00:00"}),
)  # fmt: skip
BASE_ENV = {
    "SENTINEL42_DATA_SOURCE": "replay",
    "SENTINEL42_UNIVERSE": "all",
    "SENTINEL42_TICKERS": "AAPL",  # the watchlist: in every data set
}


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def command_line(run: Run) -> str:
    """The shell command that reproduces one run, with the replay folder it needs."""
    links = " ".join(f"{path} -> ../shared/data/{src}" for path, src in run.files.items())
    env = {**BASE_ENV, "SENTINEL42_REPLAY_DIR": "<replay>", **run.env}
    assigns = " ".join(f"{k}={v}" for k, v in env.items())
    args = " ".join(shlex.quote(a) for a in run.args)
    return f"{assigns} uv run --frozen sentinel42 model train {args} --json  (<replay>: {links})"


def run_one(run: Run, data: Path, work: Path) -> dict[str, Any] | None:
    """Lay out the replay folder, run the CLI, return its JSON document (None: skipped/failed)."""
    missing = [str(data / src) for src in run.files.values() if not (data / src).is_file()]
    if missing:
        _say(f"{run.name}: skipped, data not found: {', '.join(missing)}")
        return None
    folder = work / run.name
    replay = folder / "replay"
    for path, src in run.files.items():
        link = replay / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((data / src).resolve())
    store = folder / "data"
    store.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL42_")}
    env.setdefault("HF_HUB_OFFLINE", "1")  # a cached FinBERT is still used; no hub waits
    env.update(BASE_ENV)
    env.update({
        "SENTINEL42_REPLAY_DIR": str(replay),
        "SENTINEL42_DATA_DIR": str(store),
        "SENTINEL42_DATABASE_URL": f"sqlite:///{store / 'sentinel42.db'}",
        "SENTINEL42_MODELS_URL": str(store / "models"),
        **run.env,
    })  # fmt: skip
    uv = shlex.split(os.environ.get("UV") or shutil.which("uv") or "uv")
    cmd = [*uv, "run", "--frozen", "sentinel42", "model", "train", *run.args, "--json"]
    _say(f"{run.name}: {' '.join(cmd)}")
    started = time.perf_counter()
    with (folder / "train.log").open("w") as log:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
                              text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - started
    (folder / "train.json").write_text(done.stdout)
    if done.returncode != 0:
        tail = (folder / "train.log").read_text().strip().splitlines()[-3:]
        _say(f"{run.name}: failed (exit {done.returncode}) after {wall:.0f} s: {' | '.join(tail)}")
        return None
    document: dict[str, Any] = json.loads(done.stdout)
    _say(f"{run.name}: done in {wall:.0f} s: {document['reason']}")
    return document


def rendered(run: Run, folder: Path) -> dict[str, Any] | None:
    """The document an earlier run kept under ``folder`` (``--out``), without training."""
    path = folder / run.name / "train.json"
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        _say(f"{run.name}: no document at {path}; skipped")
        return None
    return document


# --- tables -------------------------------------------------------------------------------------
def cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def metrics_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    # The long-short returns are annual fractions (-0.25 = -25 % a year), turnover a fraction.
    lines = ["| scorer | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(cell(m.get(k)) for k in METRICS) + " |")
    return lines


def run_section(run: Run, doc: dict[str, Any]) -> list[str]:
    test, data = doc["test"], doc["data"]
    best = doc["best_baseline"]
    rows = [("model (LSTM)", doc["model"])]
    rows += [(f"{k} (best baseline)" if k == best else k, v) for k, v in doc["baselines"].items()]
    if "ablations" in doc:
        rows.insert(1, ("model, prices only (ablation)", doc["ablations"]["prices_only"]))
    gate = doc["gate"]
    out = [
        f"#### {run.title} (`{run.name}`)",
        "",
        f"`{command_line(run)}`",
        "",
        f"Universe {data['tickers']} tickers, {data['periods']} periods "
        f"({data['start'][:10]} .. {data['end'][:10]}); test {test['start']} .. {test['end']}: "
        f"{test['n_periods']} periods, {test['n_samples']} samples, {test['n_sessions']} "
        f"sessions; horizon {doc['horizon']} ({doc['target']}); train {doc['timing']['train_s']}"
        f" s, peak RSS {doc['timing']['peak_rss_mb']} MB.",
        "",
        *metrics_table(rows),
        "",
        f"Gate (one-sided {100 * gate['confidence']:.4g} %, {gate['attempts']} attempt(s) in "
        f"this registry), {doc['reason']}",
    ]
    news = data.get("news")
    if news and not news.get("headline_rows"):
        out += ["", "News: no headline of the universe in the store; prices only."]
    elif news:
        out += ["", "News: " + ", ".join(f"{k} {v}" for k, v in news.items())]
    return out


def summary(done: list[tuple[Run, dict[str, Any]]]) -> list[str]:
    lines = [
        "| run | test | samples | model rank IC | IC lower bound | best baseline (IC) "
        "| long-short net/yr | gate |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for run, doc in done:
        m, best = doc["model"], doc["best_baseline"]
        best_ic = cell(doc["baselines"][best]["rank_ic_mean"])
        lines.append(
            f"| {run.name} | {doc['test']['start']} .. {doc['test']['end']} "
            f"| {doc['test']['n_samples']} | {cell(m['rank_ic_mean'])} "
            f"| {cell(m['rank_ic_lower'])} | {best} ({best_ic})"
            f" | {cell(m['long_short_net_annual'])} "
            f"| {'promoted' if doc['promoted'] else 'refused'} |"
        )
    return lines


def stocknet_table(doc: dict[str, Any]) -> list[str]:
    def pct(x: float) -> str:
        return "–" if not math.isfinite(x) else f"{100 * x:.2f} %"

    rows = [("LSTM, prices + tweets", doc["model"])]
    if "ablations" in doc:
        rows.append(("LSTM, prices only (ablation)", doc["ablations"]["prices_only"]))
    rows += list(doc["baselines"].items())
    lines = [
        "| scorer | period | samples | accuracy | MCC |",
        "|---|---|---:|---:|---:|",
    ]
    period = f"{doc['test']['start']} .. {doc['test']['end']}"
    for name, m in rows:
        lines.append(f"| {name} | {period} | {m['n_samples']} | {pct(m['accuracy'])} "
                     f"| {cell(m['mcc'])} |")  # fmt: skip
    lines.append(f"| StockNet paper (best model) | 2015-10-01 .. 2016-01-01, its test period, "
                 f"not ours | – | {pct(PAPER_ACCURACY)} | {PAPER_MCC} |")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, help="keep each run's JSON and log here")
    parser.add_argument("--only", action="append", choices=[r.name for r in RUNS],
                        help="run only these (repeatable)")  # fmt: skip
    parser.add_argument("--render", type=Path, metavar="OUT",
                        help="train nothing: print the tables of an earlier --out")  # fmt: skip
    args = parser.parse_args()
    runs = [r for r in RUNS if not args.only or r.name in args.only]
    done: list[tuple[Run, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="ranking-evidence-") as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for run in runs:
            doc = rendered(run, args.render) if args.render else run_one(run, args.data, work)
            if doc is not None:
                done.append((run, doc))
    if not done:
        _say("no run produced a result")
        return 1
    out = ["### Ranking evidence: summary", "", *summary(done)]
    for run, doc in done:
        out += ["", *run_section(run, doc)]
    stocknet = [doc for run, doc in done if run.name == "stocknet"]
    if stocknet:
        out += ["", "#### StockNet: accuracy and MCC beside the paper", "",
                *stocknet_table(stocknet[0])]  # fmt: skip
    print("\n".join(out))
    return 0 if len(done) == len(runs) else 2


if __name__ == "__main__":
    sys.exit(main())

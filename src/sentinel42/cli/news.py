"""CLI commands of the news and sentiment stage (registered by sentinel42.cli).

``sentinel42 sentiment score``, ``sentinel42 sentiment check-quantization``,
``sentinel42 news`` and ``sentinel42 bench sentiment``. Heavy imports stay inside commands.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import typer

from sentinel42.cli.common import emit_json, emit_json_line, get_settings, user_errors

# Labelled CSVs (text,label) may code labels as numbers: the Twitter Financial News coding.
_NUMERIC_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}


def _read_lines(source: str) -> list[str]:
    if source == "-":
        return [line.rstrip("\n") for line in sys.stdin]
    return Path(source).read_text(encoding="utf-8").splitlines()


def sentiment_score(
    source: str = typer.Argument("-", help="File with one text per line, or - for stdin."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines, one per input line."),
) -> None:
    """Score one text per line with FinBERT (or the offline fallback, which is then named)."""
    settings = get_settings(require_replay_dir=False)
    with user_errors():
        from sentinel42.sentiment.base import LABELS
        from sentinel42.sentiment.service import build_scorer, score_texts

        try:
            lines = _read_lines(source)
        except OSError as exc:
            from sentinel42.cli.common import fail

            fail(f"cannot read {source}: {exc}")
        scorer = build_scorer(settings)
        texts = [line for line in lines if line.strip()]
        scores = iter(score_texts(scorer, texts, settings.sentiment_batch_size))
        for line in lines:
            if not line.strip():  # keep one output per input line, in order
                row: dict[str, object] = {
                    "text": line,
                    "label": None,
                    "score": None,
                    "probabilities": None,
                }
                row["scorer"] = scorer.name
            else:
                s = next(scores)
                probs = dict(zip(LABELS, (s.p_positive, s.p_negative, s.p_neutral), strict=True))
                row = {
                    "text": line,
                    "label": s.label,
                    "score": round(s.score, 6),
                    "probabilities": {k: round(v, 6) for k, v in probs.items()},
                    "scorer": s.scorer,
                    "revision": s.revision,
                }
            if as_json:
                emit_json_line(row)
            else:
                score = "" if row["score"] is None else f"{row['score']:+.3f}"
                typer.echo(f"{row['label'] or '-':8} {score:>7}  {line}")
        if not as_json:
            typer.echo(f"scorer: {scorer.name} ({scorer.revision})", err=True)


def check_quantization(
    labelled_csv: Path = typer.Argument(..., help="CSV with columns text,label."),
    limit: int = typer.Option(0, help="Use only the first N rows (0: all)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare fp32 and int8 FinBERT on a labelled set: label agreement, the largest
    probability difference and each one's macro-F1."""
    settings = get_settings(require_replay_dir=False)
    with user_errors():
        from sentinel42.sentiment.finbert import check_quantization as compare
        from sentinel42.sentiment.metrics import macro_f1
        from sentinel42.sentiment.service import finbert_options

        with labelled_csv.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        if limit:
            rows = rows[:limit]
        texts = [r["text"] for r in rows]
        truth = [_NUMERIC_LABELS.get(r["label"].strip(), r["label"].strip().lower()) for r in rows]
        result = compare(texts, finbert_options(settings), settings.sentiment_batch_size)
        summary = {
            "model": result.model,
            "revision": result.fp32_revision,
            "int8_revision": result.int8_revision,
            "texts": len(texts),
            "agreement": None if result.agreement is None else round(result.agreement, 4),
            "max_abs_diff": round(result.max_abs_diff, 6),
            "fp32_macro_f1": round(macro_f1(truth, result.fp32_labels), 4),
            "int8_macro_f1": round(macro_f1(truth, result.int8_labels), 4),
        }
        if as_json:
            emit_json(summary)
        else:
            for key, value in summary.items():
                typer.echo(f"{key:15} {value}")


def list_news(
    ticker: str | None = typer.Option(None, "--ticker", "-t", help="Only this symbol."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many headlines."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """List stored headlines, newest first, with their sentiment score and scorer."""
    settings = get_settings(require_replay_dir=False)
    with user_errors():
        from sentinel42.persistence import open_store

        tickers = [ticker.upper()] if ticker else None
        with open_store(settings, create=False) as store:  # a typo'd URL creates nothing
            frame = store.headlines(tickers, None, None, limit=limit)
        records = [
            {k: (None if v != v else v) for k, v in rec.items()}  # NaN -> null
            for rec in frame.to_dict(orient="records")
        ]
        if as_json:
            emit_json({"count": len(records), "headlines": records})
            return
        if not records:
            typer.echo("no headlines stored (run a refresh first)", err=True)
        for rec in records:
            score = "   -  " if rec["score"] is None else f"{rec['score']:+.3f}"
            published = rec["published_at"]
            when = published.strftime("%Y-%m-%d %H:%M") if published is not None else "-"
            typer.echo(f"{when}  {rec['ticker'] or '-':6} {score}  {rec['title']}")


def bench_sentiment(
    n: int = typer.Option(512, "--n", min=8, help="Headlines to score."),
    threads: int | None = typer.Option(None, help="Torch threads (default: settings/torch)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Headlines/s of a FinBERT-sized model (fp32/int8, batch 1/32) and steady-state cost."""
    settings = get_settings(require_replay_dir=False)
    with user_errors():
        from sentinel42.bench.measure import machine, run_isolated

        result = run_isolated(  # a fresh process: its peak RSS is this benchmark's own
            "sentinel42.bench.sentiment:run_benchmark",
            {
                "n": n,
                "threads": threads or settings.sentiment_threads,
                "max_length": settings.sentiment_max_length,
            },
        )
        result["machine"] = machine()
        if as_json:
            emit_json(result)
        else:
            for key, value in result.items():
                if key not in ("stages", "process", "machine"):
                    typer.echo(f"{key:24} {value}")
            for name, row in result["stages"].items():
                typer.echo(
                    f"{name:24} {row['wall_s']:.2f} s wall, {row['cpu_s']:.2f} s CPU, "
                    f"peak RSS so far {row['peak_rss_mb']:.0f} MiB"
                )
            typer.echo(f"{'process peak RSS':24} {result['process']['peak_rss_mb']:.0f} MiB")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this stage's commands to the root app and the ``bench`` group."""
    sentiment_app = typer.Typer(help="Score text sentiment (FinBERT or the offline fallback).")
    sentiment_app.command("score")(sentiment_score)
    sentiment_app.command("check-quantization")(check_quantization)
    app.add_typer(sentiment_app, name="sentiment")
    app.command("news")(list_news)
    bench_app.command("sentiment")(bench_sentiment)

"""The ``sentinel42`` command line. Heavy imports (torch, pandas, prefect) stay inside commands."""

from __future__ import annotations

import typer

from sentinel42.cli import backtest, backup, doctor, evaluation, market, model, news, ops, trading
from sentinel42.cli import bench as bench_cli
from sentinel42.cli import runs as runs_cli
from sentinel42.cli.common import setup_logging

app = typer.Typer(
    name="sentinel42",
    help="Sentinel42: BUY/SELL/HOLD decisions from prices, news sentiment and an LSTM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals can hold secrets (API keys)
)
bench_app = typer.Typer(help="Benchmarks that print figures (not tests).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logs on stderr."),
) -> None:
    setup_logging(verbose)


for _module in (trading, market, news, model, backtest, evaluation, ops, doctor, backup, runs_cli):
    _module.register(app, bench_app)
bench_cli.register(app, bench_app)


def main() -> None:
    app()

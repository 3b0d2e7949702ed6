"""Shared by the figure scripts: whole-number size options whose default follows ``--quick``.

Not a figure script of its own (``make docs-figures`` runs only the names without a leading
underscore). A script names its sizes, each with the value a full run uses and the smaller one
``--quick`` uses; an option given on the command line wins over both, and a value below the
size's minimum is refused with argparse's usage error (exit status 2) naming the option.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    """One ``--flag N`` option: ``full`` by default, ``quick`` with ``--quick``."""

    flag: str  # e.g. "--items"
    what: str  # the help text's head, e.g. "items (task runs when mapped)"
    full: int
    quick: int
    minimum: int = 1

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def parse_sizes(description: str, sizes: Sequence[Size], argv: list[str] | None) -> list[int]:
    """The sizes' values, in the order given, from ``argv`` (``sys.argv[1:]`` when None)."""
    parser = argparse.ArgumentParser(description=description)
    for size in sizes:
        defaults = f"default {size.full}; {size.quick} with --quick"
        parser.add_argument(size.flag, type=int, help=f"{size.what} ({defaults})")
    quick = ", ".join(f"{s.flag} {s.quick}" for s in sizes)
    parser.add_argument("--quick", action="store_true", help=f"smaller defaults: {quick}")
    args = parser.parse_args(argv)
    values = []
    for size in sizes:
        given = getattr(args, size.dest)
        value = given if given is not None else size.quick if args.quick else size.full
        if value < size.minimum:
            parser.error(f"{size.flag} must be at least {size.minimum}, not {value}")
        values.append(value)
    return values

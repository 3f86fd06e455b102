"""One helper for progress bars: on for an interactive terminal, off otherwise or when quiet."""

from __future__ import annotations

import sys


def progress_bar(total: int, desc: str, unit: str, quiet: bool = False):
    """A tqdm bar on stderr, disabled when stderr is not a terminal or ``quiet`` is set."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet or not sys.stderr.isatty(),
                file=sys.stderr, dynamic_ncols=True, unit_scale=True)


def bar_callbacks(bar):
    """``progress(done, total)`` and ``log(message)`` callbacks that drive ``bar``: the first
    sets its total and advances it by ``done`` steps, the second prints above it on stderr."""

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done)

    def log(message: str) -> None:
        bar.write(message, file=sys.stderr)

    return progress, log

"""One helper for progress bars: on for an interactive terminal, off otherwise or when quiet."""

from __future__ import annotations

import sys


def progress_bar(total: int, desc: str, unit: str, quiet: bool = False):
    """A tqdm bar on stderr, disabled when stderr is not a terminal or ``quiet`` is set."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet or not sys.stderr.isatty(),
                file=sys.stderr, dynamic_ncols=True, unit_scale=True)

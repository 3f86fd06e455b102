"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_torch_thread():
    """One torch thread: with 2 cores shared by other processes, OpenMP waits dominate."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def run():
    """``run(*args)``: invoke the ``cabench`` command line in-process (CliRunner); arguments
    are converted with ``str``."""
    from click.testing import CliRunner

    from cabench.cli import main

    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])

"""Helpers shared by several test modules."""

from __future__ import annotations

import pytest
import torch

from faket.cli.main import main


def run_cli(args, capsys):
    """Run ``faket ARGS``; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny-image tests.

    They gain nothing from two threads, and OpenMP threads that wait on a busy shared
    machine make each small op ~10x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

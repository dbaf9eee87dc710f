"""``faket info FILE``: shape, dtype, voxel size and value statistics of an MRC file."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._common import require_input
from faket.io import format_summary, mrc_summary


def info(
    path: Path = typer.Argument(..., help="An MRC volume, tilt series or image."),
) -> None:
    """Print shape, dtype, voxel size (Å), value range, mean and std of an MRC file.

    The file is memory-mapped and scanned in chunks, so large files are fine.
    """
    require_input(path)
    typer.echo(format_summary(mrc_summary(path), path))


def register(app: typer.Typer) -> None:
    """Add ``info`` to the ``faket`` command."""
    app.command("info")(info)

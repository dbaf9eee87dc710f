"""``faket info FILE``: what a file holds (volume, tilt series, angles, particles, ...)."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._common import require_input


def info(
    path: Path = typer.Argument(
        ...,
        help="An MRC/EM volume, tilt series or image, an angle file, a particle list, an "
        "atomic model or a noise model.",
    ),
) -> None:
    """Say what a file holds: shape, data type, voxel size (Å) and statistics of MRC/EM
    files; count and range of tilt angles; particles per class; atoms of a model.

    Files faket cannot use are refused with one line saying what to pass instead. MRC
    files are memory-mapped and scanned in chunks, so large files are fine.
    """
    from faket.describe import describe_file

    require_input(path)
    typer.echo(describe_file(path))


def register(app: typer.Typer) -> None:
    """Add ``info`` to the ``faket`` command."""
    app.command("info")(info)

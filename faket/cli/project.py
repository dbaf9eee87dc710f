"""``faket project``: a volume to a tilt series of line integrals."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._angles import resolve_angles, tlt_beside
from faket.cli._common import (
    DeviceOption,
    OverwriteOption,
    QuietOption,
    require_input,
    require_output,
)
from faket.io import read_mrc, write_mrc, write_tlt
from faket.tomography import project


def project_command(
    volume: Path = typer.Argument(..., help="Input volume (MRC, Z Y X)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output tilt series (MRC)."),
    angles: Path | None = typer.Option(
        None, "--angles", help="IMOD .tlt file with one tilt angle (degrees) per line."
    ),
    tilt_range_deg: tuple[float, float] | None = typer.Option(
        None, "--tilt-range", help="First and last tilt angle in degrees (default: -60 60)."
    ),
    tilt_step: float | None = typer.Option(
        None, "--tilt-step", help="Tilt increment in degrees (default: 2)."
    ),
    detector_width: int | None = typer.Option(
        None, "--detector-width", help="Detector width in pixels (default: the volume's X)."
    ),
    negate: bool = typer.Option(
        False, "--negate", help="Store -line integrals (dense objects dark, as in the paper)."
    ),
    binning: int = typer.Option(1, "--bin", help="Bin the projections n x n."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Project a volume into a tilt series (rotation about Y, parallel beam).

    Writes the tilt series (n_tilts, Y, X) with the volume's voxel size (times
    the binning) and the tilt angles as a .tlt file next to it.
    """
    require_input(volume)
    require_output(output, overwrite)
    tlt = require_output(tlt_beside(output), overwrite)
    tilt_angles = resolve_angles(angles, tilt_range_deg, tilt_step)
    data = read_mrc(volume, mmap=True, ndim=3)
    tilt_series = project(
        data.data,
        tilt_angles,
        detector_width=detector_width,
        negate=negate,
        binning=binning,
        device=device,
        progress=not quiet,
    )
    write_mrc(output, tilt_series, data.voxel_size * binning, overwrite=overwrite)
    write_tlt(tlt, tilt_angles)
    if not quiet:
        typer.echo(f"wrote {output} {tilt_series.shape} and {tlt}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``project`` to the ``faket`` command."""
    app.command("project")(project_command)

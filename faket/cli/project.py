"""``faket project``: a volume to a tilt series of line integrals."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._angles import (
    AnglesOption,
    TiltRangeOption,
    TiltStepOption,
    resolve_angles,
    tlt_beside,
)
from faket.cli._common import (
    DeviceOption,
    OverwriteOption,
    QuietOption,
    VoxelSizeOption,
    require_input,
    require_output,
    resolve_voxel_size,
)
from faket.io import read_mrc, write_mrc, write_tlt
from faket.tomography import project


def project_command(
    volume: Path = typer.Argument(..., help="Input volume (MRC or EM, Z Y X)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output tilt series (MRC)."),
    angles: Path | None = AnglesOption,
    tilt_range_deg: tuple[float, float] | None = TiltRangeOption,
    tilt_step: float | None = TiltStepOption,
    detector_width: int | None = typer.Option(
        None, "--detector-width", help="Detector width in pixels (default: the volume's X)."
    ),
    negate: bool = typer.Option(
        False, "--negate", help="Store -line integrals (dense objects dark, as in the paper)."
    ),
    binning: int = typer.Option(1, "--bin", help="Bin the projections n x n."),
    voxel_size: float | None = VoxelSizeOption,
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
    voxel = resolve_voxel_size(volume, data.voxel_size, voxel_size)
    tilt_series = project(
        data.data,
        tilt_angles,
        detector_width=detector_width,
        negate=negate,
        binning=binning,
        device=device,
        progress=not quiet,
    )
    write_mrc(output, tilt_series, voxel * binning, overwrite=overwrite, stack=True)
    write_tlt(tlt, tilt_angles)
    if not quiet:
        typer.echo(f"wrote {output} {tilt_series.shape} and {tlt}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``project`` to the ``faket`` command."""
    app.command("project")(project_command)

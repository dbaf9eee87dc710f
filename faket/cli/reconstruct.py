"""``faket reconstruct``: weighted back-projection of a tilt series."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._angles import (
    ANGLE_FILES_HELP,
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
from faket.errors import FaketError
from faket.io import check_angle_count, read_mrc, write_mrc
from faket.tomography import FILTERS, reconstruct


def reconstruct_command(
    tilt_series: Path = typer.Argument(..., help="Input tilt series (MRC or EM, n_tilts Y X)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output volume (MRC)."),
    angles: Path | None = typer.Option(
        None,
        "--angles",
        help=ANGLE_FILES_HELP + " [default: the input's name with .tlt, else --tilt-range].",
    ),
    tilt_range_deg: tuple[float, float] | None = TiltRangeOption,
    tilt_step: float | None = TiltStepOption,
    filter_name: str = typer.Option(
        "ramp", "--filter", help=f"Reconstruction filter: {', '.join(FILTERS)}."
    ),
    crowther: float | None = typer.Option(
        None, "--crowther", help="Crowther frequency as a fraction of Nyquist (1-D filters)."
    ),
    thickness: int | None = typer.Option(
        None, "--thickness", help="Slices in Z, in (pre-binned) pixels [default: X]."
    ),
    pre_binning: int = typer.Option(1, "--pre-bin", help="Bin the projections n x n first."),
    z_valid: tuple[int, int] | None = typer.Option(
        None, "--z-valid", metavar="START STOP", help="Keep Z slices START STOP (before --bin)."
    ),
    post_binning: int = typer.Option(1, "--bin", help="Bin the reconstruction n x n x n."),
    voxel_size: float | None = VoxelSizeOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Reconstruct a volume by weighted (filtered) back-projection.

    The paper's SHREC-like tomograms: --filter shrec --bin 2 with --z-valid.
    The output voxel size is the input's times both binning factors.
    """
    require_input(tilt_series)
    require_output(output, overwrite)
    ranged = tilt_range_deg is not None or tilt_step is not None
    beside = tlt_beside(tilt_series)
    if angles is None and not ranged:
        if not beside.exists():
            raise FaketError(
                f"no tilt angles: {beside} does not exist; pass --angles FILE or "
                "--tilt-range START STOP --tilt-step STEP"
            )
        angles = beside
    tilt_angles = resolve_angles(angles, tilt_range_deg, tilt_step)
    source = str(angles) if angles is not None else ""
    data = read_mrc(tilt_series, mmap=True, ndim=3)
    check_angle_count(tilt_angles, data.data.shape[0], source=source)
    voxel = resolve_voxel_size(tilt_series, data.voxel_size, voxel_size)
    volume = reconstruct(
        data.data,
        tilt_angles,
        thickness=thickness,
        filter_name=filter_name,
        crowther=crowther,
        pre_binning=pre_binning,
        z_valid=z_valid,
        post_binning=post_binning,
        device=device,
        progress=not quiet,
    )
    write_mrc(output, volume, voxel * pre_binning * post_binning, overwrite=overwrite)
    if not quiet:
        typer.echo(f"wrote {output} {volume.shape}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``reconstruct`` to the ``faket`` command."""
    app.command("reconstruct")(reconstruct_command)

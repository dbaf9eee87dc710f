"""``faket reconstruct``: weighted back-projection of a tilt series."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._angles import tlt_beside
from faket.cli._common import (
    DeviceOption,
    OverwriteOption,
    QuietOption,
    require_input,
    require_output,
)
from faket.errors import FaketError
from faket.io import MrcStackWriter, check_angle_count, read_mrc, read_tlt
from faket.io.atomic import temporary_path
from faket.tomography import FILTERS, reconstruct, reconstruction_shape


def reconstruct_command(
    tilt_series: Path = typer.Argument(..., help="Input tilt series (MRC, n_tilts Y X)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output volume (MRC)."),
    angles: Path | None = typer.Option(
        None, "--angles", help="IMOD .tlt file [default: the input's name with .tlt]."
    ),
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
        None, "--z-valid", help="Keep Z slices START STOP (before --bin)."
    ),
    post_binning: int = typer.Option(1, "--bin", help="Bin the reconstruction n x n x n."),
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
    angles_file = angles if angles is not None else tlt_beside(tilt_series)
    if not angles_file.exists():
        raise FaketError(f"no tilt angles: {angles_file} does not exist; pass --angles FILE.tlt")
    tilt_angles = read_tlt(angles_file)
    data = read_mrc(tilt_series, mmap=True, ndim=3)
    check_angle_count(tilt_angles, data.data.shape[0], source=str(angles_file))
    options = {
        "thickness": thickness,
        "pre_binning": pre_binning,
        "z_valid": z_valid,
        "post_binning": post_binning,
    }
    shape = reconstruction_shape(data.data.shape, **options)
    voxel_size = data.voxel_size * pre_binning * post_binning
    if voxel_size <= 0:
        raise FaketError(f"{tilt_series} has no pixel size in its header; set it first")
    # The volume goes straight into a memory-mapped work file (bounded memory at any
    # detector size) that becomes the output only when complete.
    writer = MrcStackWriter(output, shape, voxel_size, work_path=temporary_path(output))
    try:
        reconstruct(
            data.data,
            tilt_angles,
            filter_name=filter_name,
            crowther=crowther,
            device=device,
            progress=not quiet,
            out=writer.data,
            scratch_dir=output.parent,
            **options,
        )
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    if not quiet:
        typer.echo(f"wrote {output} {shape}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``reconstruct`` to the ``faket`` command."""
    app.command("reconstruct")(reconstruct_command)

"""``faket noise``: estimate a noise model, apply a noise modality, plot the curves."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np
import typer

from faket.cli._angles import ANGLE_FILES_HELP, tlt_beside
from faket.cli._common import (
    OverwriteOption,
    QuietOption,
    VoxelSizeOption,
    many_values_command,
    require_input,
    require_output,
    resolve_voxel_size,
)
from faket.errors import FaketError
from faket.io import read_angles, read_mrc, tilt_range, write_tlt

noise_app = typer.Typer(
    help="Tilt-dependent noise models (FakET): estimate, apply (BASELINE/NOISY/CONTENT), plot.",
    no_args_is_help=True,
)


class Mode(str, Enum):
    """Noise modalities."""

    baseline = "baseline"
    noisy = "noisy"
    content = "content"


def _parse_box(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise FaketError(f"--box {text!r}: expected four integers x0,y0,x1,y1 (pixels)")
    return values  # type: ignore[return-value]


def _estimation_angles(angles: Path | None, inputs: list[Path], n_tilts: int) -> np.ndarray:
    """Angles from --angles, else from a .tlt beside an input, else -60..60 step 2."""
    sidecars = [p.with_suffix(".tlt") for p in inputs if p.with_suffix(".tlt").is_file()]
    if angles is not None:
        chosen, source = read_angles(require_input(angles)), str(angles)
    elif sidecars:
        chosen, source = read_angles(sidecars[0]), str(sidecars[0])
    else:
        chosen, source = tilt_range(-60.0, 60.0, 2.0), "the default -60..60 step 2"
    if chosen.size != n_tilts:
        raise FaketError(
            f"{source} gives {chosen.size} tilt angles but the tilt series have {n_tilts} "
            "tilts; pass the matching angle file with --angles"
        )
    for sidecar in sidecars:
        other = read_angles(sidecar)
        if other.shape != chosen.shape or not np.allclose(other, chosen, atol=0.01):
            raise FaketError(
                f"tilt angles in {sidecar} differ from {source}; all inputs must share one "
                "tilt scheme"
            )
    return chosen


def _estimation_mask(mask: Path | None, boxes: list[str], style: Path) -> np.ndarray | None:
    if mask is not None and boxes:
        raise FaketError("give either --mask or --box, not both")
    if mask is not None:
        return read_mrc(require_input(mask), ndim=(2, 3)).data != 0
    if boxes:
        from faket.noise import boxes_to_mask

        shape = read_mrc(style, mmap=True, ndim=3).data.shape[1:]
        return boxes_to_mask(shape, [_parse_box(b) for b in boxes])
    return None


@noise_app.command("estimate", cls=many_values_command("--style", "--clean"))
def estimate_command(
    style: list[Path] = typer.Option(
        ..., "--style", help="Style tilt series (MRC/EM), one per training tomogram: --style A B."
    ),
    clean: list[Path] | None = typer.Option(
        None,
        "--clean",
        help="Noiseless tilt series paired with --style by position. Leave out for real "
        "data and select featureless background with --mask/--box instead.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Noise model (JSON)."),
    order: int = typer.Option(
        2, "--order", help="Polynomial order over the tilt index: -1 raw, 0 constant, 2 paper."
    ),
    angles: Path | None = typer.Option(
        None,
        "--angles",
        help=ANGLE_FILES_HELP + " Default: the .tlt beside the inputs, else -60..60 step 2.",
    ),
    mask: Path | None = typer.Option(
        None, "--mask", help="MRC mask (Y X or n_tilts Y X); nonzero pixels are used."
    ),
    box: list[str] | None = typer.Option(
        None, "--box", help="Region x0,y0,x1,y1 in pixels (half-open); repeat for more."
    ),
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Estimate per-tilt noise statistics and aggregate them into a noise model (JSON).

    With --clean, style and noiseless files are paired by position.

    Without --clean (real data), noise is measured on --mask/--box regions
    that must show no specimen structure.
    """
    from faket.noise import estimate_noise_model_files, save_noise_model

    require_output(output, overwrite)
    inputs = [require_input(p) for p in [*style, *(clean or [])]]
    if clean and len(clean) != len(style):
        raise FaketError(
            f"{len(style)} --style files but {len(clean)} --clean files; give one noiseless "
            "file per style file, in the same order"
        )
    region = _estimation_mask(mask, box or [], style[0])
    if not clean and region is None:
        raise FaketError(
            "no --clean files: give the noiseless projections, or select background "
            "regions of the style data with --mask or --box"
        )
    n_tilts = read_mrc(style[0], mmap=True, ndim=3).data.shape[0]
    tilt_angles = _estimation_angles(angles, inputs, n_tilts)
    model = estimate_noise_model_files(
        style, clean or None, tilt_angles, order, mask=region, show_progress=not quiet
    )
    save_noise_model(model, output, overwrite=overwrite)
    if not quiet:
        typer.echo(f"wrote {output} ({model.n_tilts} tilts, {len(style)} tomogram(s))", err=True)


@noise_app.command("apply")
def apply_command(
    noiseless: Path = typer.Argument(..., help="Noiseless tilt series (MRC, n_tilts Y X)."),
    model_path: Path = typer.Option(..., "--model", help="Noise model JSON."),
    mode: Mode = typer.Option(..., "--mode", help="Modality to produce."),
    output: Path = typer.Option(..., "--output", "-o", help="Output tilt series (MRC)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same output)."),
    style: Path | None = typer.Option(
        None, "--style", help="Match per-tilt mean/std to this style tilt series instead."
    ),
    angles: Path | None = typer.Option(
        None,
        "--angles",
        help="Angles of the input (any angle file --angles takes elsewhere), checked "
        "against the model's (default: the .tlt beside the input, if any).",
    ),
    voxel_size: float | None = VoxelSizeOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Add tilt-dependent Gaussian noise (BASELINE / NOISY / CONTENT) to noiseless tilts.

    Works tilt by tilt from a memory map; writes the output and its .tlt file atomically.
    """
    from faket.noise import apply_noise_file, check_angles_match, load_noise_model

    require_input(noiseless)
    require_output(output, overwrite)
    tlt = require_output(tlt_beside(output), overwrite)
    model = load_noise_model(require_input(model_path))
    angle_file = angles if angles is not None else tlt_beside(noiseless)
    if angles is not None or angle_file.is_file():
        check_angles_match(read_angles(require_input(angle_file)), model, str(angle_file))
    header = read_mrc(noiseless, mmap=True, ndim=3).voxel_size
    pixel = resolve_voxel_size(noiseless, header, voxel_size)
    apply_noise_file(
        noiseless,
        model,
        mode.value,
        output,
        seed=seed,
        style_path=require_input(style) if style is not None else None,
        overwrite=overwrite,
        show_progress=not quiet,
        voxel_size=pixel,
    )
    write_tlt(tlt, model.angles_deg)
    if not quiet:
        typer.echo(f"wrote {output} ({mode.value}) and {tlt}", err=True)


@noise_app.command("plot")
def plot_command(
    model_path: Path = typer.Argument(..., help="Noise model JSON."),
    output: Path = typer.Option(..., "--output", "-o", help="Figure (PNG)."),
    overwrite: bool = OverwriteOption,
) -> None:
    """Plot r, sigma, style mean and style std against the tilt angle."""
    from faket.noise import load_noise_model
    from faket.plots.noise_curves import plot_noise_curves

    require_output(output, overwrite)
    plot_noise_curves(load_noise_model(require_input(model_path)), output)


def register(app: typer.Typer) -> None:
    """Add the ``noise`` command group to the ``faket`` command."""
    app.add_typer(noise_app, name="noise")

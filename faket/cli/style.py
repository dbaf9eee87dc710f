"""``faket style``: neural style transfer of a tilt series (the FAKET modality)."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._common import (
    DeviceOption,
    OverwriteOption,
    QuietOption,
    VoxelSizeOption,
    require_input,
    require_output,
    resolve_voxel_size,
)
from faket.io import read_mrc


def style_command(
    content: Path = typer.Argument(..., help="Content tilt series (MRC/EM; FakET: CONTENT)."),
    style: Path = typer.Argument(
        ...,
        help="Style tilt series, tilt i styles tilt i (MRC/EM; FakET: another tomogram's); "
        "resampled to the content's pixel size and cropped or padded to its size.",
    ),
    init: Path = typer.Option(..., "--init", help="Starting tilt series (MRC/EM; FakET: NOISY)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output tilt series (MRC)."),
    weights: str = typer.Option(
        "imagenet", "--weights", help="VGG-19 weights: imagenet, random (seeded), or a PATH."
    ),
    iterations: int = typer.Option(1, "--iterations", help="Adam iterations (paper: 1)."),
    step_size: float = typer.Option(0.15, "--step-size", help="Adam step size (paper: 0.15)."),
    seed: int = typer.Option(0, "--seed", help="Seed of --weights random."),
    tilts: str | None = typer.Option(
        None, "--tilts", help="Tilts to process: START:STOP[:STEP] (half-open), N, or N,M,..."
    ),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="fp32 (full float32), tf32 (NVIDIA), bf16 (fast on GPUs and CPUs with AVX-512 "
        "BF16 or AMX, ~10x slower elsewhere; ~0.05% of pixels step the other way), fp16 "
        "(GPU) or mixed (bf16 where the CPU or GPU has it, else fp32 on CPUs, fp16 on GPUs).",
    ),
    pooling: str = typer.Option("max", "--pooling", help="max (paper), average or l2."),
    content_weight: float = typer.Option(1.0, "--content-weight", help="Paper: 1."),
    style_weight: float = typer.Option(1.0, "--style-weight", help="Paper: 1."),
    tv_weight: float = typer.Option(0.0, "--tv-weight", help="Total variation (paper: 0)."),
    normalization: str = typer.Option(
        "stack", "--normalization", help="Min-max over the whole stack (paper) or per tilt."
    ),
    match_stats: str = typer.Option(
        "style", "--match-stats", help="style: per-tilt mean/std of the style (paper); none."
    ),
    min_scale: int | None = typer.Option(
        None, "--min-scale", help="Multi-scale from this long side up [default: one scale]."
    ),
    channels_last: bool | None = typer.Option(
        None,
        "--channels-last/--no-channels-last",
        help="Faster memory layout [default: on, except on Apple MPS]; "
        "--no-channels-last uses the paper's code's layout (its float32 results to ~1e-5).",
    ),
    style_cache: Path | None = typer.Option(
        None,
        "--style-cache",
        help="Reuse (or create) this file of the style stack's Gram matrices, to style "
        "several tomograms with the same style stack without recomputing them.",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Tilts per step [default: 1 on CPU, by free memory on GPU]."
    ),
    voxel_size: float | None = VoxelSizeOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Stylise a tilt series with VGG-19 features (FakET paper, section 3.2).

    Defaults are the paper's: one Adam step of size 0.15 from --init, content layer 8,
    style layers 1 6 11 20 29, output mean/std per tilt matched to the style. An
    interrupted run continues where it stopped when run again: finished tilts wait in a
    hidden .OUTPUT.partial.mrc beside the output (listed in OUTPUT.progress.json), and the
    output itself appears only when every tilt is done.
    """
    from faket.style import style_transfer_files

    for path in (content, style, init):
        require_input(path)
    # A complete output without --overwrite is an error below, after the partial one (a
    # resumable run) has been looked for.
    require_output(output, overwrite=True)
    header = read_mrc(content, mmap=True, ndim=3).voxel_size
    pixel = resolve_voxel_size(content, header, voxel_size)
    style_transfer_files(
        content,
        style,
        init,
        output,
        weights=weights,
        tilts=tilts,
        device=device,
        seed=seed,
        overwrite=overwrite,
        progress=not quiet,
        batch_size=batch_size,
        iterations=iterations,
        step_size=step_size,
        precision=precision,
        pooling=pooling,
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        normalization=normalization,
        match_stats=match_stats,
        min_scale=min_scale,
        channels_last=channels_last,
        style_cache=style_cache,
        voxel_size=pixel,
    )
    if not quiet:
        typer.echo(f"wrote {output}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``style`` to the ``faket`` command."""
    app.command("style")(style_command)

"""``faket export``: a dataset in the formats other cryo-ET tools read (copick projects)."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._common import OverwriteOption, QuietOption

export_app = typer.Typer(
    help="Write a faket dataset in other tools' formats (copick: needs pip install "
    "'faket[copick]').",
    no_args_is_help=True,
)


def copick_command(
    dataset: Path = typer.Argument(..., help="Dataset folder made by faket run."),
    output: Path = typer.Option(..., "--output", "-o", help="Project folder (created)."),
    user_id: str = typer.Option(
        "faket", "--user-id", help="Owner of the picks and segmentations (copick user id)."
    ),
    session_id: str = typer.Option(
        "0", "--session-id", help="Their session id (copick: 0 = written by a tool)."
    ),
    levels: int = typer.Option(3, "--levels", help="OME-Zarr scales per tomogram (3: 1, 2, 4)."),
    modalities: list[str] | None = typer.Option(
        None, "--modality", "-m", help="Reconstructions to export (repeatable; default: all)."
    ),
    compress: bool = typer.Option(
        False, "--compress", help="Blosc-compress the tomograms too (~8% smaller, slower)."
    ),
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Write a dataset as a copick project (DeepFindET, napari-copick, the CZII tools).

    One run per tomogram, every reconstruction as a tomogram (tomo type = modality,
    OME-Zarr at scales 1/2/4, uncompressed unless --compress), ground-truth picks per
    object (Å, orientations as transforms), the class mask as a multilabel and the
    instance mask as a panoptic segmentation. Open it with
    copick.from_file(OUTPUT/copick_config.json).
    """
    from faket.pipeline.export import export_copick

    summary = export_copick(
        dataset,
        output,
        user_id=user_id,
        session_id=session_id,
        levels=levels,
        modalities=modalities or None,
        compress=compress,
        overwrite=overwrite,
        progress=not quiet,
    )
    typer.echo(
        f"wrote {summary.config}: {len(summary.runs)} runs, {summary.tomograms} tomograms, "
        f"{summary.picks} picks ({summary.seconds:.1f} s)",
        err=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``export`` (``copick``) to the ``faket`` command."""
    export_app.command("copick")(copick_command)
    app.add_typer(export_app, name="export")

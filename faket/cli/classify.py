"""``faket evaluate classify``: the subtomogram-classification judge on one modality."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._common import DeviceOption, OverwriteOption, QuietOption


def classify_command(
    dataset: Path = typer.Argument(..., help="Dataset folder made by faket run."),
    modality: str = typer.Option(
        ..., "--modality", "-m", help="Training data: benchmark, faket, ..."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder (created)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Passes over the boxes (40)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Boxes per step (8)."),
    box_size: int | None = typer.Option(
        None, "--box-size", help="Box side in voxels (default: the largest particle + jitter)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default 0)."),
    preset: str | None = typer.Option(
        None, "--preset", help="Training preset name (paper, small, ...); default settings."
    ),
    settings: Path | None = typer.Option(
        None, "--settings", help="YAML/JSON classifier settings (ClassifyConfig keys)."
    ),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Train a small 3-D CNN to classify subtomograms of one modality; test it on the
    BENCHMARK test tomogram.

    Boxes are cut at the ground-truth particles of the training tomograms (the last one
    validates; the best epoch is kept) plus background boxes away from particles;
    augmentation keeps the missing wedge (180° about the tilt axis Y, shifts). Writes
    best.pt, history.csv, history.png, classify_config.json and test/ (scores.json with
    per-class and macro F1 over particle classes, background F1 separately,
    per_class.csv, confusion_matrix.csv/.png, predictions.csv).
    """
    from faket.cli.evaluate import echo, output_folder, read_settings
    from faket.evaluation.classify import classify_config, classify_on_dataset
    from faket.plots.training import plot_training_history

    options = {"epochs": epochs, "batch_size": batch_size, "box_size": box_size, "seed": seed}
    data = read_settings(settings) | {k: v for k, v in options.items() if v is not None}
    config = classify_config(preset, **(data | {"device": device}))
    output_folder(output, "history.csv", overwrite)
    result, scores, boxes = classify_on_dataset(
        dataset,
        modality,
        config,
        output,
        overwrite=overwrite,
        progress=not quiet,
        log=None if quiet else echo,
    )
    plot_training_history(result.history, output / "history.png")
    if not quiet:
        echo(
            f"best epoch {result.best_epoch}; test F1 macro {scores.f1_macro:.4f} over "
            f"{len(boxes.names)} classes, background F1 {scores.background_f1:.4f}, "
            f"accuracy {scores.accuracy:.4f} ({len(boxes.test)} boxes); wrote {output}"
        )

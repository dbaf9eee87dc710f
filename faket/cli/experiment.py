"""``faket experiment``: the paper's modality comparison with two judges and intervals."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from faket.cli._common import DeviceOption, QuietOption, many_values_command
from faket.cli.evaluate import (
    CONVENTION_HELP,
    Convention,
    EpochsOption,
    PresetOption,
    SettingsOption,
)
from faket.errors import FaketError


class Judge(str, Enum):
    """Which networks judge the training data."""

    deepfinder = "deepfinder"
    classify = "classify"
    both = "both"


def experiment_command(
    dataset: Path = typer.Argument(..., help="Dataset folder made by faket run."),
    output: Path = typer.Option(..., "--output", "-o", help="Results folder (created)."),
    modalities: list[str] = typer.Option(
        ["benchmark", "faket", "noisy", "baseline", "noiseless"],
        "--modalities",
        help="Training modalities (several after one flag).",
    ),
    seeds: int = typer.Option(3, "--seeds", help="Seeds 0..N-1 per modality and judge."),
    judge: Judge = typer.Option(
        Judge.both,
        "--judge",
        help="deepfinder (the paper's picker, SHREC + CZII scores), classify (subtomogram "
        "classifier, minutes) or both.",
    ),
    epochs: int | None = EpochsOption,
    preset: str = PresetOption,
    settings: Path | None = SettingsOption,
    classify_settings: Path | None = typer.Option(
        None, "--classify-settings", help="YAML/JSON classifier settings (ClassifyConfig keys)."
    ),
    convention: Convention | None = typer.Option(
        None,
        "--exclusion-convention",
        help=CONVENTION_HELP + " Default: shrec for the paper/shrec presets, else strict.",
    ),
    replicates: int = typer.Option(
        2000, "--bootstrap", help="Bootstrap replicates of the 95 % intervals."
    ),
    differences: list[str] = typer.Option(
        [],
        "--difference",
        help="Extra paired differences A-B (several allowed); faket-baseline, "
        "faket-benchmark and noisy-baseline are always reported when both were trained.",
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        min=1,
        help="Runs trained at once, in separate processes (default: one per CPU core, "
        "memory allowing, one torch thread each; 1 on a GPU).",
    ),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
) -> None:
    """Train a model per modality, seed and judge; test all on the BENCHMARK test tomogram.

    Every number is reported as mean over seeds [95 % bootstrap interval resampling test
    particles and seeds] ± seed standard deviation, with paired differences between
    modalities, each modality's data cost and realism (spectrum log RMS and histogram W1
    against the BENCHMARK style data, from the dataset's realism.json) and the ranking's
    stability across seeds. Writes table.md, table.json, f1_by_modality.png,
    realism_vs_f1.png, experiment_config.json; DeepFinder
    runs in MODALITY/seed_N/ with table.csv/table.txt, per_class_f1.png,
    validation_curves.png, confusion_MODALITY.png; classifier runs in
    classify/MODALITY/seed_N/. Finished runs are reused, so an interrupted experiment
    resumes.
    """
    from faket.cli.evaluate import echo, read_settings, training_config
    from faket.evaluation.classify import classify_config
    from faket.evaluation.comparison import DEFAULT_DIFFERENCES, parse_difference, run_experiment
    from faket.evaluation.table import table_markdown

    if seeds < 1:
        raise FaketError("--seeds must be at least 1")
    if replicates < 100:
        raise FaketError("--bootstrap must be at least 100 replicates")
    exclusion = {"exclusion_convention": convention.value} if convention else {}
    config = training_config(preset, settings, epochs=epochs, device=device, **exclusion)
    classifier = classify_config(
        preset,
        **({"exclude": config.exclude} | read_settings(classify_settings) | {"device": device}),
    )
    pairs = list(DEFAULT_DIFFERENCES)
    pairs += [p for p in (parse_difference(d) for d in differences) if p not in pairs]
    judges = ("deepfinder", "classify") if judge is Judge.both else (judge.value,)
    summary = run_experiment(
        dataset,
        output,
        modalities,
        seeds,
        config,
        judges=judges,
        classify_settings=classifier,
        differences=pairs,
        replicates=replicates,
        jobs=jobs,
        progress=not quiet,
        log=None if quiet else echo,
    )
    typer.echo(table_markdown(summary), nl=False)


def register(app: typer.Typer) -> None:
    """Add ``experiment``."""
    app.command("experiment", cls=many_values_command("--modalities"))(experiment_command)

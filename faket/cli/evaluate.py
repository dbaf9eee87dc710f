"""``faket evaluate``: SHREC/CZII scoring, DeepFinder training, segmentation, particle
picking (``faket experiment`` lives in :mod:`faket.cli.experiment`, ``evaluate classify``
in :mod:`faket.cli.classify`)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from faket.cli._common import (
    DeviceOption,
    OverwriteOption,
    QuietOption,
    many_values_command,
    require_input,
)
from faket.errors import FaketError

evaluate_app = typer.Typer(
    help="Judge data by what a network learns from it: SHREC 2021 and CZII scores (score), "
    "DeepFinder training (train), subtomogram classification (classify), segmentation "
    "(segment), particle picking (locate, predict).",
    no_args_is_help=True,
)


class Clustering(str, Enum):
    """Mean-shift modes."""

    per_class = "per_class"
    joint = "joint"


class Target(str, Enum):
    """Training targets."""

    spheres = "spheres"
    mask = "mask"


_ManyValues = many_values_command("--exclude", "--modalities")


class Convention(str, Enum):
    """How excluded particles count for localization recall."""

    shrec = "shrec"
    strict = "strict"


CONVENTION_HELP = (
    "How excluded classes count for localization recall. shrec: as the SHREC 2021 script "
    "(and the paper): excluded vesicles stay in the ground-truth count, so recall = found / "
    "(particles + vesicles); other excluded classes leave it. strict: every excluded "
    "particle leaves the count, recall = found / particles. Precision is found / "
    "predictions under both."
)


def echo(message: str) -> None:
    typer.echo(message, err=True)


def output_folder(path: Path, marker: str, overwrite: bool) -> Path:
    """Check an output folder; missing parents are created when results are written."""
    if path.exists() and not path.is_dir():
        raise FaketError(f"{path} is a file; pass a folder")
    existing = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise FaketError(f"cannot write {path}: {existing} is a file, not a folder")
    if (path / marker).exists() and not overwrite:
        raise FaketError(f"{path / marker} already exists; pass --overwrite or another folder")
    return path


RunOption = typer.Option(
    None, "--run", help="Run name, when the truth or the volume is a copick project."
)
VoxelSpacingOption = typer.Option(
    None,
    "--voxel-spacing",
    help="copick voxel spacing (Å) of the coordinates (default: the only one).",
)
TomoTypeOption = typer.Option(
    None, "--tomo-type", help="copick tomogram type, e.g. benchmark or wbp (default: the only one)."
)
UserOption = typer.Option(
    None, "--user-id", help="copick truth: whose picks (default: the only owner)."
)
SessionOption = typer.Option(None, "--session-id", help="copick truth: which session of theirs.")


def is_copick_project(path: Path) -> bool:
    """A copick config file (``.json``) or a folder holding ``copick_config.json``."""
    from faket.io.copick import CONFIG_FILE

    return (path.is_file() and path.suffix.lower() == ".json") or (path / CONFIG_FILE).is_file()


def _copick_run(run: str | None, source: Path) -> str:
    if not run:
        raise FaketError(f"{source} is a copick project; pass --run NAME to choose a run")
    return run


def score_command(
    predictions: Path = typer.Argument(..., help="Predicted particles (.txt SHREC, .csv, .star)."),
    truth: Path = typer.Option(
        ..., "--truth", "-t", help="Ground-truth tomogram folder, or a copick project (with --run)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the scores (created)."),
    exclude: list[str] = typer.Option(
        [], "--exclude", help="Classes left out, e.g. --exclude vesicle (several allowed)."
    ),
    convention: Convention = typer.Option(
        Convention.strict, "--exclusion-convention", help=CONVENTION_HELP
    ),
    run: str | None = RunOption,
    voxel_spacing: float | None = VoxelSpacingOption,
    tomo_type: str | None = TomoTypeOption,
    user_id: str | None = UserOption,
    session_id: str | None = SessionOption,
    figure: bool = typer.Option(True, "--figure/--no-figure", help="Confusion-matrix PNG."),
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Score predicted particles with the SHREC 2021 metrics and the CZII F-beta.

    The truth is a tomogram folder (coordinates in its voxels) or a copick run (coordinates
    in voxels of its voxel spacing, as faket evaluate predict writes them for that run).
    CZII (2024-25 object-identification challenge): F-beta with beta = 4 per class, a pick
    matching an unmatched centre within 0.5 x the class radius (classes.csv radius_A, the
    copick object's radius, or diameter_nm x 5 Å), weighted mean over classes (czii_weight,
    default 1). Writes scores.json, per_class.csv, confusion_matrix.csv,
    confusion_matrix_normalized.csv, matches.csv, report.txt and confusion_matrix.png.
    """
    from faket.evaluation import score, write_scores
    from faket.io import read_particles

    particles = read_particles(require_input(predictions))
    output_folder(output, "scores.json", overwrite)
    if is_copick_project(truth):
        from faket.evaluation.copick import copick_truth

        loaded = copick_truth(
            truth,
            _copick_run(run, truth),
            voxel_size=voxel_spacing,
            tomo_type=tomo_type,
            user_id=user_id,
            session_id=session_id,
        )
        if not quiet:
            echo(
                f"truth: run {run} at {loaded.voxel_size:g} Å, {len(loaded.truth.particles)} "
                f"picks, instances from {loaded.instance_source}"
            )
        truth_data = loaded.truth
    else:
        truth_data = truth
    scores = score(particles, truth_data, exclude=exclude, exclusion_convention=convention.value)
    write_scores(scores, output, overwrite=overwrite, title=predictions.name, figure=figure)
    if not quiet:
        czii = "n/a" if scores.czii_fbeta is None else f"{scores.czii_fbeta:.4f}"
        echo(
            f"localization F1 {scores.localization_f1:.4f} (SHREC, {convention.value} "
            f"exclusions), classification F1 macro {scores.classification_f1_macro:.4f} "
            f"(SHREC {scores.classification_f1_macro_shrec:.4f}), CZII F-beta {czii}; "
            f"wrote {output}"
        )


def read_settings(settings_file: Path | None) -> dict:
    """A YAML/JSON mapping of settings (empty without a file); one-line errors."""
    import yaml

    if settings_file is None:
        return {}
    try:
        data = yaml.safe_load(require_input(settings_file).read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise FaketError(f"cannot read {settings_file} ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise FaketError(f"{settings_file}: expected a mapping of settings")
    return data


def training_config(preset: str, settings_file: Path | None, **options):
    """Training settings: the preset, then the file (JSON/YAML), then the given options."""
    from faket.evaluation import train_config

    data = read_settings(settings_file)
    data |= {k: v for k, v in options.items() if v is not None}
    return train_config(preset, **data)


def _widths(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise FaketError(f"--widths {text!r}: expected three integers such as 32,48,64")
    return values  # type: ignore[return-value]


EpochsOption = typer.Option(None, "--epochs", help="Passes over all particles (paper: 70).")
SeedOption = typer.Option(None, "--seed", help="Random seed (default 0).")
PresetOption = typer.Option(
    "paper",
    "--preset",
    help="Training set-up: paper (= shrec; DeepFinder as in the paper, for a GPU), or a "
    "CPU-sized one named after its dataset preset (small: 2-core CPU, for datasets from "
    "the small dataset preset).",
)
SettingsOption = typer.Option(
    None, "--settings", help="YAML/JSON training settings (keys of the TrainConfig); options win."
)


def train_command(
    dataset: Path = typer.Argument(..., help="Dataset folder made by faket run."),
    modality: str = typer.Option(
        ..., "--modality", "-m", help="Training data: benchmark, faket, ..."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder (created)."),
    epochs: int | None = EpochsOption,
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Patches per step (paper: 8)."
    ),
    patch_size: int | None = typer.Option(
        None, "--patch-size", help="Patch side, multiple of 4 (paper: 48)."
    ),
    widths: str | None = typer.Option(
        None, "--widths", help="Channels per level (paper: 32,48,64)."
    ),
    ce_weight: float | None = typer.Option(
        None, "--ce-weight", help="Weight of cross-entropy added to Dice (paper: 0)."
    ),
    target: Target | None = typer.Option(None, "--target", help="spheres or mask."),
    max_batches: int | None = typer.Option(None, "--max-batches", help="Steps per epoch cap."),
    seed: int | None = SeedOption,
    preset: str = PresetOption,
    settings: Path | None = SettingsOption,
    convention: Convention | None = typer.Option(
        None,
        "--exclusion-convention",
        help=CONVENTION_HELP + " Default: shrec for the paper/shrec presets, else strict.",
    ),
    validation: bool = typer.Option(True, "--validation/--no-validation", help="Validate."),
    test: bool = typer.Option(True, "--test/--no-test", help="Score the test tomogram."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Train DeepFinder on one modality of a dataset, then test on the BENCHMARK test tomogram.

    Writes best.pt, last.pt, history.csv, train_config.json, history.png and test/ (the
    test tomogram's predictions and scores) into the run folder.
    """
    from faket.evaluation.experiment import train_on_dataset
    from faket.plots.training import plot_training_history

    config = training_config(
        preset,
        settings,
        epochs=epochs,
        batch_size=batch_size,
        patch_size=patch_size,
        widths=_widths(widths),
        ce_weight=ce_weight,
        target=target.value if target else None,
        max_batches=max_batches,
        seed=seed,
        device=device,
        exclusion_convention=convention.value if convention else None,
    )
    output_folder(output, "history.csv", overwrite)
    result, scores = train_on_dataset(
        dataset,
        modality,
        config,
        output,
        validation=validation,
        test=test,
        overwrite=overwrite,
        progress=not quiet,
        log=None if quiet else echo,
    )
    loss = f"Dice + {config.ce_weight:g} x cross-entropy" if config.ce_weight > 0 else "Dice"
    plot_training_history(result.history, output / "history.png", loss_name=loss)
    if not quiet:
        tail = (
            ""
            if scores is None
            else (
                f"; test localization F1 {scores.localization_f1:.4f}, classification F1 macro "
                f"(SHREC) {scores.classification_f1_macro_shrec:.4f}"
            )
        )
        echo(f"best epoch {result.best_epoch}{tail}; wrote {output}")


ModelOption = typer.Option(..., "--model", help="Checkpoint (best.pt of a training run).")


def segment_command(
    volume: Path = typer.Argument(..., help="Tomogram (.mrc)."),
    model: Path = ModelOption,
    output: Path = typer.Option(..., "--output", "-o", help="Label volume (.mrc)."),
    margin: int | None = typer.Option(None, "--margin", help="Patch border discarded (P/6)."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Voxel-wise classes of a tomogram by overlapping patches (0 = background)."""
    from faket.cli._common import require_output
    from faket.evaluation import load_model, segment
    from faket.io import read_mrc, write_mrc

    data = read_mrc(require_input(volume), ndim=3)
    require_output(output, overwrite)
    trained = load_model(model)
    labels = segment(
        data.data,
        trained.network,
        patch_size=trained.patch_size,
        margin=margin,
        device=device,
        progress=not quiet,
    )
    write_mrc(output, labels, data.voxel_size, overwrite=overwrite)
    if not quiet:
        echo(
            f"wrote {output}; classes: "
            + ", ".join(f"{k + 1}={n}" for k, n in enumerate(trained.class_names))
        )


def _write_particles(particles, output: Path, overwrite: bool) -> None:
    from faket.cli._common import require_output
    from faket.io import atomic_path, write_particles_star, write_shrec_particles

    require_output(output, overwrite)
    suffix = output.suffix.lower()
    if suffix == ".txt":
        write_shrec_particles(output, particles)
    elif suffix == ".csv":
        with atomic_path(output) as temporary:
            particles.to_csv(temporary, index=False)  # keeps cluster_size
    elif suffix == ".star":
        write_particles_star(output, particles)
    else:
        raise FaketError(f"{output}: use .txt (SHREC), .csv or .star for the particle list")


_STORED = " [default: the model's, as its training validated with]"
ClusterScale = typer.Option(
    None, "--bandwidth-scale", help="Mean-shift bandwidth / class radius." + _STORED
)
SuppressionScale = typer.Option(
    None,
    "--suppression-scale",
    help="Non-maximum suppression radius / target radius (none: the bandwidth)." + _STORED,
)
MinSize = typer.Option(
    None, "--min-size-fraction", help="Min cluster size / class target ball." + _STORED
)
ModeOption = typer.Option(
    None,
    "--clustering",
    help="joint (DeepFinder: all classes, majority vote) or per_class." + _STORED,
)
DatasetFrame = typer.Option(
    None,
    "--dataset",
    help="Dataset folder: convert coordinates to grand-model voxels "
    "with its reconstruction settings (binning, cropping).",
)


def _frame(dataset: Path | None):
    from faket.evaluation.data import dataset_split

    return None if dataset is None else dataset_split(dataset, validation=False).frame


def locate_command(
    labels: Path = typer.Argument(..., help="Label volume from faket evaluate segment (.mrc)."),
    model: Path = ModelOption,
    output: Path = typer.Option(..., "--output", "-o", help="Particle list (.txt, .csv, .star)."),
    bandwidth_scale: float | None = ClusterScale,
    min_size_fraction: float | None = MinSize,
    suppression_scale: float | None = SuppressionScale,
    clustering: Clustering | None = ModeOption,
    dataset: Path | None = DatasetFrame,
    overwrite: bool = OverwriteOption,
) -> None:
    """Particles from a label volume: mean-shift clustering and a cluster-size threshold."""
    from faket.evaluation import load_model, locate
    from faket.io import read_mrc

    found = locate(
        read_mrc(require_input(labels), ndim=3).data,
        load_model(model),
        frame=_frame(dataset),
        bandwidth_scale=bandwidth_scale,
        min_size_fraction=min_size_fraction,
        mode=clustering.value if clustering else None,
        suppression_scale=suppression_scale,
    )
    _write_particles(found, output, overwrite)


def predict_command(
    volume: Path = typer.Argument(..., help="Tomogram (.mrc), or a copick project (with --run)."),
    model: Path = ModelOption,
    output: Path = typer.Option(..., "--output", "-o", help="Particle list (.txt, .csv, .star)."),
    run: str | None = RunOption,
    voxel_spacing: float | None = VoxelSpacingOption,
    tomo_type: str | None = TomoTypeOption,
    bandwidth_scale: float | None = ClusterScale,
    min_size_fraction: float | None = MinSize,
    suppression_scale: float | None = SuppressionScale,
    clustering: Clustering | None = ModeOption,
    dataset: Path | None = DatasetFrame,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Segment a tomogram and pick its particles (segment + locate in one step).

    From a copick run, the coordinates are voxels of the tomogram's voxel spacing: score
    them with faket evaluate score --truth PROJECT --run NAME.
    """
    from faket.evaluation import load_model, predict
    from faket.io import read_mrc

    if is_copick_project(volume):
        from faket.evaluation.copick import copick_volume

        data, size, kind = copick_volume(
            volume, _copick_run(run, volume), tomo_type=tomo_type, voxel_size=voxel_spacing
        )
        if not quiet:
            echo(f"tomogram: run {run}, {kind} at {size:g} Å, shape {data.shape}")
    else:
        data = read_mrc(require_input(volume), ndim=3).data
    trained = load_model(model)
    found = predict(
        data,
        trained,
        frame=_frame(dataset),
        bandwidth_scale=bandwidth_scale,
        min_size_fraction=min_size_fraction,
        mode=clustering.value if clustering else None,
        suppression_scale=suppression_scale,
        device=device,
        progress=not quiet,
    )
    _write_particles(found, output, overwrite)
    if not quiet:
        echo(f"{len(found)} particles; wrote {output}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` (score, train, classify, segment, locate, predict); ``train``,
    ``segment`` and ``locate`` also work at the top level, as issue #8 names them."""
    commands = {
        "score": score_command,
        "train": train_command,
        "segment": segment_command,
        "locate": locate_command,
        "predict": predict_command,
    }
    for name, function in commands.items():
        evaluate_app.command(name, cls=_ManyValues)(function)
    from faket.cli.classify import classify_command

    evaluate_app.command("classify")(classify_command)
    app.add_typer(evaluate_app, name="evaluate")
    for name in ("train", "segment", "locate"):
        app.command(name, hidden=True)(commands[name])

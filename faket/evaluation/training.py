"""Training the DeepFinder network on annotated tomograms (paper section 4.1).

One epoch visits every training particle once, in a random order, as the centre
(plus a random shift) of a cubic patch (:mod:`faket.evaluation.optimisation` has the
patches, losses, step-size schedule and weight averaging); Adam with lr 1e-4 and
β = (0.9, 0.999) in the paper's set-up (:mod:`faket.evaluation.train_config` has the
settings and presets). After each epoch the validation tomogram is segmented,
clustered and scored (SHREC); the epoch with the best validation score is kept.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from faket.device import deterministic_algorithms, reuse_freed_host_memory, select_device
from faket.errors import FaketError
from faket.evaluation.classes import sort_by_size
from faket.evaluation.data import Tomogram
from faket.evaluation.inference import normalize, predict
from faket.evaluation.network import (
    DeepFinder,
    TrainedModel,
    place_network,
    save_model,
)
from faket.evaluation.optimisation import (
    PatchSampler,
    WeightAverage,
    learning_rate_scheduler,
    pad_to_patch,
    steps_per_epoch,
    training_loss,
)
from faket.evaluation.scoring import Scores, score
from faket.evaluation.targets import class_radii, tomogram_targets
from faket.evaluation.train_config import (
    METRICS,
    PAPER_PRESETS,
    PRESET_REASONS,
    PRESETS,
    TrainConfig,
    default_exclusion_convention,
    train_config,
)
from faket.io import atomic_path, write_text_atomic
from faket.precision import resolve_network_precision
from faket.progress import progress as progress_bar

#: Re-exported for code written when the settings lived here.
__all__ = [
    "METRICS",
    "PAPER_PRESETS",
    "PRESETS",
    "PRESET_REASONS",
    "RUN_FILES",
    "TrainConfig",
    "TrainResult",
    "clustering_settings",
    "default_exclusion_convention",
    "predict_and_score",
    "prepare",
    "resolve_classes",
    "train",
    "train_config",
]

RUN_FILES = {
    "best": "best.pt",
    "last": "last.pt",
    "history": "history.csv",
    "config": "train_config.json",
}


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    model : TrainedModel
        Weights of the best epoch (the last one without validation).
    history : DataFrame
        One row per epoch: ``epoch, train_loss, train_seconds, seconds`` (training,
        training + validation), ``learning_rate`` (of the epoch's last step) and
        validation scores ``val_*``.
    best_epoch : int
        1-based.
    best_scores : Scores or None
        Validation scores of the best epoch.
    run_dir : Path or None
    """

    model: TrainedModel
    history: pd.DataFrame
    best_epoch: int
    best_scores: Scores | None
    run_dir: Path | None


def resolve_classes(train: Sequence[Tomogram], config: TrainConfig) -> list[str]:
    """The trained classes: ``config.classes`` or all classes of the training particles,
    ordered by size (class table of the first tomogram)."""
    present = sorted({str(n) for t in train for n in t.particles["class_name"]})
    if config.classes is None:
        return sort_by_size(present, train[0].classes)
    missing = [n for n in config.classes if n not in present]
    if missing:
        raise FaketError(
            f"class {missing[0]!r} has no training particles; choose from {', '.join(present)}"
        )
    return list(config.classes)


def prepare(train: Sequence[Tomogram], config: TrainConfig):
    """Normalised volumes, target labels, sample list, class names and radii."""
    if not train:
        raise FaketError("no training tomograms given")
    names = resolve_classes(train, config)
    first = train[0]
    voxel_size = first.voxel_size
    radii = class_radii(
        names, first.classes, voxel_size, scale=config.sphere_scale, overrides=config.radii
    )
    volumes, labels, samples = [], [], []
    for index, tomogram in enumerate(train):
        target = tomogram_targets(tomogram, names, radii, kind=config.target)
        volumes.append(pad_to_patch(normalize(tomogram.volume), config.patch_size))
        labels.append(pad_to_patch(target, config.patch_size))
        chosen = tomogram.particles["class_name"].isin(names).to_numpy()
        samples += [(index, c) for c in tomogram.centres()[chosen]]
    if not samples:
        raise FaketError("the training tomograms have no particles of the chosen classes")
    return volumes, labels, samples, names, radii


def clustering_settings(config: TrainConfig) -> dict:
    """The particle-picking settings a model is validated and tested with; stored in its
    checkpoint so that ``evaluate predict``/``locate`` reproduce what training reports."""
    return {
        "mode": config.clustering,
        "bandwidth_scale": config.bandwidth_scale,
        "min_size_fraction": config.min_size_fraction,
        "suppression_scale": config.suppression_scale,
    }


def predict_and_score(
    model: TrainedModel,
    tomogram: Tomogram,
    config: TrainConfig,
    device: str | torch.device = "auto",
    *,
    progress: bool = False,
    quiet: bool = False,
) -> tuple[pd.DataFrame, Scores]:
    """Segment, cluster and score an annotated tomogram (SHREC semantics).

    Parameters
    ----------
    model : trained network.
    tomogram : volume with ground truth (validation or test).
    config : clustering settings and the classes to exclude.
    device, progress : compute device, progress bar.
    quiet : silence the warning about failed segmentations (early epochs).

    Returns
    -------
    predictions : DataFrame
        In the ground truth's voxels, largest clusters first.
    scores : Scores
    """
    if tomogram.truth is None:
        raise FaketError(f"tomogram {tomogram.name!r} has no ground truth to score against")
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", RuntimeWarning)
        particles = predict(
            tomogram.volume,
            model,
            frame=tomogram.frame,
            bandwidth_scale=config.bandwidth_scale,
            min_size_fraction=config.min_size_fraction,
            mode=config.clustering,
            suppression_scale=config.suppression_scale,
            patch_size=config.inference_patch_size,
            device=device,
            progress=progress,
        )
    scores = score(
        particles,
        tomogram.truth,
        exclude=config.exclude,
        exclusion_convention=config.exclusion_convention,
    )
    return particles, scores


def _check_run_dir(run_dir: Path | None, overwrite: bool) -> Path | None:
    if run_dir is None:
        return None
    folder = Path(run_dir)
    if not folder.parent.is_dir():
        raise FaketError(f"cannot write {folder}: folder {folder.parent} does not exist")
    if folder.exists() and not folder.is_dir():
        raise FaketError(f"{folder} is a file; pass a folder for the training run")
    taken = [name for name in RUN_FILES.values() if (folder / name).exists()]
    if taken and not overwrite:
        raise FaketError(f"{folder / taken[0]} already exists; pass --overwrite or another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _new_network(n_classes: int, config: TrainConfig) -> DeepFinder:
    # Seed the initial weights without touching the caller's global torch RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return DeepFinder(n_classes, config.widths, config.batch_norm, config.precision)


def train(
    train_tomograms: Sequence[Tomogram],
    validation: Tomogram | None = None,
    config: TrainConfig | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a DeepFinder network; pick the epoch with the best validation score.

    Parameters
    ----------
    train_tomograms : annotated training tomograms (volume + particles, optional masks).
    validation : tomogram with ground truth scored after every epoch (optional).
    config : settings (default :class:`TrainConfig`).
    run_dir : folder for ``best.pt``, ``last.pt``, ``history.csv`` and
        ``train_config.json`` (optional; written atomically after every epoch).
    overwrite : replace the files of an earlier run in ``run_dir``.
    progress : progress bars (stderr).
    log : called with a one-line summary after every epoch.

    Returns
    -------
    TrainResult
    """
    config = config or TrainConfig()
    folder = _check_run_dir(Path(run_dir) if run_dir is not None else None, overwrite)
    device = select_device(config.device)
    volumes, labels, samples, names, radii = prepare(train_tomograms, config)
    rng = np.random.default_rng(
        config.seed if config.sampling_seed is None else config.sampling_seed
    )
    sampler = PatchSampler(
        volumes,
        labels,
        samples,
        config.patch_size,
        config.jitter,
        config.rotate,
        rng,
        config.rotation_axes,
    )
    network = place_network(_new_network(len(names) + 1, config), device)
    optimizer = torch.optim.Adam(
        network.parameters(), lr=config.learning_rate, betas=tuple(config.betas)
    )
    total_steps = config.epochs * steps_per_epoch(len(samples), config)
    scheduler = learning_rate_scheduler(
        optimizer, total_steps, config.warmup_steps, config.lr_schedule
    )
    average = None
    if config.average_from is not None:
        average = WeightAverage(network, round(config.average_from * total_steps))
    model = TrainedModel(
        network,
        names,
        radii,
        config.patch_size,
        train_tomograms[0].voxel_size,
        clustering=clustering_settings(config),
    )
    if folder is not None:
        write_text_atomic(folder / RUN_FILES["config"], config.model_dump_json(indent=2) + "\n")
    # What "mixed" became on this device: part of the run's provenance (bf16 and float32
    # runs of one seed differ).
    precision = resolve_network_precision(config.precision, device)
    provenance = {"seed": config.seed, "precision": precision}
    if config.sampling_seed is not None:
        provenance["sampling_seed"] = config.sampling_seed
    rows: list[dict] = []
    best: tuple[float, int, Scores | None, dict] = (-math.inf, 0, None, {})
    for epoch in range(1, config.epochs + 1):
        # Freed host memory reused: ~5% faster steps on a CPU; same bits every run on CUDA.
        with reuse_freed_host_memory(device.type == "cpu"), deterministic_algorithms(device):
            row, scores = _epoch(
                epoch,
                network,
                scheduler,
                sampler,
                model,
                average,
                validation,
                config,
                device,
                progress,
            )
        value = _selection_value(scores, config, validation is not None, epoch)
        improved = value > best[0]
        if improved:
            state = {k: v.detach().clone() for k, v in model.network.state_dict().items()}
            best = (value, epoch, scores, state)
        rows.append(row | {"best": improved})
        model.info = {**provenance, **row}
        if folder is not None:
            _save_epoch(folder, model, rows, improved)
        if log is not None:
            log(_summary(row, config.select_on))
    model.network.load_state_dict(best[3])
    model.info = {**provenance, **rows[best[1] - 1]}
    model.info.pop("best", None)
    return TrainResult(model, pd.DataFrame(rows), best[1], best[2], folder)


def _epoch(
    epoch, network, scheduler, sampler, model, average, validation, config, device, progress
):
    """Train one epoch, validate when due; the history row and the validation scores.

    ``model.network`` becomes the weights tested: the running average once it has
    begun, else the trained network."""
    started = time.perf_counter()
    loss, learning_rate = _train_epoch(
        network, scheduler, sampler, config, device, epoch, progress, average
    )
    model.network = average.tested(network) if average is not None else network
    row: dict = {"epoch": epoch, "train_loss": loss, "train_seconds": time.perf_counter() - started}
    row["learning_rate"] = learning_rate
    scores = None
    if validation is not None and (epoch % config.validate_every == 0 or epoch == config.epochs):
        scores = predict_and_score(model, validation, config, device, quiet=True)[1]
        row |= {f"val_{m}": getattr(scores, m) for m in METRICS}
        row["val_n_predictions"] = scores.counts["n_predictions"]
    row["seconds"] = time.perf_counter() - started
    return row, scores


def _selection_value(scores, config: TrainConfig, validating: bool, epoch: int) -> float:
    """Score that ranks epochs: the validation score, or the epoch number when there is
    no validation (so the last epoch wins); unvalidated epochs never win."""
    if scores is not None:
        return float(getattr(scores, config.select_on))
    return -math.inf if validating else float(epoch)


def _train_epoch(
    network, scheduler, sampler, config, device, epoch: int, progress: bool, average=None
):
    """One epoch's gradient steps: the mean loss and the learning rate of the last step.

    ``scheduler`` is the step-size schedule; its optimiser makes the steps; ``average``
    (a :class:`WeightAverage`, optional) takes in the weights after every step."""
    optimizer = scheduler.optimizer
    network.train()
    total, count, learning_rate = 0.0, 0, optimizer.param_groups[0]["lr"]
    batches = sampler.epoch(config.batch_size, config.max_batches)
    for indices in progress_bar(batches, f"epoch {epoch}", total=len(batches), enabled=progress):
        images, targets = sampler.batch(indices)
        logits = network(torch.from_numpy(images).to(device))
        loss = training_loss(logits, torch.from_numpy(targets).to(device), config.ce_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learning_rate = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        if average is not None:
            average.update(network, scheduler.last_epoch)
        total += float(loss.detach()) * len(indices)
        count += len(indices)
    return total / max(count, 1), learning_rate


def _save_epoch(folder: Path, model: TrainedModel, rows: list[dict], improved: bool) -> None:
    save_model(model, folder / RUN_FILES["last"])
    if improved:
        save_model(model, folder / RUN_FILES["best"])
    with atomic_path(folder / RUN_FILES["history"]) as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False)


def _summary(row: dict, select_on: str) -> str:
    text = f"epoch {row['epoch']}: loss {row['train_loss']:.4f}"
    if f"val_{select_on}" in row:
        text += (
            f", validation localization F1 {row['val_localization_f1']:.3f}, "
            f"classification F1 macro {row['val_classification_f1_macro']:.3f}"
        )
    return text + f" ({row['seconds']:.1f} s)"

"""Training the DeepFinder network on annotated tomograms (paper section 4.1).

One epoch visits every training particle once, in a random order, as the centre
(plus a random shift) of a cubic patch; each patch is rotated by 180° about the tilt
axis (Y) with probability 1/2, which keeps the missing wedge where it was. The loss is
the soft Dice loss over all classes (DeepFinder's Tversky loss with α = β = 0.5),
optionally plus weighted cross-entropy; Adam with lr 1e-4 and β = (0.9, 0.999). After
each epoch the validation tomogram is segmented, clustered and scored (SHREC); the
epoch with the best validation score is kept.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faket.device import deterministic_algorithms, reuse_freed_host_memory, select_device
from faket.errors import FaketError
from faket.evaluation.classes import sort_by_size
from faket.evaluation.data import Tomogram
from faket.evaluation.inference import normalize, predict
from faket.evaluation.network import (
    DEEPFINDER_WIDTHS,
    SIZE_MULTIPLE,
    DeepFinder,
    TrainedModel,
    place_network,
    save_model,
)
from faket.evaluation.scoring import Scores, score
from faket.evaluation.targets import class_radii, tomogram_targets
from faket.io import atomic_path, write_text_atomic
from faket.precision import resolve_network_precision
from faket.progress import progress as progress_bar

METRICS = ("localization_f1", "classification_f1_macro", "classification_f1_macro_shrec")
RUN_FILES = {
    "best": "best.pt",
    "last": "last.pt",
    "history": "history.csv",
    "config": "train_config.json",
}


class TrainConfig(BaseModel):
    """Settings of one training run (defaults: the paper's DeepFinder set-up, sized for a
    GPU; :data:`PRESETS` holds a CPU-sized alternative)."""

    model_config = ConfigDict(extra="forbid")

    classes: list[str] | None = Field(
        None, description="Classes to learn; default every class of the training particles."
    )
    exclude: list[str] = Field(
        ["vesicle"], description="Classes left out of validation scoring (SHREC: vesicle)."
    )
    exclusion_convention: Literal["shrec", "strict"] = Field(
        "shrec",
        description="Excluded vesicles stay in the localization recall denominator (shrec, "
        "the SHREC 2021 script and the paper) or leave it (strict). train_config: shrec for "
        "the paper/shrec presets, strict for the others.",
    )
    epochs: int = Field(70, ge=1, description="Passes over all training particles (paper: 70).")
    batch_size: int = Field(8, ge=1, description="Patches per gradient step.")
    patch_size: int = Field(48, ge=SIZE_MULTIPLE, description="Patch side (multiple of 4).")
    widths: tuple[int, int, int] = Field(DEEPFINDER_WIDTHS, description="Channels per level.")
    batch_norm: bool = Field(
        False, description="Batch normalisation after each convolution (not in DeepFinder)."
    )
    precision: Literal["fp32", "bf16", "mixed"] = Field(
        "fp32",
        description="Network arithmetic: float32, bfloat16 autocast, or mixed (bf16 where "
        "the CPU/GPU has it natively, else float32). Weights and loss stay float32.",
    )
    learning_rate: float = Field(1e-4, gt=0, description="Adam step size.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam decay rates.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="Step size over the run: constant (the paper) or cosine decay from "
        "learning_rate to 0 at the last step, after the warm-up.",
    )
    warmup_steps: int = Field(
        0, ge=0, description="Gradient steps of linear warm-up from 0 to learning_rate."
    )
    jitter: int = Field(6, ge=0, description="Random shift of patch centres (voxels).")
    rotate: bool = Field(True, description="Random 180° rotations about the tilt axis.")
    ce_weight: float = Field(0.0, ge=0, description="Weight of cross-entropy added to Dice.")
    target: Literal["spheres", "mask"] = Field("spheres", description="Target label volumes.")
    sphere_scale: float = Field(1.0, gt=0, description="Sphere radius / particle radius.")
    radii: dict[str, float] = Field({}, description="Per-class sphere radius overrides (voxels).")
    select_on: Literal[METRICS] = Field(  # type: ignore[valid-type]
        "classification_f1_macro", description="Validation score that picks the best epoch."
    )
    clustering: Literal["per_class", "joint"] = Field(
        "per_class",
        description="Mean-shift per class + suppression (per_class) or all classes (joint).",
    )
    bandwidth_scale: float = Field(1.0, gt=0, description="Mean-shift bandwidth / class radius.")
    suppression_scale: float | None = Field(
        None,
        gt=0,
        description="Non-maximum suppression radius / target radius (per_class picking); "
        "null = the bandwidth. With sphere_scale s, 1/s suppresses within the particle radius.",
    )
    min_size_fraction: float = Field(
        0.1, ge=0, description="Minimum cluster size as a fraction of the class's target ball."
    )
    max_batches: int | None = Field(None, ge=1, description="Cap on gradient steps per epoch.")
    validate_every: int = Field(
        1, ge=1, description="Validate every N epochs (and after the last); paper: 1."
    )
    inference_patch_size: int | None = Field(
        None,
        ge=SIZE_MULTIPLE,
        description="Patch side for validation/test segmentation "
        "(default: the training patch, at least 64).",
    )
    seed: int = Field(0, ge=0, description="Seed of weights, sampling and augmentation.")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N, mps.")

    def model_post_init(self, _context) -> None:
        if self.patch_size % SIZE_MULTIPLE:
            raise ValueError(f"patch_size must be a multiple of {SIZE_MULTIPLE}")


#: Named training set-ups. ``paper``/``shrec``: the paper's DeepFinder settings (GPU, for
#: datasets from ``faket config init --preset shrec``). ``small``: for the ``small`` dataset
#: preset on a 2-core CPU: narrower network, 24-voxel training patches (inference still
#: uses 64), Adam step 3e-3 and cross-entropy added to the Dice loss (Dice alone learns
#: too slowly on a CPU budget); 120 epochs, because at 30 no modality had converged (class
#: F1 0.04-0.15 against 0.49-0.63 at 120: issue 14), validated every 10.
#: ``cpu``: for the ``cpu`` dataset preset (six CZII classes, 480 particles per 96 x 320 x
#: 320 tomogram), sized so that 5 modalities x 3 seeds x 2 judges fit in about an hour on
#: 2 cores; :data:`PRESET_REASONS` says why each value is what it is (``faket config
#: init --preset cpu`` prints it), benchmarks/README.md has the measurements.
PRESETS: dict[str, dict] = {
    "paper": {},
    "shrec": {},
    "small": {
        "epochs": 120,
        "patch_size": 24,
        "widths": (16, 16, 16),
        "batch_size": 8,
        "learning_rate": 3e-3,
        "ce_weight": 1.0,
        "validate_every": 10,
    },
    "cpu": {
        "epochs": 25,
        "max_batches": 90,
        "patch_size": 24,
        "widths": (16, 16, 16),
        "batch_norm": True,
        "precision": "mixed",
        "batch_size": 8,
        "learning_rate": 3e-3,
        "ce_weight": 1.0,
        "validate_every": 13,
        "sphere_scale": 0.5,
        "suppression_scale": 2.0,
        "lr_schedule": "cosine",
        "warmup_steps": 50,
        "exclude": ["vesicle", "fiducial"],
    },
}


#: Why a training preset's values are what they are (``faket config init --preset cpu``
#: prints them below the dataset config; the measurements are in benchmarks/README.md).
PRESET_REASONS: dict[str, dict[str, str]] = {
    "cpu": {
        "epochs": "25 epochs of at most 90 steps = 2250 steps: at 900 steps one seed in "
        "three had not learned three of the six classes, at 1350 with batch norm one "
        "seed in three still merged beta-galactosidase with thyroglobulin (BENCHMARK "
        "class F1 0.78 against 0.98); at 2250 both seeds tried split them (0.98, 0.98).",
        "max_batches": "90 steps per epoch: training is capped in steps, not particles, "
        "so more training tomograms cost generation time only.",
        "patch_size": "24-voxel training patches (inference uses 64): 48 would cost ~8x per "
        "step, and the jittered patches still see each particle with context.",
        "widths": "16 channels per level (DeepFinder: 32/48/64): ~4x fewer operations "
        "per step, and BENCHMARK still reaches class F1 0.98 on the six classes.",
        "batch_norm": "every seed learns the small classes (without it one seed in three "
        "of NOISY and BASELINE never learned apo-ferritin).",
        "precision": "mixed: bf16 autocast where the CPU has AVX-512 BF16 or AMX (a "
        "batch-norm step then costs ~0.7x a float32 step without it), else float32.",
        "learning_rate": "Adam 3e-3 with cross-entropy added to Dice (ce_weight): Dice "
        "alone at the paper's 1e-4 learns too slowly for a CPU budget.",
        "lr_schedule": "cosine decay after 50 warm-up steps: every seed ends in a minimum "
        "(constant step: BENCHMARK seeds 0.80, 0.65, 0.64; cosine: 0.90, 0.89, 0.90).",
        "validate_every": "validated at epochs 13 and 25: each validation segments a "
        "whole tomogram; the best of the two is tested.",
        "sphere_scale": "target balls of half the particle radius: full-radius balls of "
        "crowded particles merge into clusters that mean shift splits badly.",
        "suppression_scale": "2 (with half-radius balls): picks closer than a particle "
        "radius are the same particle.",
        "exclude": "vesicles and fiducials are trained on, not scored (the CZII challenge "
        "scores its six proteins; four test fiducials made one class a coin toss).",
    },
}


def train_config(preset: str = "paper", **settings) -> TrainConfig:
    """A validated :class:`TrainConfig`: a preset of :data:`PRESETS` updated by ``settings``.

    Bad settings raise a one-line FaketError.
    """
    if preset not in PRESETS:
        raise FaketError(f"unknown training preset {preset!r}; choose from {', '.join(PRESETS)}")
    convention = {"exclusion_convention": default_exclusion_convention(preset)}
    try:
        return TrainConfig(**(convention | PRESETS[preset] | settings))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise FaketError(f"training setting {where}: {first['msg']}") from None


def default_exclusion_convention(preset: str) -> str:
    """``shrec`` for the presets that reproduce the paper (``paper``, ``shrec``), else
    ``strict``."""
    return "shrec" if preset in PAPER_PRESETS else "strict"


#: Presets that reproduce the paper's set-up, and so its scoring convention.
PAPER_PRESETS = ("paper", "shrec")


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


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice loss averaged over classes.

    Parameters
    ----------
    logits : tensor, shape (B, C, Z, Y, X)
    target : tensor, shape (B, Z, Y, X), int labels in 0..C-1

    Returns
    -------
    tensor, scalar
        ``1 - mean_c (2 Σ p g + eps) / (Σ p + Σ g + eps)`` over batch and voxels; a
        class absent from the batch contributes ~1 until its probabilities vanish.
    """
    probabilities = torch.softmax(logits, dim=1)
    truth = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1).to(probabilities.dtype)
    dims = (0, 2, 3, 4)
    overlap = (probabilities * truth).sum(dims)
    total = probabilities.sum(dims) + truth.sum(dims)
    return 1.0 - ((2.0 * overlap + eps) / (total + eps)).mean()


def _loss(logits, target, ce_weight: float) -> torch.Tensor:
    loss = dice_loss(logits, target)
    if ce_weight > 0:
        # Cross-entropy as log-softmax and gather: CUDA's NLL loss has no deterministic
        # kernel, and this equals F.cross_entropy up to float rounding.
        picked = torch.log_softmax(logits, dim=1).gather(1, target.long().unsqueeze(1))
        loss = loss - ce_weight * picked.mean()
    return loss


class PatchSampler:
    """Particle-centred training patches with jitter and 180° rotations about Y."""

    def __init__(self, volumes, labels, samples, patch: int, jitter: int, rotate: bool, rng):
        self.volumes, self.labels, self.samples = volumes, labels, samples
        self.patch, self.jitter, self.rotate, self.rng = patch, jitter, rotate, rng

    def epoch(self, batch_size: int, max_batches: int | None) -> list[np.ndarray]:
        """Indices of the samples of each batch of one epoch (random order)."""
        order = self.rng.permutation(len(self.samples))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        return batches[:max_batches] if max_batches else batches

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, 1, P, P, P)`` float32 patches and ``(B, P, P, P)`` int64 labels."""
        images, targets = [], []
        for index in indices:
            tomo, centre = self.samples[index]
            volume, labels = self.volumes[tomo], self.labels[tomo]
            shift = self.rng.integers(-self.jitter, self.jitter + 1, size=3)
            start = np.clip(np.rint(centre).astype(int) + shift - self.patch // 2, 0, None)
            start = np.minimum(start, np.array(volume.shape) - self.patch)
            box = tuple(slice(s, s + self.patch) for s in start)
            image, target = volume[box], labels[box]
            if self.rotate and self.rng.random() < 0.5:
                image, target = image[::-1, :, ::-1], target[::-1, :, ::-1]  # 180° about Y
            images.append(image)
            targets.append(target)
        return np.stack(images)[:, None].copy(), np.stack(targets).astype(np.int64)


def _pad(volume: np.ndarray, patch: int) -> np.ndarray:
    shape = tuple(max(s, patch) for s in volume.shape)
    if shape == volume.shape:
        return volume
    out = np.zeros(shape, dtype=volume.dtype)
    out[tuple(slice(0, s) for s in volume.shape)] = volume
    return out


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
        volumes.append(_pad(normalize(tomogram.volume), config.patch_size))
        labels.append(_pad(target, config.patch_size))
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
    rng = np.random.default_rng(config.seed)
    sampler = PatchSampler(
        volumes, labels, samples, config.patch_size, config.jitter, config.rotate, rng
    )
    network = place_network(_new_network(len(names) + 1, config), device)
    optimizer = torch.optim.Adam(
        network.parameters(), lr=config.learning_rate, betas=tuple(config.betas)
    )
    total_steps = config.epochs * steps_per_epoch(len(samples), config)
    scheduler = learning_rate_scheduler(
        optimizer, total_steps, config.warmup_steps, config.lr_schedule
    )
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
                validation,
                config,
                device,
                progress,
            )
        value = _selection_value(scores, config, validation is not None, epoch)
        improved = value > best[0]
        if improved:
            state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            best = (value, epoch, scores, state)
        rows.append(row | {"best": improved})
        model.info = {**provenance, **row}
        if folder is not None:
            _save_epoch(folder, model, rows, improved)
        if log is not None:
            log(_summary(row, config.select_on))
    network.load_state_dict(best[3])
    model.info = {**provenance, **rows[best[1] - 1]}
    model.info.pop("best", None)
    return TrainResult(model, pd.DataFrame(rows), best[1], best[2], folder)


def _epoch(epoch, network, scheduler, sampler, model, validation, config, device, progress):
    """Train one epoch, validate when due; the history row and the validation scores."""
    started = time.perf_counter()
    loss, learning_rate = _train_epoch(network, scheduler, sampler, config, device, epoch, progress)
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


def _train_epoch(network, scheduler, sampler, config, device, epoch: int, progress: bool):
    """One epoch's gradient steps: the mean loss and the learning rate of the last step.

    ``scheduler`` is the step-size schedule; its optimiser makes the steps."""
    optimizer = scheduler.optimizer
    network.train()
    total, count, learning_rate = 0.0, 0, optimizer.param_groups[0]["lr"]
    batches = sampler.epoch(config.batch_size, config.max_batches)
    for indices in progress_bar(batches, f"epoch {epoch}", total=len(batches), enabled=progress):
        images, targets = sampler.batch(indices)
        logits = network(torch.from_numpy(images).to(device))
        loss = _loss(logits, torch.from_numpy(targets).to(device), config.ce_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learning_rate = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        total += float(loss.detach()) * len(indices)
        count += len(indices)
    return total / max(count, 1), learning_rate


def steps_per_epoch(n_samples: int, config: TrainConfig) -> int:
    """Gradient steps of one epoch: one per batch of ``n_samples`` training particles,
    at most ``config.max_batches``."""
    batches = math.ceil(n_samples / config.batch_size)
    return min(batches, config.max_batches) if config.max_batches else batches


def learning_rate_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate before gradient step ``step`` (0-based).

    Parameters
    ----------
    step : steps taken so far.
    total_steps : steps of the whole run.
    warmup_steps : linear warm-up: factor ``(step + 1) / (warmup_steps + 1)`` first.
    schedule : ``constant`` (1 after the warm-up) or ``cosine``
        (``(1 + cos(pi t)) / 2`` with ``t`` the fraction of the post-warm-up steps taken,
        so the last step is small and the run ends in a minimum rather than bouncing
        around one, which makes runs with different seeds end alike).

    Returns
    -------
    float in (0, 1].
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    decaying = max(total_steps - warmup_steps, 1)
    fraction = min((step - warmup_steps) / decaying, 1.0)
    # Never exactly 0: the last step still moves, and Adam's state stays meaningful.
    return max(0.5 * (1.0 + math.cos(math.pi * fraction)), 1e-3)


def learning_rate_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, schedule: str
) -> torch.optim.lr_scheduler.LambdaLR:
    """The step-size schedule of :func:`learning_rate_factor`; step it after every
    ``optimizer.step()``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, warmup_steps, schedule)
    )


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

"""Settings of a DeepFinder training run, and the named set-ups (presets).

:class:`TrainConfig` holds every setting of :func:`faket.evaluation.training.train`;
:data:`PRESETS` names the paper's set-up and the CPU-sized ones, and
:data:`PRESET_REASONS` says why the ``cpu`` preset's values are what they are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faket.errors import FaketError
from faket.evaluation.network import DEEPFINDER_WIDTHS, SIZE_MULTIPLE

#: Validation scores an epoch can be selected on.
METRICS = ("localization_f1", "classification_f1_macro", "classification_f1_macro_shrec")


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
    rotate: bool = Field(True, description="Random 180° rotations of the patches.")
    rotation_axes: Literal["y", "xyz"] = Field(
        "y",
        description="Axes of the random 180° rotations: y (the tilt axis, DeepFinder) or xyz "
        "(about Z, Y or X, or none, each with probability 1/4). Every one keeps the missing "
        "wedge where it was and none mirrors a particle.",
    )
    average_from: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Test the running mean of the weights (and batch-norm statistics) of "
        "every step after this fraction of the run (stochastic weight averaging), not the "
        "last step's; null = the last step's.",
    )
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
    sampling_seed: int | None = Field(
        None,
        ge=0,
        description="Seed of patch sampling and augmentation alone, so that the initial "
        "weights (seed) and the patch order can be varied apart; null = seed.",
    )
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
        "precision": "mixed: bf16 autocast where it beats float32 (Intel with AMX, AMD "
        "with AVX-512 BF16: a batch-norm step then costs ~0.7x a float32 step without "
        "it), else float32 (bf16 without AMX on a Xeon was 1.2-1.4x slower).",
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

"""Tilt-dependent Gaussian noise: the BASELINE, NOISY and CONTENT modalities.

Each noiseless tilt is standardized, multiplied by ``r``, Gaussian noise of std ``sigma``
is added, and the result is shifted and scaled to the target mean and std of that tilt
(the model's style statistics, or those of a given style stack). The modes differ only in
``r`` and ``sigma``:

``baseline``
    The order-0 model (paper sec. 3.1): one global ``r`` and ``sigma``, the mean over tilts
    of the model's curves (equal to the order-0 fit of the raw curves, since a
    least-squares polynomial fit keeps the mean). The target mean/std stay tilt-dependent,
    as in the paper, to model the attenuation that grows with the tilt angle.
``noisy``
    The model's tilt-dependent curves (order 2 by default, paper sec. 3.2).
``content``
    ``noisy`` with 0.25 x ``sigma``: the content image of the FAKET style transfer.

Noise is drawn tilt by tilt from a generator seeded by ``(seed, tilt index)``, so the
result does not depend on how the stack is processed, and ``noisy`` and ``content`` with
the same seed share the same noise realisation (as in the paper, "the same noise, 1/4 of
the std").
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from faket.errors import FaketError
from faket.noise.model import NoiseModel
from faket.progress import progress

__all__ = [
    "CONTENT_NOISE_FACTOR",
    "MODES",
    "apply_noise",
    "match_tilt",
    "noise_parameters",
    "noisy_tilts",
    "style_statistics",
    "synthesize_tilt",
    "tilt_generator",
]

MODES = ("baseline", "noisy", "content")
CONTENT_NOISE_FACTOR = 0.25


def noise_parameters(model: NoiseModel, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-tilt ``r`` and ``sigma`` of a modality.

    Parameters
    ----------
    model : NoiseModel
    mode : {"baseline", "noisy", "content"}

    Returns
    -------
    r, sigma : arrays, shape (n_tilts,), unitless
    """
    if mode not in MODES:
        raise FaketError(f"unknown noise mode {mode!r}; choose one of {', '.join(MODES)}")
    r, sigma = model.r, model.sigma
    if np.any(r < 0):  # a model saved before r was clipped when fitted
        warnings.warn(
            f"the noise model's r is negative at {int(np.sum(r < 0))} tilt(s), which would "
            "invert the signal there; using 0 instead",
            RuntimeWarning,
            stacklevel=2,
        )
        r = np.clip(r, 0.0, None)
    if mode == "baseline":
        return np.full_like(r, r.mean()), np.full_like(sigma, sigma.mean())
    if mode == "content":
        return r.copy(), sigma * CONTENT_NOISE_FACTOR
    return r.copy(), sigma.copy()


def tilt_generator(seed: int, tilt_index: int) -> np.random.Generator:
    """The random generator of one tilt: independent per tilt, fixed by (seed, index)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise FaketError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), int(tilt_index)])


def _standardized(tilt: np.ndarray) -> np.ndarray:
    values = np.asarray(tilt, dtype=np.float32)
    mean = values.mean(dtype=np.float64)
    std = values.std(dtype=np.float64)
    if std == 0:
        # A blank noiseless tilt has no signal to scale; it becomes pure noise.
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - np.float32(mean)) * np.float32(1.0 / std)).astype(np.float32, copy=False)


def synthesize_tilt(
    clean: np.ndarray, r: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """``r * standardize(clean) + sigma * N(0, 1)``, before matching mean and std.

    Parameters
    ----------
    clean : array, shape (Y, X)
    r, sigma : float
    rng : numpy Generator

    Returns
    -------
    array, shape (Y, X), float32
    """
    noisy = _standardized(clean)
    noisy *= np.float32(r)
    noise = rng.standard_normal(noisy.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    noisy += noise
    return noisy


def match_tilt(image: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Shift and scale ``image`` (Y, X) to the given mean and population std (float32)."""
    values = np.asarray(image, dtype=np.float32)
    current_mean = values.mean(dtype=np.float64)
    current_std = values.std(dtype=np.float64)
    if current_std == 0:
        return np.full(values.shape, mean, dtype=np.float32)
    scale = std / current_std
    # float64 scalars with a float32 array keep the array float32 (NEP 50).
    return (values * np.float32(scale) + np.float32(mean - current_mean * scale)).astype(
        np.float32, copy=False
    )


def style_statistics(style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-tilt mean and population std of a tilt series (n_tilts, Y, X), tilt by tilt."""
    if np.ndim(style) != 3:
        raise FaketError(f"the style stack must be (n_tilts, Y, X), got shape {np.shape(style)}")
    means = np.empty(style.shape[0])
    stds = np.empty(style.shape[0])
    for i in range(style.shape[0]):
        tilt = np.asarray(style[i], dtype=np.float64)
        means[i], stds[i] = tilt.mean(), tilt.std()
    return means, stds


def noisy_tilts(
    clean_stack: np.ndarray,
    model: NoiseModel,
    mode: str,
    seed: int,
    *,
    target: tuple[np.ndarray, np.ndarray] | None = None,
    show_progress: bool = False,
) -> Iterator[np.ndarray]:
    """Yield the output tilts one by one (float32, (Y, X)); memory maps stay on disk.

    Parameters
    ----------
    clean_stack : array, shape (n_tilts, Y, X)
        Noiseless tilt series; the tilt count must match the model.
    model : NoiseModel
    mode : {"baseline", "noisy", "content"}
    seed : int
        Non-negative seed; equal seeds give equal outputs.
    target : (means, stds), optional
        Per-tilt target statistics instead of the model's style mean/std.
    show_progress : bool
    """
    if np.ndim(clean_stack) != 3:
        raise FaketError(
            f"the noiseless input must be a tilt series (n_tilts, Y, X), "
            f"got shape {np.shape(clean_stack)}"
        )
    n_tilts = clean_stack.shape[0]
    if n_tilts != model.n_tilts:
        raise FaketError(
            f"the noiseless tilt series has {n_tilts} tilts but the noise model has "
            f"{model.n_tilts}; estimate a model with the same tilt scheme"
        )
    r, sigma = noise_parameters(model, mode)
    means, stds = target if target is not None else (model.style_mean, model.style_std)
    if len(means) != n_tilts or len(stds) != n_tilts:
        raise FaketError(
            f"the style stack has {len(means)} tilts but the noiseless one has {n_tilts}"
        )
    tilt_generator(seed, 0)  # validate the seed before any work
    for i in progress(range(n_tilts), f"adding {mode} noise", enabled=show_progress):
        image = synthesize_tilt(clean_stack[i], r[i], sigma[i], tilt_generator(seed, i))
        yield match_tilt(image, means[i], stds[i])


def apply_noise(
    clean_stack: np.ndarray,
    model: NoiseModel,
    mode: str,
    seed: int,
    *,
    style_stack: np.ndarray | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Make a BASELINE / NOISY / CONTENT tilt series from a noiseless one.

    Parameters
    ----------
    clean_stack : array, shape (n_tilts, Y, X)
        Noiseless projections (e.g. from :func:`faket.tomography.project`).
    model : NoiseModel
    mode : {"baseline", "noisy", "content"}
    seed : int
        Non-negative seed; equal seeds give identical outputs.
    style_stack : array, shape (n_tilts, Y', X'), optional
        Match each tilt's mean/std to this stack instead of the model's style statistics.
    show_progress : bool

    Returns
    -------
    array, shape (n_tilts, Y, X), float32
        Per tilt, the mean and population std equal the target's.
    """
    target = style_statistics(style_stack) if style_stack is not None else None
    out = np.empty(np.shape(clean_stack), dtype=np.float32)
    tilts = noisy_tilts(clean_stack, model, mode, seed, target=target, show_progress=show_progress)
    for i, tilt in enumerate(tilts):
        out[i] = tilt
    return out

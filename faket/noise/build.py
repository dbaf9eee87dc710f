"""Noise models from several training tomograms: estimate per tomogram, then aggregate."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from faket.errors import FaketError
from faket.noise.estimate import estimate_curves, estimate_curves_from_background
from faket.noise.model import NoiseModel
from faket.noise.radial import radial_bins, stack_radial
from faket.noise.spectrum import spectrum_size, stack_spectra

__all__ = ["estimate_noise_model", "estimate_noise_model_from_background"]

MaskArg = np.ndarray | Sequence[np.ndarray | None] | None


def estimate_noise_model(
    style_stacks: Sequence[np.ndarray],
    clean_stacks: Sequence[np.ndarray],
    angles_deg: Sequence[float] | np.ndarray,
    order: int = 2,
    *,
    masks: MaskArg = None,
    provenance: dict[str, Any] | None = None,
    show_progress: bool = False,
    spectrum: bool = True,
    radial: bool = False,
) -> NoiseModel:
    """Estimate per-tilt noise statistics of each (style, noiseless) pair and aggregate them.

    Parameters
    ----------
    style_stacks : sequence of arrays, each (n_tilts, Y, X)
        Style (reference) tilt series, one per training tomogram (memory maps are fine).
    clean_stacks : sequence of arrays, each (n_tilts, Y, X)
        The noiseless tilt series with the same content, paired by position.
    angles_deg : array, shape (n_tilts,)
        Tilt angles in degrees, shared by all stacks.
    order : int
        Aggregation polynomial order: -1 raw, 0 constant, 2 the paper's NOISY.
    masks : array or sequence of arrays, optional
        Region(s) to estimate on: one (Y, X) / (n_tilts, Y, X) mask for every pair, or
        one per pair (None = whole tilt).
    provenance : dict, optional
        Extra facts to record (e.g. file names); time, version and method are added.
    show_progress : bool
        Draw progress bars.
    spectrum : bool
        Also estimate the 2-D power spectrum of the residual noise ``z_s - r z_c``
        (:mod:`faket.noise.spectrum`; needed by the ``spectral`` modality).
    radial : bool
        With ``spectrum``, also the style tilts' radial power spectrum (for SPECTRAL's
        optional radial matching, :mod:`faket.noise.radial`).

    Returns
    -------
    NoiseModel
    """
    if len(style_stacks) != len(clean_stacks):
        raise FaketError(
            f"{len(style_stacks)} style stacks but {len(clean_stacks)} clean stacks; "
            "give one noiseless tilt series per style tilt series, in the same order"
        )
    angles = _check_inputs(style_stacks, angles_deg)
    per_pair = _per_pair(masks, len(style_stacks))
    raw, spectra = [], []
    for k, (style, clean) in enumerate(zip(style_stacks, clean_stacks, strict=True)):
        try:
            raw.append(estimate_curves(style, clean, mask=per_pair[k], show_progress=show_progress))
        except FaketError as err:
            raise FaketError(f"pair {k + 1}: {err}") from None
    if spectrum:  # after the curves, which check every input
        size = _common_size(style_stacks, per_pair)
        for k, (style, clean) in enumerate(zip(style_stacks, clean_stacks, strict=True)):
            try:
                curves = raw[k]
                spectra.append(
                    stack_spectra(
                        style,
                        clean=clean,
                        r=curves.r,
                        mask=per_pair[k],
                        size=size,
                        style_std=curves.style_std,
                    )
                )
            except FaketError as err:
                raise FaketError(f"pair {k + 1}: {err}") from None
    method = "paired" if masks is None else "paired-region"
    radials = _radials(style_stacks) if spectrum and radial else None
    provenance = _provenance(method, provenance)
    return NoiseModel.from_curves(raw, angles, order, provenance, spectra, radials)


def estimate_noise_model_from_background(
    style_stacks: Sequence[np.ndarray],
    masks: np.ndarray | Sequence[np.ndarray],
    angles_deg: Sequence[float] | np.ndarray,
    order: int = 2,
    *,
    provenance: dict[str, Any] | None = None,
    show_progress: bool = False,
    spectrum: bool = True,
    radial: bool = False,
) -> NoiseModel:
    """Noise model of real style data without noiseless content, from background regions.

    See :func:`faket.noise.estimate.estimate_curves_from_background` for the assumption
    (the selected regions hold no specimen structure).

    Parameters
    ----------
    style_stacks : sequence of arrays, each (n_tilts, Y, X)
    masks : array or sequence of arrays
        One (Y, X) / (n_tilts, Y, X) background mask for all stacks, or one per stack.
    angles_deg : array, shape (n_tilts,)
    order : int
        Aggregation polynomial order.
    provenance : dict, optional
    show_progress : bool
    spectrum : bool
        Also estimate the 2-D power spectrum of the background (the noise).
    radial : bool
        With ``spectrum``, also the whole style tilts' radial power spectrum.

    Returns
    -------
    NoiseModel
    """
    angles = _check_inputs(style_stacks, angles_deg)
    per_stack = _per_pair(masks, len(style_stacks))
    raw, spectra = [], []
    for k, style in enumerate(style_stacks):
        if per_stack[k] is None:
            raise FaketError(f"style stack {k + 1} has no background region; give a mask")
        try:
            raw.append(
                estimate_curves_from_background(style, per_stack[k], show_progress=show_progress)
            )
        except FaketError as err:
            raise FaketError(f"style stack {k + 1}: {err}") from None
    if spectrum:
        size = _common_size(style_stacks, per_stack)
        for k, style in enumerate(style_stacks):
            try:
                spectra.append(stack_spectra(style, mask=per_stack[k], size=size))
            except FaketError as err:
                raise FaketError(f"style stack {k + 1}: {err}") from None
    provenance = _provenance("background", provenance)
    radials = _radials(style_stacks) if spectrum and radial else None
    return NoiseModel.from_curves(raw, angles, order, provenance, spectra, radials)


def _radials(stacks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Radial spectra of every style stack, on the rings of the smallest tilts."""
    n_bins = min(radial_bins(s.shape[1:]) for s in stacks)
    return [stack_radial(s, n_bins) for s in stacks]


def _common_size(stacks: Sequence[np.ndarray], masks: list[np.ndarray | None]) -> int:
    """One spectrum tile size that fits every stack (and its mask)."""
    try:
        return min(spectrum_size(s.shape[1:], m) for s, m in zip(stacks, masks, strict=True))
    except FaketError as err:
        raise FaketError(f"noise spectrum: {err}") from None


def _check_inputs(style_stacks: Sequence[np.ndarray], angles_deg: Any) -> np.ndarray:
    if len(style_stacks) == 0:
        raise FaketError("no style tilt series given; pass at least one")
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    for k, stack in enumerate(style_stacks):
        if np.ndim(stack) != 3:
            raise FaketError(
                f"style stack {k + 1} must be a tilt series (n_tilts, Y, X), "
                f"got shape {np.shape(stack)}"
            )
        if stack.shape[0] != angles.size:
            raise FaketError(
                f"style stack {k + 1} has {stack.shape[0]} tilts but {angles.size} tilt angles "
                "were given; pass the angle file that belongs to the data"
            )
    return angles


def _per_pair(masks: MaskArg, n: int) -> list[np.ndarray | None]:
    if masks is None or isinstance(masks, np.ndarray):
        return [masks] * n
    masks = list(masks)
    if len(masks) != n:
        raise FaketError(f"{len(masks)} masks for {n} tilt series; give one mask or one each")
    return masks


def _provenance(method: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    from faket import __version__

    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {"created": created, "faket_version": __version__, "method": method, **(extra or {})}

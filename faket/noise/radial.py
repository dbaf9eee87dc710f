"""Radial power-spectrum matching, as SHREC 2021's simulator did (optional for SPECTRAL).

The style tilts' rotationally averaged power spectrum (of the whole standardised tilt:
signal and noise) is measured per tilt on rings of width ``0.5 / n_bins`` cycles per
pixel, out to the corners (``0.5 sqrt 2``), and fitted over the tilts like the noise
spectrum (:mod:`faket.noise.spectrum`). :func:`match_radial` then rescales a synthesized
tilt's Fourier amplitudes ring by ring (one gain per ring; the zero frequency untouched)
so that its radial spectrum has the style's shape. This corrects what coloured noise
cannot: a phantom whose own spectrum differs from the style specimen's, and sharp
features (a filter's cut-off) finer than the noise spectrum's tiles.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["match_radial", "radial_bins", "radial_profile", "stack_radial"]


def radial_bins(shape: tuple[int, int]) -> int:
    """Rings of width about ``1 / min(shape)`` cycles per pixel, out to the corners."""
    return int(np.ceil(np.sqrt(2) * max(min(shape) // 2, 2)))


def _ring_index(shape: tuple[int, int], n_bins: int) -> np.ndarray:
    """Ring of every ``rfft2`` coefficient: ``n_bins`` equal rings over 0 .. 0.5 sqrt 2."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    width = 0.5 * np.sqrt(2) / n_bins
    return np.minimum(np.floor(np.hypot(fy, fx) / width).astype(int), n_bins - 1)


def radial_profile(image: np.ndarray, n_bins: int) -> np.ndarray:
    """Mean ``|FFT|²`` of the zero-mean ``image`` over ``n_bins`` rings (mean 1 from ring 1).

    Rings have equal widths from 0 to the corners (``0.5 sqrt 2`` cycles per pixel).
    """
    values = np.asarray(image, dtype=np.float32)
    values = values - np.float32(values.mean(dtype=np.float64))
    power = np.abs(scipy.fft.rfft2(values)) ** 2
    index = _ring_index(values.shape, n_bins).ravel()
    sums = np.bincount(index, weights=power.ravel(), minlength=n_bins)
    profile = sums / np.maximum(np.bincount(index, minlength=n_bins), 1)
    return profile / max(profile[1:].mean(), 1e-300)


def stack_radial(style: np.ndarray, n_bins: int | None = None) -> np.ndarray:
    """:func:`radial_profile` of every tilt of ``style`` ``(n_tilts, Y, X)``, tilt by tilt."""
    n_bins = n_bins or radial_bins(style.shape[1:])
    return np.stack([radial_profile(style[i], n_bins) for i in range(style.shape[0])])


def match_radial(image: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rescale ``image``'s Fourier amplitudes so its radial spectrum has ``target``'s shape.

    Parameters
    ----------
    image : array, shape (Y, X)
    target : array, shape (n_bins,)
        A radial profile (:func:`radial_profile` layout) of any scale.

    Returns
    -------
    np.ndarray, shape (Y, X), float32
        The same mean; every ring of frequencies scaled by ``sqrt(target / current)``.
    """
    values = np.asarray(image, dtype=np.float32)
    n_bins = len(target)
    current = radial_profile(values, n_bins)
    target = np.asarray(target, dtype=np.float64) / max(target[1:].mean(), 1e-300)
    gain = np.sqrt(np.where(current > 0, target / np.maximum(current, 1e-300), 1.0))
    per_pixel = gain.astype(np.float32)[_ring_index(values.shape, n_bins)]
    per_pixel[0, 0] = 1.0  # the mean stays
    mean = np.float32(values.mean(dtype=np.float64))
    spectrum = scipy.fft.rfft2(values - mean)
    spectrum *= per_pixel
    return scipy.fft.irfft2(spectrum, s=values.shape, overwrite_x=True) + mean

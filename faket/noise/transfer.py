"""FAKET without a feature network: a per-tilt transfer function and its residual noise.

The paper's noise model relates a style tilt ``s`` to its noiseless counterpart ``c`` by
one number per tilt, the correlation ``r`` (:mod:`faket.noise.estimate`). A microscope
does more than scale: its contrast transfer function flips and damps frequency bands
(the Thon rings), ice, detector and motion blur the rest, and the noise left over is
coloured. The ``transfer`` style measures all of that per spatial frequency from the
same (benchmark, noiseless) pairs the noise model is estimated from:

- **Estimation** (:func:`estimate_transfer`): for every tilt, Welch tiles of every pair
  (half-overlapping, Hann-tapered, means removed; :mod:`faket.noise.spectrum`) give the
  least-squares linear filter from ``c`` to ``s``, ``H(k) = sum S C* / sum |C|^2``
  pooled over tiles and tomograms, and the power spectrum of the residual ``S - H C``.
  ``H`` is complex: it keeps the sign of each CTF band, which a power-spectrum match
  (the ``spectral`` modality) cannot.
- **Application** (:func:`apply_transfer`): ``irfft2(H rfft2(c))`` on the image's own
  frequency grid (``H`` interpolated from the tile grid), plus Gaussian noise with the
  residual's spectrum and level, then each tilt's mean and std set to its style tilt's,
  as the NST step leaves them.

Style statistics without deep features are one of the directions the FAKET-offline
issue names; this one needs nothing downloaded, costs two FFTs per tilt, and is
selected with ``nst.weights: transfer`` (the ``auto`` choice when ImageNet weights are
not cached).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft

from faket.errors import FaketError
from faket.noise.spectrum import (
    MAX_SIZE,
    coloured_noise,
    cut_tiles,
    full_plane_mean,
    smooth_frequencies,
    tile_origins,
    tiles_fft,
    to_image_grid,
)

__all__ = [
    "TransferModel",
    "apply_transfer",
    "estimate_transfer",
    "load_transfer_model",
    "save_transfer_model",
    "transfer_tile_size",
]


@dataclass(frozen=True, eq=False)
class TransferModel:
    """A per-tilt linear transfer function and residual noise spectrum.

    Attributes
    ----------
    transfer : complex array, shape (n_tilts, G, G // 2 + 1)
        ``H`` on the ``rfft2`` grid of a ``G x G`` tile (cycles per pixel); maps the
        noiseless projection's Fourier coefficients onto the style's.
    noise_power : float array, shape (n_tilts, G, G // 2 + 1)
        Power of the residual per coefficient, per pixel of image: its mean over the
        full frequency plane is the residual's variance (style units squared).
    tomograms : int
        Number of (style, noiseless) pairs it was estimated from.
    """

    transfer: np.ndarray
    noise_power: np.ndarray
    tomograms: int = 1

    def __post_init__(self) -> None:
        transfer = np.asarray(self.transfer, dtype=np.complex64)
        power = np.asarray(self.noise_power, dtype=np.float32)
        if transfer.ndim != 3 or transfer.shape[2] != transfer.shape[1] // 2 + 1:
            raise FaketError(f"transfer function of shape {transfer.shape} is not a tile grid")
        if power.shape != transfer.shape:
            raise FaketError(
                f"noise power of shape {power.shape} does not match the transfer function's "
                f"{transfer.shape}"
            )
        if not (np.all(np.isfinite(transfer)) and np.all(np.isfinite(power))):
            raise FaketError("the transfer model contains NaN or infinite values")
        if np.any(power < 0):
            raise FaketError("the transfer model's noise power is negative")
        object.__setattr__(self, "transfer", transfer)
        object.__setattr__(self, "noise_power", power)

    @property
    def n_tilts(self) -> int:
        """Number of tilts."""
        return int(self.transfer.shape[0])

    @property
    def size(self) -> int:
        """Tile size G (pixels)."""
        return int(self.transfer.shape[1])

    def noise_variance(self, index: int) -> float:
        """Variance of the residual noise at tilt ``index`` (style units squared)."""
        return float(full_plane_mean(self.noise_power[index].astype(np.float64), self.size))


def transfer_tile_size(shape: tuple[int, int]) -> int:
    """Tile size for tilts of ``shape``: even, half the image, 16 to 128 pixels.

    Larger tiles resolve finer Thon rings (held out, 128-pixel tiles predicted the style
    better than 64-pixel ones); the estimate pools its tiles over every tomogram.
    """
    size = min(MAX_SIZE, min(shape) // 2) // 2 * 2
    if size < 16:
        raise FaketError(
            f"tilts of {shape[0]} x {shape[1]} pixels are too small for a transfer function "
            "(32 pixels at least)"
        )
    return size


def _check_pairs(style_stacks: Sequence[np.ndarray], clean_stacks: Sequence[np.ndarray]):
    if len(style_stacks) == 0 or len(style_stacks) != len(clean_stacks):
        raise FaketError(
            f"a transfer function needs (style, noiseless) pairs: got {len(style_stacks)} "
            f"style and {len(clean_stacks)} noiseless tilt series"
        )
    first = np.shape(style_stacks[0])
    for style, clean in zip(style_stacks, clean_stacks, strict=True):
        if np.ndim(style) != 3 or np.shape(style) != np.shape(clean):
            raise FaketError(
                f"style tilt series of shape {np.shape(style)} does not match its noiseless "
                f"counterpart's {np.shape(clean)}"
            )
        if np.shape(style)[0] != first[0]:
            raise FaketError(
                f"tilt series with {np.shape(style)[0]} and {first[0]} tilts: a transfer "
                "function is estimated per tilt, so every pair needs the same tilts"
            )
    return first


def estimate_transfer(
    style_stacks: Sequence[np.ndarray],
    clean_stacks: Sequence[np.ndarray],
    size: int | None = None,
) -> TransferModel:
    """Estimate the per-tilt transfer function and residual spectrum from pairs.

    Parameters
    ----------
    style_stacks : list of arrays, each (n_tilts, Y, X)
        Style tilt series (e.g. BENCHMARK projections); memory maps are read tilt by tilt.
    clean_stacks : list of arrays, each (n_tilts, Y, X)
        Their noiseless counterparts, in the same order.
    size : int, optional
        Tile size in pixels; default :func:`transfer_tile_size`.

    Returns
    -------
    TransferModel

    Raises
    ------
    FaketError
        For no pairs, mismatched shapes or tilt counts, non-finite values, or a
        noiseless tilt without structure.
    """
    n_tilts, *shape = _check_pairs(style_stacks, clean_stacks)
    size = size or transfer_tile_size(tuple(shape))
    origins = tile_origins(size, tuple(shape))
    transfer = np.empty((n_tilts, size, size // 2 + 1), np.complex128)
    noise_power = np.empty((n_tilts, size, size // 2 + 1))
    for i in range(n_tilts):
        spectra = [
            (tiles_fft(cut_tiles(s[i], origins, size)), tiles_fft(cut_tiles(c[i], origins, size)))
            for s, c in zip(style_stacks, clean_stacks, strict=True)
        ]
        if not all(np.all(np.isfinite(a)) for pair in spectra for a in pair):
            raise FaketError(f"tilt {i} contains NaN or infinite values")
        cross = smooth_frequencies(sum((S * np.conj(C)).sum(axis=0) for S, C in spectra))
        power = smooth_frequencies(sum((np.abs(C) ** 2).sum(axis=0) for _, C in spectra))
        if not power.max() > 0:
            raise FaketError(f"noiseless tilt {i} is constant: no transfer function to measure")
        # Frequencies the noiseless data never reach carry no signal: H = 0 there.
        H = np.where(power > 1e-9 * power.max(), cross / np.maximum(power, 1e-300), 0)
        H[0, 0] = 0  # the mean is set from the style, not transferred
        n_tiles = sum(len(S) for S, _ in spectra)
        residual = sum((np.abs(S - H * C) ** 2).sum(axis=0) for S, C in spectra)
        # Unit-power window: E|FFT(w n)|^2 = G^2 var per coefficient for white noise.
        noise_power[i] = smooth_frequencies(residual) / (n_tiles * size * size)
        transfer[i] = H
    return TransferModel(transfer, noise_power, len(style_stacks))


def apply_transfer(
    clean: np.ndarray,
    model: TransferModel,
    seed: int,
    style_mean: np.ndarray,
    style_std: np.ndarray,
) -> np.ndarray:
    """Filter each noiseless tilt by ``H``, add the residual noise, match the style's moments.

    Parameters
    ----------
    clean : array, shape (n_tilts, Y, X)
        Noiseless projections (any size; ``H`` is interpolated to it).
    model : TransferModel
    seed : int
        Seed of the noise (one generator for the whole tilt series).
    style_mean, style_std : arrays, shape (n_tilts,)
        Per-tilt mean and std of the style tilt series the output should match.

    Returns
    -------
    np.ndarray, shape (n_tilts, Y, X), float32
    """
    n_tilts, n_y, n_x = np.shape(clean)
    style_mean, style_std = np.ravel(style_mean), np.ravel(style_std)
    if n_tilts != model.n_tilts or len(style_mean) != n_tilts or len(style_std) != n_tilts:
        raise FaketError(
            f"the transfer model has {model.n_tilts} tilts, the tilt series {n_tilts} and the "
            f"style {len(style_mean)}: estimate the model on the same tilt scheme"
        )
    if not (np.all(np.isfinite(style_mean)) and np.all(np.isfinite(style_std))):
        raise FaketError("the style statistics contain NaN or infinite values")
    rng = np.random.default_rng(seed)
    out = np.empty((n_tilts, n_y, n_x), np.float32)
    for i in range(n_tilts):
        tilt = np.asarray(clean[i], dtype=np.float32)
        if not np.all(np.isfinite(tilt)):
            raise FaketError(f"noiseless tilt {i} contains NaN or infinite values")
        H = to_image_grid(model.transfer[i], (n_y, n_x))
        signal = scipy.fft.irfft2(scipy.fft.rfft2(tilt - tilt.mean()) * H, s=(n_y, n_x))
        image = signal
        variance = model.noise_variance(i)
        if variance > 0:
            noise = coloured_noise((n_y, n_x), model.noise_power[i], rng)
            image = signal + np.float32(np.sqrt(variance)) * noise
        std = float(image.std())
        scale = style_std[i] / std if std > 0 else 0.0
        out[i] = (image - image.mean()) * scale + style_mean[i]
    return out


def save_transfer_model(model: TransferModel, path: str | os.PathLike[str]) -> None:
    """Write ``model`` as a ``.npz`` file, atomically."""
    from faket.io import atomic_path

    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(
            handle,
            transfer=model.transfer,
            noise_power=model.noise_power,
            tomograms=np.int64(model.tomograms),
        )


def load_transfer_model(path: str | os.PathLike[str]) -> TransferModel:
    """Read a model written by :func:`save_transfer_model`; bad files raise FaketError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return TransferModel(data["transfer"], data["noise_power"], int(data["tomograms"]))
    except FileNotFoundError:
        raise FaketError(f"no transfer model at {path}") from None
    except (KeyError, ValueError, OSError) as err:
        raise FaketError(f"{path} is not a transfer model ({err})") from None

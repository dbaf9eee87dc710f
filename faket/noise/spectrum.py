"""The 2-D power spectrum of the style data's noise, and Gaussian noise drawn with it.

Real tilt series are never white: detector, motion correction, interpolation, binning and
filters colour (and often stretch) their noise. For each style tilt the *noise* is
measured, its 2-D power spectrum estimated and smoothed over frequency, and the spectra are
fitted over the tilt index like ``r`` and ``sigma`` (:mod:`faket.noise.model`):

- with a noiseless counterpart, the noise is the residual ``z_s - r z_c`` of the
  standardized tilts (:mod:`faket.noise.estimate`);
- for real data without one, it is the style tilt inside the background mask or boxes
  (assumed to show no specimen structure).

Estimation (:func:`tilt_spectrum`): Welch's method on square tiles of ``size`` pixels
(half-overlapping, Hann-tapered, their mean removed; tiles must lie wholly inside the
mask; at most :data:`MAX_TILES`, evenly spread), then a 3 x 3 binomial smoothing over
frequency.
The spectrum lives on the tile's ``(size, size // 2 + 1)`` ``rfft2`` grid of frequencies
in cycles per pixel and is normalised to mean 1 over the full frequency plane: it is the
*shape* of the noise power, the level stays ``sigma``. Aggregation
(:func:`fit_log_spectra`): the log10 spectrum of every frequency bin is fitted by a
polynomial of the tilt index (order -1 keeps the raw spectra) and the fits are averaged
over tomograms (a geometric mean), the way the paper aggregates ``r`` and ``sigma``.

Drawing (:func:`coloured_noise`): complex Gaussian Fourier coefficients on the image's
``rfft2`` grid, scaled by the square root of the spectrum interpolated (bilinearly,
periodic in Y) to that grid, one inverse FFT: zero-mean noise with unit variance and the
model's spectral shape, for any image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.ndimage import correlate1d

from faket.errors import FaketError

__all__ = [
    "MAX_SIZE",
    "MAX_TILES",
    "NoiseSpectrum",
    "coloured_noise",
    "fit_log_spectra",
    "cut_tiles",
    "spectrum_size",
    "stack_spectra",
    "tile_origins",
    "tiles_spectrum",
    "smooth_frequencies",
    "tile_window",
    "tiles_fft",
    "tilt_spectrum",
    "to_image_grid",
]

#: Largest tile (pixels): frequency resolution 1/128 cycles per pixel.
MAX_SIZE = 128
#: Most tiles averaged per tilt (evenly spread over the candidates).
MAX_TILES = 32


def spectrum_size(shape: tuple[int, int], mask: np.ndarray | None = None) -> int:
    """Tile size for tilts of ``shape``: even, at most :data:`MAX_SIZE`, a quarter of the
    image (at least 16 pixels, if the image allows): ~50 tiles per tilt where possible.

    With a ``mask`` ((Y, X) or (n, Y, X)), the size is halved until every tilt has a tile
    wholly inside its mask.
    """
    size = min(MAX_SIZE, max(min(shape) // 4, min(16, min(shape) // 2))) // 2 * 2
    if size < 8:
        raise FaketError(
            f"tilts of {shape[0]} x {shape[1]} pixels are too small for a noise spectrum "
            "(16 pixels at least)"
        )
    if mask is None:
        return size
    masks = np.asarray(mask, dtype=bool).reshape(-1, *shape)
    while size >= 8:
        if all(_tile_origins(m, size).size for m in masks):
            return size
        size //= 2
    raise FaketError(
        "the background regions are too small for a noise spectrum: every tilt needs a "
        "square of 8 x 8 selected pixels at least"
    )


def _tile_origins(mask: np.ndarray | None, size: int, shape=None) -> np.ndarray:
    """``(n, 2)`` top-left corners of half-overlapping tiles (wholly inside ``mask``)."""
    n_y, n_x = mask.shape if mask is not None else shape
    step = max(size // 2, 1)
    ys = np.arange(0, n_y - size + 1, step)
    xs = np.arange(0, n_x - size + 1, step)
    origins = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    if mask is None:
        return origins
    # Summed-area table: a tile is usable when all of its pixels are selected.
    table = np.pad(np.cumsum(np.cumsum(mask, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))
    y, x = origins[:, 0], origins[:, 1]
    inside = table[y + size, x + size] - table[y, x + size] - table[y + size, x] + table[y, x]
    return origins[inside == size * size]


def _spread(origins: np.ndarray, count: int) -> np.ndarray:
    if len(origins) <= count:
        return origins
    return origins[np.linspace(0, len(origins) - 1, count).round().astype(int)]


def tile_window(size: int) -> np.ndarray:
    """Hann taper of a ``size x size`` tile, scaled to unit mean power."""
    taper = np.hanning(size + 2)[1:-1]  # no zero weights at the tile's edges
    window = np.outer(taper, taper).astype(np.float32)
    return window / np.sqrt(np.mean(window**2))  # unit power: white noise stays at 1


def full_plane_mean(half: np.ndarray, n_x: int) -> np.ndarray:
    """Mean over the full frequency plane of ``rfft2``-layout arrays (last two axes)."""
    weights = np.full(half.shape[-1], 2.0)
    weights[0] = 1.0
    if n_x % 2 == 0:
        weights[-1] = 1.0
    return (half * weights).sum(axis=(-2, -1)) / (half.shape[-2] * n_x)


def tile_origins(size: int, shape: tuple[int, int], mask: np.ndarray | None = None):
    """Corners ``(n, 2)`` of the tiles a spectrum is measured on (see the module docstring)."""
    origins = _spread(_tile_origins(mask, size, shape), MAX_TILES)
    if len(origins) == 0:
        raise FaketError(f"no {size} x {size} tile fits inside the selected region")
    return origins


def cut_tiles(image: np.ndarray, origins: np.ndarray, size: int) -> np.ndarray:
    """The ``(n, size, size)`` float32 tiles of ``image`` at ``origins``."""
    rows = origins[:, :1, None] + np.arange(size)[None, :, None]
    cols = origins[:, None, 1:] + np.arange(size)[None, None, :]
    return np.asarray(image)[rows, cols].astype(np.float32, copy=False)


def tiles_fft(tiles: np.ndarray) -> np.ndarray:
    """``rfft2`` of ``(n, size, size)`` tiles, each with its mean removed and Hann-tapered."""
    tiles = tiles - tiles.mean(axis=(1, 2), keepdims=True)
    return scipy.fft.rfft2(tiles * tile_window(tiles.shape[-1]))


def smooth_frequencies(values: np.ndarray) -> np.ndarray:
    """(1, 2, 1) / 4 smoothing over the last two (``rfft2``-layout) axes: periodic along
    Y, mirrored at the X edges (the spectrum of a real image is symmetric there)."""
    values = correlate1d(values, [0.25, 0.5, 0.25], axis=-2, mode="wrap")
    return correlate1d(values, [0.25, 0.5, 0.25], axis=-1, mode="mirror")


def to_image_grid(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of a tile-grid ``rfft2`` array (``(G, G // 2 + 1)``, real or
    complex) to the ``rfft2`` grid of an image of ``shape``, in ``coarse``'s precision."""
    n_y, n_x = shape
    size = coarse.shape[0]
    real = np.real(coarse).dtype
    y0, y1, wy = interpolation_weights(n_y, size, periodic=True)
    x0, x1, wx = interpolation_weights(n_x, size, periodic=False)
    along_y = coarse[y0] * (1 - wy).astype(real)[:, None]
    along_y += coarse[y1] * wy.astype(real)[:, None]
    grid = along_y[:, x0] * (1 - wx).astype(real)
    grid += along_y[:, x1] * wx.astype(real)
    return grid


def tiles_spectrum(tiles: np.ndarray) -> np.ndarray:
    """Smoothed Welch spectrum of ``(n, size, size)`` tiles, mean 1 over the full plane."""
    size = tiles.shape[-1]
    power = np.abs(tiles_fft(tiles)) ** 2
    power = smooth_frequencies(power.mean(axis=0, dtype=np.float64))
    mean = full_plane_mean(power, size)
    if not mean > 0:
        raise FaketError("the noise has no power (a constant region); select another region")
    return power / mean


def tilt_spectrum(image: np.ndarray, size: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Smoothed noise power spectrum of one tilt (see the module docstring).

    Parameters
    ----------
    image : array, shape (Y, X)
        The noise (a residual), or a real tilt whose ``mask`` selects pure background.
    size : int
        Tile size (pixels), e.g. from :func:`spectrum_size`.
    mask : bool array, shape (Y, X), optional
        Pixels to use; tiles must lie wholly inside it.

    Returns
    -------
    np.ndarray, shape (size, size // 2 + 1), float64
        Power on the tile's ``rfft2`` grid, mean 1 over the full frequency plane.
    """
    origins = tile_origins(size, np.shape(image), mask)
    return tiles_spectrum(cut_tiles(image, origins, size))


def fit_log_spectra(spectra: list[np.ndarray], order: int) -> np.ndarray:
    """Fit each bin's log10 spectrum over the tilt index; average the fits over tomograms.

    Parameters
    ----------
    spectra : list of arrays, each (n_tilts, G, H)
        Per-tomogram spectra (:func:`tilt_spectrum` of every tilt).
    order : int
        -1 raw, 0 constant, k a degree-k polynomial of the tilt index.

    Returns
    -------
    np.ndarray, shape (n_coefficients, G, H)
        log10 coefficients in the power basis of ``x`` in ``[-1, 1]`` over the tilts
        (order -1: the log10 spectra themselves); see :class:`NoiseSpectrum`.
    """
    n_tilts = spectra[0].shape[0]
    logs = [np.log10(np.maximum(s, 1e-12)).reshape(n_tilts, -1) for s in spectra]
    shape = spectra[0].shape[1:]
    if order == -1:
        return np.mean(logs, axis=0).reshape(n_tilts, *shape)
    basis = _basis(n_tilts, order)
    fits = [np.linalg.lstsq(basis, log, rcond=None)[0] for log in logs]
    return np.mean(fits, axis=0).reshape(order + 1, *shape)


def _basis(n_tilts: int, order: int) -> np.ndarray:
    x = np.linspace(-1.0, 1.0, n_tilts) if n_tilts > 1 else np.zeros(1)
    return np.stack([x**j for j in range(order + 1)], axis=1)


@dataclass(frozen=True, eq=False)
class NoiseSpectrum:
    """The style noise's 2-D power spectrum per tilt, as fitted over the tilt index.

    Attributes
    ----------
    order : int
        -1: ``log10`` holds one raw spectrum per tilt; k >= 0: ``log10`` holds the
        coefficients of a degree-k polynomial in ``x = linspace(-1, 1, n_tilts)``.
    log10 : array, shape (n_tilts or order + 1, G, G // 2 + 1)
        log10 of the power on the ``rfft2`` grid of a ``G x G`` tile (cycles per pixel).
    n_tilts : int
        Number of tilts.
    radial_log10 : array, shape (n_tilts or order + 1, n_bins), optional
        The same for the style tilts' radial power spectrum (:mod:`faket.noise.radial`).
    """

    order: int
    log10: np.ndarray
    n_tilts: int
    radial_log10: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Six decimals of log10 (relative precision 1e-6): what the JSON file keeps, so a
        # model and its saved copy draw identical noise.
        log10 = np.round(np.asarray(self.log10, dtype=np.float64), 6)
        object.__setattr__(self, "log10", log10)
        rows = self.n_tilts if self.order == -1 else self.order + 1
        if log10.ndim != 3 or log10.shape[0] != rows or log10.shape[2] != log10.shape[1] // 2 + 1:
            raise FaketError(
                f"noise spectrum of shape {log10.shape} does not fit order {self.order} and "
                f"{self.n_tilts} tilts"
            )
        arrays = [log10]
        if self.radial_log10 is not None:
            radial = np.round(np.asarray(self.radial_log10, dtype=np.float64), 6)
            object.__setattr__(self, "radial_log10", radial)
            if radial.ndim != 2 or radial.shape[0] != rows:
                raise FaketError(f"radial spectrum of shape {radial.shape} does not fit")
            arrays.append(radial)
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise FaketError("the noise spectrum contains NaN or infinite values")

    @property
    def size(self) -> int:
        """Tile size G (pixels)."""
        return int(self.log10.shape[1])

    def _at(self, log10: np.ndarray, index: int) -> np.ndarray:
        if self.order == -1:
            return 10.0 ** log10[index]
        return 10.0 ** np.tensordot(_basis(self.n_tilts, self.order)[index], log10, axes=1)

    def tilt(self, index: int) -> np.ndarray:
        """Power spectrum of tilt ``index``, ``(G, G // 2 + 1)``, mean 1 over the plane."""
        power = self._at(self.log10, index)
        return power / full_plane_mean(power, self.size)

    def radial(self, index: int) -> np.ndarray | None:
        """The style's radial power spectrum at tilt ``index`` (:mod:`faket.noise.radial`)."""
        return None if self.radial_log10 is None else self._at(self.radial_log10, index)

    def to_dict(self) -> dict:
        """JSON-serialisable form (one list of numbers per row of a tilt or coefficient)."""
        data = {
            "size": self.size,
            "order": self.order,
            "layout": "rfft2 of a size x size tile, cycles per pixel; log10 of the power",
            "log10": [[[float(v) for v in row] for row in plane] for plane in self.log10],
        }
        if self.radial_log10 is not None:
            data["radial_log10"] = [[float(v) for v in row] for row in self.radial_log10]
        return data

    @classmethod
    def from_dict(cls, data: dict, n_tilts: int) -> NoiseSpectrum:
        """Inverse of :meth:`to_dict`; bad content raises FaketError."""
        try:
            radial = data.get("radial_log10")
            return cls(
                int(data["order"]),
                np.asarray(data["log10"], dtype=np.float64),
                n_tilts,
                None if radial is None else np.asarray(radial, dtype=np.float64),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise FaketError(f"malformed noise spectrum ({type(err).__name__}: {err})") from None


def interpolation_weights(n: int, size: int, periodic: bool):
    """Lower index, upper index and weight of each of the ``n`` target frequency bins."""
    if periodic:
        position = np.fft.fftfreq(n) * size  # coarse bins, wrapping around
        lower = np.floor(position).astype(int)
        weight = position - lower
        return lower % size, (lower + 1) % size, weight
    position = np.fft.rfftfreq(n) * size
    lower = np.minimum(np.floor(position).astype(int), size // 2)
    weight = position - lower
    return lower, np.minimum(lower + 1, size // 2), weight


def coloured_noise(
    shape: tuple[int, int], spectrum: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Zero-mean Gaussian noise of unit variance with the power spectrum ``spectrum``.

    Parameters
    ----------
    shape : (Y, X)
        Output image shape.
    spectrum : array, shape (G, G // 2 + 1)
        Power on a tile's ``rfft2`` grid (e.g. :meth:`NoiseSpectrum.tilt`), any scale.
    rng : numpy Generator

    Returns
    -------
    np.ndarray, shape (Y, X), float32
    """
    n_y, n_x = shape
    # Interpolate the amplitude (the square root of the power) to the image's grid.
    coarse = np.sqrt(np.asarray(spectrum, dtype=np.float64)).astype(np.float32)
    amplitude = to_image_grid(coarse, shape)
    # E|c|² = Y X for each coefficient c of rfft2(white unit-variance noise): scale the
    # mean power over the full plane to Y X / 2 per (real, imaginary) part.
    flat = amplitude.ravel()
    edges = [amplitude[:, 0]] + ([amplitude[:, -1]] if n_x % 2 == 0 else [])
    # Mean of amplitude² over the full plane (the half-plane's inner columns count twice).
    total = 2 * float(np.dot(flat, flat)) - sum(float(np.dot(e, e)) for e in edges)
    power = total / (n_y * n_x)
    amplitude *= np.float32(np.sqrt(n_y * n_x / 2 / max(power, 1e-300)))
    # The inverse transform keeps only the real part of the X = 0 (and Nyquist) column's
    # contribution: twice the amplitude there gives those frequencies their full power.
    amplitude[:, 0] *= np.float32(np.sqrt(2))
    if n_x % 2 == 0:
        amplitude[:, -1] *= np.float32(np.sqrt(2))
    parts = rng.standard_normal((n_y, n_x // 2 + 1, 2), dtype=np.float32)
    coefficients = parts.view(np.complex64)[..., 0]
    coefficients *= amplitude
    return scipy.fft.irfft2(coefficients, s=shape, overwrite_x=True)


def stack_spectra(
    style: np.ndarray,
    *,
    clean: np.ndarray | None = None,
    r: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    size: int | None = None,
    style_std: np.ndarray | None = None,
) -> np.ndarray:
    """Noise spectra of every tilt of a style stack (tilt by tilt; memory maps stay on disk).

    Parameters
    ----------
    style : array, shape (n_tilts, Y, X)
    clean : array, shape (n_tilts, Y, X), optional
        The noiseless counterpart: the noise is the residual ``s - a c`` with the fitted
        scale ``a = r std(s) / std(c)`` (the same residual as ``z_s - r z_c``, up to a factor).
    r : array, shape (n_tilts,)
        Per-tilt ``r`` of :func:`faket.noise.estimate.estimate_curves` (with ``clean``).
    mask : bool array, shape (Y, X) or (n_tilts, Y, X), optional
        Pixels to use (paired regions, or the background of real data).
    size : int, optional
        Tile size; default :func:`spectrum_size`.
    style_std : array, shape (n_tilts,), optional
        Population std of each style tilt, if known (the curves' ``style_std``).

    Returns
    -------
    np.ndarray, shape (n_tilts, size, size // 2 + 1)
    """
    shape = style.shape[1:]
    size = size or spectrum_size(shape, mask)
    out = np.empty((style.shape[0], size, size // 2 + 1))
    for i in range(style.shape[0]):
        tilt_mask = mask if mask is None or np.ndim(mask) == 2 else mask[i]
        try:
            origins = tile_origins(size, shape, tilt_mask)
            tiles = cut_tiles(style[i], origins, size)
            if clean is not None:
                # Only the tiles of the residual are needed; the scale uses whole tilts.
                s_std = style_std[i] if style_std is not None else np.std(style[i], dtype=float)
                clean_std = float(np.std(clean[i], dtype=np.float64))
                scale = r[i] * float(s_std) / clean_std if clean_std else 0.0
                tiles -= np.float32(scale) * cut_tiles(clean[i], origins, size)
            out[i] = tiles_spectrum(tiles)
        except FaketError as err:
            raise FaketError(f"tilt {i}: {err}") from None
    return out

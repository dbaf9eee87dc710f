"""Does simulated data look like the reference? Image statistics compared image by image.

Both stacks are read image by image (tilts of a tilt series, or XY slices of a tomogram),
paired by index. Each image is standardised (mean 0, std 1) before its shape is compared,
so the overall level and contrast are reported separately:

``mean_error``, ``std_error``
    ``(mean_sim - mean_ref) / std_ref`` and ``std_sim / std_ref - 1``.
``histogram_w1``
    Wasserstein-1 distance between the standardised value distributions.
``spectrum_log_rms``
    RMS over frequency of ``log10(P_sim / P_ref)``, ``P`` the radially averaged power
    spectrum of the standardised image (Tukey-tapered against edge artefacts; bins of
    ``1 / min(Y, X)`` cycles per pixel, without the zero frequency). Its floor for two
    independent images of the same noise is ~``0.4 sqrt(2 / n)`` per ring of ``n``
    pixels (~0.08 over the rings of a 128 x 128 image); ``mean_spectrum_log_rms`` is
    the same for the spectra averaged over all images (a much lower floor).
``anisotropy``
    ``log10`` of the power in a 45-degree wedge around the X frequency axis over that
    around the Y axis (0.05-0.5 cycles per pixel); the report gives each side's value and
    the error ``sim - ref``.
``autocorrelation``
    Correlation of the standardised image with itself shifted by one and two pixels along
    X and Y (and one diagonally): ``x1, x2, y1, y2, xy1``; the error is the mean absolute
    difference over these lags.

:func:`compare_stacks` returns a :class:`Comparison`: per-image values, their means (the
summary), and the mean spectra and histograms for the figure (:mod:`faket.plots.realism`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy.signal.windows import tukey

from faket.errors import FaketError
from faket.progress import progress

__all__ = ["LAGS", "Comparison", "ImageStatistics", "compare_stacks", "image_statistics"]

#: Autocorrelation lags (dy, dx) by name.
LAGS = {"x1": (0, 1), "x2": (0, 2), "y1": (1, 0), "y2": (2, 0), "xy1": (1, 1)}
#: Histogram bins (standardised values) kept for the figure.
HISTOGRAM_EDGES = np.linspace(-5.0, 5.0, 101)
#: Most values per image for the histogram distance.
HISTOGRAM_SAMPLES = 1 << 17
#: Largest side of the 2-D spectra kept for the figure.
FIGURE_SPECTRUM = 128


@dataclass
class ImageStatistics:
    """What is measured of one image (see the module docstring)."""

    mean: float
    std: float
    values: np.ndarray  # standardised, sorted (a strided sample of large images)
    spectrum2d: np.ndarray  # power of the standardised, tapered image, FFT layout
    autocorrelation: dict[str, float]
    anisotropy: float


def image_statistics(image: np.ndarray) -> ImageStatistics:
    """Statistics of one 2-D image (any real dtype).

    The histogram distance uses at most :data:`HISTOGRAM_SAMPLES` evenly strided values
    (its sampling error is then below ~0.005).
    """
    values = np.asarray(image, dtype=np.float32)
    mean, std = float(values.mean(dtype=np.float64)), float(values.std(dtype=np.float64))
    if not np.isfinite(mean) or not std > 0:
        raise FaketError("an image is constant or not finite; nothing to compare")
    z = (values - np.float32(mean)) * np.float32(1 / std)
    n_y, n_x = z.shape
    window = np.outer(tukey(n_y, 0.25), tukey(n_x, 0.25)).astype(np.float32)
    window /= np.sqrt(np.mean(window**2))
    spectrum = np.abs(scipy.fft.fft2(z * window)).astype(np.float64) ** 2 / z.size
    lags = {}
    for name, (dy, dx) in LAGS.items():
        lags[name] = float(np.mean(z[: n_y - dy, : n_x - dx] * z[dy:, dx:], dtype=np.float64))
    step = -(-z.size // HISTOGRAM_SAMPLES)
    sample = np.sort(z.ravel()[::step].astype(np.float64))
    return ImageStatistics(mean, std, sample, spectrum, lags, _anisotropy(spectrum))


def wasserstein_1(sorted_a: np.ndarray, sorted_b: np.ndarray) -> float:
    """W1 between two empirical distributions given as sorted samples.

    ``mean |F_a^-1(u) - F_b^-1(u)|`` over the quantile levels of the smaller sample (the
    larger one interpolated there; exact for samples of equal size).
    """
    if len(sorted_a) < len(sorted_b):
        sorted_a, sorted_b = sorted_b, sorted_a
    levels = (np.arange(len(sorted_b)) + 0.5) / len(sorted_b)
    grid = (np.arange(len(sorted_a)) + 0.5) / len(sorted_a)
    return float(np.mean(np.abs(np.interp(levels, grid, sorted_a) - sorted_b)))


@lru_cache(maxsize=8)
def _radius(shape: tuple[int, int]) -> np.ndarray:
    """``|f|`` (cycles per pixel) of every FFT coefficient of an image of ``shape``."""
    return np.hypot(np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :])


@lru_cache(maxsize=8)
def _wedges(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the 45-degree wedges around the X and Y frequency axes."""
    fy = np.abs(np.fft.fftfreq(shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(shape[1]))[None, :]
    radius = _radius(shape)
    band = (radius >= 0.05) & (radius <= 0.5)
    slope = np.tan(np.pi / 8)
    x_axis = np.flatnonzero(band & (fy <= slope * fx))
    y_axis = np.flatnonzero(band & (fx <= slope * fy))
    return x_axis, y_axis


def _anisotropy(spectrum: np.ndarray) -> float:
    x_axis, y_axis = _wedges(spectrum.shape)
    if not x_axis.size or not y_axis.size:
        return 0.0
    flat = spectrum.ravel()
    return float(np.log10(flat[x_axis].mean() / max(flat[y_axis].mean(), 1e-300)))


@lru_cache(maxsize=8)
def _rings(shape: tuple[int, int], n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices inside ``n_bins`` rings, their ring numbers, and pixels per ring."""
    index = np.floor(_radius(shape) / (0.5 / n_bins)).astype(int).ravel()
    keep = np.flatnonzero(index < n_bins)
    counts = np.bincount(index[keep], minlength=n_bins)
    return keep, index[keep], np.maximum(counts, 1)


def radial_profile(spectrum: np.ndarray, n_bins: int) -> np.ndarray:
    """Mean of a 2-D (FFT layout) spectrum over ``n_bins`` rings of width ``0.5 / n_bins``."""
    keep, ring, counts = _rings(spectrum.shape, n_bins)
    sums = np.bincount(ring, weights=spectrum.ravel()[keep], minlength=n_bins)
    return sums / counts


def _figure_spectrum(spectrum: np.ndarray) -> np.ndarray:
    """Centred log10 spectrum, block-averaged to at most :data:`FIGURE_SPECTRUM` a side."""
    centred = np.fft.fftshift(spectrum)
    factor = max(1, int(np.ceil(max(centred.shape) / FIGURE_SPECTRUM)))
    n_y, n_x = (s // factor * factor for s in centred.shape)
    blocks = centred[:n_y, :n_x].reshape(n_y // factor, factor, n_x // factor, factor)
    return np.log10(np.maximum(blocks.mean(axis=(1, 3)), 1e-12))


@dataclass
class Comparison:
    """A realism comparison of two stacks (see :func:`compare_stacks`)."""

    per_image: dict[str, np.ndarray]
    frequency: np.ndarray  # cycles per pixel, ring centres (zero frequency left out)
    radial: dict[str, np.ndarray]  # mean radial spectrum of each side
    spectra2d: dict[str, np.ndarray]  # mean centred log10 2-D spectrum of each side
    histograms: dict[str, np.ndarray]  # pooled densities over HISTOGRAM_EDGES
    lags: dict[str, dict[str, float]] = field(default_factory=dict)  # mean per side

    @property
    def summary(self) -> dict[str, float]:
        """Means over images of the absolute errors (the numbers to report)."""
        p = self.per_image
        return {
            "mean_error": float(np.mean(np.abs(p["mean_error"]))),
            "std_error": float(np.mean(np.abs(p["std_error"]))),
            "histogram_w1": float(np.mean(p["histogram_w1"])),
            "spectrum_log_rms": float(np.mean(p["spectrum_log_rms"])),
            "mean_spectrum_log_rms": float(
                np.sqrt(np.mean(np.log10(self.radial["simulated"] / self.radial["reference"]) ** 2))
            ),
            "anisotropy_error": float(np.mean(np.abs(p["anisotropy_error"]))),
            "autocorrelation_error": float(np.mean(p["autocorrelation_error"])),
            "anisotropy_simulated": float(np.mean(p["anisotropy_simulated"])),
            "anisotropy_reference": float(np.mean(p["anisotropy_reference"])),
        }

    def to_dict(self) -> dict:
        """JSON-serialisable: summary, per-image values, mean spectra and lags."""
        return {
            "summary": self.summary,
            "autocorrelation": self.lags,
            "per_image": {k: [float(v) for v in a] for k, a in self.per_image.items()},
            "frequency_cycles_per_pixel": [float(f) for f in self.frequency],
            "radial_spectrum": {k: [float(v) for v in a] for k, a in self.radial.items()},
        }


def compare_stacks(
    simulated: np.ndarray, reference: np.ndarray, *, show_progress: bool = False
) -> Comparison:
    """Compare two stacks image by image (index ``i`` with index ``i``).

    Parameters
    ----------
    simulated, reference : arrays, shape (n, Y, X) and (n, Y', X')
        Tilt series, or tomograms (their XY slices); memory maps are read image by image.
        Image sizes may differ (frequencies are in cycles per pixel).
    show_progress : bool
        Draw a progress bar over the images.

    Returns
    -------
    Comparison
    """
    for name, stack in (("simulated", simulated), ("reference", reference)):
        if np.ndim(stack) != 3:
            raise FaketError(f"the {name} data must be (n, Y, X), got shape {np.shape(stack)}")
    if simulated.shape[0] != reference.shape[0]:
        raise FaketError(
            f"{simulated.shape[0]} simulated images but {reference.shape[0]} reference images; "
            "compare tilt series with the same tilts (or tomograms with the same Z extent)"
        )
    n_bins = min(*simulated.shape[1:], *reference.shape[1:]) // 2
    if n_bins < 4:
        raise FaketError("images of fewer than 8 pixels a side cannot be compared")
    rows: dict[str, list[float]] = {
        k: []
        for k in (
            "mean_error",
            "std_error",
            "histogram_w1",
            "spectrum_log_rms",
            "anisotropy_simulated",
            "anisotropy_reference",
            "anisotropy_error",
            "autocorrelation_error",
        )
    }
    radial = {"simulated": 0.0, "reference": 0.0}
    spectra2d = {"simulated": 0.0, "reference": 0.0}
    histograms = {"simulated": 0.0, "reference": 0.0}
    lags = {side: dict.fromkeys(LAGS, 0.0) for side in radial}
    n = simulated.shape[0]
    for i in progress(range(n), "comparing", enabled=show_progress):
        stats = {"simulated": image_statistics(simulated[i])}
        stats["reference"] = image_statistics(reference[i])
        sim, ref = stats["simulated"], stats["reference"]
        profiles = {side: radial_profile(s.spectrum2d, n_bins)[1:] for side, s in stats.items()}
        ratio = np.log10(np.maximum(profiles["simulated"], 1e-300) / profiles["reference"])
        rows["mean_error"].append((sim.mean - ref.mean) / ref.std)
        rows["std_error"].append(sim.std / ref.std - 1)
        rows["histogram_w1"].append(wasserstein_1(sim.values, ref.values))
        rows["spectrum_log_rms"].append(float(np.sqrt(np.mean(ratio**2))))
        rows["anisotropy_simulated"].append(sim.anisotropy)
        rows["anisotropy_reference"].append(ref.anisotropy)
        rows["anisotropy_error"].append(sim.anisotropy - ref.anisotropy)
        rows["autocorrelation_error"].append(
            float(np.mean([abs(sim.autocorrelation[k] - ref.autocorrelation[k]) for k in LAGS]))
        )
        for side, s in stats.items():
            radial[side] = radial[side] + profiles[side] / n
            spectra2d[side] = spectra2d[side] + _figure_spectrum(s.spectrum2d) / n
            counts = np.diff(np.searchsorted(s.values, HISTOGRAM_EDGES))
            density = counts / (len(s.values) * np.diff(HISTOGRAM_EDGES))
            histograms[side] = histograms[side] + density / n
            for k in LAGS:
                lags[side][k] += s.autocorrelation[k] / n
    frequency = (np.arange(1, n_bins) + 0.5) * (0.5 / n_bins)
    return Comparison(
        {k: np.asarray(v) for k, v in rows.items()}, frequency, radial, spectra2d, histograms, lags
    )

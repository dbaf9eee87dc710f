"""A CTFFIND-style per-tilt defocus fit, written independently of faket's optics.

Per image: Welch-averaged power spectrum (tapered, overlapping tiles), rotationally
averaged and divided by a smooth background; over a frequency band it is correlated with
``CTF²(k; defocus)`` (background polynomials projected out of both, i.e. a partial
correlation), and the defocus with the highest correlation on a fine grid around the
nominal one wins. Astigmatism and the defocus gradient of a tilted field are ignored, as
in a 1-D CTFFIND fit.

Used by the tests (``test_microscope_ctf.py``) and by ``benchmarks/bench_realism.py``.
"""

from __future__ import annotations

import math

import numpy as np

# CODATA constants (written out: the fit must not reuse faket's optics).
_H, _M0, _E, _C = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0


def wavelength_angstrom(voltage_kv: float = 300.0) -> float:
    """Relativistic electron wavelength (Å)."""
    volts = voltage_kv * 1e3
    return _H / math.sqrt(2 * _M0 * _E * volts * (1 + _E * volts / (2 * _M0 * _C**2))) * 1e10


def ctf(
    k: np.ndarray,
    defocus_um: float,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
) -> np.ndarray:
    """``sqrt(1 - A²) sin chi - A cos chi`` at ``k`` (1/Å); negative defocus = underfocus."""
    lam = wavelength_angstrom(voltage_kv)
    chi = math.pi * lam * k**2 * defocus_um * 1e4 + 0.5 * math.pi * cs_mm * 1e7 * lam**3 * k**4
    a = amplitude_contrast
    return math.sqrt(1 - a * a) * np.sin(chi) - a * np.cos(chi)


def radial_spectrum(image: np.ndarray, tile: int = 128) -> tuple[np.ndarray, ...]:
    """Rotational average of the Welch power spectrum of ``image``.

    Tiles of ``tile`` pixels (at most the image size), half-overlapping, each with its mean
    removed and a Hann taper.

    Returns
    -------
    frequency : (n,) cycles per pixel, bin centres
    power : (n,)
    counts : (n,) spectrum pixels per bin
    """
    image = np.asarray(image, dtype=np.float64)
    size = min(tile, *image.shape)
    window = np.outer(np.hanning(size), np.hanning(size))
    step = size // 2
    total = np.zeros((size, size))
    count = 0
    for y in range(0, image.shape[0] - size + 1, step):
        for x in range(0, image.shape[1] - size + 1, step):
            patch = image[y : y + size, x : x + size]
            total += np.abs(np.fft.fft2((patch - patch.mean()) * window)) ** 2
            count += 1
    power2d = total / count
    f = np.fft.fftfreq(size)
    radius = np.hypot(f[:, None], f[None, :])
    n_bins = size // 2
    index = np.floor(radius * size + 0.5).astype(int).ravel()
    keep = index < n_bins
    sums = np.bincount(index[keep], weights=power2d.ravel()[keep], minlength=n_bins)
    counts = np.bincount(index[keep], minlength=n_bins)
    return np.arange(n_bins) / size, sums / np.maximum(counts, 1), counts


def _residual(values: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``values`` (..., n) minus their least-squares fit by ``basis`` (m, n)."""
    coefficients, *_ = np.linalg.lstsq(basis.T, np.moveaxis(values, -1, 0), rcond=None)
    return values - np.moveaxis(basis.T @ coefficients, 0, -1)


def _band_spectrum(image, pixel_size, tile, band_angstrom, degree):
    """Band frequencies (1/Å), the spectrum over its smooth background minus 1, bin sizes."""
    frequency, power, counts = radial_spectrum(image, tile)
    k = frequency / pixel_size
    high = band_angstrom[1] or 2.1 * pixel_size
    band = (k >= 1 / band_angstrom[0]) & (k <= 1 / high) & (power > 0)
    k, power, counts = k[band], power[band], counts[band]
    basis = _polynomials(k, degree)
    # Multiplicative background: a polynomial in k fitted to the log spectrum.
    background = np.exp(basis.T @ np.linalg.lstsq(basis.T, np.log(power), rcond=None)[0])
    return k, power / background - 1, counts


def _polynomials(k: np.ndarray, degree: int) -> np.ndarray:
    scaled = (k - k.mean()) / max(k.max() - k.min(), 1e-300)
    return np.stack([scaled**j for j in range(degree + 1)])


def fit_defocus(
    image: np.ndarray,
    pixel_size: float,
    *,
    nominal_um: float = -4.0,
    search_um: float = 2.0,
    step_um: float = 0.01,
    band_angstrom: tuple[float, float] = (30.0, 0.0),
    tile: int | None = None,
    background_degree: int = 3,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
) -> tuple[float, float]:
    """Best-fitting defocus (µm) of one image, and its correlation score.

    The rotational average of the Welch spectrum, divided by its smooth background (a
    polynomial of ``background_degree`` in ``k`` fitted to its logarithm), is compared
    with ``CTF²`` for every defocus on a grid within ``search_um`` of the nominal one (as
    ctfplotter and CTFFIND are given an expected range). The score is a weighted partial
    correlation: the background polynomials are projected out of both, and each frequency
    bin is weighted by the square root of the number of pixels it averages (the inverse of
    its noise standard deviation).

    Parameters
    ----------
    image : (Y, X) projection.
    pixel_size : Å per pixel.
    nominal_um, search_um, step_um : defocus grid ``nominal ± search`` in steps (µm,
        negative = underfocus).
    band_angstrom : (low, high) resolution limits in Å (CTFFIND's default low limit is
        30 Å); ``high = 0`` means 2.1 pixels, just inside Nyquist.
    tile : Welch tile (pixels); None = half the smaller image side.
    background_degree : degree of the background polynomial.
    voltage_kv, cs_mm, amplitude_contrast : the microscope.

    Returns
    -------
    defocus_um, score : the grid defocus with the highest correlation between spectrum
        and ``CTF²``, and that correlation (near 0 where there are no rings).
    """
    tile = tile or min(image.shape) // 2
    k, relative, counts = _band_spectrum(image, pixel_size, tile, band_angstrom, background_degree)
    weights = np.sqrt(counts)
    basis = _polynomials(k, background_degree) * weights
    signal = _residual(relative * weights, basis)
    signal /= max(np.linalg.norm(signal), 1e-300)
    grid = np.arange(nominal_um + search_um, nominal_um - search_um - step_um / 2, -step_um)
    models = np.stack([ctf(k, d, voltage_kv, cs_mm, amplitude_contrast) ** 2 for d in grid])
    models = _residual(models * weights, basis)
    models /= np.maximum(np.linalg.norm(models, axis=1, keepdims=True), 1e-300)
    scores = models @ signal
    best = int(np.argmax(scores))
    return float(grid[best]), float(scores[best])


def ctf_ripple(
    images: np.ndarray,
    pixel_size: float,
    defocus_um: float,
    *,
    band_angstrom: tuple[float, float] = (30.0, 0.0),
    tile: int | None = None,
    background_degree: int = 3,
) -> float:
    """Relative CTF-correlated ripple of the mean background-normalised spectrum of ``images``.

    Each image's band spectrum over its smooth background (as in :func:`fit_defocus`) is
    averaged over the images and regressed on ``CTF²(k)`` at ``defocus_um`` plus the
    background polynomials; the ripple is the ``CTF²`` coefficient: the fraction by which
    the Thon rings modulate the power, from a CTF zero to a maximum.
    """
    tile = tile or min(images.shape[1:]) // 2
    spectra = [
        _band_spectrum(image, pixel_size, tile, band_angstrom, background_degree)
        for image in images
    ]
    k = spectra[0][0]
    relative = np.mean([s[1] for s in spectra], axis=0)
    design = np.vstack([_polynomials(k, background_degree), ctf(k, defocus_um) ** 2])
    coefficients, *_ = np.linalg.lstsq(design.T, relative, rcond=None)
    return float(coefficients[-1])

"""Frequency responses of the reconstruction filters.

All 1-D responses are in *physical* units: the ramp is ``|f|`` with ``f`` in
cycles per pixel (0.5 at Nyquist; built from its spatial kernel so the
zero-frequency term is right), which together with angular weights in
radians (:func:`faket.tomography.geometry.angular_weights`) makes weighted
back-projection return the original values (textbook filtered
back-projection). A Crowther plateau caps the ramp at ``f_c``; the apodised
ramps multiply it by a window of ``f / f_max`` where ``f_max`` is the
Crowther frequency, or Nyquist without one.

The SHREC-matching 2-D filter of the FakET paper (appendix B) is built
exactly as the paper's reference code builds it, including its off-by-one
centring of the Gaussian, and then rescaled by ``F / size`` so its ramp part
has the same physical units as the others.
"""

from __future__ import annotations

import numpy as np

from faket.errors import FaketError

#: Names accepted by :func:`filter_response` (plus ``"shrec"``, see :func:`shrec_filter`).
FILTERS_1D = ("ramp", "shepp-logan", "cosine", "hamming", "hann", "none")
FILTERS = (*FILTERS_1D, "shrec")


def _frequency_pixels(size: int) -> np.ndarray:
    """Integer FFT frequencies ``k`` (unshifted order) of a ``size``-sample signal."""
    return np.fft.fftfreq(size) * size


def crowther_ramp(size: int, crowther_pixels: int | None = None) -> np.ndarray:
    """The FakET reference code's 1-D ramp: ``min(|k| / F, 1)``, max 1.

    Parameters
    ----------
    size : int
        Number of samples (FFT length).
    crowther_pixels : int or None
        Crowther frequency ``F`` in frequency pixels (``size // 2`` is Nyquist);
        None means Nyquist (a plain ramp normalised to 1 at Nyquist).

    Returns
    -------
    array, shape (size,)
        In numpy FFT order.
    """
    plateau = size // 2 if crowther_pixels is None else int(crowther_pixels)
    if plateau < 1:
        raise FaketError(f"Crowther frequency must be >= 1 frequency pixel, got {plateau}")
    return np.minimum(np.abs(_frequency_pixels(size)) / plateau, 1.0)


def _window(name: str, relative: np.ndarray) -> np.ndarray:
    """Apodisation window of ``relative = f / f_max`` in [0, 1]."""
    if name in ("ramp", "none"):
        return np.ones_like(relative)
    if name == "shepp-logan":
        return np.sinc(relative / 2.0)  # sin(pi f / 2 f_max) / (pi f / 2 f_max)
    if name == "cosine":
        return np.cos(np.pi * relative / 2.0)
    if name == "hamming":
        return 0.54 + 0.46 * np.cos(np.pi * relative)
    if name == "hann":
        return 0.5 * (1.0 + np.cos(np.pi * relative))
    raise FaketError(f"unknown filter {name!r}; choose one of {', '.join(FILTERS)}")


def ram_lak_kernel(size: int) -> np.ndarray:
    """The band-limited ramp's spatial kernel on a periodic grid of ``size`` samples.

    ``h[0] = 1/4``, ``h[n] = -1 / (pi n)²`` for odd ``n``, 0 for even ``n``
    (Kak & Slaney, eq. 3.61, unit pixel): the samples of the inverse Fourier
    transform of ``|f|`` cut at Nyquist. Building the ramp from this kernel
    instead of sampling ``|f|`` directly keeps the zero-frequency term that a
    finite FFT grid would otherwise drop, which would shift the whole
    reconstruction by a negative offset.
    """
    distance = np.minimum(np.arange(size), size - np.arange(size))  # periodic |n|
    kernel = np.zeros(size)
    kernel[0] = 0.25
    odd = distance % 2 == 1
    kernel[odd] = -1.0 / (np.pi * distance[odd]) ** 2
    return kernel


def filter_response(name: str, size: int, crowther: float | None = None) -> np.ndarray:
    """Frequency response of a 1-D reconstruction filter.

    Parameters
    ----------
    name : str
        ``ramp``, ``shepp-logan``, ``cosine``, ``hamming``, ``hann`` or ``none``
        (no filtering: a plain back-projection).
    size : int
        FFT length (the padded detector width).
    crowther : float or None
        Crowther frequency as a fraction of Nyquist, in (0, 1]. Above it the
        ramp stays flat (IMOD's "radial" plateau) and the window reaches its
        end. None: Nyquist.

    Returns
    -------
    array, shape (size,), float64
        Response in numpy FFT order. The ramp part is the DFT of
        :func:`ram_lak_kernel`, ``|f|`` in cycles/pixel up to a small
        positive zero-frequency term.
    """
    if name not in FILTERS_1D:
        raise FaketError(f"unknown 1-D filter {name!r}; choose one of {', '.join(FILTERS_1D)}")
    if name == "none":
        return np.ones(size)
    f_max = 0.5 if crowther is None else 0.5 * float(crowther)
    if not 0.0 < f_max <= 0.5:
        raise FaketError(f"Crowther frequency must be in (0, 1] of Nyquist, got {crowther}")
    ramp = np.fft.fft(ram_lak_kernel(size)).real
    relative = np.minimum(np.abs(np.fft.fftfreq(size)) / f_max, 1.0)
    return np.minimum(ramp, f_max) * _window(name, relative)


def shrec_filter(n_rows: int, n_cols: int, physical: bool = True) -> np.ndarray:
    """The FakET paper's SHREC-matching 2-D filter (appendix B).

    ``H = ramp(kx) * (G(kx, ky) + 0.33) * [|k| < size / 2 + 1]``, normalised to
    max 1, where the ramp has its Crowther plateau at ``int(0.61 * (n // 2))``
    frequency pixels and ``G`` is a Gaussian with standard deviations
    ``int(0.34 * n_cols)`` along X and ``int(0.20 * n_rows)`` along Y. As in the
    reference code, ``G`` is centred one sample off zero frequency (its peak is
    at index ``n - 1``, i.e. frequency -1); kept so results match the paper.

    Parameters
    ----------
    n_rows, n_cols : int
        Projection shape (Y, X) the filter is applied to with a 2-D FFT
        (no padding, as in the reference).
    physical : bool
        Rescale by ``F / n_cols`` so the ramp part is in cycles/pixel like
        :func:`filter_response` (default). False returns the reference's
        max-1 normalisation, for comparison with its outputs.

    Returns
    -------
    array, shape (n_rows, n_cols), float64
        In numpy FFT order.
    """
    if n_rows < 2 or n_cols < 2:
        raise FaketError(
            f"the SHREC filter needs projections of at least 2x2, got {n_rows}x{n_cols}"
        )
    k_x = _frequency_pixels(n_cols)[None, :]
    k_y = _frequency_pixels(n_rows)[:, None]
    plateau = max(1, int(0.61 * (n_cols // 2)))
    ramp = np.minimum(np.abs(k_x) / plateau, 1.0)
    shifted_x = np.roll(_frequency_pixels(n_cols), -1)[None, :]
    shifted_y = np.roll(_frequency_pixels(n_rows), -1)[:, None]
    sigma_x, sigma_y = max(1, int(0.34 * n_cols)), max(1, int(0.20 * n_rows))
    gaussian = np.exp(-(shifted_x**2) / (2 * sigma_x**2) - shifted_y**2 / (2 * sigma_y**2))
    # Circle at Nyquist of the X axis; Y frequencies rescaled for non-square projections.
    radius = np.sqrt(k_x**2 + (k_y * n_cols / n_rows) ** 2)
    circle = radius < n_cols / 2 + 1
    response = ramp * (gaussian + 0.33) * circle
    response /= response.max()
    return response * (plateau / n_cols) if physical else response


def padded_length(n_det: int) -> int:
    """FFT length for 1-D filtering: the next power of two >= 2 * n_det.

    Zero padding to twice the width stops the circular convolution of the
    FFT from wrapping one edge of the projection onto the other.
    """
    return 1 << int(np.ceil(np.log2(max(2, 2 * n_det))))

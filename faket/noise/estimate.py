r"""Per-tilt noise statistics of style tilt series (paper sec. 3.1 and 3.2).

Paired estimation (style and noiseless tilt series with the same content)
-------------------------------------------------------------------------
For one tilt, let ``s`` be the style image and ``c`` the noiseless image (N pixels), and
``z_s``, ``z_c`` their standardizations (mean 0, population std 1). The paper looks for the
scale ``r`` of the clean signal that leaves the least spread in the residual
``e(r) = z_s - r z_c``, and reports ``sigma = std(e(r))``. Because ``e(r)`` has mean 0,

.. math::

    \operatorname{Var} e(r) = \overline{z_s^2} - 2 r\,\overline{z_s z_c} + r^2\,\overline{z_c^2}
                            = 1 - 2 r \rho + r^2 ,

with :math:`\rho = \overline{z_s z_c}` the Pearson correlation of ``s`` and ``c``. This is a
parabola in ``r`` with its minimum at ``r = rho`` and the value ``1 - rho**2`` there, and the
standard deviation is a monotone function of the variance, so

.. math::

    r = \rho, \qquad \sigma = \sqrt{1 - \rho^2}.

**Why this equals the paper's bisection.** The paper bisects ``r`` on ``[0, 1]``, moving
right when the forward difference ``f(r + h) - f(r)`` of ``f(r) = std(e(r))`` is negative
(``h`` = the tolerance, 1e-5). Since ``f(r)**2 = 1 - rho**2 + (r - rho)**2`` is symmetric
about ``rho``, ``f(r + h) < f(r)`` exactly when ``r < rho - h/2``: the bisection brackets
``rho - h/2`` and stops once the bracket is narrower than ``2 h``, returning one of its
ends. Cauchy-Schwarz gives ``rho <= 1``, so for ``rho`` in ``[0, 1]`` the bisection
returns ``rho`` to within ``2.5 h`` (and ``sigma``, which is flat at the minimum, to
within about ``(2.5 h)**2 / (2 sigma)``): the same answer, in one pass over the data
instead of ~35.
Only a negative correlation differs: the bisection cannot leave ``[0, 1]`` and returns
~0, while ``r = rho < 0`` is the true minimiser; it means the noiseless projections have
the opposite contrast to the style (project them with ``negate=True``), and a warning
says so. :func:`bisection_r_sigma` implements the paper's search for comparison.

Estimation on selected regions
------------------------------
With a ``mask`` (or boxes, see :func:`boxes_to_mask`), only the selected pixels are
trusted, e.g. where a real tilt series has a matching model. The model
``style = a * clean + b + noise`` is fitted there by least squares
(``a = cov(s, c) / var(c)``, noise variance ``var(s) (1 - rho_R**2)``), and the result is
expressed in the units that :mod:`faket.noise.apply` uses, i.e. relative to the whole
tilt: ``r = a std(c) / std(s)``, ``sigma = std(noise) / std(s)``. With the whole tilt
selected this is exactly the paired estimate above.

When there is no noiseless counterpart at all (a real microscope),
:func:`estimate_curves_from_background` follows the paper's suggestion of measuring the
noise on regions whose ground truth is known. **Assumption:** inside the selected regions
the specimen signal is flat (empty ice, vacuum, a featureless background), and the noise
is additive, independent of the signal and equally strong everywhere in the tilt. Then
the variation inside the regions is pure noise, ``sigma = std_region(s) / std(s)``, and
because signal and noise variances add up to the tilt's variance,
``r = sqrt(1 - sigma**2)``. Regions that contain structure overestimate ``sigma``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from faket.errors import FaketError
from faket.noise.model import NoiseCurves
from faket.progress import progress

__all__ = [
    "bisection_r_sigma",
    "boxes_to_mask",
    "estimate_curves",
    "estimate_curves_from_background",
    "tilt_statistics",
]

Box = tuple[int, int, int, int]


def _moments(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centred float64 copy (flattened), mean and population std of ``image``."""
    values = np.asarray(image, dtype=np.float64).ravel()
    mean = float(values.mean())
    values = values - mean
    return values, mean, float(np.sqrt(np.dot(values, values) / values.size))


def tilt_statistics(
    style: np.ndarray, clean: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, float, float, float]:
    """Closed-form noise statistics of one tilt (see the module docstring).

    Parameters
    ----------
    style : array, shape (Y, X)
        The style (reference) tilt, any units.
    clean : array, shape (Y, X)
        The noiseless tilt with the same content.
    mask : bool array, shape (Y, X), optional
        Pixels to estimate ``r`` and ``sigma`` on; default all.

    Returns
    -------
    r, sigma, style_mean, style_std : float
        ``r`` and ``sigma`` are unitless (relative to the whole style tilt's std); the
        style mean and population std are in the style's units, over the whole tilt.
    """
    if style.shape != clean.shape:
        raise FaketError(f"style tilt {style.shape} and clean tilt {clean.shape} differ in shape")
    s, s_mean, s_std = _moments(style)
    c, _, c_std = _moments(clean)
    if s_std == 0 or c_std == 0:
        which = "style" if s_std == 0 else "clean"
        raise FaketError(f"the {which} tilt is constant; noise statistics need some contrast")
    if mask is None:
        rho = float(np.dot(s, c) / s.size) / (s_std * c_std)
        rho = min(max(rho, -1.0), 1.0)  # rounding can push |rho| a hair above 1
        return rho, float(np.sqrt(1.0 - rho * rho)), s_mean, s_std
    selected = _flat_mask(mask, style.shape)
    s_r, _, s_r_std = _moments(s[selected])
    c_r, _, c_r_std = _moments(c[selected])
    if c_r_std == 0 or s_r_std == 0:
        raise FaketError("the selected region is constant in the style or clean tilt")
    rho = min(max(float(np.dot(s_r, c_r) / s_r.size) / (s_r_std * c_r_std), -1.0), 1.0)
    scale = rho * s_r_std / c_r_std  # least-squares a in style = a * clean + b + noise
    noise_std = s_r_std * np.sqrt(1.0 - rho * rho)
    return scale * c_std / s_std, float(noise_std / s_std), s_mean, s_std


def _flat_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    flat = np.asarray(mask)
    if flat.shape != shape:
        raise FaketError(f"mask of shape {flat.shape} does not match the tilt shape {shape}")
    flat = flat.astype(bool).ravel()
    if np.count_nonzero(flat) < 2:
        raise FaketError("the selected region has fewer than 2 pixels; select a larger region")
    return flat


def bisection_r_sigma(
    style: np.ndarray,
    clean: np.ndarray,
    start: float = 0.0,
    stop: float = 1.0,
    tolerance: float = 1e-5,
) -> tuple[float, float]:
    """The paper's search for ``r``: bisection on the sign of a forward difference.

    Kept as the reference that :func:`tilt_statistics` is tested and benchmarked against;
    it evaluates ``std(z_s - r z_c)`` twice per step (~35 passes over the tilt).

    Parameters
    ----------
    style, clean : array, shape (Y, X)
    start, stop : float
        The interval searched for ``r``.
    tolerance : float
        Forward-difference step and stopping width.

    Returns
    -------
    r, sigma : float
    """
    if not start < stop or not 1e-9 < tolerance < (stop - start) / 2:
        raise FaketError("bisection needs start < stop and 0 < tolerance < (stop - start) / 2")
    s, _, s_std = _moments(style)
    c, _, c_std = _moments(clean)
    z_s, z_c = s / s_std, c / c_std

    def spread(r: float) -> float:
        return float((z_s - r * z_c).std())

    low, high = start, stop
    r = (low + high) / 2
    while (high - low) / 2 >= tolerance:
        r = (low + high) / 2
        if spread(r + tolerance) < spread(r):
            low = r
        else:
            high = r
    return r, spread(r)


def _check_stack(stack: np.ndarray, name: str) -> None:
    if np.ndim(stack) != 3:
        raise FaketError(f"{name} must be a tilt series (n_tilts, Y, X), got shape {stack.shape}")


def _tilt_mask(mask: np.ndarray | None, index: int) -> np.ndarray | None:
    if mask is None or np.ndim(mask) == 2:
        return mask
    return mask[index]


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if mask is None:
        return
    if np.shape(mask) not in (shape[1:], shape):
        raise FaketError(
            f"mask of shape {np.shape(mask)} fits neither a tilt {shape[1:]} "
            f"nor the tilt series {shape}"
        )


def estimate_curves(
    style: np.ndarray,
    clean: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    show_progress: bool = False,
) -> NoiseCurves:
    """Per-tilt ``r``, ``sigma``, style mean and std of a (style, noiseless) pair.

    Works tilt by tilt, so memory-mapped inputs are never loaded as a whole.

    Parameters
    ----------
    style, clean : array, shape (n_tilts, Y, X)
        Style tilt series and the noiseless one with the same content.
    mask : bool array, shape (Y, X) or (n_tilts, Y, X), optional
        Region to estimate ``r`` and ``sigma`` on (all tilts, or per tilt).
    show_progress : bool
        Draw a progress bar.

    Returns
    -------
    NoiseCurves
    """
    _check_stack(style, "the style stack")
    _check_stack(clean, "the clean stack")
    if style.shape != clean.shape:
        raise FaketError(
            f"style {tuple(style.shape)} and clean {tuple(clean.shape)} tilt series differ in "
            "shape; pair each style file with the noiseless projections of the same tomogram"
        )
    _check_mask(mask, style.shape)
    rows = []
    for i in progress(range(style.shape[0]), "estimating noise", enabled=show_progress):
        try:
            rows.append(tilt_statistics(style[i], clean[i], _tilt_mask(mask, i)))
        except FaketError as err:
            raise FaketError(f"tilt {i}: {err}") from None
    curves = NoiseCurves(*np.asarray(rows, dtype=np.float64).T)
    _warn_inverted(curves.r)
    return curves


def _warn_inverted(r: np.ndarray) -> None:
    negative = np.flatnonzero(r < 0)
    if not negative.size:
        return
    if negative.size > r.size / 2:
        # Most tilts anti-correlated: a contrast convention, whichever way it was made.
        advice = (
            "the noiseless projections have the opposite contrast to the style: project "
            "them with --negate (negate=True) if they were made without it, or without it "
            "if they were made with it"
        )
    else:
        advice = (
            "the style shows (almost) no specimen signal there, only noise; r < 0 is "
            "clipped to 0 when the curves are fitted"
        )
    warnings.warn(
        f"style and noiseless tilts are anti-correlated at {negative.size} of {r.size} "
        f"tilt(s) (first: {int(negative[0])}); {advice}",
        RuntimeWarning,
        stacklevel=3,
    )


def estimate_curves_from_background(
    style: np.ndarray, mask: np.ndarray, *, show_progress: bool = False
) -> NoiseCurves:
    """Per-tilt statistics of a style stack without noiseless content (real data).

    The selected pixels are assumed to show no specimen structure, so their spread is
    pure noise (see the module docstring for the full assumption).

    Parameters
    ----------
    style : array, shape (n_tilts, Y, X)
    mask : bool array, shape (Y, X) or (n_tilts, Y, X)
        Featureless background pixels (e.g. from :func:`boxes_to_mask`).
    show_progress : bool
        Draw a progress bar.

    Returns
    -------
    NoiseCurves
        ``sigma = std_region / std_tilt`` (clipped to 1), ``r = sqrt(1 - sigma**2)``.
    """
    _check_stack(style, "the style stack")
    _check_mask(mask, style.shape)
    rows = []
    for i in progress(range(style.shape[0]), "estimating noise", enabled=show_progress):
        s, s_mean, s_std = _moments(style[i])
        if s_std == 0:
            raise FaketError(f"tilt {i}: the style tilt is constant; it has no noise to measure")
        selected = _flat_mask(_tilt_mask(mask, i), style.shape[1:])
        sigma = min(_moments(s[selected])[2] / s_std, 1.0)
        rows.append((np.sqrt(1.0 - sigma * sigma), sigma, s_mean, s_std))
    curves = NoiseCurves(*np.asarray(rows, dtype=np.float64).T)
    if np.any(curves.sigma >= 1.0):
        warnings.warn(
            "the selected background varies as much as the whole tilt at some tilts "
            "(sigma clipped to 1, r = 0); select regions without specimen structure",
            RuntimeWarning,
            stacklevel=2,
        )
    return curves


def boxes_to_mask(shape: tuple[int, int], boxes: Sequence[Box]) -> np.ndarray:
    """A boolean (Y, X) mask that is True inside the given boxes.

    Parameters
    ----------
    shape : (Y, X)
        Tilt shape in pixels.
    boxes : sequence of (x0, y0, x1, y1)
        Pixel boxes, half-open (``x0 <= x < x1``, ``y0 <= y < y1``), like an image crop.

    Returns
    -------
    bool array, shape (Y, X)
    """
    mask = np.zeros(shape, dtype=bool)
    n_y, n_x = shape
    for box in boxes:
        if len(box) != 4:
            raise FaketError(f"box {box!r} must have four numbers: x0, y0, x1, y1")
        x0, y0, x1, y1 = (int(v) for v in box)
        if not (0 <= x0 < x1 <= n_x and 0 <= y0 < y1 <= n_y):
            raise FaketError(
                f"box ({x0}, {y0}, {x1}, {y1}) is empty or outside the {n_x} x {n_y} tilt; "
                "use 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height"
            )
        mask[y0:y1, x0:x1] = True
    if not mask.any():
        raise FaketError("no boxes given; select at least one region")
    return mask

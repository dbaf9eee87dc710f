"""Side-by-side figures of the data modalities (paper figs. 13 and 14)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from faket.plots._figure import save_figure


def _nearest_tilt(angles_deg: np.ndarray, angle: float) -> int:
    return int(np.argmin(np.abs(np.asarray(angles_deg) - angle)))


def radial_power_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotationally averaged power spectrum of a 2-D image.

    Parameters
    ----------
    image : array, shape (Y, X)

    Returns
    -------
    frequency : array, shape (n,)
        Spatial frequency in cycles per pixel (0 .. 0.5).
    power : array, shape (n,)
        Mean of ``|FFT|²`` of the zero-mean image over each frequency ring.
    """
    image = np.asarray(image, dtype=np.float64)
    spectrum = np.abs(np.fft.fft2(image - image.mean())) ** 2
    f_y = np.fft.fftfreq(image.shape[0])[:, None]
    f_x = np.fft.fftfreq(image.shape[1])[None, :]
    radius = np.hypot(f_y, f_x)
    n_bins = min(image.shape) // 2
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    index = np.clip(np.digitize(radius.ravel(), edges) - 1, 0, n_bins)
    total = np.bincount(index, weights=spectrum.ravel(), minlength=n_bins + 1)[:n_bins]
    count = np.bincount(index, minlength=n_bins + 1)[:n_bins]
    return 0.5 * (edges[:-1] + edges[1:]), total / np.maximum(count, 1)


#: Colour-bar label of each modality's projections in a faket dataset: the noiseless
#: ones are negated line integrals of the potential, the others electron counts (the
#: noise modalities and FAKET match each tilt's mean and std to the benchmark's).
PROJECTION_UNITS = {
    "noiseless": "-line integral (V x voxel)",
    "benchmark": "electrons / pixel",
    "baseline": "electrons / pixel (matched)",
    "noisy": "electrons / pixel (matched)",
    "content": "electrons / pixel (matched)",
    "faket": "electrons / pixel (matched)",
}
#: Colour-bar label of reconstructions: back-projected values have no physical unit.
RECONSTRUCTION_UNIT = "back-projected value (a.u.)"


def _suffix(source: str | None) -> str:
    return f" ({source})" if source else ""


def plot_projections(
    tilt_series: dict[str, np.ndarray],
    angles_deg: np.ndarray,
    path: str | os.PathLike[str],
    pixel_size_angstrom: float,
    show_angles: tuple[float, ...] = (0.0, 40.0),
    *,
    source: str | None = None,
    labels: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
) -> Path:
    """Projections of every modality side by side at the chosen tilts (paper fig. 14).

    Parameters
    ----------
    tilt_series : dict of name -> array (n_tilts, Y, X)
        One tilt series per modality, same angles.
    angles_deg : array, shape (n_tilts,)
    path : output PNG.
    pixel_size_angstrom : float
        For the axes, in nm.
    show_angles : tilt angles (degrees) to show; the nearest recorded tilt is used.
    source : which tomogram the figure shows (in the title).
    labels : panel title per modality (e.g. ``"faket (random VGG weights)"``).
    units : colour-bar label per modality (default :data:`PROJECTION_UNITS`).
    """
    names = list(tilt_series)
    figure, axes = plt.subplots(
        len(show_angles),
        len(names),
        figsize=(3.2 * len(names), 2.9 * len(show_angles)),
        squeeze=False,
        layout="constrained",
    )
    for row, angle in enumerate(show_angles):
        tilt = _nearest_tilt(angles_deg, angle)
        for column, name in enumerate(names):
            image = tilt_series[name][tilt]
            extent = _extent_nm(image.shape, pixel_size_angstrom)
            low, high = np.percentile(image, [1, 99])
            axis = axes[row, column]
            shown = axis.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent)
            label = (labels or {}).get(name, name)
            axis.set_title(f"{label}, {angles_deg[tilt]:.0f}°", fontsize=9)
            axis.set_xlabel("x (nm)", fontsize=8)
            axis.set_ylabel("y (nm)", fontsize=8)
            axis.tick_params(labelsize=7)
            unit = (units or PROJECTION_UNITS).get(name, "a.u.")
            bar = figure.colorbar(shown, ax=axis, shrink=0.8)
            bar.set_label(unit, fontsize=7)
            bar.ax.tick_params(labelsize=6)
    figure.suptitle("Projections by modality" + _suffix(source))
    return save_figure(figure, path)


def plot_power_spectra(
    tilt_series: dict[str, np.ndarray],
    angles_deg: np.ndarray,
    path: str | os.PathLike[str],
    pixel_size_angstrom: float,
    angle: float = 0.0,
    *,
    source: str | None = None,
    labels: dict[str, str] | None = None,
) -> Path:
    """Rotationally averaged power spectra of each modality's projection (paper fig. 13).

    ``source`` (the tomogram) goes into the title, ``labels`` name the curves.
    """
    tilt = _nearest_tilt(angles_deg, angle)
    figure, axis = plt.subplots(figsize=(6, 4), layout="constrained")
    for name, stack in tilt_series.items():
        frequency, power = radial_power_spectrum(stack[tilt])
        normalised = power / max(power[1:].max(), np.finfo(float).tiny)
        label = (labels or {}).get(name, name)
        axis.semilogy(frequency[1:] / pixel_size_angstrom, normalised[1:], label=label)
    axis.set_xlabel("spatial frequency (1/Å)")
    axis.set_ylabel("power (normalised)")
    axis.set_title(f"Power spectra at {angles_deg[tilt]:.0f}°" + _suffix(source))
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def plot_reconstruction_slices(
    volumes: dict[str, np.ndarray],
    path: str | os.PathLike[str],
    voxel_size_angstrom: float,
    *,
    source: str | None = None,
    labels: dict[str, str] | None = None,
) -> Path:
    """The central XY slice of each reconstruction side by side.

    ``source`` (the tomogram) goes into the title, ``labels`` are the panel titles.
    """
    names = list(volumes)
    figure, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False, layout="constrained"
    )
    for axis, name in zip(axes[0], names, strict=True):
        volume = volumes[name]
        image = volume[volume.shape[0] // 2]
        low, high = np.percentile(image, [1, 99])
        shown = axis.imshow(
            image,
            cmap="gray",
            vmin=low,
            vmax=high,
            extent=_extent_nm(image.shape, voxel_size_angstrom),
        )
        axis.set_title((labels or {}).get(name, name), fontsize=9)
        axis.set_xlabel("x (nm)", fontsize=8)
        axis.set_ylabel("y (nm)", fontsize=8)
        axis.tick_params(labelsize=7)
        bar = figure.colorbar(shown, ax=axis, shrink=0.8)
        bar.set_label(RECONSTRUCTION_UNIT, fontsize=7)
        bar.ax.tick_params(labelsize=6)
    figure.suptitle("Central XY slice of each reconstruction" + _suffix(source))
    return save_figure(figure, path)


def _extent_nm(shape: tuple[int, ...], pixel_size_angstrom: float) -> list[float]:
    height_nm = shape[0] * pixel_size_angstrom / 10
    width_nm = shape[1] * pixel_size_angstrom / 10
    return [0.0, width_nm, height_nm, 0.0]

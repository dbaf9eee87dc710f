"""Reference-microscope figure: a projection, its spectrum against the CTF, counts per tilt."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from faket.plots._figure import save_figure
from faket.plots.modalities import radial_power_spectrum


def plot_microscope(
    projections: np.ndarray,
    metadata: pd.DataFrame,
    config,
    pixel_size_angstrom: float,
    path: str | os.PathLike[str],
    source: str | None = None,
) -> Path:
    """Three panels: the tilt nearest 0°, its radial power spectrum with the CTF², and counts.

    Parameters
    ----------
    projections : array, shape (n_tilts, Y, X)
        A simulated tilt series.
    metadata : DataFrame
        Its per-tilt table (``angle_deg``, ``defocus_um``, ``counts_per_pixel``,
        ``film_transmission``).
    config : MicroscopeConfig
        The settings it was simulated with.
    pixel_size_angstrom : float
        Å per pixel.
    path : output PNG.
    source : what was imaged (the input file), for the title.
    """
    from faket.microscope import ctf_curve

    angles = metadata["angle_deg"].to_numpy()
    index = int(np.argmin(np.abs(angles)))
    image = np.asarray(projections[index], dtype=np.float64)
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    shown = axes[0].imshow(image, cmap="gray", origin="lower")
    unit = "intensity / dose" if config.detector.output == "normalized" else "electrons / pixel"
    axes[0].set_title(f"tilt {angles[index]:+.1f}°")
    axes[0].set_axis_off()
    figure.colorbar(shown, ax=axes[0], shrink=0.8, label=unit)
    if source:
        figure.suptitle(f"reference microscope: {source}")

    frequency, power = radial_power_spectrum(image)
    k = frequency / pixel_size_angstrom
    optics = config.optics
    ctf = ctf_curve(
        k,
        defocus_um=float(metadata["defocus_um"].iloc[index]),
        voltage_kv=optics.voltage_kv,
        cs_mm=optics.spherical_aberration_mm,
        amplitude_contrast=optics.amplitude_contrast,
    )
    axes[1].semilogy(k[1:], power[1:], label="image")
    scale = np.median(power[1:]) / max(np.median(ctf[1:] ** 2), 1e-12)
    axes[1].semilogy(k[1:], scale * ctf[1:] ** 2 + 1e-12, alpha=0.6, label="CTF² (scaled)")
    axes[1].set_xlabel("spatial frequency (1/Å)")
    axes[1].set_title("rotational power spectrum")
    axes[1].legend()

    order = np.argsort(angles)
    means = projections.reshape(len(angles), -1).mean(axis=1)
    axes[2].plot(angles[order], means[order], "o", ms=3, label="mean of image")
    normalized = config.detector.output == "normalized"
    expected = metadata["attenuation" if normalized else "counts_per_pixel"].to_numpy()
    label = "dose x Beer-Lambert (ice)"
    if "film_transmission" in metadata and config.film.enabled:
        expected = expected * metadata["film_transmission"].to_numpy()
        label = "dose x Beer-Lambert (ice) x film"
    axes[2].plot(angles[order], expected[order], "-", label=label)
    axes[2].set_xlabel("tilt angle (°)")
    axes[2].set_ylabel("intensity / dose" if normalized else "electrons per pixel")
    axes[2].legend()
    figure.tight_layout()
    return save_figure(figure, path)

"""Noise-model curves against the tilt angle: raw per-tomogram points and fitted curves."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from faket.noise.apply import noise_parameters
from faket.noise.model import QUANTITIES, NoiseModel
from faket.plots._figure import save_figure

_LABELS = {
    "r": "r (clean-signal scale)",
    "sigma": "σ (noise std / style std)",
    "style_mean": "style mean",
    "style_std": "style std",
}


def plot_noise_curves(
    model: NoiseModel, path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Plot r, sigma, style mean and style std against the tilt angle (2 x 2 panels).

    Each panel shows the raw per-tomogram estimates as points, the model's fitted curve
    (its aggregation order) as a line, and for r and sigma the BASELINE constant dashed.
    A model with a noise spectrum gets a third row: its 2-D spectrum at the first, the
    middle and the last tilt.

    Parameters
    ----------
    model : NoiseModel
    path : output PNG
    title : str, optional
        Figure title; default names the order and the tomograms (from the provenance).

    Returns
    -------
    Path
    """
    angles = model.angles_deg
    baseline = dict(zip(("r", "sigma"), noise_parameters(model, "baseline"), strict=True))
    rows = 2 if model.spectrum is None else 3
    figure = plt.figure(figsize=(10, 3.5 * rows), constrained_layout=True)
    grid = figure.add_gridspec(rows, 6)
    axes = np.array(
        [[figure.add_subplot(grid[r, c * 3 : c * 3 + 3]) for c in range(2)] for r in range(2)]
    )
    for ax, quantity in zip(axes.ravel(), QUANTITIES, strict=True):
        for k, curves in enumerate(model.raw):
            label = f"tomogram {k + 1}" if len(model.raw) <= 10 else None
            ax.plot(angles, getattr(curves, quantity), "o", ms=3, alpha=0.5, label=label)
        ax.plot(angles, getattr(model, quantity), "k-", lw=2, label=f"fit, order {model.order}")
        if quantity in baseline:
            ax.plot(angles, baseline[quantity], "k--", lw=1, label="BASELINE (order 0)")
        ax.set_ylabel(_LABELS[quantity])
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("tilt angle (degrees)")
    axes[0, 0].legend(fontsize="small")
    if model.spectrum is not None:
        _spectrum_row(model, figure, grid)
    tomograms = model.provenance.get("tomograms") or []
    which = f": {', '.join(map(str, tomograms))}" if tomograms else ""
    default = f"noise model: order {model.order}, {len(model.raw)} tomogram(s){which}"
    figure.suptitle(title or default)
    return save_figure(figure, path)


def _full_plane(half: np.ndarray) -> np.ndarray:
    """A G x G spectrum from its rfft2 half, using S(-f) = S(f)."""
    size = half.shape[0]
    mirrored = half[(-np.arange(size)) % size][:, 1 : size - half.shape[1] + 1]
    return np.concatenate([half, mirrored[:, ::-1]], axis=1)


def _spectrum_row(model: NoiseModel, figure, grid) -> None:
    """log10 of the noise spectrum (centred, full plane) at the first, middle, last tilt."""
    tilts = sorted({0, model.n_tilts // 2, model.n_tilts - 1})
    planes = {}
    for index in tilts:
        planes[index] = np.log10(np.fft.fftshift(_full_plane(model.spectrum.tilt(index))))
    low = min(np.percentile(p, 1) for p in planes.values())
    high = max(np.percentile(p, 99) for p in planes.values())
    for k, index in enumerate(tilts):
        ax = figure.add_subplot(grid[2, 2 * k : 2 * k + 2])
        shown = ax.imshow(
            planes[index],
            cmap="magma",
            vmin=low,
            vmax=high,
            extent=(-0.5, 0.5, -0.5, 0.5),
            origin="lower",
        )
        ax.set_title(f"noise spectrum (log10), {model.angles_deg[index]:+.0f}°", fontsize=9)
        ax.set_xlabel("fx (cycles/pixel)", fontsize=8)
        ax.set_ylabel("fy (cycles/pixel)", fontsize=8)
    figure.colorbar(shown, ax=ax, shrink=0.8)

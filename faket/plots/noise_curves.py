"""Noise-model curves against the tilt angle: raw per-tomogram points and fitted curves."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

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
    figure, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True, constrained_layout=True)
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
    tomograms = model.provenance.get("tomograms") or []
    which = f": {', '.join(map(str, tomograms))}" if tomograms else ""
    default = f"noise model: order {model.order}, {len(model.raw)} tomogram(s){which}"
    figure.suptitle(title or default)
    return save_figure(figure, path)

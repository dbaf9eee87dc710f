"""Realism figure: radial spectra overlaid, 2-D spectra side by side, value histograms."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from faket.plots._figure import save_figure
from faket.realism.metrics import HISTOGRAM_EDGES


def plot_realism(
    comparisons: dict,
    path: str | os.PathLike[str],
    *,
    reference: str = "reference",
    pixel_size_angstrom: float | None = None,
) -> Path:
    """Radial spectra and histograms on top, one 2-D spectrum per stack below.

    Parameters
    ----------
    comparisons : dict of name -> :class:`faket.realism.metrics.Comparison`
        Each against the same reference (its ``reference`` side is drawn once, from the
        first comparison).
    path : output PNG.
    reference : label of the reference data.
    pixel_size_angstrom : float, optional
        Frequencies in 1/Å instead of cycles per pixel.
    """
    names = list(comparisons)
    first = comparisons[names[0]]
    panels_2d = [(reference, first.spectra2d["reference"])]
    panels_2d += [(n, comparisons[n].spectra2d["simulated"]) for n in names]
    columns = max(2, min(5, len(panels_2d)))
    rows = 1 + -(-len(panels_2d) // columns)
    figure = plt.figure(figsize=(3.2 * columns, 3.4 * rows), layout="constrained")
    grid = figure.add_gridspec(rows, 2 * columns)
    radial_axis = figure.add_subplot(grid[0, :columns])
    histogram_axis = figure.add_subplot(grid[0, columns:])
    scale = 1.0 / pixel_size_angstrom if pixel_size_angstrom else 1.0
    unit = "1/Å" if pixel_size_angstrom else "cycles/pixel"
    sides = [(reference, first.radial["reference"], first.histograms["reference"])]
    sides += [(n, c.radial["simulated"], c.histograms["simulated"]) for n, c in comparisons.items()]
    centres = 0.5 * (HISTOGRAM_EDGES[1:] + HISTOGRAM_EDGES[:-1])
    for k, (name, radial, histogram) in enumerate(sides):
        style = {"color": "black", "lw": 2} if k == 0 else {"lw": 1.2}
        summary = "" if k == 0 else f" ({comparisons[name].summary['spectrum_log_rms']:.3f})"
        radial_axis.semilogy(first.frequency * scale, radial, label=name + summary, **style)
        histogram_axis.semilogy(centres, np.maximum(histogram, 1e-6), label=name, **style)
    radial_axis.set(xlabel=f"spatial frequency ({unit})", ylabel="power (standardised images)")
    radial_axis.set_title("radial power spectrum (per-image log10-ratio RMS)", fontsize=9)
    radial_axis.legend(fontsize=7)
    histogram_axis.set(xlabel="standardised value", ylabel="density", ylim=(1e-5, 1))
    histogram_axis.set_title("histograms", fontsize=9)
    low = min(np.percentile(s, 2) for _, s in panels_2d)
    high = max(np.percentile(s, 99.5) for _, s in panels_2d)
    for k, (name, spectrum) in enumerate(panels_2d):
        row, column = divmod(k, columns)
        axis = figure.add_subplot(grid[1 + row, 2 * column : 2 * column + 2])
        axis.imshow(
            spectrum,
            cmap="magma",
            vmin=low,
            vmax=high,
            extent=(-0.5, 0.5, -0.5, 0.5),
            origin="lower",
        )
        axis.set_title(f"{name}: log10 2-D spectrum", fontsize=9)
        axis.set_xlabel("fx (cycles/pixel)", fontsize=8)
        axis.set_ylabel("fy (cycles/pixel)", fontsize=8)
        axis.tick_params(labelsize=7)
    return save_figure(figure, path)

"""Figures of a grand model: orthogonal slices with the class mask, and a class gallery."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from faket.plots._figure import save_figure


def plot_grand_model(
    potential: np.ndarray,
    class_mask: np.ndarray,
    path: str | os.PathLike[str],
    voxel_size: float,
    title: str = "grand model",
) -> Path:
    """Central XY, XZ and YZ slices of the potential, and of the class mask beside them.

    Parameters
    ----------
    potential : array, shape (Z, Y, X)
        Potential in V.
    class_mask : array, shape (Z, Y, X)
        Class ids, 0 = background.
    path : output PNG.
    voxel_size : float
        Voxel size in Å (for the axis labels).
    title : str
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    z, y, x = (s // 2 for s in potential.shape)
    views = [
        (f"XY (z = {z})", potential[z], class_mask[z]),
        (f"XZ (y = {y})", potential[:, y], class_mask[:, y]),
        (f"YZ (x = {x})", potential[:, :, x], class_mask[:, :, x]),
    ]
    ratios = [potential.shape[1], potential.shape[0], potential.shape[0]]
    figure, axes = plt.subplots(
        3, 2, figsize=(10, 4 + 6 * sum(ratios[1:]) / ratios[0]), height_ratios=ratios
    )
    top = float(np.percentile(potential, 99.9)) or 1.0
    n_classes = max(int(class_mask.max()), 1)
    for row, (label, image, labels) in zip(axes, views, strict=True):
        shown = row[0].imshow(image, cmap="gray", vmin=0, vmax=top, interpolation="nearest")
        row[1].imshow(
            np.ma.masked_equal(labels, 0),
            cmap="tab20",
            vmin=1,
            vmax=max(n_classes, 20),
            interpolation="nearest",
        )
        row[1].set_facecolor("black")
        row[0].set_title(f"potential, {label}")
        row[1].set_title(f"class mask, {label}")
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.colorbar(shown, ax=axes[0, 0], shrink=0.8, label="V")
    figure.suptitle(f"{title} ({voxel_size:g} Å/voxel)")
    return save_figure(figure, path)


def plot_class_gallery(
    templates: dict[str, np.ndarray], path: str | os.PathLike[str], voxel_size: float
) -> Path:
    """Projections (sum along Z) of every class template, side by side at one scale.

    Parameters
    ----------
    templates : dict of name -> array (n, n, n)
        Template potentials in V.
    path : output PNG.
    voxel_size : float
        Voxel size in Å.

    Returns
    -------
    Path
        ``path``.
    """
    names = list(templates)
    columns = min(len(names), 5)
    rows = max(1, int(np.ceil(len(names) / columns)))
    largest = max(t.shape[0] for t in templates.values())
    figure, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, name in zip(axes.ravel(), names, strict=False):
        image = templates[name].sum(axis=0)
        pad = (largest - image.shape[0]) // 2
        axis.imshow(np.pad(image, pad), cmap="gray_r", interpolation="nearest")
        axis.set_title(name, fontsize=9)
    figure.suptitle(f"particle classes, projected along Z (box {largest * voxel_size / 10:g} nm)")
    return save_figure(figure, path)

"""Row-normalised confusion matrices (paper figs. 9-11)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from faket.plots._figure import save_figure


def _aligned(matrices: Sequence[pd.DataFrame], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        return list(labels)
    order: list[str] = []
    for matrix in matrices:
        order += [str(name) for name in matrix.index if str(name) not in order]
    return order


def plot_confusion_matrix(
    confusion: pd.DataFrame | Sequence[pd.DataFrame],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    labels: Sequence[str] | None = None,
) -> Path:
    """Draw a confusion matrix with rows normalised to fractions of each true class.

    Given several matrices (e.g. one per seed), each is row-normalised, the cells show
    their mean and, in parentheses, the 10th-90th percentile range, as in the paper.
    Row labels carry the number of true particles ``n``; empty rows (``background``)
    stay blank.

    Parameters
    ----------
    confusion : DataFrame (n, n) of counts, or a sequence of them
        Rows = true class, columns = predicted class, same labels; classes in the
        order to draw (e.g. by particle size, as :func:`faket.evaluation.score` gives).
    path : output PNG.
    title : figure title.
    labels : class order; default the order of the first matrix (others appended).

    Returns
    -------
    Path
    """
    matrices = [confusion] if isinstance(confusion, pd.DataFrame) else list(confusion)
    order = _aligned(matrices, labels)
    counts = np.stack(
        [m.reindex(index=order, columns=order, fill_value=0).to_numpy(float) for m in matrices]
    )
    totals = counts.sum(axis=2, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    mean = fractions.mean(axis=0)
    low, high = np.percentile(fractions, [10, 90], axis=0)
    support = counts.sum(axis=2).mean(axis=0)

    size = 0.55 * len(order) + 2.5
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(mean, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(order)):
        for j in range(len(order)):
            if mean[i, j] >= 0.005:
                text = f"{mean[i, j]:.0%}"
                if len(matrices) > 1:
                    text += f"\n({low[i, j]:.0%}-{high[i, j]:.0%})"
                colour = "white" if mean[i, j] > 0.6 else "black"
                axes.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=6 if len(matrices) > 1 else 7,
                    color=colour,
                )
    axes.set_xticks(range(len(order)), order, rotation=90)
    rows = [f"{name}\nn={support[i]:.0f}" if support[i] else name for i, name in enumerate(order)]
    axes.set_yticks(range(len(order)), rows, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    suffix = f" (mean of {len(matrices)})" if len(matrices) > 1 else ""
    axes.set_title((title or "confusion matrix") + suffix)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    return save_figure(figure, path)


def plot_per_class_f1(
    per_class: pd.DataFrame, path: str | os.PathLike[str], *, order: Sequence[str] | None = None
) -> Path:
    """Per-class F1 of several modalities as grouped bars with seed spread (paper fig. 8).

    Parameters
    ----------
    per_class : DataFrame
        Long format: ``modality, seed, class_name, f1``.
    path : output PNG.
    order : class order on the x axis (e.g. by particle size); default sorted names.

    Returns
    -------
    Path
    """
    classes = list(order) if order else sorted(per_class["class_name"].unique())
    modalities = list(dict.fromkeys(per_class["modality"]))
    grouped = per_class.groupby(["modality", "class_name"])["f1"]
    mean, low, high = grouped.mean(), grouped.min(), grouped.max()
    width = 0.8 / max(len(modalities), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.7 * len(classes) * len(modalities) ** 0.5), 4))
    positions = np.arange(len(classes))
    for index, modality in enumerate(modalities):
        keys = [(modality, c) for c in classes]
        values = np.array([mean.get(k, np.nan) for k in keys])
        errors = np.array(
            [
                [values[i] - low.get(k, np.nan), high.get(k, np.nan) - values[i]]
                for i, k in enumerate(keys)
            ]
        ).T
        axes.bar(
            positions + (index - (len(modalities) - 1) / 2) * width,
            values,
            width,
            # Equal seeds: the mean can differ from min/max by round-off, either sign.
            yerr=np.nan_to_num(errors).clip(min=0),
            capsize=2,
            label=modality,
        )
    axes.set_xticks(positions, classes, rotation=60, ha="right")
    axes.set(
        ylabel="F1 (test tomogram)",
        ylim=(0, 1),
        title="per-class F1 (bars: mean, whiskers: min-max over seeds)",
    )
    axes.legend(fontsize=8)
    return save_figure(figure, path)

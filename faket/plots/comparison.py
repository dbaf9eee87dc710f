"""Per-modality scores with their confidence intervals, one panel per judge and metric."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from faket.plots._figure import save_figure


def plot_modality_scores(
    panels: Sequence[tuple[str, dict, str, str]],
    path: str | os.PathLike[str],
    *,
    weights: str = "",
) -> Path:
    """Mean F1 per training modality with its 95 % interval, and each seed's value.

    Parameters
    ----------
    panels : ``(judge, modalities, metric, heading)`` per panel, where ``modalities``
        maps a modality to ``{metric: {mean, ci_low, ci_high, seeds}}`` (``table.json``).
    path : output PNG.
    weights : the FAKET modality's VGG weights, for the title.

    Returns
    -------
    Path
    """
    count = max(len(panels), 1)
    figure, axes = plt.subplots(1, count, figsize=(4.2 * count, 4), squeeze=False)
    for axis, (judge, modalities, metric, heading) in zip(axes[0], panels, strict=False):
        names = list(modalities)
        entries = [modalities[n].get(metric) or {} for n in names]
        mean, errors = interval_errors(entries)
        positions = np.arange(len(names))
        axis.bar(positions, mean, 0.6, color="#9ecae1", edgecolor="#3182bd")
        axis.errorbar(positions, mean, yerr=errors, fmt="none", ecolor="black", capsize=4)
        for x, entry in zip(positions, entries, strict=True):
            seeds = [v for v in entry.get("seeds", []) if v is not None]
            axis.plot(np.full(len(seeds), x), seeds, "o", ms=3, color="#08519c", alpha=0.7)
        axis.set_xticks(positions, names, rotation=30, ha="right")
        axis.set(ylim=(0, 1), ylabel="F1 (test tomogram)", title=f"{judge}: {heading}")
    suffix = f" (FAKET: {weights} VGG weights)" if weights else ""
    figure.suptitle(
        f"bars: mean over seeds, whiskers: 95 % interval, dots: seeds{suffix}", fontsize=9
    )
    return save_figure(figure, path)


def interval_errors(entries: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Bar heights (means) and whisker lengths ``(2, n)``: mean - ci_low, ci_high - mean
    (0 where unknown)."""
    mean, low, high = (_values(entries, key) for key in ("mean", "ci_low", "ci_high"))
    return mean, np.nan_to_num(np.stack([mean - low, high - mean]).clip(min=0))


def _values(entries: Sequence[dict], key: str) -> np.ndarray:
    return np.array([np.nan if e.get(key) is None else e[key] for e in entries], dtype=float)

"""Training curves: loss and validation F1 per epoch (paper figs. 6-7)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from faket.plots._figure import save_figure

#: History columns drawn by :func:`plot_validation_curves` and their titles.
CURVES = {
    "val_localization_f1": "localization F1",
    "val_classification_f1_macro_shrec": "classification F1 macro (SHREC)",
}


def plot_training_history(
    history: pd.DataFrame, path: str | os.PathLike[str], loss_name: str = "Dice"
) -> Path:
    """One run: training loss and validation F1 scores per epoch, best epoch marked.

    Parameters
    ----------
    history : DataFrame
        ``epoch, train_loss`` and optional ``val_*`` columns and ``best`` flags (the
        ``history.csv`` of a training run).
    path : output PNG.
    loss_name : what the training loss is (e.g. ``"Dice + 1 x cross-entropy"``).
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(history["epoch"], history["train_loss"], marker="o", ms=3)
    left.set(xlabel="epoch", ylabel=f"training loss ({loss_name})", title="loss")
    columns = [c for c in history.columns if c.startswith("val_") and "f1" in c]
    for column in columns:
        scored = history[["epoch", column]].dropna()  # epochs without validation are NaN
        right.plot(scored["epoch"], scored[column], marker="o", ms=3, label=column[4:])
    if "best" in history.columns and history["best"].astype(bool).any():
        best = history.loc[history["best"].astype(bool), "epoch"].iloc[-1]
        right.axvline(best, color="grey", linestyle=":", label=f"best epoch {best}")
    right.set(xlabel="epoch", ylabel="F1", title="validation", ylim=(0, 1))
    if columns:
        right.legend(fontsize=8)
    return save_figure(figure, path)


def _band(runs: Sequence[pd.DataFrame], column: str) -> pd.DataFrame:
    """Per validated epoch: mean, standard error of the mean and count over runs."""
    table = pd.concat(
        [run.set_index("epoch")[column] for run in runs if column in run.columns], axis=1
    ).dropna(how="all")
    count = table.notna().sum(axis=1)
    spread = table.std(axis=1, ddof=1).fillna(0.0) if table.shape[1] > 1 else 0.0 * count
    return pd.DataFrame(
        {"mean": table.mean(axis=1), "error": spread / np.sqrt(count), "count": count}
    )


def plot_validation_curves(
    histories: dict[str, Sequence[pd.DataFrame]], path: str | os.PathLike[str]
) -> Path:
    """Mean validation F1 per epoch of each modality with 68 % and 95 % bands.

    The bands are mean ± 1 and ± 1.96 standard errors over the seeds (normal
    approximation; the paper bootstrapped over 6 seeds).

    Parameters
    ----------
    histories : modality -> one history DataFrame per seed.
    path : output PNG.
    """
    figure, axes = plt.subplots(1, len(CURVES), figsize=(5.5 * len(CURVES), 4))
    for axis, (column, title) in zip(np.atleast_1d(axes), CURVES.items(), strict=True):
        for modality, runs in histories.items():
            if not any(column in run.columns for run in runs):
                continue
            band = _band(runs, column)
            epochs, mean, error = band.index.to_numpy(), band["mean"], band["error"]
            (line,) = axis.plot(epochs, mean, marker="o", ms=3, label=f"{modality} (n={len(runs)})")
            for width, alpha in ((1.96, 0.12), (1.0, 0.25)):
                axis.fill_between(
                    epochs,
                    mean - width * error,
                    mean + width * error,
                    color=line.get_color(),
                    alpha=alpha,
                    linewidth=0,
                )
        axis.set(xlabel="epoch", ylabel="F1", title=f"validation {title}", ylim=(0, 1))
        axis.legend(fontsize=8)
    return save_figure(figure, path)

"""Confusion matrices and the per-class and macro F1 scores computed from them."""

from __future__ import annotations

import numpy as np
import pandas as pd


def confusion_matrix(matches: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Counts of (true class, predicted class) pairs, rows and columns in ``labels`` order.

    Parameters
    ----------
    matches : DataFrame with ``class_name`` (true) and ``predicted`` per particle.
    labels : every class that may occur, in display order.

    Returns
    -------
    DataFrame (n_labels, n_labels) of int
    """
    position = {name: i for i, name in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true, predicted in zip(matches["class_name"], matches["predicted"], strict=True):
        counts[position[true], position[predicted]] += 1
    return pd.DataFrame(counts, index=list(labels), columns=list(labels))


def shrec_macro_f1(per_class: pd.DataFrame) -> float:
    """Mean F1 over the classes that occur as a true or a predicted class (pycm's class
    set, so ``background`` counts, with F1 = 0, exactly when a particle was missed)."""
    used = (per_class["support"] + per_class["tp"] + per_class["fp"]) > 0
    return float(per_class.loc[used, "f1"].mean())


def per_class_table(confusion: pd.DataFrame) -> pd.DataFrame:
    """Per-class counts and scores from a square confusion matrix.

    Parameters
    ----------
    confusion : DataFrame (n, n)
        Rows = true class, columns = predicted class, same order.

    Returns
    -------
    DataFrame
        Index = class; ``tp, fp, fn, support`` (int) and ``precision, recall`` (NaN
        when undefined) and ``f1 = 2 tp / (2 tp + fp + fn)`` (0 when tp = 0).
    """
    counts = confusion.to_numpy(dtype=np.int64)
    tp = np.diag(counts)
    fp = counts.sum(axis=0) - tp
    fn = counts.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return pd.DataFrame(
        {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "support": counts.sum(axis=1),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        },
        index=list(confusion.index),
    )

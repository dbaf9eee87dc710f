"""Scores of the subtomogram-classification judge, and its files.

Per-class precision, recall and F1 come from the confusion matrix of true and predicted
box labels (``background`` plus the particle classes). The judge's headline number is
the F1 macro over the *particle* classes (``classification_f1_macro``); background's F1
is reported separately (``background_f1``), and the mean over all labels including
background as ``classification_f1_macro_with_background``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from faket.evaluation.confusion import per_class_table
from faket.io import atomic_path, write_text_atomic

BACKGROUND = "background"
#: Files of a classification run's ``test/`` folder.
CLASSIFY_FILES = {
    "json": "scores.json",
    "per_class": "per_class.csv",
    "confusion": "confusion_matrix.csv",
    "predictions": "predictions.csv",
    "figure": "confusion_matrix.png",
}


@dataclass
class ClassifyScores:
    """Classification of boxes.

    Attributes
    ----------
    confusion : DataFrame
        Counts, rows = true label, columns = predicted label (``background`` first).
    per_class : DataFrame
        Index = label; ``tp, fp, fn, support, precision, recall, f1``.
    f1_macro : float
        Mean F1 over the particle classes with at least one true box.
    f1_macro_with_background : float
    background_f1 : float (NaN without background boxes)
    accuracy : float
    """

    confusion: pd.DataFrame
    per_class: pd.DataFrame
    f1_macro: float
    f1_macro_with_background: float
    background_f1: float
    accuracy: float

    @property
    def per_class_f1(self) -> dict[str, float]:
        """F1 of every particle class."""
        return {str(k): float(v) for k, v in self.per_class["f1"].items() if k != BACKGROUND}


def classification_scores(truth: np.ndarray, predicted: np.ndarray, names) -> ClassifyScores:
    """Scores of predicted labels (0 = background, k = ``names[k - 1]``)."""
    labels = [BACKGROUND, *names]
    n = len(labels)
    truth, predicted = np.asarray(truth, np.int64), np.asarray(predicted, np.int64)
    counts = np.bincount(truth * n + predicted, minlength=n * n).reshape(n, n)
    confusion = pd.DataFrame(counts, index=labels, columns=labels)
    per_class = per_class_table(confusion)
    present = per_class["support"] > 0
    particles = present & (per_class.index != BACKGROUND)
    background = per_class.loc[BACKGROUND]
    return ClassifyScores(
        confusion=confusion,
        per_class=per_class,
        f1_macro=float(per_class.loc[particles, "f1"].mean()) if particles.any() else 0.0,
        f1_macro_with_background=float(per_class.loc[present, "f1"].mean()),
        background_f1=float(background["f1"]) if background["support"] > 0 else math.nan,
        accuracy=float(np.trace(counts) / max(counts.sum(), 1)),
    )


def _finite(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def classify_scores_dict(scores: ClassifyScores) -> dict:
    """JSON-ready scores: ``classification_f1_macro, classification_f1_macro_with_background,
    background_f1, accuracy, per_class_f1, per_class, confusion_matrix, n_boxes,
    n_background_boxes``."""
    per_class = {
        str(name): {key: _finite(float(row[key])) for key in ("precision", "recall", "f1")}
        | {key: int(row[key]) for key in ("tp", "fp", "fn", "support")}
        for name, row in scores.per_class.iterrows()
    }
    return {
        "classification_f1_macro": scores.f1_macro,
        "classification_f1_macro_with_background": scores.f1_macro_with_background,
        "background_f1": _finite(scores.background_f1),
        "accuracy": scores.accuracy,
        "per_class_f1": scores.per_class_f1,
        "per_class": per_class,
        "confusion_matrix": {
            "labels": list(scores.confusion.index),
            "counts": scores.confusion.to_numpy().astype(int).tolist(),
        },
        "n_boxes": int(scores.confusion.to_numpy().sum()),
        "n_background_boxes": int(scores.confusion.loc[BACKGROUND].sum()),
    }


def write_classify_scores(
    scores: ClassifyScores,
    predictions: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    title: str = "",
    figure: bool = True,
) -> dict[str, Path]:
    """Write :data:`CLASSIFY_FILES` into ``out_dir`` (created); ``scores.json`` last, so
    its presence means the set is complete."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {key: folder / name for key, name in CLASSIFY_FILES.items()}
    for key, table, index in (
        ("per_class", scores.per_class, True),
        ("confusion", scores.confusion, True),
        ("predictions", predictions, False),
    ):
        with atomic_path(paths[key]) as temporary:
            table.to_csv(temporary, index=index, index_label="class" if index else None)
    if figure:
        from faket.plots.confusion import plot_confusion_matrix

        plot_confusion_matrix(scores.confusion, paths["figure"], title=title)
    else:
        del paths["figure"]
    write_text_atomic(paths["json"], json.dumps(classify_scores_dict(scores), indent=2) + "\n")
    return paths

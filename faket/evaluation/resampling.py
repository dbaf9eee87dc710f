"""Resampling units of the test tomogram, and the judges' metrics as functions of sums.

The bootstrap (:mod:`faket.evaluation.statistics`) resamples *units* of the test data:

- **DeepFinder**: every ground-truth particle of the test tomogram (excluded classes
  too) together with its surroundings. Each prediction belongs to exactly one unit: the
  particle it hit, or, for a false positive (a prediction that hit nothing), the
  particle whose centre is nearest (a Voronoi cell of the tomogram). A resampled
  tomogram thus carries its false positives along with the particles near them, so
  localization precision is resampled as honestly as recall: a region drawn twice
  brings its false positives twice. Likewise the CZII metric's unmatched picks.
- **Classifier**: every test box (particle and background boxes).

A unit's features are counts (found, counted in recall, predictions in its cell, its
cell of the confusion matrix, CZII tp/fp/fn per class), so every metric is a function
of the features' sums, and with all units drawn once it equals the run's own score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from faket.evaluation.czii import fbeta_scores
from faket.evaluation.scoring import GroundTruth, Scores, recall_counted

BACKGROUND = "background"
#: Metrics of the DeepFinder judge (the keys of :func:`deepfinder_statistic`).
DEEPFINDER_METRICS = (
    "localization_f1",
    "localization_recall",
    "localization_precision",
    "classification_f1_macro",
    "classification_f1_macro_shrec",
    "czii_fbeta",
)
#: Metrics of the classification judge.
CLASSIFY_METRICS = (
    "classification_f1_macro",
    "classification_f1_macro_with_background",
    "background_f1",
    "accuracy",
)


@dataclass
class Layout:
    """Column layout of the DeepFinder features, shared by every run of an experiment.

    ``labels``: confusion-matrix labels (``background`` first); ``czii_classes`` and
    ``czii_weights``: the CZII-scored classes and their weights (empty: no CZII).
    """

    labels: list[str]
    czii_classes: list[str]
    czii_weights: np.ndarray

    @property
    def width(self) -> int:
        """Number of feature columns."""
        return 3 + len(self.labels) ** 2 + 3 * len(self.czii_classes)


def deepfinder_layout(all_scores: list[Scores]) -> Layout:
    """The union of the runs' confusion labels, and the CZII classes of the first run
    that has them (every run is scored on the same tomogram, so they agree)."""
    labels = [BACKGROUND]
    for scores in all_scores:
        labels += [str(n) for n in scores.labels if str(n) not in labels]
    czii = next((s.czii for s in all_scores if s.czii is not None), None)
    if czii is None:
        return Layout(labels, [], np.zeros(0))
    return Layout(
        labels, [str(n) for n in czii.per_class.index], czii.per_class["weight"].to_numpy()
    )


def nearest_units(truth: GroundTruth, predictions: pd.DataFrame) -> np.ndarray:
    """Row of the ground-truth particle nearest to each prediction."""
    if len(predictions) == 0:
        return np.zeros(0, dtype=np.int64)
    centres = truth.particles[["x", "y", "z"]].to_numpy(np.float64)
    return cKDTree(centres).query(predictions[["x", "y", "z"]].to_numpy(np.float64))[1]


def deepfinder_features(
    scores: Scores, truth: GroundTruth, predictions: pd.DataFrame, layout: Layout
) -> np.ndarray:
    """Per-unit features ``(n_particles, layout.width)`` of one scored run.

    Parameters
    ----------
    scores : :func:`~faket.evaluation.scoring.score` of ``predictions`` on ``truth``.
    truth : the test tomogram's ground truth.
    predictions : the scored predictions, in the order they were scored.
    layout : the experiment's column layout.
    """
    n = len(truth.particles)
    features = np.zeros((n, layout.width))
    names = truth.particles["class_name"].astype(str).to_numpy()
    keep = ~np.isin(names, scores.excluded)
    nearest = nearest_units(truth, predictions)
    cell = np.where(scores.hits > 0, scores.hits - 1, nearest)
    kept_rows = np.flatnonzero(keep)
    found = scores.matches["n_hits"].to_numpy() > 0
    features[kept_rows[found], 0] = 1.0
    features[:, 1] = recall_counted(truth, keep, scores.exclusion_convention)
    np.add.at(features[:, 2], cell, 1.0)
    position = {name: i for i, name in enumerate(layout.labels)}
    true = np.array([position[c] for c in scores.matches["class_name"]], dtype=np.int64)
    guess = np.array([position[c] for c in scores.matches["predicted"]], dtype=np.int64)
    features[kept_rows, 3 + true * len(layout.labels) + guess] = 1.0
    if layout.czii_classes and scores.czii is not None:
        _czii_features(features, scores, names, predictions, cell, layout)
    return features


def _czii_features(features, scores, names, predictions, cell, layout) -> None:
    offset = 3 + len(layout.labels) ** 2
    matched, scored = scores.czii.matched, scores.czii.scored
    canonical = {n.lower(): n for n in names}
    picked = [canonical.get(str(c).lower(), str(c)) for c in predictions["class_name"]]
    index = {name: k for k, name in enumerate(layout.czii_classes)}
    hit = np.zeros(len(names), dtype=bool)
    hit[matched[matched >= 0]] = True
    for row, name in enumerate(names):
        if name in index:
            features[row, offset + 3 * index[name] + (0 if hit[row] else 2)] = 1.0  # tp / fn
    for k in np.flatnonzero(scored & (matched < 0)):
        if picked[k] in index:
            features[cell[k], offset + 3 * index[picked[k]] + 1] += 1.0  # fp


def confusion_f1(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label F1, support (true count) and column sums of ``(R, L, L)`` confusions."""
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    rows, columns = confusion.sum(axis=2), confusion.sum(axis=1)
    denominator = rows + columns  # = 2 tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)
    return f1, rows, columns


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    count = mask.sum(axis=1)
    total = (values * mask).sum(axis=1)
    return np.divide(total, count, out=np.zeros_like(total, dtype=float), where=count > 0)


def deepfinder_statistic(layout: Layout):
    """The DeepFinder metrics (:data:`DEEPFINDER_METRICS`) of summed features."""
    size = len(layout.labels)

    def statistic(sums: np.ndarray) -> dict[str, np.ndarray]:
        found, counted, predicted = sums[:, 0], sums[:, 1], sums[:, 2]
        recall = np.divide(found, counted, out=np.zeros_like(found), where=counted > 0)
        precision = np.divide(found, predicted, out=np.zeros_like(found), where=predicted > 0)
        total = recall + precision
        f1 = np.divide(2 * recall * precision, total, out=np.zeros_like(total), where=total > 0)
        confusion = sums[:, 3 : 3 + size * size].reshape(-1, size, size)
        per_label, support, columns = confusion_f1(confusion)
        values = {
            "localization_f1": f1,
            "localization_recall": recall,
            "localization_precision": precision,
            "classification_f1_macro": _masked_mean(per_label, support > 0),
            "classification_f1_macro_shrec": _masked_mean(per_label, support + columns > 0),
            "czii_fbeta": _czii_statistic(sums[:, 3 + size * size :], layout),
        }
        return values

    return statistic


def _czii_statistic(block: np.ndarray, layout: Layout) -> np.ndarray:
    if not layout.czii_classes:
        return np.full(block.shape[0], np.nan)
    counts = block.reshape(block.shape[0], -1, 3)
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    scores = fbeta_scores(tp, fp, fn)
    weights = layout.czii_weights[None] * (tp + fn > 0)  # classes present in the resample
    total = weights.sum(axis=1)
    weighted = (scores * weights).sum(axis=1)
    return np.divide(weighted, total, out=np.full_like(total, np.nan), where=total > 0)


def classify_features(truth: pd.Series, predicted: pd.Series, labels: list[str]) -> np.ndarray:
    """One-hot confusion cell ``(n_boxes, L * L)`` of every test box."""
    position = {name: i for i, name in enumerate(labels)}
    true = np.array([position[str(c)] for c in truth], dtype=np.int64)
    guess = np.array([position[str(c)] for c in predicted], dtype=np.int64)
    features = np.zeros((len(true), len(labels) ** 2))
    features[np.arange(len(true)), true * len(labels) + guess] = 1.0
    return features


def classify_statistic(labels: list[str]):
    """The classifier's metrics (:data:`CLASSIFY_METRICS`); ``labels[0]`` is background."""
    size = len(labels)

    def statistic(sums: np.ndarray) -> dict[str, np.ndarray]:
        confusion = sums.reshape(-1, size, size)
        per_label, support, _ = confusion_f1(confusion)
        particles = support > 0
        particles[:, 0] = False
        total = support.sum(axis=1)
        trace = np.trace(confusion, axis1=1, axis2=2)
        background = np.where(support[:, 0] > 0, per_label[:, 0], np.nan)
        return {
            "classification_f1_macro": _masked_mean(per_label, particles),
            "classification_f1_macro_with_background": _masked_mean(per_label, support > 0),
            "background_f1": background,
            "accuracy": np.divide(trace, total, out=np.zeros_like(trace), where=total > 0),
        }

    return statistic

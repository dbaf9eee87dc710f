"""Writing :class:`~faket.evaluation.scoring.Scores`: JSON, CSV tables, text report, figure."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from faket.errors import FaketError
from faket.evaluation.scoring import Scores
from faket.io import atomic_path, write_text_atomic

#: Files written by :func:`write_scores`.
REPORT_FILES = {
    "json": "scores.json",
    "per_class": "per_class.csv",
    "confusion": "confusion_matrix.csv",
    "confusion_normalized": "confusion_matrix_normalized.csv",
    "matches": "matches.csv",
    "text": "report.txt",
    "figure": "confusion_matrix.png",
}


def _finite(value: float) -> float | None:
    """JSON has no NaN: undefined values become null."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def scores_dict(scores: Scores) -> dict:
    """Scores as JSON-ready data; the keys of ``scores.json``.

    Returns
    -------
    dict
        ``localization_recall, localization_precision, localization_f1,
        classification_f1_macro, classification_f1_macro_shrec, per_class_f1,
        n_predictions, n_ground_truth`` and further counts, ``hit_distance``,
        ``per_class`` (precision/recall/F1/support), ``confusion_matrix``
        (labels + counts), ``excluded``, ``exclusion_convention``, ``unknown_classes``,
        ``czii_fbeta`` (null when not computed) and ``czii`` (see :func:`czii_dict`).
    """
    per_class = {
        str(name): {key: _finite(float(row[key])) for key in ("precision", "recall", "f1")}
        | {key: int(row[key]) for key in ("tp", "fp", "fn", "support")}
        for name, row in scores.per_class.iterrows()
    }
    return {
        "localization_recall": scores.localization_recall,
        "localization_precision": scores.localization_precision,
        "localization_f1": scores.localization_f1,
        "classification_f1_macro": scores.classification_f1_macro,
        "classification_f1_macro_shrec": scores.classification_f1_macro_shrec,
        "per_class_f1": scores.per_class_f1,
        **scores.counts,
        "hit_distance": {k: _finite(v) for k, v in scores.hit_distance.items()},
        "per_class": per_class,
        "confusion_matrix": {
            "labels": scores.labels,
            "counts": scores.confusion.to_numpy().astype(int).tolist(),
        },
        "excluded": list(scores.excluded),
        "exclusion_convention": scores.exclusion_convention,
        "unknown_classes": list(scores.unknown_classes),
        "czii_fbeta": _finite(scores.czii_fbeta),
        "czii": czii_dict(scores.czii),
    }


def czii_dict(czii) -> dict | None:
    """CZII scores as JSON-ready data: ``fbeta, beta, per_class`` (counts, radius,
    threshold, weight, precision, recall, fbeta per class); None when not computed."""
    if czii is None:
        return None
    per_class = {
        str(name): {key: int(row[key]) for key in ("tp", "fp", "fn")}
        | {
            key: _finite(float(row[key]))
            for key in ("radius_A", "threshold_A", "weight", "precision", "recall", "fbeta")
        }
        for name, row in czii.per_class.iterrows()
    }
    return {"fbeta": _finite(czii.fbeta), "beta": czii.beta, "per_class": per_class}


def normalized_confusion(confusion: pd.DataFrame) -> pd.DataFrame:
    """Rows divided by their sums (fractions of each true class); empty rows stay 0."""
    totals = confusion.sum(axis=1).replace(0, 1)
    return confusion.div(totals, axis=0)


def text_report(scores: Scores, title: str = "") -> str:
    """A readable summary: localization counts and scores, per-class table, macro F1."""
    c = scores.counts
    d = scores.hit_distance
    lines = [f"# {title}" if title else "# SHREC 2021 scores", ""]
    lines += [
        "## Localization",
        f"predictions: {c['n_predictions']}  ground-truth particles: {c['n_ground_truth']}",
        f"found (TP): {c['n_found']}  missed (FN): {c['n_missed']}  "
        f"false positives: {c['n_false_positives']}",
        f"particles hit more than once: {c['n_multiple_hits']}  "
        f"predictions outside the volume (clipped): {c['n_clipped']}  "
        f"hits on excluded classes: {c['n_hits_on_excluded']}",
        f"hit distance to centre (voxels): mean {d['mean']:.2f}, median {d['median']:.2f}, "
        f"max {d['max']:.2f}",
        f"recall {scores.localization_recall:.4f}  precision "
        f"{scores.localization_precision:.4f}  F1 {scores.localization_f1:.4f}  "
        f"(exclusion convention {scores.exclusion_convention}: recall denominator "
        f"{c.get('n_recall_denominator', c['n_ground_truth'])})",
        "",
        "## Classification (first hit of each particle; rows sorted by particle size)",
    ]
    table = scores.per_class[["support", "tp", "fp", "fn", "precision", "recall", "f1"]]
    lines += [table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"), ""]
    lines += [
        f"F1 macro over ground-truth classes: {scores.classification_f1_macro:.4f}",
        f"F1 macro, SHREC convention (all confusion-matrix classes incl. background): "
        f"{scores.classification_f1_macro_shrec:.4f}",
    ]
    if scores.excluded:
        lines.append(f"excluded classes: {', '.join(scores.excluded)}")
    if scores.unknown_classes:
        lines.append(
            "WARNING: predicted classes not in the ground truth's class table: "
            + ", ".join(scores.unknown_classes)
        )
    lines += ["", *_czii_lines(scores.czii)]
    lines += ["", "## Confusion matrix (rows: true class, columns: predicted class)"]
    lines.append(scores.confusion.to_string())
    return "\n".join(lines) + "\n"


def _czii_lines(czii) -> list[str]:
    if czii is None:
        return ["## CZII F-beta: not computed (voxel size or class radii unknown)"]
    table = czii.per_class[["tp", "fp", "fn", "threshold_A", "weight", "fbeta"]]
    return [
        f"## CZII F-beta (beta = {czii.beta:g}; pick within 0.5 x radius of a centre)",
        table.to_string(float_format=lambda v: f"{v:.3f}"),
        f"CZII score (weighted mean F-beta): {czii.fbeta:.4f}",
    ]


def write_scores(
    scores: Scores,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    title: str = "",
    figure: bool = True,
) -> dict[str, Path]:
    """Write all score files of :data:`REPORT_FILES` into ``out_dir`` (created if needed).

    Every file is written atomically. Without ``overwrite`` an existing ``scores.json``
    stops the call before anything is written.

    Returns
    -------
    dict
        Key of :data:`REPORT_FILES` -> path.
    """
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise FaketError(f"{folder} is a file; pass a folder for the scores")
    existing = next((p for p in folder.parents if p.exists()), Path("."))
    if not existing.is_dir():
        raise FaketError(f"cannot write {folder}: {existing} is a file, not a folder")
    paths = {key: folder / name for key, name in REPORT_FILES.items()}
    if not figure:
        del paths["figure"]
    if paths["json"].exists() and not overwrite:
        raise FaketError(f"{paths['json']} already exists; pass --overwrite to replace it")
    folder.mkdir(parents=True, exist_ok=True)  # like every command's -o: parents too
    _write_csv(paths["per_class"], scores.per_class, index_label="class")
    _write_csv(paths["confusion"], scores.confusion, index_label="true\\predicted")
    _write_csv(
        paths["confusion_normalized"],
        normalized_confusion(scores.confusion),
        index_label="true\\predicted",
    )
    _write_csv(paths["matches"], scores.matches, index=False)
    write_text_atomic(paths["text"], text_report(scores, title))
    if figure:
        from faket.plots.confusion import plot_confusion_matrix

        plot_confusion_matrix(scores.confusion, paths["figure"], title=title)
    # scores.json last: its presence means the set is complete.
    write_text_atomic(paths["json"], json.dumps(scores_dict(scores), indent=2) + "\n")
    return paths


def _write_csv(path: Path, table: pd.DataFrame, **options) -> None:
    with atomic_path(path) as temporary:
        table.to_csv(temporary, **options)

"""The CZII 2024-25 cryo-ET object-identification metric (Kaggle "CZII - CryoET Object
Identification"): a weighted mean of per-class F-beta scores with beta = 4.

Per class, picks (candidates) are matched one to one with ground-truth centres
(references) of the same class: a pick is a true positive when it lies within
``0.5 x`` the class's particle radius (Å, inclusive) of a reference that no other pick
has matched yet. Pairs are matched closest first (ties: earlier pick, then earlier
reference), so the result does not depend on the order of the picks. Then, per class,
``tp`` = matched picks, ``fp`` = unmatched picks, ``fn`` = unmatched references,
``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)`` (0 when undefined) and
``F_beta = (1 + beta^2) P R / (beta^2 P + R)`` (0 when P + R = 0); beta = 4 weighs
recall 16 times as much as precision. The score is ``sum_c w_c F_c / sum_c w_c`` over
the scored classes. Over several tomograms the per-class counts are summed first
(:func:`aggregate`), as the competition did over its runs.

Relation to the Kaggle metric script: it counts ``tp`` as the *set of references*
within the radius of any candidate (a k-d tree ball query), ``fp = n_candidates - tp``
and ``fn = n_references - tp``. That equals one-to-one matching whenever no pick lies
within the threshold of two references of its class, which holds for any two
particles that do not overlap (their centres are at least two radii apart, the
threshold is half a radius). Where references do overlap, the script can count one pick
as two true positives (and then under-counts false positives); this implementation never
does. Only particle classes are scored (the table's ``kind``; vesicles, fiducials and
excluded classes are not), and picks of classes that are not scored are ignored, as the
script ignores particle types it has no radius for.

Radii and weights come from the class table: columns ``radius_A`` and ``czii_weight``
where present, else radius = ``diameter_nm * 5`` Å and weight 1 (see
:func:`faket.evaluation.classes.czii_radii_weights`). Coordinates are voxels of the
ground truth, converted to Å with its voxel size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from faket.errors import FaketError
from faket.evaluation.classes import czii_radii_weights, kind_of

#: The competition's F-beta weight of recall.
BETA = 4.0
#: A pick matches a centre within this fraction of the class's particle radius.
DISTANCE_MULTIPLIER = 0.5
#: Columns of :attr:`CziiScores.per_class`.
COUNT_COLUMNS = ("tp", "fp", "fn")


@dataclass
class CziiScores:
    """Result of :func:`czii_score`.

    Attributes
    ----------
    fbeta : float
        Weighted mean F-beta over the scored classes (NaN when all weights are 0).
    per_class : DataFrame
        Index = scored class; ``tp, fp, fn, radius_A, threshold_A, weight, precision,
        recall, fbeta``.
    matched : array, shape (n_predictions,), int
        Row of the ground-truth particle list each pick matched, -1 if none (also for
        picks of unscored classes).
    scored : array, shape (n_predictions,), bool
        Whether the pick's class is scored.
    beta : float
    """

    fbeta: float
    per_class: pd.DataFrame
    matched: np.ndarray
    scored: np.ndarray
    beta: float = BETA


def fbeta_scores(tp, fp, fn, beta: float = BETA) -> np.ndarray:
    """F-beta from counts (arrays broadcast), 0 where precision + recall = 0."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        b2 = beta**2
        denominator = b2 * precision + recall
        return np.where(
            denominator > 0,
            (1 + b2) * precision * recall / np.where(denominator > 0, denominator, 1),
            0.0,
        )


def weighted_score(fbeta: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_c w_c F_c / sum_c w_c`` along the last axis (NaN when the weights sum to 0)."""
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return np.full(np.shape(fbeta)[:-1], np.nan)
    return (np.asarray(fbeta, dtype=np.float64) * weights).sum(axis=-1) / total


def match_picks(candidates: np.ndarray, references: np.ndarray, threshold: float) -> np.ndarray:
    """One-to-one matching of picks to centres within ``threshold``, closest pairs first.

    Parameters
    ----------
    candidates : array, shape (n, 3)
    references : array, shape (m, 3), same units
    threshold : largest matching distance (inclusive)

    Returns
    -------
    array, shape (n,), int
        Index of the matched reference per candidate, -1 when unmatched.
    """
    matched = np.full(len(candidates), -1, dtype=np.int64)
    if len(candidates) == 0 or len(references) == 0:
        return matched
    pairs = cKDTree(candidates).sparse_distance_matrix(
        cKDTree(references), threshold, output_type="ndarray"
    )
    # Closest pairs first; ties by candidate, then reference (lexsort: last key is primary).
    order = np.lexsort((pairs["j"], pairs["i"], pairs["v"]))
    taken = np.zeros(len(references), dtype=bool)
    for index in order:
        i, j = int(pairs["i"][index]), int(pairs["j"][index])
        if matched[i] < 0 and not taken[j]:
            matched[i], taken[j] = j, True
    return matched


def czii_score(
    predictions: pd.DataFrame,
    particles: pd.DataFrame,
    classes: pd.DataFrame | None,
    voxel_size: float,
    *,
    exclude: Iterable[str] = (),
    beta: float = BETA,
    distance_multiplier: float = DISTANCE_MULTIPLIER,
) -> CziiScores:
    """CZII F-beta of predicted particles against one tomogram's ground truth.

    Parameters
    ----------
    predictions : DataFrame with ``class_name, x, y, z`` (voxels of the ground truth).
    particles : ground-truth particle list (same frame).
    classes : class table (radii, weights; see module docstring), or None.
    voxel_size : Å per voxel of the coordinates.
    exclude : classes not scored (case-insensitive).
    beta, distance_multiplier : the metric's parameters (competition: 4 and 0.5).

    Returns
    -------
    CziiScores
    """
    if not voxel_size or voxel_size <= 0:
        raise FaketError("the CZII metric needs the ground truth's voxel size (Å)")
    true_names = particles["class_name"].astype(str).to_numpy()
    canonical = {n.lower(): n for n in true_names}
    excluded = {str(n).lower() for n in exclude}
    scored = [
        n
        for n in dict.fromkeys(true_names)
        if n.lower() not in excluded and kind_of(n, classes) == "particle"
    ]
    radii, weights = czii_radii_weights(scored, classes)
    unknown = [n for n in scored if not np.isfinite(radii[n])]
    if unknown:
        raise FaketError(
            f"the CZII metric needs the radius of class {unknown[0]!r}: add radius_A or "
            "diameter_nm to classes.csv"
        )
    names = np.array([canonical.get(str(n).lower(), str(n)) for n in predictions["class_name"]])
    picks = predictions[["x", "y", "z"]].to_numpy(np.float64) * voxel_size
    centres = particles[["x", "y", "z"]].to_numpy(np.float64) * voxel_size
    matched = np.full(len(predictions), -1, dtype=np.int64)
    rows = []
    for name in scored:
        mine, theirs = np.flatnonzero(names == name), np.flatnonzero(true_names == name)
        threshold = distance_multiplier * radii[name]
        local = match_picks(picks[mine], centres[theirs], threshold)
        matched[mine[local >= 0]] = theirs[local[local >= 0]]
        tp = int((local >= 0).sum())
        rows.append(
            {"class": name, "tp": tp, "fp": len(mine) - tp, "fn": len(theirs) - tp}
            | {"radius_A": radii[name], "threshold_A": threshold, "weight": weights[name]}
        )
    per_class = finish_table(pd.DataFrame(rows).set_index("class"), beta)
    return CziiScores(
        fbeta=float(weighted_score(per_class["fbeta"].to_numpy(), per_class["weight"].to_numpy())),
        per_class=per_class,
        matched=matched,
        scored=np.isin(names, scored),
        beta=beta,
    )


def finish_table(counts: pd.DataFrame, beta: float = BETA) -> pd.DataFrame:
    """Add ``precision, recall, fbeta`` to a per-class table of ``tp, fp, fn``."""
    table = counts.copy()
    tp, fp, fn = (table[c].to_numpy(np.float64) for c in COUNT_COLUMNS)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["precision"] = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        table["recall"] = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
    table["fbeta"] = fbeta_scores(tp, fp, fn, beta)
    return table


def aggregate(results: Sequence[CziiScores], beta: float = BETA) -> CziiScores:
    """The CZII score over several tomograms: per-class counts summed, then F-beta.

    Radii and weights are taken from the first result that scores a class.
    """
    if not results:
        raise FaketError("no CZII results to aggregate")
    tables = [r.per_class for r in results]
    counts = sum(t[list(COUNT_COLUMNS)].reindex(_union(tables), fill_value=0) for t in tables)
    meta = pd.concat([t[["radius_A", "threshold_A", "weight"]] for t in tables])
    meta = meta[~meta.index.duplicated()].reindex(counts.index)
    table = finish_table(pd.concat([counts.astype(np.int64), meta], axis=1), beta)
    return CziiScores(
        fbeta=float(weighted_score(table["fbeta"].to_numpy(), table["weight"].to_numpy())),
        per_class=table,
        matched=np.concatenate([r.matched for r in results]),
        scored=np.concatenate([r.scored for r in results]),
        beta=beta,
    )


def _union(tables: Sequence[pd.DataFrame]) -> list[str]:
    return list(dict.fromkeys(name for t in tables for name in t.index))

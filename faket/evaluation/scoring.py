"""SHREC 2021 localization and classification scores of a predicted particle list.

Semantics (those of the SHREC 2021 evaluation script, ``misc/eval.py``):

1. The occupancy mask (instance ``i`` = line ``i`` of the particle list, 1-based,
   0 = background) is grey-dilated by one voxel with the 6-connected cross, so where
   two particles touch the larger instance id wins (``skimage.morphology.dilation``).
2. Each prediction's ``(x, y, z)`` is rounded (half to even, as Python's ``round``) and
   clipped into the volume; the instance id there is what it *hit* (0 = a miss).
3. A ground-truth particle is *found* when at least one prediction hit it.
   Localization recall = found / ground-truth particles, precision = found /
   predictions, F1 their harmonic mean.
4. Each ground-truth particle's predicted class is the class of the *first*
   prediction (in list order) that hit it, ``background`` if none did. Per-class
   precision, recall and F1 come from that confusion matrix.
5. Excluded classes (``--exclude vesicle``): their ground-truth particles are dropped
   (not findable, and counted only as the exclusion convention below says);
   predictions that hit them count as predictions but
   neither find anything nor count as false positives; a particle whose first hit
   carries an excluded class is classified ``background``.

Two macro F1 means are reported: over the ground truth's particle classes
(``classification_f1_macro``), and the SHREC script's (pycm's) mean over every class
of the confusion matrix, i.e. the ground-truth classes, any other predicted class, and
``background`` (F1 = 0) when some particle was missed (``classification_f1_macro_shrec``,
the paper's Table 1 convention).

Two *exclusion conventions* say what an excluded particle does to localization recall
(``exclusion_convention``):

- ``shrec`` (the SHREC 2021 script, hence the paper's Table 1): excluded *vesicles*
  stay in the number of ground-truth particles, so recall can never reach 1 when there
  are vesicles (the script deletes them from the found list only, with
  ``--skip_vesicles``); other excluded classes leave the count, as the script's
  ``--skip_4v94`` removes 4V94. Perfect picks of 31 particles, 2 vesicles and 2 4V94,
  with vesicle and 4V94 excluded, give recall 31/33 = 0.939 and F1 0.912.
- ``strict`` (faket's default outside the paper presets): every excluded particle leaves
  the count; the same perfect picks give recall 1 and F1 0.939.

Precision is the same under both: found / all predictions.

Deviations from the script, all deliberate: it raises on unknown class names, on zero
predictions and on zero hits (we give 0), and truncates ground-truth centres to integers
for the hit distance (we use them as given).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from faket.errors import FaketError
from faket.evaluation.classes import kind_of, sort_by_size
from faket.evaluation.confusion import confusion_matrix, per_class_table, shrec_macro_f1
from faket.evaluation.czii import CziiScores, czii_score
from faket.io import read_mrc, read_shrec_particles, validate_particles

BACKGROUND = "background"
#: How excluded particles count for localization recall (see the module docstring).
EXCLUSION_CONVENTIONS = ("strict", "shrec")
#: Files of a ground-truth folder.
TRUTH_FILES = {
    "particles": "particle_locations.txt",
    "occupancy": "occupancy_mask.mrc",
    "classes": "classes.csv",
}


@dataclass
class GroundTruth:
    """The annotation of one tomogram.

    Attributes
    ----------
    particles : DataFrame
        Particle list (:data:`faket.io.COLUMNS`); row ``i`` is instance ``i + 1``.
    occupancy : array, shape (Z, Y, X), integer
        Instance ids, 0 = background.
    classes : DataFrame or None
        Class table with at least ``name``; ``diameter_nm`` (or ``diameter`` in Å)
        and ``kind`` order the classes by size in reports.
    voxel_size : float or None
        Voxel size (Å) of the particle coordinates and masks (for the CZII metric).
    """

    particles: pd.DataFrame
    occupancy: np.ndarray
    classes: pd.DataFrame | None = None
    voxel_size: float | None = None
    _dilated: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def dilated_occupancy(self) -> np.ndarray:
        """The occupancy mask dilated as the SHREC script does (computed once)."""
        if self._dilated is None:
            self._dilated = dilate_occupancy(self.occupancy)
        return self._dilated

    def __post_init__(self) -> None:
        self.particles = validate_particles(self.particles, "ground-truth particle list")
        occupancy = np.asarray(self.occupancy)
        if occupancy.ndim != 3:
            raise FaketError(f"the occupancy mask must be 3-D, got shape {occupancy.shape}")
        if occupancy.dtype.kind == "f":
            # MRC stores large instance ids as float32 (exact up to 2**24).
            occupancy = np.rint(occupancy).astype(np.int32)
        elif occupancy.dtype.kind not in "iu":
            raise FaketError(f"the occupancy mask must hold integers, got {occupancy.dtype}")
        # The mask's own integer type is kept: SHREC-sized masks are large.
        if occupancy.size and (occupancy.min() < 0 or occupancy.max() > len(self.particles)):
            raise FaketError(
                f"occupancy mask has instance ids up to {occupancy.max()} but the particle "
                f"list has {len(self.particles)} particles; they do not belong together"
            )
        self.occupancy = occupancy


def load_truth(folder: str | os.PathLike[str]) -> GroundTruth:
    """Read a ground-truth folder (``particle_locations.txt``, ``occupancy_mask.mrc``,
    optional ``classes.csv``).

    Parameters
    ----------
    folder : a tomogram folder written by ``faket phantom`` or the pipeline.

    Returns
    -------
    GroundTruth
    """
    base = Path(folder)
    if not base.is_dir():
        raise FaketError(f"{base}: no such ground-truth folder; pass the tomogram's folder")
    for key in ("particles", "occupancy"):
        if not (base / TRUTH_FILES[key]).is_file():
            raise FaketError(f"{base} has no {TRUTH_FILES[key]}; it is not a ground-truth folder")
    table_file = base / TRUTH_FILES["classes"]
    classes = pd.read_csv(table_file, keep_default_na=False) if table_file.is_file() else None
    if classes is not None and "name" not in classes.columns:
        raise FaketError(f"{table_file}: no 'name' column; expected id,name,...,diameter_nm")
    occupancy = read_mrc(base / TRUTH_FILES["occupancy"], ndim=3)
    return GroundTruth(
        particles=read_shrec_particles(base / TRUTH_FILES["particles"]),
        occupancy=occupancy.data,
        classes=classes,
        voxel_size=occupancy.voxel_size,
    )


@dataclass
class Scores:
    """Everything :func:`score` measures.

    Attributes
    ----------
    localization_recall, localization_precision, localization_f1 : float
    classification_f1_macro : float
        Mean F1 over the classes present in the (non-excluded) ground truth.
    classification_f1_macro_shrec : float
        Mean F1 over all classes of the confusion matrix (SHREC / paper convention).
    confusion : DataFrame
        Square count matrix, rows = true class, columns = predicted class, both in
        :attr:`labels` order (``background`` first, then by particle size).
    per_class : DataFrame
        Index = class; columns ``tp, fp, fn, support, precision, recall, f1``.
    matches : DataFrame
        One row per non-excluded ground-truth particle: ``instance, class_name,
        predicted, n_hits, distance`` (voxels, NaN if missed).
    counts : dict of str -> int
        ``n_predictions, n_ground_truth, n_found, n_missed, n_false_positives,
        n_hits_on_excluded, n_multiple_hits, n_clipped`` and ``n_recall_denominator``
        (``n_ground_truth`` plus the excluded particles the convention keeps).
    excluded : list of str
    unknown_classes : list of str
        Predicted class names that are neither in the ground truth nor its class table.
    exclusion_convention : ``strict`` or ``shrec`` (see the module docstring).
    hits : array, shape (n_predictions,), int
        Instance id each prediction hit (0 = nothing), in prediction order.
    czii : CziiScores or None
        The CZII F-beta metric of the same predictions (None when the ground truth's
        voxel size or class radii are unknown).
    """

    localization_recall: float
    localization_precision: float
    localization_f1: float
    classification_f1_macro: float
    classification_f1_macro_shrec: float
    confusion: pd.DataFrame
    per_class: pd.DataFrame
    matches: pd.DataFrame
    counts: dict[str, int]
    excluded: list[str] = field(default_factory=list)
    unknown_classes: list[str] = field(default_factory=list)
    exclusion_convention: str = "strict"
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    czii: CziiScores | None = None

    @property
    def czii_fbeta(self) -> float | None:
        """The CZII score (weighted mean F-beta), None when it could not be computed."""
        return None if self.czii is None else self.czii.fbeta

    @property
    def labels(self) -> list[str]:
        """Class order of the confusion matrix."""
        return list(self.confusion.index)

    @property
    def per_class_f1(self) -> dict[str, float]:
        """F1 of every class except ``background``."""
        f1 = self.per_class["f1"]
        return {str(k): float(v) for k, v in f1.items() if k != BACKGROUND}

    @property
    def hit_distance(self) -> dict[str, float]:
        """Distance (voxels) from each found particle's first hit to its centre:
        ``mean, median, std, max`` (NaN when nothing was found)."""
        d = self.matches["distance"].dropna().to_numpy()
        if d.size == 0:
            return dict.fromkeys(("mean", "median", "std", "max"), float("nan"))
        return {
            "mean": float(d.mean()),
            "median": float(np.median(d)),
            "std": float(d.std()),
            "max": float(d.max()),
        }


def dilate_occupancy(occupancy: np.ndarray) -> np.ndarray:
    """Grey dilation by the 6-connected cross: the SHREC script's one-voxel dilation.

    Parameters
    ----------
    occupancy : array, shape (Z, Y, X), integer instance ids

    Returns
    -------
    array, same shape and dtype
    """
    cross = ndimage.generate_binary_structure(3, 1)
    return ndimage.grey_dilation(occupancy, footprint=cross, mode="nearest")


def _canonical_names(truth: GroundTruth) -> dict[str, str]:
    """Lower-case name -> name as spelled in the truth (class table first)."""
    names = list(truth.particles["class_name"])
    if truth.classes is not None:
        names = [str(n) for n in truth.classes["name"]] + names
    canonical: dict[str, str] = {}
    for name in names:
        canonical.setdefault(name.lower(), name)
    return canonical


def _canonical_excluded(exclude: Iterable[str], known: dict[str, str]) -> list[str]:
    # Names absent from this tomogram are kept (and harmless), as in the SHREC script,
    # so one command line can score tomograms with and without, e.g., vesicles.
    return list(dict.fromkeys(known.get(str(name).lower(), str(name)) for name in exclude))


def lookup_hits(occupancy: np.ndarray, predictions: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Instance id under every prediction in the (already dilated) occupancy mask.

    Returns
    -------
    ids : array, shape (n,), int
    voxels : array, shape (n, 3), int
        The rounded, clipped ``(z, y, x)`` voxel that was looked up.
    clipped : array, shape (n,), bool
        Whether the rounded coordinate lay outside the volume.
    """
    rounded = np.rint(predictions[["z", "y", "x"]].to_numpy(np.float64)).astype(np.int64)
    upper = np.array(occupancy.shape, dtype=np.int64) - 1
    voxels = np.clip(rounded, 0, upper).reshape(-1, 3)
    clipped = np.any(voxels != rounded.reshape(-1, 3), axis=1)
    ids = occupancy[voxels[:, 0], voxels[:, 1], voxels[:, 2]].astype(np.int64)
    return ids, voxels, clipped


def score(
    predictions: pd.DataFrame,
    truth: GroundTruth | str | os.PathLike[str],
    exclude: Iterable[str] = (),
    exclusion_convention: str = "strict",
) -> Scores:
    """Score a predicted particle list against a tomogram's ground truth (SHREC 2021),
    and with the CZII metric where the ground truth's voxel size and class sizes are known.

    Parameters
    ----------
    predictions : DataFrame
        ``class_name, x, y, z`` (voxels of the ground truth's volume; other columns
        ignored), in the order the picker ranked them (the first hit classifies).
    truth : GroundTruth or path of a ground-truth folder
    exclude : class names
        Classes left out of the evaluation, e.g. ``["vesicle"]`` (case-insensitive;
        names that do not occur are allowed).
    exclusion_convention : ``strict`` or ``shrec``
        Whether excluded vesicles leave the recall denominator (``strict``) or stay in
        it as in the SHREC 2021 script (``shrec``); see the module docstring.

    Returns
    -------
    Scores
    """
    if exclusion_convention not in EXCLUSION_CONVENTIONS:
        raise FaketError(
            f"unknown exclusion convention {exclusion_convention!r}; use "
            + " or ".join(EXCLUSION_CONVENTIONS)
        )
    if not isinstance(truth, GroundTruth):
        truth = load_truth(truth)
    predictions = _predictions(predictions)
    known = _canonical_names(truth)
    # Class names match case-insensitively (the SHREC script upper-cases PDB ids).
    predicted_names = np.array([known.get(n.lower(), n) for n in predictions["class_name"]])
    excluded = _canonical_excluded(exclude, known)
    true_names = truth.particles["class_name"].to_numpy(dtype=object)
    keep = ~np.isin(true_names, excluded)
    if not keep.any():
        raise FaketError("the ground truth has no particles left to score; exclude fewer classes")

    ids, voxels, clipped = lookup_hits(truth.dilated_occupancy(), predictions)
    matches = _matches(truth, keep, ids, voxels, predicted_names, excluded)
    counts = _counts(ids, keep, matches, clipped)
    counted = recall_counted(truth, keep, exclusion_convention)
    counts["n_recall_denominator"] = int(counted.sum())
    recall = counts["n_found"] / counts["n_recall_denominator"]
    precision = counts["n_found"] / counts["n_predictions"] if counts["n_predictions"] else 0.0
    confusion = confusion_matrix(matches, _label_order(matches, truth.classes))
    per_class = per_class_table(confusion)
    present = pd.unique(matches["class_name"])
    unknown = sorted({n for n in predicted_names if n.lower() not in known} - {BACKGROUND})
    if unknown:
        warnings.warn(
            f"predicted class(es) {', '.join(unknown)} do not occur in the ground truth "
            f"(classes: {', '.join(sorted(set(known.values())))}); they can only score 0: "
            "check the class names",
            RuntimeWarning,
            stacklevel=2,
        )
    return Scores(
        localization_recall=float(recall),
        localization_precision=float(precision),
        localization_f1=_harmonic(recall, precision),
        classification_f1_macro=float(per_class.loc[present, "f1"].mean()),
        classification_f1_macro_shrec=shrec_macro_f1(per_class),
        confusion=confusion,
        per_class=per_class,
        matches=matches,
        counts=counts,
        excluded=excluded,
        unknown_classes=unknown,
        exclusion_convention=exclusion_convention,
        hits=ids,
        czii=_czii(predictions.assign(class_name=predicted_names), truth, excluded),
    )


def recall_counted(truth: GroundTruth, keep: np.ndarray, convention: str) -> np.ndarray:
    """Which ground-truth particles count in the recall denominator: the scored ones,
    plus (``shrec`` convention) the excluded vesicles."""
    if convention == "strict":
        return keep.copy()
    names = truth.particles["class_name"].astype(str)
    vesicle = np.array([kind_of(n, truth.classes) == "vesicle" for n in names], dtype=bool)
    return keep | vesicle


def _czii(predictions: pd.DataFrame, truth: GroundTruth, excluded: list[str]):
    """CZII scores, or None when the voxel size or a scored class's size is unknown."""
    try:
        return czii_score(
            predictions, truth.particles, truth.classes, truth.voxel_size or 0.0, exclude=excluded
        )
    except FaketError:
        return None


def _predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    frame = predictions.copy()
    for column in ("phi", "theta", "psi"):
        if column not in frame.columns:
            frame[column] = 0.0
    return validate_particles(frame, "predicted particle list")


def _matches(truth, keep, ids, voxels, predicted_names, excluded) -> pd.DataFrame:
    """Per ground-truth particle: hits, class of the first hit, distance of the first hit."""
    n = len(truth.particles)
    hit_counts = np.bincount(ids, minlength=n + 1)[1:]
    hit_ids, first = np.unique(ids, return_index=True)  # first occurrence = first hit
    first_hit = np.full(n, -1, dtype=np.int64)
    valid = hit_ids > 0
    first_hit[hit_ids[valid] - 1] = first[valid]
    found = first_hit >= 0
    predicted = np.full(n, BACKGROUND, dtype=object)
    predicted[found] = predicted_names[first_hit[found]]
    predicted[np.isin(predicted, excluded)] = BACKGROUND
    centres = truth.particles[["z", "y", "x"]].to_numpy(np.float64)
    distance = np.full(n, np.nan)
    distance[found] = np.linalg.norm(voxels[first_hit[found]] - centres[found], axis=1)
    table = pd.DataFrame(
        {
            "instance": np.arange(1, n + 1),
            "class_name": truth.particles["class_name"].to_numpy(dtype=object),
            "predicted": predicted,
            "n_hits": hit_counts,
            "distance": distance,
        }
    )
    return table[keep].reset_index(drop=True)


def _counts(ids, keep, matches, clipped) -> dict[str, int]:
    hit_excluded = (ids > 0) & ~np.concatenate([[True], keep])[ids]
    n_found = int((matches["n_hits"] > 0).sum())
    return {
        "n_predictions": int(ids.size),
        "n_ground_truth": len(matches),
        "n_found": n_found,
        "n_missed": len(matches) - n_found,
        "n_false_positives": int((ids == 0).sum()),
        "n_hits_on_excluded": int(hit_excluded.sum()),
        "n_multiple_hits": int((matches["n_hits"] > 1).sum()),
        "n_clipped": int(clipped.sum()),
    }


def _harmonic(a: float, b: float) -> float:
    return float(2 * a * b / (a + b)) if a + b > 0 else 0.0


def _label_order(matches: pd.DataFrame, classes: pd.DataFrame | None) -> list[str]:
    """``background``, particle classes by size, then non-particle kinds, then unknown."""
    used = set(matches["class_name"]) | set(matches["predicted"])
    used.discard(BACKGROUND)
    return [BACKGROUND, *sort_by_size(sorted(used), classes)]

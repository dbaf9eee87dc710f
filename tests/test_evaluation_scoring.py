"""SHREC 2021 scoring: hand-made ground truth and predictions, answers computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from faket.errors import FaketError
from faket.evaluation import GroundTruth, load_truth, score, scores_dict, write_scores
from faket.evaluation.scoring import dilate_occupancy, per_class_table, sort_by_size
from faket.io import write_mrc, write_shrec_particles

SHAPE = (12, 12, 12)


def _particles(rows):
    return pd.DataFrame(
        [(c, x, y, z, 0.0, 0.0, 0.0) for c, x, y, z in rows],
        columns=["class_name", "x", "y", "z", "phi", "theta", "psi"],
    )


def _truth(with_classes=True) -> GroundTruth:
    """Four single-voxel particles (after dilation: 7-voxel crosses) far apart.

    1: a at (x,y,z)=(2,2,2); 2: a at (9,2,2); 3: b at (2,9,9); 4: vesicle at (9,9,9).
    """
    rows = [("a", 2, 2, 2), ("a", 9, 2, 2), ("b", 2, 9, 9), ("vesicle", 9, 9, 9)]
    occupancy = np.zeros(SHAPE, dtype=np.uint16)
    for instance, (_, x, y, z) in enumerate(rows, start=1):
        occupancy[z, y, x] = instance
    classes = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["b", "a", "vesicle"],
            "kind": ["particle", "particle", "vesicle"],
            "diameter_nm": [20.0, 5.0, 40.0],
        }
    )
    return GroundTruth(_particles(rows), occupancy, classes if with_classes else None)


def test_dilation_is_the_six_connected_cross_and_larger_ids_win():
    occupancy = np.zeros((5, 5, 5), dtype=np.int64)
    occupancy[2, 2, 1], occupancy[2, 2, 3] = 1, 2
    dilated = dilate_occupancy(occupancy)
    assert dilated[2, 2, 0] == 1 and dilated[1, 2, 1] == 1  # face neighbours of 1
    assert dilated[1, 1, 1] == 0  # an edge neighbour is not reached
    assert dilated[2, 2, 2] == 2  # shared neighbour: the larger id
    assert dilated[2, 2, 1] == 1 and dilated[2, 2, 3] == 2
    assert (dilated > 0).sum() == 7 + 7 - 1


def test_perfect_predictions_score_one():
    truth = _truth()
    predictions = truth.particles[["class_name", "x", "y", "z"]]
    scores = score(predictions, truth)
    assert scores.localization_recall == scores.localization_precision == 1.0
    assert scores.localization_f1 == 1.0
    assert scores.classification_f1_macro == 1.0
    assert scores.classification_f1_macro_shrec == 1.0  # nothing missed: no background class
    assert scores.hit_distance["max"] == 0.0


def test_duplicates_misses_background_hits_and_first_hit_classification():
    truth = _truth()
    predictions = _particles(
        [
            ("b", 2, 2, 3),  # hits 1 (dilated face neighbour); first hit of 1 -> b (wrong)
            ("a", 2, 2, 2),  # hits 1 again: a duplicate, classification keeps the first
            ("a", 2.4, 8.6, 9.5),  # rounds to (2, 9, 10) -> hits 3 (b) classified a
            ("a", 5, 5, 5),  # background: a false positive
            ("b", 9.6, 9, 9),  # rounds to (10, 9, 9) -> hits 4 (vesicle) classified b
        ]
    )
    scores = score(predictions, truth)
    # Found: 1, 3, 4 of 4 particles; 5 predictions.
    assert scores.counts == {
        "n_predictions": 5,
        "n_ground_truth": 4,
        "n_found": 3,
        "n_missed": 1,
        "n_false_positives": 1,
        "n_hits_on_excluded": 0,
        "n_multiple_hits": 1,
        "n_clipped": 0,
        "n_recall_denominator": 4,
    }
    recall, precision = 3 / 4, 3 / 5
    assert scores.localization_recall == pytest.approx(recall)
    assert scores.localization_precision == pytest.approx(precision)
    assert scores.localization_f1 == pytest.approx(2 * recall * precision / (recall + precision))
    # Per particle (true -> predicted): 1 a->b, 2 a->background, 3 b->a, 4 vesicle->b.
    # a: tp 0, fp 1, fn 2 -> F1 0. b: tp 0, fp 2, fn 1 -> 0. vesicle: fn 1 -> 0.
    assert scores.per_class_f1 == {"a": 0.0, "b": 0.0, "vesicle": 0.0}
    assert scores.confusion.loc["a", "background"] == 1
    assert scores.confusion.loc["vesicle", "b"] == 1
    # Hit distances: particle 1 -> 1 voxel, 3 -> |(10,9,2)-(9,9,2)| = 1, 4 -> 1.
    assert scores.hit_distance["mean"] == pytest.approx(1.0)


def test_macro_means_count_background_only_in_the_shrec_convention():
    truth = _truth()
    predictions = _particles([("a", 2, 2, 2), ("b", 2, 9, 9), ("vesicle", 9, 9, 9)])
    scores = score(predictions, truth)
    # Particle 2 (a) is missed. a: tp 1, fn 1 -> F1 2/3; b and vesicle: 1.
    assert scores.per_class_f1 == pytest.approx({"a": 2 / 3, "b": 1.0, "vesicle": 1.0})
    assert scores.classification_f1_macro == pytest.approx((2 / 3 + 2) / 3)
    # SHREC: background (F1 0) joins the mean: sum over 3 classes / 4.
    assert scores.classification_f1_macro_shrec == pytest.approx((2 / 3 + 2) / 4)


def test_excluded_classes_leave_ground_truth_and_classification():
    truth = _truth()
    predictions = _particles(
        [
            ("vesicle", 2, 2, 2),  # hits 1 (a) but its class is excluded -> background
            ("a", 9, 2, 2),  # hits 2 correctly
            ("b", 9, 9, 9),  # hits the excluded vesicle: neither found nor a false positive
        ]
    )
    scores = score(predictions, truth, exclude=["VESICLE"])  # names match case-insensitively
    assert scores.excluded == ["vesicle"]
    assert scores.counts["n_ground_truth"] == 3
    assert scores.counts["n_found"] == 2
    assert scores.counts["n_false_positives"] == 0
    assert scores.counts["n_hits_on_excluded"] == 1
    assert scores.localization_recall == pytest.approx(2 / 3)
    assert scores.localization_precision == pytest.approx(2 / 3)  # 3 predictions in all
    assert "vesicle" not in scores.labels
    # a: particle 1 -> background, 2 -> a: tp 1, fn 1 -> 2/3; b: missed -> 0.
    assert scores.per_class_f1 == pytest.approx({"a": 2 / 3, "b": 0.0})
    assert scores.classification_f1_macro == pytest.approx(1 / 3)
    assert scores.classification_f1_macro_shrec == pytest.approx(2 / 9)


def test_out_of_bounds_predictions_are_clipped_into_the_volume():
    truth = _truth()
    # (-3, 2, 2) clips to x=0: not in particle 1's cross (x=1..3) -> miss.
    predictions = _particles([("a", -3, 2, 2), ("a", 9, 2, 20), ("a", 2, 2, -0.6)])
    scores = score(predictions, truth)
    # (9, 2, 20) clips to z=11: miss; (2, 2, -0.6) rounds to z=-1, clips to 0: miss.
    assert scores.counts["n_clipped"] == 3
    assert scores.counts["n_found"] == 0
    assert scores.localization_f1 == 0.0
    edge = _particles([("a", 2, 2, 1.4)])  # rounds to z=1, a face neighbour of particle 1
    assert score(edge, truth).counts["n_found"] == 1


def test_rounding_is_half_to_even_like_python_round():
    truth = _truth()
    # x = 2.5 rounds to 2 (even) -> particle 1; x = 3.5 rounds to 4 -> outside its cross.
    assert score(_particles([("a", 2.5, 2, 2)]), truth).counts["n_found"] == 1
    assert score(_particles([("a", 3.5, 2, 2)]), truth).counts["n_found"] == 0


def test_classes_are_ordered_by_size_with_non_particles_last():
    truth = _truth()
    scores = score(truth.particles, truth)
    assert scores.labels == ["background", "a", "b", "vesicle"]  # a 5 nm, b 20 nm
    assert sort_by_size(["vesicle", "zz", "b", "a"], truth.classes) == ["a", "b", "vesicle", "zz"]


def test_per_class_table_matches_hand_counts():
    confusion = pd.DataFrame(
        [[0, 0, 0], [1, 3, 1], [0, 2, 2]], index=list("xab"), columns=list("xab")
    )
    table = per_class_table(confusion)
    assert table.loc["a", "f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 2))
    assert table.loc["b", "precision"] == pytest.approx(2 / 3)
    assert table.loc["b", "recall"] == pytest.approx(1 / 2)
    assert np.isnan(table.loc["x", "recall"])


def test_bad_inputs_raise_one_line_errors():
    truth = _truth()
    # Excluding a class that does not occur changes nothing (scripts pass --exclude vesicle).
    assert score(truth.particles, truth, exclude=["ribosome"]).counts["n_ground_truth"] == 4
    with pytest.raises(FaketError, match="no particles left"):
        score(truth.particles, truth, exclude=["a", "b", "vesicle"])
    with pytest.raises(FaketError, match="instance ids"):
        GroundTruth(truth.particles.iloc[:2], truth.occupancy)


def test_no_predictions_scores_zero():
    truth = _truth()
    scores = score(_particles([]), truth)
    assert scores.localization_f1 == 0.0
    assert scores.classification_f1_macro_shrec == 0.0


def test_truth_folder_and_report_files(tmp_path):
    truth = _truth(with_classes=False)
    write_shrec_particles(tmp_path / "particle_locations.txt", truth.particles)
    write_mrc(tmp_path / "occupancy_mask.mrc", truth.occupancy, 10.0)
    loaded = load_truth(tmp_path)
    assert loaded.classes is None
    np.testing.assert_array_equal(loaded.occupancy, truth.occupancy)
    scores = score(truth.particles.iloc[:2], tmp_path)
    paths = write_scores(scores, tmp_path / "out", figure=False)
    data = json.loads(paths["json"].read_text())
    assert data == json.loads(json.dumps(scores_dict(scores)))
    assert data["n_predictions"] == 2 and data["n_ground_truth"] == 4
    assert data["localization_recall"] == pytest.approx(0.5)
    assert set(data["per_class_f1"]) == {"a", "b", "vesicle"}
    assert "recall 0.5000" in paths["text"].read_text()
    with pytest.raises(FaketError, match="already exists"):
        write_scores(scores, tmp_path / "out", figure=False)


def _reference_shrec(predictions, truth, excluded):
    """The SHREC 2021 script's procedure, written as plainly as it is there (loops)."""
    from skimage.morphology import dilation

    occupancy = dilation(truth.occupancy)  # default footprint: the 6-connected cross
    gt = [("background", 0, 0, 0)] + [
        (r.class_name, r.x, r.y, r.z) for r in truth.particles.itertuples()
    ]
    found = [[] for _ in gt]
    upper = np.array(occupancy.shape[::-1]) - 1
    for row in predictions.itertuples():
        xyz = [int(round(float(v))) for v in (row.x, row.y, row.z)]
        x, y, z = np.clip(xyz, 0, upper)
        found[int(occupancy[z, y, x])].append(row.class_name)
    keep = [i for i in range(1, len(gt)) if gt[i][0] not in excluded]
    n_found = sum(1 for i in keep if found[i])
    actual = [gt[i][0] for i in keep]
    predicted = [
        found[i][0] if found[i] and found[i][0] not in excluded else "background" for i in keep
    ]
    return n_found, len(keep), actual, predicted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_a_plain_reimplementation_of_the_shrec_script(seed):
    rng = np.random.default_rng(seed)
    shape = (10, 14, 16)
    # Random touching blobs: instance ids painted as random boxes, later ones on top.
    occupancy = np.zeros(shape, dtype=np.int32)
    n = 12
    for instance in range(1, n + 1):
        z, y, x = (rng.integers(0, s - 2) for s in shape)
        occupancy[z : z + rng.integers(1, 4), y : y + rng.integers(1, 4), x : x + 3] = instance
    present = np.unique(occupancy[occupancy > 0])
    occupancy = np.searchsorted(np.concatenate([[0], present]), occupancy).astype(np.int32)
    names = rng.choice(["a", "b", "c", "vesicle"], size=len(present))
    centres = rng.uniform(0, 10, size=(len(present), 3))
    truth = GroundTruth(
        _particles([(c, *xyz) for c, xyz in zip(names, centres, strict=True)]), occupancy
    )
    coords = rng.uniform(-2, np.array(shape[::-1]) + 1, size=(40, 3))
    predictions = _particles(
        [(c, *xyz) for c, xyz in zip(rng.choice(["a", "b", "c"], 40), coords, strict=True)]
    )
    excluded = ["vesicle"] if "vesicle" in names else []
    scores = score(predictions, truth, exclude=excluded)
    n_found, n_truth, actual, predicted = _reference_shrec(predictions, truth, excluded)
    assert scores.counts["n_found"] == n_found
    assert scores.counts["n_ground_truth"] == n_truth
    assert scores.localization_precision == pytest.approx(n_found / 40)
    assert list(scores.matches["predicted"]) == predicted
    labels = sorted(set(actual) | set(predicted))
    f1 = []
    for label in labels:
        tp = sum(a == p == label for a, p in zip(actual, predicted, strict=True))
        fp = sum(p == label != a for a, p in zip(actual, predicted, strict=True))
        fn = sum(a == label != p for a, p in zip(actual, predicted, strict=True))
        f1.append(2 * tp / (2 * tp + fp + fn))
    assert scores.classification_f1_macro_shrec == pytest.approx(np.mean(f1))


def _perfect_pick_truth() -> GroundTruth:
    """31 particles, 2 vesicles and 2 4V94, single voxels 4 apart (crosses never touch)."""
    names = ["a"] * 16 + ["b"] * 15 + ["vesicle"] * 2 + ["4V94"] * 2
    grid = [(x, y, z) for z in (2, 6, 10) for y in range(2, 24, 4) for x in range(2, 24, 4)]
    rows = [(n, *grid[i]) for i, n in enumerate(names)]
    occupancy = np.zeros((13, 24, 24), dtype=np.uint16)
    for instance, (_, x, y, z) in enumerate(rows, start=1):
        occupancy[z, y, x] = instance
    return GroundTruth(_particles(rows), occupancy)


def test_exclusion_conventions_on_the_papers_perfect_pick_case():
    # The SHREC 2021 script with --skip_4v94 --skip_vesicles on perfect picks: it drops
    # 4V94 from the ground-truth count but keeps the vesicles, so recall is 31/33.
    truth = _perfect_pick_truth()
    picks = truth.particles[["class_name", "x", "y", "z"]]
    shrec = score(picks, truth, exclude=["vesicle", "4v94"], exclusion_convention="shrec")
    strict = score(picks, truth, exclude=["vesicle", "4v94"], exclusion_convention="strict")
    assert shrec.counts["n_recall_denominator"] == 33 and shrec.counts["n_found"] == 31
    assert shrec.localization_recall == pytest.approx(31 / 33)
    assert shrec.localization_precision == pytest.approx(31 / 35)
    assert round(shrec.localization_recall, 3) == 0.939
    assert round(shrec.localization_f1, 3) == 0.912
    assert strict.localization_recall == 1.0
    assert round(strict.localization_f1, 3) == 0.939
    # Classification does not depend on the convention.
    assert shrec.classification_f1_macro == strict.classification_f1_macro == 1.0
    assert shrec.exclusion_convention == "shrec"
    # Without exclusions the conventions agree: everything is in the count.
    both = [score(picks, truth, exclusion_convention=c) for c in ("shrec", "strict")]
    assert both[0].localization_f1 == both[1].localization_f1 == 1.0
    with pytest.raises(FaketError, match="exclusion convention"):
        score(picks, truth, exclusion_convention="paper")


def test_shrec_convention_knows_vesicles_by_their_kind_in_the_class_table():
    truth = _truth()  # the class table says kind=vesicle for 'vesicle'
    truth.classes.loc[truth.classes["name"] == "vesicle", "name"] = "membrane_blob"
    truth.particles.loc[truth.particles["class_name"] == "vesicle", "class_name"] = "membrane_blob"
    picks = truth.particles[["class_name", "x", "y", "z"]]
    scores = score(picks, truth, exclude=["membrane_blob"], exclusion_convention="shrec")
    assert scores.counts["n_recall_denominator"] == 4
    assert scores.localization_recall == pytest.approx(3 / 4)

"""The CZII F-beta metric: hand-worked cases, the Kaggle script's counting, radii/weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from faket.errors import FaketError
from faket.evaluation import GroundTruth, score, scores_dict
from faket.evaluation.classes import czii_radii_weights
from faket.evaluation.czii import aggregate, czii_score, fbeta_scores, match_picks

VOXEL = 10.0  # Å
CLASSES = pd.DataFrame(
    {
        "name": ["A", "B", "C"],
        "kind": "particle",
        "diameter_nm": [20.0, 12.0, 30.0],
        "radius_A": [100.0, np.nan, np.nan],  # B falls back to diameter_nm * 5 = 60 Å
        "czii_weight": [1.0, 2.0, np.nan],  # C falls back to weight 1
    }
)


def _table(rows):
    return pd.DataFrame(rows, columns=["class_name", "x", "y", "z"])


def _f4(tp, fp, fn):
    p, r = tp / (tp + fp), tp / (tp + fn)
    return 17 * p * r / (16 * p + r)


def test_radii_and_weights_come_from_the_class_table_with_fallbacks():
    radii, weights = czii_radii_weights(["A", "B", "C", "unknown"], CLASSES)
    assert radii["A"] == 100.0 and radii["B"] == 60.0 and radii["C"] == 150.0
    assert np.isnan(radii["unknown"])
    assert weights == {"A": 1.0, "B": 2.0, "C": 1.0, "unknown": 1.0}


def test_hand_worked_two_class_case():
    # A: radius 100 Å -> threshold 50 Å = 5 voxels; B: radius 60 Å -> 3 voxels.
    truth = _table(
        [
            ("A", 10, 10, 10),
            ("A", 30, 10, 10),
            ("A", 50, 10, 10),
            ("B", 10, 40, 10),
            ("B", 30, 40, 10),
        ]
    )
    picks = _table(
        [
            ("A", 11, 10, 10),  # 1 voxel from A1: loses A1 to the exact pick below
            ("A", 10, 10, 10),  # exactly on A1: tp
            ("A", 30, 14.9, 10),  # 49 Å from A2: tp
            ("a", 50, 10, 15.1),  # 51 Å from A3: fp (case-insensitive class name)
            ("B", 10, 42, 10),  # 20 Å from B1 (threshold 30 Å): tp
            ("A", 30, 40, 10),  # on B2 but the wrong class: an fp of A, B2 stays missed
            ("D", 0, 0, 0),  # a class that is not scored: ignored
        ]
    )
    result = czii_score(picks, truth, CLASSES, VOXEL)
    table = result.per_class
    assert table.loc["A", ["tp", "fp", "fn"]].tolist() == [2, 3, 1]
    assert table.loc["B", ["tp", "fp", "fn"]].tolist() == [1, 0, 1]
    assert table.loc["A", "threshold_A"] == 50.0 and table.loc["B", "threshold_A"] == 30.0
    assert table.loc["A", "fbeta"] == pytest.approx(_f4(2, 3, 1))
    assert table.loc["B", "fbeta"] == pytest.approx(_f4(1, 0, 1))  # = 8.5 / 16.5
    assert result.fbeta == pytest.approx((_f4(2, 3, 1) + 2 * _f4(1, 0, 1)) / 3)
    assert result.matched.tolist() == [-1, 0, 1, -1, 3, -1, -1]
    assert result.scored.tolist() == [True] * 6 + [False]


def test_matching_is_closest_first_and_independent_of_pick_order():
    references = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    candidates = np.array([[4.0, 0, 0], [1.0, 0, 0], [6.0, 0, 0]])
    # Pairs within 5: (c1, r0) 1, (c0, r0) 4, (c2, r1) 4, (c0, r1) 6 > 5.
    assert match_picks(candidates, references, 5.0).tolist() == [-1, 0, 1]
    assert match_picks(candidates[::-1], references, 5.0).tolist() == [1, 0, -1]
    assert match_picks(candidates, references[:0], 5.0).tolist() == [-1, -1, -1]


def _kaggle_counts(references, candidates, radius):
    """The competition script's counting: tp = references within radius of any candidate."""
    if len(references) == 0:
        return 0, len(candidates), 0
    if len(candidates) == 0:
        return 0, 0, len(references)
    hits = cKDTree(candidates).query_ball_tree(cKDTree(references), r=radius)
    tp = len({j for found in hits for j in found})
    return tp, len(candidates) - tp, len(references) - tp


@pytest.mark.parametrize("seed", range(4))
def test_equals_the_kaggle_counting_when_particles_do_not_overlap(seed):
    rng = np.random.default_rng(seed)
    # References on a grid 30 voxels apart (radius 100 Å = 10 voxels: no overlaps).
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3) * 30.0
    references = grid[rng.random(len(grid)) < 0.7]
    near = references[rng.random(len(references)) < 0.8] + rng.normal(0, 3, (1, 3))
    near = near + rng.normal(0, 3, near.shape)
    noise = rng.uniform(0, 60, (5, 3))
    candidates = np.concatenate([near, near[:3] + 1.0, noise])  # with duplicates
    truth = _table([("A", *r) for r in references])
    picks = _table([("A", *c) for c in candidates])
    table = czii_score(picks, truth, CLASSES, VOXEL).per_class
    expected = _kaggle_counts(references * VOXEL, candidates * VOXEL, 50.0)
    assert tuple(table.loc["A", ["tp", "fp", "fn"]]) == expected


def test_aggregate_sums_counts_over_tomograms_before_fbeta():
    truth = _table([("A", 10, 10, 10), ("B", 40, 40, 40)])
    first = czii_score(_table([("A", 10, 10, 10)]), truth, CLASSES, VOXEL)  # B missed
    second = czii_score(_table([("B", 40, 40, 40), ("B", 0, 0, 0)]), truth, CLASSES, VOXEL)
    total = aggregate([first, second])
    assert total.per_class.loc["A", ["tp", "fp", "fn"]].tolist() == [1, 0, 1]
    assert total.per_class.loc["B", ["tp", "fp", "fn"]].tolist() == [1, 1, 1]
    assert total.fbeta == pytest.approx((_f4(1, 0, 1) + 2 * _f4(1, 1, 1)) / 3)


def test_fbeta_edge_cases_and_bad_input():
    assert fbeta_scores([0, 0, 3], [0, 2, 0], [0, 1, 0]).tolist() == [0.0, 0.0, 1.0]
    assert fbeta_scores(1, 1, 1, beta=1.0) == pytest.approx(0.5)
    truth = _table([("A", 1, 1, 1)])
    with pytest.raises(FaketError, match="voxel size"):
        czii_score(truth, truth, CLASSES, 0.0)
    with pytest.raises(FaketError, match="radius of class 'Z'"):
        czii_score(truth, _table([("Z", 1, 1, 1)]), CLASSES, VOXEL)


def test_score_reports_czii_beside_shrec():
    rows = [("A", 2, 2, 2), ("B", 9, 9, 9)]
    particles = _table(rows).assign(phi=0.0, theta=0.0, psi=0.0)
    occupancy = np.zeros((12, 12, 12), dtype=np.uint16)
    occupancy[2, 2, 2], occupancy[9, 9, 9] = 1, 2
    truth = GroundTruth(particles, occupancy, CLASSES, voxel_size=VOXEL)
    scores = score(_table([("A", 2, 2, 2)]), truth)
    assert scores.czii_fbeta == pytest.approx(1 / 3)  # A: F=1 (weight 1); B missed (weight 2)
    data = scores_dict(scores)
    assert data["czii_fbeta"] == pytest.approx(1 / 3)
    assert data["czii"]["per_class"]["B"]["fn"] == 1
    no_size = GroundTruth(particles, occupancy, CLASSES)  # voxel size unknown
    assert score(_table([("A", 2, 2, 2)]), no_size).czii is None


def test_only_particle_classes_are_scored():
    classes = pd.concat(
        [CLASSES, pd.DataFrame({"name": ["fiducial"], "kind": ["fiducial"], "diameter_nm": [10.0]})]
    )
    truth = _table([("A", 10, 10, 10), ("fiducial", 40, 40, 40)])
    picks = _table([("A", 10, 10, 10), ("fiducial", 0, 0, 0)])
    result = czii_score(picks, truth, classes, VOXEL)
    assert list(result.per_class.index) == ["A"] and result.fbeta == 1.0
    assert result.scored.tolist() == [True, False]

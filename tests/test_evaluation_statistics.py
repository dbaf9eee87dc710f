"""The hierarchical bootstrap on cases with a known answer, and the resampling units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faket.errors import FaketError
from faket.evaluation import GroundTruth, score
from faket.evaluation.resampling import (
    classify_features,
    classify_statistic,
    deepfinder_features,
    deepfinder_layout,
    deepfinder_statistic,
)
from faket.evaluation.statistics import (
    Estimate,
    hierarchical_bootstrap,
    seed_set_rank_correlation,
    seeds_for_half_width,
    spearman,
)


def _recall(sums):
    """Fraction of found units: column 0 found, column 1 counted."""
    return {"recall": sums[:, 0] / sums[:, 1]}


def _binomial_run(rng, n, p):
    found = (rng.random(n) < p).astype(float)
    return np.stack([found, np.ones(n)], axis=1)


def test_interval_of_a_proportion_matches_the_binomial_standard_error():
    rng = np.random.default_rng(1)
    n, p = 400, 0.7
    run = _binomial_run(rng, n, p)
    result = hierarchical_bootstrap({"m": [run]}, _recall, replicates=4000, seed=3)
    estimate = result.modalities["m"]["recall"]
    observed = run[:, 0].mean()
    assert estimate.mean == pytest.approx(observed)
    # A normal interval has half-width 1.96 sqrt(p(1-p)/n); the percentile bootstrap
    # of a proportion agrees to a few percent at n = 400.
    half = 1.96 * np.sqrt(observed * (1 - observed) / n)
    assert (estimate.ci_high - estimate.ci_low) / 2 == pytest.approx(half, rel=0.08)
    assert estimate.ci_low < observed < estimate.ci_high


def test_95_percent_intervals_cover_the_true_proportion_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    p, covered, trials = 0.3, 0, 200
    for trial in range(trials):
        run = _binomial_run(rng, 150, p)
        estimate = hierarchical_bootstrap({"m": [run]}, _recall, replicates=300, seed=trial)
        covered += (
            estimate.modalities["m"]["recall"].ci_low
            <= p
            <= (estimate.modalities["m"]["recall"].ci_high)
        )
    # Binomial(200, 0.95) / 200 lies in [0.90, 0.99] with probability > 0.998.
    assert 0.90 <= covered / trials <= 0.99


def test_seed_level_resampling_gives_the_standard_error_of_the_seed_mean():
    # Every unit of a seed's run is the same, so the particle draw changes nothing and
    # all the spread comes from the seeds: the bootstrap standard error of a mean of S
    # values is sd * sqrt((S - 1) / S) / sqrt(S) (ddof = 0 sd).
    rng = np.random.default_rng(0)
    values = rng.random(30) < 0.5
    runs = [np.tile([[float(v), 1.0]], (20, 1)) for v in values]
    result = hierarchical_bootstrap({"m": runs}, _recall, replicates=6000, seed=1)
    estimate = result.modalities["m"]["recall"]
    assert estimate.mean == pytest.approx(values.mean())
    assert estimate.seed_std == pytest.approx(np.std(values, ddof=1))
    standard_error = np.std(values) / np.sqrt(len(values))
    assert (estimate.ci_high - estimate.ci_low) / (2 * 1.96) == pytest.approx(
        standard_error, rel=0.1
    )


def test_seeds_for_a_target_half_width_by_hand():
    three = Estimate(0.8, 0.74, 0.86, 0.06, [0.74, 0.82, 0.84])  # half-width 0.06
    assert seeds_for_half_width(three, 0.04) == 7  # 3 x (0.06 / 0.04)^2 = 6.75
    assert seeds_for_half_width(three, 0.06) == 3  # already narrow enough
    assert seeds_for_half_width(three, 0.1) == 3
    assert seeds_for_half_width(Estimate(0.8, 0.7, 0.9, 0.0, [0.8]), 0.04) is None
    nan = Estimate(0.8, float("nan"), float("nan"), 0.1, [0.7, 0.9])
    assert seeds_for_half_width(nan, 0.04) is None
    with pytest.raises(FaketError, match="positive"):
        seeds_for_half_width(three, 0.0)


def test_seeds_for_a_target_predict_the_width_that_more_seeds_give():
    # Seed-dominated runs: the width measured with 32 seeds is what 8 seeds predict
    # for 32, up to the sampling noise of the seed spread itself.
    rng = np.random.default_rng(4)
    values = rng.normal(0.8, 0.07, 32).clip(0, 1)
    runs = [np.tile([[v, 1.0]], (10, 1)) for v in values]
    few = hierarchical_bootstrap({"m": runs[:8]}, _recall, replicates=3000, seed=0)
    many = hierarchical_bootstrap({"m": runs}, _recall, replicates=3000, seed=0)
    wide = many.modalities["m"]["recall"]
    target = (wide.ci_high - wide.ci_low) / 2
    assert 16 <= seeds_for_half_width(few.modalities["m"]["recall"], target) <= 64


def test_paired_differences_use_the_same_particles_for_both_modalities():
    rng = np.random.default_rng(2)
    a = _binomial_run(rng, 200, 0.5)
    b = a.copy()
    b[:20, 0] = 1.0 - b[:20, 0]  # b differs from a on 20 of 200 particles
    result = hierarchical_bootstrap(
        {"a": [a], "b": [b]}, _recall, differences=[("a", "b"), ("a", "absent")], seed=0
    )
    difference = result.differences["a-b"]["recall"]
    assert set(result.differences) == {"a-b"}  # pairs with a missing modality are skipped
    assert difference.mean == pytest.approx(a[:, 0].mean() - b[:, 0].mean())
    # Paired: the difference is the mean of the per-particle differences d (0 on 180
    # particles), whose standard error is sd(d) / sqrt(n), far below the sqrt(2) x single
    # interval that two independent draws would give.
    d = a[:, 0] - b[:, 0]
    width = difference.ci_high - difference.ci_low
    assert width / (2 * 1.96) == pytest.approx(np.std(d) / np.sqrt(len(d)), rel=0.15)
    single = result.modalities["a"]["recall"]
    assert width < 0.5 * np.sqrt(2) * (single.ci_high - single.ci_low)
    same = hierarchical_bootstrap({"a": [a], "b": [a.copy()]}, _recall, differences=[("a", "b")])
    zero = same.differences["a-b"]["recall"]
    assert zero.mean == zero.ci_low == zero.ci_high == 0.0


def test_rank_correlation_between_disjoint_seed_sets():
    per_seed = {
        "benchmark": {0: 0.9, 1: 0.88, 2: 0.91, 3: 0.9},
        "faket": {0: 0.7, 1: 0.72, 2: 0.69, 3: 0.71},
        "noiseless": {0: 0.2, 1: 0.25, 2: 0.22, 3: 0.2},
    }
    result = seed_set_rank_correlation(per_seed, [0, 1, 2, 3])
    assert result["seed_sets"] == [[0, 2], [1, 3]]
    assert result["spearman"] == pytest.approx(1.0)
    assert result["means"]["faket"] == pytest.approx([0.695, 0.715])
    swapped = {**per_seed, "faket": {0: 0.95, 2: 0.95, 1: 0.1, 3: 0.1}}
    assert seed_set_rank_correlation(swapped, [0, 1, 2, 3])["spearman"] == pytest.approx(-0.5)
    assert seed_set_rank_correlation(per_seed, [0])["spearman"] is None  # one seed
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def _truth():
    """Six particles in a row (x = 3, 9, ..., 33), classes a a b b vesicle a."""
    names = ["a", "a", "b", "b", "vesicle", "a"]
    rows = [(n, 3 + 6 * i, 4, 4, 0.0, 0.0, 0.0) for i, n in enumerate(names)]
    particles = pd.DataFrame(rows, columns=["class_name", "x", "y", "z", "phi", "theta", "psi"])
    occupancy = np.zeros((9, 9, 40), dtype=np.uint16)
    for i in range(6):
        occupancy[3:6, 3:6, 2 + 6 * i : 5 + 6 * i] = i + 1
    classes = pd.DataFrame(
        {"name": ["a", "b", "vesicle"], "kind": ["particle", "particle", "vesicle"]}
        | {"diameter_nm": [4.0, 4.0, 4.0]}
    )
    return GroundTruth(particles, occupancy, classes, voxel_size=10.0)


@pytest.mark.parametrize("convention", ["strict", "shrec"])
def test_deepfinder_units_reproduce_the_runs_scores(convention):
    truth = _truth()
    predictions = pd.DataFrame(
        [
            ("a", 3, 4, 4),  # particle 0, right
            ("b", 9, 4, 4),  # particle 1, wrong class
            ("a", 9.5, 4, 4),  # particle 1 again
            ("b", 21, 4, 4),  # particle 3
            ("b", 27, 4, 4),  # the vesicle (excluded)
            ("a", 13, 7, 7),  # nothing: a false positive in the cell of particle 2 (x = 15)
            ("b", 38, 8, 8),  # nothing: nearest is particle 5 (x = 33)
        ],
        columns=["class_name", "x", "y", "z"],
    )
    scores = score(predictions, truth, exclude=["vesicle"], exclusion_convention=convention)
    layout = deepfinder_layout([scores])
    features = deepfinder_features(scores, truth, predictions, layout)
    assert features.shape == (6, layout.width)
    assert features[:, 2].tolist() == [1, 2, 1, 1, 1, 1]  # predictions per unit
    values = deepfinder_statistic(layout)(features.sum(axis=0)[None])
    for key in (
        "localization_f1",
        "localization_recall",
        "localization_precision",
        "classification_f1_macro",
        "classification_f1_macro_shrec",
        "czii_fbeta",
    ):
        assert values[key][0] == pytest.approx(getattr(scores, key)), key
    assert scores.czii_fbeta is not None


def test_classify_units_reproduce_the_scores():
    from faket.evaluation.classify_report import classification_scores

    labels = ["background", "a", "b"]
    truth = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    guess = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2])
    scores = classification_scores(truth, guess, labels[1:])
    features = classify_features(
        pd.Series([labels[k] for k in truth]), pd.Series([labels[k] for k in guess]), labels
    )
    values = classify_statistic(labels)(features.sum(axis=0)[None])
    assert values["classification_f1_macro"][0] == pytest.approx(scores.f1_macro)
    assert values["background_f1"][0] == pytest.approx(scores.background_f1)
    assert values["accuracy"][0] == pytest.approx(6 / 9)
    # a: tp 2, fp 1, fn 1; b: tp 3, fp 1, fn 1.
    assert scores.f1_macro == pytest.approx((4 / 6 + 6 / 8) / 2)

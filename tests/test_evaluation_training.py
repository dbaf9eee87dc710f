"""Training: patch sampling, the overfit test, best-epoch selection, seeds, run files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _evaluation_data import synthetic_tomogram

from faket.errors import FaketError
from faket.evaluation import load_model, predict, score, segment, train, train_config
from faket.evaluation.optimisation import (
    PatchSampler,
    WeightAverage,
    learning_rate_factor,
    steps_per_epoch,
)
from faket.evaluation.targets import tomogram_targets
from faket.evaluation.train_config import TrainConfig
from faket.evaluation.training import prepare

# Settings that overfit the synthetic tomogram in a few seconds on 2 CPU cores.
FAST = {
    "patch_size": 24,
    "widths": (16, 16, 16),
    "batch_size": 2,
    "learning_rate": 1e-3,
    "ce_weight": 1.0,
    "jitter": 4,
    "exclude": [],
    "device": "cpu",
}


def test_targets_are_balls_of_the_class_radii_and_mask_targets_are_the_class_mask():
    tomogram = synthetic_tomogram(0)
    config = TrainConfig(**FAST)
    _, labels, samples, names, radii = prepare([tomogram], config)
    assert names == ["small", "big"] and radii == {"small": 2.5, "big": 4.0}
    assert len(samples) == 8
    # The synthetic occupancy was painted with the same balls: labels = class mask.
    np.testing.assert_array_equal(labels[0], tomogram.class_mask)
    mask = tomogram_targets(tomogram, names, radii, kind="mask")
    np.testing.assert_array_equal(mask, tomogram.class_mask)


def test_patches_are_centred_on_particles_and_rotations_keep_image_and_labels_aligned():
    tomogram = synthetic_tomogram(1)
    volumes, labels, samples, _, _ = prepare([tomogram], TrainConfig(**FAST))
    rng = np.random.default_rng(0)
    sampler = PatchSampler(volumes, labels, samples, 16, 0, True, rng)
    images, targets = sampler.batch(np.arange(len(samples)))
    assert images.shape == (8, 1, 16, 16, 16) and targets.shape == (8, 16, 16, 16)
    # Without jitter every patch has its particle's label at the centre (or clamped).
    assert np.all(targets[:, 8, 8, 8] > 0)
    # Patch images equal the volume at the target's positions, rotated or not.
    for image, target in zip(images[:, 0], targets, strict=True):
        values = {int(k): image[target == k].mean() for k in np.unique(target) if k}
        assert all(np.sign(v) == (1 if k == 1 else -1) for k, v in values.items())
    start = np.clip(np.rint(samples[0][1]).astype(int) - 8, 0, np.array(volumes[0].shape) - 16)
    box = tuple(slice(s, s + 16) for s in start)
    plain_image, plain_labels = volumes[0][box], labels[0][box]
    rotated = 0
    for _ in range(40):
        image, target = sampler.batch(np.array([0]))
        if np.array_equal(image[0, 0], plain_image):
            np.testing.assert_array_equal(target[0], plain_labels)
        else:  # 180 degrees about Y: Z and X reversed, for image and labels alike
            np.testing.assert_array_equal(image[0, 0], plain_image[::-1, :, ::-1])
            np.testing.assert_array_equal(target[0], plain_labels[::-1, :, ::-1])
            rotated += 1
    assert 5 < rotated < 35  # about half the patches are rotated


def test_xyz_rotations_turn_patches_about_each_axis_and_never_mirror_them():
    tomogram = synthetic_tomogram(1)
    volumes, labels, samples, _, _ = prepare([tomogram], TrainConfig(**FAST))
    sampler = PatchSampler(volumes, labels, samples, 16, 0, True, np.random.default_rng(1), "xyz")
    start = np.clip(np.rint(samples[0][1]).astype(int) - 8, 0, np.array(volumes[0].shape) - 16)
    box = tuple(slice(s, s + 16) for s in start)
    plain = volumes[0][box]
    keep, rev = slice(None), slice(None, None, -1)
    # A 180-degree turn reverses exactly two axes (or none); one or three is a mirror.
    turns = {
        "none": (keep, keep, keep),
        "z": (keep, rev, rev),
        "y": (rev, keep, rev),
        "x": (rev, rev, keep),
    }
    counts = dict.fromkeys(turns, 0)
    for _ in range(200):
        image, target = sampler.batch(np.array([0]))
        matched = [k for k, flip in turns.items() if np.array_equal(image[0, 0], plain[flip])]
        assert len(matched) == 1
        np.testing.assert_array_equal(target[0], labels[0][box][turns[matched[0]]])
        counts[matched[0]] += 1
    assert all(30 < n < 70 for n in counts.values()), counts  # 1/4 each


def test_weight_average_is_the_mean_of_the_weights_after_the_start():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(network, start=2)
    assert average.tested(network) is network  # nothing averaged yet
    seen = []
    for step in range(1, 6):
        with torch.no_grad():
            for p in network.parameters():
                p.add_(torch.randn_like(p))
        network.train()(torch.randn(4, 3))  # moves the batch-norm running statistics
        average.update(network, step)
        if step > 2:
            seen.append({k: v.clone() for k, v in network.state_dict().items()})
    tested = average.tested(network)
    assert tested is not network and average.count == 3
    for key in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        expected = torch.stack([state[key] for state in seen]).mean(0)
        torch.testing.assert_close(tested.state_dict()[key], expected)


def test_averaging_only_the_last_step_is_the_last_step_and_earlier_averaging_is_not():
    tomogram = synthetic_tomogram(2)
    settings = FAST | {"widths": (4, 4, 4), "epochs": 2, "max_batches": 3, "seed": 1}
    plain = train([tomogram], None, TrainConfig(**settings)).model.network
    last = train([tomogram], None, TrainConfig(**settings, average_from=0.8)).model.network
    half = train([tomogram], None, TrainConfig(**settings, average_from=0.5)).model.network
    for p, q, r in zip(plain.parameters(), last.parameters(), half.parameters(), strict=True):
        assert torch.equal(p, q)  # step 6 of 6 alone averaged: the last iterate itself
        assert not torch.allclose(p, r)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_overfits_a_tiny_tomogram_and_the_full_path_finds_the_particles(batch_norm):
    # With batch normalisation the evaluation-mode network (running statistics) must
    # segment as well as the training-mode one learned to.
    tomogram = synthetic_tomogram(0)
    config = TrainConfig(**FAST, epochs=20, seed=0, batch_norm=batch_norm)
    result = train([tomogram], None, config)
    assert result.model.network.batch_norm == batch_norm
    labels = segment(tomogram.volume, result.model.network, patch_size=24, device="cpu")
    for label in (1, 2):
        truth = tomogram.class_mask == label
        dice = 2 * np.sum((labels == label) & truth) / (np.sum(labels == label) + truth.sum())
        assert dice > 0.8
    found = predict(tomogram.volume, result.model, device="cpu")
    scores = score(found, tomogram.truth)
    assert scores.localization_f1 > 0.9
    assert scores.classification_f1_macro > 0.9
    assert result.history["train_loss"].iloc[-1] < 0.5 * result.history["train_loss"].iloc[0]


def test_same_seed_gives_the_same_run_and_another_seed_does_not():
    tomogram = synthetic_tomogram(2)
    settings = FAST | {"widths": (4, 4, 4), "epochs": 2}
    first = train([tomogram], None, TrainConfig(**settings, seed=3))
    second = train([tomogram], None, TrainConfig(**settings, seed=3))
    other = train([tomogram], None, TrainConfig(**settings, seed=4))
    pd.testing.assert_series_equal(first.history["train_loss"], second.history["train_loss"])
    assert not np.allclose(first.history["train_loss"], other.history["train_loss"])
    for p, q in zip(
        first.model.network.parameters(), second.model.network.parameters(), strict=True
    ):
        assert torch.equal(p, q)


def test_sampling_seed_varies_the_patch_order_and_keeps_the_initial_weights():
    tomogram = synthetic_tomogram(2)
    settings = FAST | {"widths": (4, 4, 4), "epochs": 1, "max_batches": 2, "seed": 3}
    plain = train([tomogram], None, TrainConfig(**settings))
    same = train([tomogram], None, TrainConfig(**settings, sampling_seed=3))
    moved = train([tomogram], None, TrainConfig(**settings, sampling_seed=4))
    # sampling_seed = seed is the default run, step for step.
    pd.testing.assert_series_equal(plain.history["train_loss"], same.history["train_loss"])
    assert not np.allclose(plain.history["train_loss"], moved.history["train_loss"])
    # Zero steps: only the initial weights, which the sampling seed must not touch.
    start = TrainConfig(**settings | {"learning_rate": 1e-30}, sampling_seed=4)
    frozen = train([tomogram], None, start).model.network
    first = train([tomogram], None, TrainConfig(**settings | {"learning_rate": 1e-30}))
    for p, q in zip(frozen.parameters(), first.model.network.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_validation_picks_the_best_epoch_and_run_files_are_written(tmp_path):
    train_set, held_out = synthetic_tomogram(3), synthetic_tomogram(4)
    config = TrainConfig(**FAST | {"widths": (4, 4, 4)}, epochs=3, max_batches=2)
    result = train([train_set], held_out, config, run_dir=tmp_path / "run")
    history = result.history
    values = history["val_classification_f1_macro"].to_numpy()
    assert result.best_epoch == int(np.argmax(values)) + 1  # first of equal maxima
    assert history["best"].sum() >= 1 and bool(history["best"].iloc[0])
    for name in ("best.pt", "last.pt", "history.csv", "train_config.json"):
        assert (tmp_path / "run" / name).is_file()
    saved = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(saved["epoch"]) == [1, 2, 3]
    best = load_model(tmp_path / "run" / "best.pt")
    assert best.info["epoch"] == result.best_epoch
    # Issue 16: the picking settings validation used travel with the model, so that
    # evaluate predict/locate reproduce the scores training reports.
    assert best.clustering == {
        "mode": "per_class",
        "bandwidth_scale": 1.0,
        "min_size_fraction": 0.1,
        "suppression_scale": None,
    }
    for p, q in zip(best.network.parameters(), result.model.network.parameters(), strict=True):
        assert torch.equal(p.cpu(), q.detach().cpu())
    assert result.best_scores.classification_f1_macro == pytest.approx(values.max())
    with pytest.raises(FaketError, match="already exists"):
        train([train_set], None, config, run_dir=tmp_path / "run")


def test_validate_every_skips_epochs_and_the_last_epoch_is_always_scored():
    tomogram = synthetic_tomogram(5)
    config = TrainConfig(**FAST | {"widths": (4, 4, 4)}, epochs=3, max_batches=1, validate_every=2)
    history = train([tomogram], tomogram, config).history
    scored = history["val_localization_f1"].notna().to_numpy()
    assert scored.tolist() == [False, True, True]
    assert not history.loc[~scored, "best"].any()


def test_bad_settings_raise_one_line_errors():
    with pytest.raises(FaketError, match="patch_size"):
        train_config(patch_size=30)
    with pytest.raises(FaketError, match="no training particles"):
        train([synthetic_tomogram(0)], None, TrainConfig(**FAST | {"classes": ["ribosome"]}))


def test_exclusion_convention_follows_the_preset_unless_given():
    assert train_config("paper").exclusion_convention == "shrec"
    assert train_config("shrec").exclusion_convention == "shrec"
    assert train_config("small").exclusion_convention == "strict"
    assert train_config("small", exclusion_convention="shrec").exclusion_convention == "shrec"
    with pytest.raises(FaketError, match="exclusion_convention"):
        train_config("paper", exclusion_convention="sloppy")
    with pytest.raises(FaketError, match="unknown training preset 'cpu2'; choose from"):
        train_config("cpu2")


def test_learning_rate_factor_warms_up_linearly_then_follows_the_cosine():
    # Warm-up: (step + 1) / (warmup + 1), the same for both schedules.
    for schedule in ("constant", "cosine"):
        assert [learning_rate_factor(s, 100, 3, schedule) for s in range(3)] == [0.25, 0.5, 0.75]
    assert learning_rate_factor(50, 100, 0, "constant") == 1.0
    # Cosine over the post-warm-up steps: 1 at its start, 1/2 half-way, (1 + cos(pi/4))/2
    # a quarter in, and the floor 1e-3 at and after the end.
    assert learning_rate_factor(10, 110, 10, "cosine") == 1.0
    assert learning_rate_factor(60, 110, 10, "cosine") == pytest.approx(0.5)
    assert learning_rate_factor(25, 100, 0, "cosine") == pytest.approx((1 + np.sqrt(0.5)) / 2)
    assert learning_rate_factor(100, 100, 0, "cosine") == 1e-3
    assert learning_rate_factor(500, 100, 0, "cosine") == 1e-3


def test_steps_per_epoch_counts_batches_up_to_the_cap():
    assert steps_per_epoch(17, TrainConfig(batch_size=8)) == 3
    assert steps_per_epoch(17, TrainConfig(batch_size=8, max_batches=2)) == 2
    assert steps_per_epoch(16, TrainConfig(batch_size=8, max_batches=5)) == 2


def test_training_applies_the_learning_rate_schedule_step_by_step():
    tomogram = synthetic_tomogram(2)
    settings = FAST | {"widths": (4, 4, 4), "epochs": 3, "max_batches": 2, "seed": 1}
    cosine = train([tomogram], None, TrainConfig(**settings, lr_schedule="cosine", warmup_steps=1))
    # The last step of epoch e is step 2e - 1 of 6 (0-based).
    expected = [1e-3 * learning_rate_factor(2 * e - 1, 6, 1, "cosine") for e in (1, 2, 3)]
    np.testing.assert_allclose(cosine.history["learning_rate"], expected, rtol=1e-12)
    assert expected[0] > expected[1] > expected[2]
    constant = train([tomogram], None, TrainConfig(**settings))
    np.testing.assert_allclose(constant.history["learning_rate"], 1e-3)
    # Same seed, same batches: only the schedule differs, so the weights must differ.
    assert not all(
        torch.equal(p, q)
        for p, q in zip(
            cosine.model.network.parameters(), constant.model.network.parameters(), strict=True
        )
    )


def test_runs_record_what_mixed_precision_became_and_bf16_runs_differ_slightly(monkeypatch):
    import faket.precision as precision_module

    tomogram = synthetic_tomogram(2)
    settings = FAST | {"widths": (4, 4, 4), "epochs": 2, "seed": 1}
    monkeypatch.setattr(precision_module, "cpu_prefers_bf16", lambda: False)
    exact = train([tomogram], None, TrainConfig(**settings, precision="mixed"))
    monkeypatch.setattr(precision_module, "cpu_prefers_bf16", lambda: True)
    reduced = train([tomogram], None, TrainConfig(**settings, precision="mixed"))
    assert exact.model.info["precision"] == "fp32"
    assert reduced.model.info["precision"] == "bf16"
    # Same seed, same patches: bfloat16 changes the losses a little, not the run.
    fp32 = train([tomogram], None, TrainConfig(**settings, precision="fp32"))
    # mixed that became float32 is the float32 run, bit for bit.
    pd.testing.assert_series_equal(exact.history["train_loss"], fp32.history["train_loss"])
    a, b = fp32.history["train_loss"].to_numpy(), reduced.history["train_loss"].to_numpy()
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a, b, rtol=0.05)

"""The subtomogram-classification judge: boxes, augmentation, and learning end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _evaluation_data import synthetic_tomogram, write_tomogram

from faket.errors import FaketError
from faket.evaluation.classify import classify_config, classify_on_dataset, load_classify_data
from faket.evaluation.optimisation import learning_rate_factor
from faket.evaluation.subtomograms import background_positions, box_geometry, subtomogram_set
from faket.io import write_mrc

SHAPE = (32, 56, 56)
# One thread: tiny convolutions on a shared 2-core machine are fastest without waiting.
FAST = {"epochs": 12, "batch_size": 8, "widths": (8, 16, 16), "device": "cpu", "threads": 1}


def _dataset(root, noise_training=False):
    """Four tomograms (0, 1 train, 2 validates, 3 tests) of two separable classes; with
    ``noise_training`` a ``noise`` modality whose training volumes hold only noise."""
    from faket.pipeline import commented_yaml, parse_dataset_config

    config = parse_dataset_config({"n_tomograms": 4, "phantom": {"shape": SHAPE}})
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_config.yaml").write_text(commented_yaml(config))
    rng = np.random.default_rng(5)
    for index in range(4):
        folder = root / f"tomo_{index:03d}"
        write_tomogram(folder, synthetic_tomogram(10 + index, shape=SHAPE, n=14))
        noise = rng.normal(0, 1, SHAPE).astype(np.float32)
        write_mrc(folder / "reconstruction_noise.mrc", noise, 1.0)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _dataset(tmp_path_factory.mktemp("classify"))


def test_box_geometry_holds_the_largest_particle_and_bins_big_ones():
    assert box_geometry({"a": 4.0}, 2, None, 32) == (16, 1)  # 8 + 4 + 2 -> 14 -> at least 16
    assert box_geometry({"a": 14.9}, 2, None, 32) == (32, 1)  # 36 wanted, 32 at most
    assert box_geometry({"a": 27.0}, 2, None, 32) == (60, 2)  # 54 wide: binned by 2
    assert box_geometry({"a": 4.0}, 2, 21, 32) == (22, 1)  # given: rounded up to even


def test_background_boxes_keep_away_from_every_particle():
    rng = np.random.default_rng(0)
    centres = np.array([[16.0, 28, 28], [16, 10, 40]])
    radii = np.array([6.0, 3.0])
    spots = background_positions((32, 56, 56), centres, radii, 10, 16, rng)
    assert len(spots) == 10
    gaps = np.linalg.norm(spots[:, None] - centres[None], axis=2)
    assert np.all(gaps > radii + 16 / 4)
    assert np.all((spots >= 8) & (spots <= np.array([24, 48, 48])))


def test_boxes_are_centred_and_rotations_keep_the_missing_wedge_axis():
    tomogram = synthetic_tomogram(3, shape=SHAPE, n=6)
    boxes = subtomogram_set(
        [tomogram], ["small", "big"], box=16, binning=1, jitter=0, background=2, seed=0
    )
    assert (boxes.labels > 0).sum() == 6 and (boxes.labels == 0).sum() == 2
    plain = boxes.cut(np.arange(len(boxes)))
    # Particle boxes hold the painted value (+1 small, -1 big) at their centre.
    signs = np.sign(plain[:6, 0, 7:9, 7:9, 7:9].mean(axis=(1, 2, 3)))
    assert signs.tolist() == [1.0 if k == 1 else -1.0 for k in boxes.labels[:6]]
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(20):
        box = boxes.cut([0], rng, rotate=True)[0, 0]
        if np.array_equal(box, plain[0, 0]):
            seen.add("plain")
        else:
            np.testing.assert_array_equal(box, plain[0, 0][::-1, :, ::-1])  # 180° about Y
            seen.add("rotated")
    assert seen == {"plain", "rotated"}


def test_a_classifier_trained_on_separable_classes_beats_one_trained_on_noise(dataset, tmp_path):
    config = classify_config(**FAST)
    run = tmp_path / "run"
    result, scores, data = classify_on_dataset(dataset, "benchmark", config, run)
    assert data.names == ["small", "big"] and data.train.box == 16
    assert len(data.test) == 14 + 7  # particles + background (mean per class)
    assert scores.f1_macro >= 0.9 and scores.background_f1 >= 0.8
    written = json.loads((run / "test" / "scores.json").read_text())
    assert written["classification_f1_macro"] == pytest.approx(scores.f1_macro)
    assert set(written["per_class_f1"]) == {"small", "big"}
    saved = json.loads((run / "classify_config.json").read_text())
    assert saved["box"] == 16 and saved["classes"] == ["small", "big"] and saved["seed"] == 0
    for name in ("best.pt", "history.csv", "test/confusion_matrix.png", "test/predictions.csv"):
        assert (run / name).is_file()
    assert int(result.history.loc[result.history["best"], "epoch"].iloc[-1]) == result.best_epoch
    # The same boxes, learned from pure noise: no better than guessing.
    _, noise_scores, noise_data = classify_on_dataset(dataset, "noise", config)
    assert noise_data.test.samples.equals(data.test.samples)  # the same test boxes
    assert noise_scores.f1_macro <= 0.6
    with pytest.raises(FaketError, match="already exists"):
        classify_on_dataset(dataset, "benchmark", config, run)


def test_batch_normalised_classifier_learns_and_checkpoints_its_statistics(dataset, tmp_path):
    config = classify_config(**(FAST | {"batch_norm": True}))
    result, scores, _ = classify_on_dataset(dataset, "benchmark", config, tmp_path / "bn")
    norms = [m for m in result.network.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(norms) == 4  # one per convolution
    assert scores.f1_macro >= 0.9  # evaluation mode, running statistics
    saved = torch.load(tmp_path / "bn" / "best.pt", weights_only=True)
    assert saved["batch_norm"] is True
    assert torch.equal(saved["state_dict"]["features.1.running_mean"], norms[0].running_mean)


def test_training_is_seeded_and_memory_slicing_does_not_change_the_step(dataset, monkeypatch):
    config = classify_config(**(FAST | {"epochs": 2}))
    data = load_classify_data(dataset, "benchmark", config)
    first = classify_on_dataset(dataset, "benchmark", config, data=data)[0].history
    again = classify_on_dataset(dataset, "benchmark", config, data=data)[0].history
    assert first["train_loss"].tolist() == again["train_loss"].tolist()
    # A budget of one byte forces one box per slice: the same gradients, summed.
    monkeypatch.setattr("faket.evaluation.classify.memory_budget", lambda device, b=None: 1)
    sliced = classify_on_dataset(dataset, "benchmark", config, data=data)[0].history
    np.testing.assert_allclose(sliced["train_loss"], first["train_loss"], rtol=1e-4)
    other = classify_on_dataset(
        dataset, "benchmark", config.model_copy(update={"seed": 1}), data=data
    )[0].history
    assert other["train_loss"].tolist() != first["train_loss"].tolist()


def test_the_cosine_schedule_sets_each_epochs_learning_rate(dataset):
    config = classify_config(**(FAST | {"epochs": 3, "lr_schedule": "cosine", "warmup_steps": 2}))
    data = load_classify_data(dataset, "benchmark", config)
    history = classify_on_dataset(dataset, "benchmark", config, data=data)[0].history
    per_epoch = math.ceil(len(data.train) / config.batch_size)
    # The learning rate of each epoch's first step (0-based step (e - 1) * per_epoch).
    expected = [
        config.learning_rate * learning_rate_factor((e - 1) * per_epoch, 3 * per_epoch, 2, "cosine")
        for e in (1, 2, 3)
    ]
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-12)
    assert expected[0] < expected[1] > expected[2]  # warm-up, then decay


def test_bad_settings_and_presets_are_one_line_errors():
    with pytest.raises(FaketError, match="unknown preset 'fast'"):
        classify_config("fast")
    with pytest.raises(FaketError, match="classification setting epochs"):
        classify_config(epochs=0)
    assert classify_config("small").epochs == classify_config().epochs

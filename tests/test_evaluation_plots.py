"""Evaluation figures: the seed statistics behind them, and that they are real PNGs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faket.plots.confusion import plot_confusion_matrix, plot_per_class_f1
from faket.plots.training import _band, plot_training_history, plot_validation_curves

PNG = b"\x89PNG\r\n\x1a\n"


def _history(values, every=1):
    epochs = np.arange(1, len(values) + 1)
    column = [v if e % every == 0 else np.nan for e, v in zip(epochs, values, strict=True)]
    return pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": 1.0 / epochs,
            "val_localization_f1": column,
            "val_classification_f1_macro_shrec": column,
            "best": [False] * (len(values) - 1) + [True],
        }
    )


def test_band_is_mean_and_standard_error_over_seeds_on_validated_epochs():
    runs = [_history([0.1, 0.2, 0.3, 0.4], every=2), _history([0.3, 0.4, 0.5, 0.8], every=2)]
    band = _band(runs, "val_localization_f1")
    assert list(band.index) == [2, 4]
    assert band["mean"].tolist() == pytest.approx([0.3, 0.6])
    # Two values a, b: sample std |a - b| / sqrt(2), standard error |a - b| / 2.
    assert band["error"].tolist() == pytest.approx([0.1, 0.2])


def test_figures_are_written(tmp_path):
    confusion = pd.DataFrame(
        [[0, 0, 0], [1, 3, 0], [2, 0, 5]],
        index=["background", "a", "b"],
        columns=["background", "a", "b"],
    )
    per_class = pd.DataFrame(
        {
            "modality": ["x", "x", "y", "y"],
            "seed": [0, 0, 0, 0],
            "class_name": ["a", "b"] * 2,
            "f1": [0.1, 0.5, 0.3, 0.9],
        }
    )
    paths = [
        plot_confusion_matrix(confusion, tmp_path / "c1.png", title="one"),
        plot_confusion_matrix([confusion, confusion.iloc[::-1, ::-1]], tmp_path / "c2.png"),
        plot_per_class_f1(per_class, tmp_path / "f1.png", order=["a", "b"]),
        plot_training_history(_history([0.2, 0.5, 0.4], every=1), tmp_path / "h.png"),
        plot_validation_curves({"x": [_history([0.2, 0.5], 2)]}, tmp_path / "v.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG


def test_per_class_figure_takes_seeds_with_equal_scores(tmp_path):
    # Three seeds with F1 0.7 each: pandas' mean exceeds the min by round-off, so an
    # unclipped whisker below the bar would be negative (matplotlib refuses it).
    per_class = pd.DataFrame(
        {"modality": ["x"] * 3, "seed": [0, 1, 2], "class_name": ["a"] * 3, "f1": [0.7] * 3}
    )
    grouped = per_class.groupby("class_name")["f1"]
    assert grouped.max().iloc[0] - grouped.mean().iloc[0] != 0  # the round-off is real
    assert plot_per_class_f1(per_class, tmp_path / "f1.png").read_bytes()[:8] == PNG


def test_modality_figure_whiskers_are_the_intervals(tmp_path):
    from faket.plots.comparison import interval_errors, plot_modality_scores

    entries = [
        {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.85, "seeds": [0.79, 0.81]},
        {"mean": 0.5, "ci_low": None, "ci_high": None, "seeds": [0.5]},
    ]
    mean, errors = interval_errors(entries)
    assert mean.tolist() == [0.8, 0.5]
    np.testing.assert_allclose(errors, [[0.1, 0.0], [0.05, 0.0]])
    modalities = {"benchmark": {"f1": entries[0]}, "faket": {"f1": entries[1]}}
    path = plot_modality_scores([("judge", modalities, "f1", "F1")], tmp_path / "f.png")
    assert path.read_bytes().startswith(PNG)

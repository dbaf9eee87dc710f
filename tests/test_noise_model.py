"""NoiseModel: polynomial aggregation over tomograms and the JSON file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faket.errors import FaketError
from faket.noise import (
    NoiseCurves,
    NoiseModel,
    aggregate_curves,
    estimate_noise_model,
    fit_curve,
    load_noise_model,
    save_noise_model,
)


def random_curves(rng, n=9):
    return NoiseCurves(
        r=rng.uniform(0.2, 0.9, n),
        sigma=rng.uniform(0.3, 0.9, n),
        style_mean=rng.normal(100.0, 5.0, n),
        style_std=rng.uniform(1.0, 2.0, n),
    )


def test_fit_curve_orders():
    rng = np.random.default_rng(0)
    curve = rng.normal(size=15)
    np.testing.assert_array_equal(fit_curve(curve, -1), curve)
    np.testing.assert_allclose(fit_curve(curve, 0), np.full(15, curve.mean()))
    x = np.arange(15)
    quadratic = 0.3 - 0.02 * x + 0.004 * x**2
    np.testing.assert_allclose(fit_curve(quadratic, 2), quadratic, atol=1e-12)
    expected = np.polyval(np.polyfit(x, curve, 2), x)  # independent least squares
    np.testing.assert_allclose(fit_curve(curve, 2), expected, atol=1e-10)


@pytest.mark.parametrize("order", [-2, 15, 1.5, True])
def test_impossible_order_is_an_error(order):
    with pytest.raises(FaketError, match="order"):
        fit_curve(np.zeros(15), order)


@pytest.mark.parametrize("order", [-1, 0, 2])
def test_aggregate_is_mean_over_tomograms_of_fitted_curves(order):
    rng = np.random.default_rng(1)
    tomograms = [random_curves(rng) for _ in range(3)]
    aggregated = aggregate_curves(tomograms, order)
    for name in ("r", "sigma", "style_mean", "style_std"):
        fits = [fit_curve(getattr(c, name), order) for c in tomograms]
        np.testing.assert_allclose(getattr(aggregated, name), np.mean(fits, axis=0))
    if order == 0:
        assert np.ptp(aggregated.r) == 0


def test_estimate_noise_model_aggregates_per_pair_curves():
    rng = np.random.default_rng(2)
    clean = [rng.normal(size=(5, 24, 24)) for _ in range(2)]
    style = [c * np.linspace(1, 2, 5)[:, None, None] + rng.normal(size=c.shape) for c in clean]
    model = estimate_noise_model(style, clean, np.linspace(-40, 40, 5), order=0)
    assert model.order == 0 and len(model.raw) == 2
    expected_r = np.mean([c.r.mean() for c in model.raw])
    np.testing.assert_allclose(model.r, expected_r)
    assert model.provenance["method"] == "paired" and "created" in model.provenance
    with pytest.raises(FaketError, match="2 style stacks but 1 clean"):
        estimate_noise_model(style, clean[:1], np.linspace(-40, 40, 5))
    with pytest.raises(FaketError, match="5 tilts but 4 tilt angles"):
        estimate_noise_model(style, clean, np.linspace(-40, 40, 4))


def make_model(seed=3):
    rng = np.random.default_rng(seed)
    raw = [random_curves(rng) for _ in range(2)]
    angles = np.linspace(-60, 60, 9) + np.array([0.1 + 0.2, 1e-300, 0, 0, 0, 0, 0, 0, -1 / 3])
    return NoiseModel.from_curves(raw, angles, 2, {"style": ["a.mrc", "b.mrc"], "x": [1, 2]})


def test_json_round_trip_is_exact(tmp_path):
    model = make_model()
    again = NoiseModel.from_json(model.to_json())
    assert again == model
    for name in ("angles_deg", "r", "sigma", "style_mean", "style_std"):
        assert np.array_equal(getattr(again, name), getattr(model, name))
    assert all(a == b for a, b in zip(again.raw, model.raw, strict=True))
    path = save_noise_model(model, tmp_path / "model.json")
    assert load_noise_model(path) == model
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_model_with_one_curve_changed_is_not_equal():
    model = make_model()
    data = model.to_dict()
    data["sigma"][3] += 1e-12
    assert NoiseModel.from_dict(data) != model


def _edited(**changes):
    data = make_model().to_dict()
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a faket noise model"),
        (_edited(format="something-else"), "not a faket noise model"),
        (_edited(version=2), "version 2 is not supported"),
        (_edited(version=None), "version None is not supported"),
        (_edited(r=None), "malformed"),
        (_edited(r=[0.5] * 8), "equal length"),
        (_edited(angles_deg=[0.0] * 8), "8 tilt angles for 9 tilts"),
        (_edited(sigma=[-0.1] * 9), "sigma >= 0"),
        (_edited(style_std=["a"] * 9), "list of numbers"),
        (_edited(order="2"), "integer"),
        (_edited(order=9), "order 9 is not possible"),
        (_edited(raw={"r": [[0.5] * 9]}), "malformed"),
    ],
)
def test_malformed_or_mismatched_json_gives_a_clear_error(text, message, tmp_path):
    path = tmp_path / "model.json"
    path.write_text(text)
    with pytest.raises(FaketError, match=message) as raised:
        load_noise_model(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_missing_model_file_is_an_error(tmp_path):
    with pytest.raises(FaketError, match="does not exist"):
        load_noise_model(tmp_path / "nope.json")

"""The BASELINE / NOISY / CONTENT modalities: statistics, noise level, seeds, streaming."""

from __future__ import annotations

import tracemalloc

import mrcfile
import numpy as np
import pytest
import scipy.ndimage as ndi

from faket.errors import FaketError
from faket.io import read_mrc, write_mrc
from faket.noise import (
    CONTENT_NOISE_FACTOR,
    NoiseCurves,
    NoiseModel,
    apply_noise,
    apply_noise_file,
    estimate_curves,
    noise_parameters,
)
from faket.noise.apply import synthesize_tilt, tilt_generator

N_TILTS = 6


def clean_stack(seed=0, shape=(N_TILTS, 64, 72)):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.normal(size=shape), (0, 2, 2)).astype(np.float32) + 4.0


def a_model(order=2):
    """A model with tilt-dependent curves and r**2 + sigma**2 = 1 (as estimated)."""
    r = np.linspace(0.9, 0.4, N_TILTS)
    curves = NoiseCurves(
        r=r,
        sigma=np.sqrt(1 - r**2),
        style_mean=np.linspace(-50.0, 120.0, N_TILTS),
        style_std=np.linspace(0.5, 7.0, N_TILTS),
    )
    return NoiseModel(np.linspace(-50, 50, N_TILTS), order=order, curves=curves, raw=(curves,))


def per_tilt(stack):
    values = np.asarray(stack, dtype=np.float64)
    return values.mean(axis=(1, 2)), values.std(axis=(1, 2))


@pytest.mark.parametrize("mode", ["baseline", "noisy", "content"])
def test_output_tilts_have_the_models_mean_and_std(mode):
    model = a_model()
    out = apply_noise(clean_stack(), model, mode, seed=1)
    assert out.dtype == np.float32 and out.shape == (N_TILTS, 64, 72)
    means, stds = per_tilt(out)
    np.testing.assert_allclose(means, model.style_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stds, model.style_std, rtol=1e-4)


def test_a_given_style_stack_sets_the_targets_instead():
    rng = np.random.default_rng(9)
    style = rng.normal(3.0, 2.0, size=(N_TILTS, 20, 30)) * np.arange(1, N_TILTS + 1)[:, None, None]
    out = apply_noise(clean_stack(), a_model(), "noisy", seed=1, style_stack=style)
    for got, want in zip(per_tilt(out), per_tilt(style), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def signal_and_noise_scales(out, clean, seed):
    """Least squares of each output tilt on [standardized clean, the tilt's noise, 1]."""
    scales = []
    for i in range(out.shape[0]):
        z = clean[i].astype(np.float64)
        z = (z - z.mean()) / z.std()
        noise = tilt_generator(seed, i).standard_normal(z.shape, dtype=np.float32)
        design = np.stack([z.ravel(), noise.ravel().astype(np.float64), np.ones(z.size)], axis=1)
        coefficients, residual, *_ = np.linalg.lstsq(design, out[i].ravel(), rcond=None)
        assert residual[0] < 1e-8 * out[i].size * out[i].std() ** 2  # nothing else added
        scales.append(coefficients[:2])
    return np.array(scales)


@pytest.mark.parametrize("mode", ["baseline", "noisy", "content"])
def test_noise_relative_to_signal_is_the_requested_sigma_over_r(mode):
    model, clean, seed = a_model(), clean_stack(), 5
    out = apply_noise(clean, model, mode, seed=seed)
    scales = signal_and_noise_scales(out, clean, seed)
    r, sigma = noise_parameters(model, mode)
    np.testing.assert_allclose(scales[:, 1] / scales[:, 0], sigma / r, rtol=1e-4)


def test_content_noise_is_a_quarter_of_noisy_with_the_same_seed():
    model, clean = a_model(), clean_stack()
    noisy = signal_and_noise_scales(apply_noise(clean, model, "noisy", 3), clean, 3)
    content = signal_and_noise_scales(apply_noise(clean, model, "content", 3), clean, 3)
    ratio = (content[:, 1] / content[:, 0]) / (noisy[:, 1] / noisy[:, 0])
    np.testing.assert_allclose(ratio, CONTENT_NOISE_FACTOR, rtol=1e-4)


def test_baseline_uses_the_order_zero_curves():
    model = a_model()
    r, sigma = noise_parameters(model, "baseline")
    np.testing.assert_allclose(r, np.full(N_TILTS, model.r.mean()))
    np.testing.assert_allclose(sigma, np.full(N_TILTS, model.sigma.mean()))


def test_synthesized_residual_has_the_requested_sigma():
    clean = clean_stack(shape=(1, 128, 128))[0]
    z = (clean - clean.mean(dtype=np.float64)) / clean.std(dtype=np.float64)
    image = synthesize_tilt(clean, 0.6, 0.8, tilt_generator(11, 0))
    assert (image - 0.6 * z).std() == pytest.approx(0.8, rel=0.02)


def test_re_estimating_the_noisy_output_recovers_the_model():
    model, clean = a_model(), clean_stack(shape=(N_TILTS, 128, 128))
    out = apply_noise(clean, model, "noisy", seed=2)
    curves = estimate_curves(out, clean)
    np.testing.assert_allclose(curves.r, model.r, rtol=0.02)
    np.testing.assert_allclose(curves.sigma, model.sigma, rtol=0.02)


def test_same_seed_same_output_other_seed_other_output():
    model, clean = a_model(), clean_stack()
    first = apply_noise(clean, model, "noisy", seed=42)
    np.testing.assert_array_equal(first, apply_noise(clean, model, "noisy", seed=42))
    assert not np.allclose(first, apply_noise(clean, model, "noisy", seed=43))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fancy"}, "unknown noise mode"),
        ({"seed": -1}, "seed"),
        ({"clean_stack": clean_stack(shape=(N_TILTS + 1, 8, 8))}, "7 tilts but the noise model"),
        ({"clean_stack": np.zeros((8, 8))}, "tilt series"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    arguments = {"clean_stack": clean_stack(), "model": a_model(), "mode": "noisy", "seed": 0}
    with pytest.raises(FaketError, match=message):
        apply_noise(**{**arguments, **kwargs})


def test_file_version_streams_from_a_memory_map_and_equals_the_array_version(tmp_path, monkeypatch):
    # faket.io scans memory maps for NaN in 64 MiB slabs; make that one tilt here so the
    # peak below measures the noise code, which must hold only a few tilts at a time.
    monkeypatch.setattr("faket.io._mrcutil._CHUNK_BYTES", 128 * 128 * 4)
    clean = clean_stack(shape=(40, 128, 128))
    model = NoiseModel(
        np.arange(40.0),
        order=0,
        curves=NoiseCurves(*(np.full(40, v) for v in (0.8, 0.6, 10.0, 2.0))),
    )
    write_mrc(tmp_path / "clean.mrc", clean, voxel_size=3.5)
    tracemalloc.start()
    apply_noise_file(tmp_path / "clean.mrc", model, "content", tmp_path / "out.mrc", seed=7)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < clean.nbytes / 4  # a few tilts, never the whole stack (40 tilts)
    out = read_mrc(tmp_path / "out.mrc")
    assert out.voxel_size == pytest.approx(3.5)
    np.testing.assert_array_equal(out.data, apply_noise(clean, model, "content", seed=7))
    with mrcfile.open(tmp_path / "out.mrc") as mrc:
        assert float(mrc.header.dmean) == pytest.approx(10.0, abs=1e-4)
        assert float(mrc.header.rms) == pytest.approx(2.0, rel=1e-4)


def test_failed_file_apply_leaves_no_output_or_temporary_file(tmp_path):
    write_mrc(tmp_path / "clean.mrc", clean_stack(shape=(N_TILTS + 2, 8, 8)), voxel_size=1.0)
    with pytest.raises(FaketError, match="tilts"):
        apply_noise_file(tmp_path / "clean.mrc", a_model(), "noisy", tmp_path / "out.mrc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.mrc"]

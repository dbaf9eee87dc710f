"""The network-free FAKET style: a per-tilt transfer function and its residual noise."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from faket.errors import FaketError
from faket.noise.transfer import (
    TransferModel,
    apply_transfer,
    estimate_transfer,
    load_transfer_model,
    save_transfer_model,
)


def _filter(shape, defocus=60.0, blur=10.0):
    """A CTF-like transfer function on an ``rfft2`` grid: sign flips and a damping."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k2 = ky**2 + kx**2
    return -np.sin(defocus * k2 + 0.3) * np.exp(-blur * k2)


def _pairs(n_tomograms=3, n_tilts=2, shape=(96, 96), noise=0.3, seed=0):
    """Smooth random 'noiseless' tilts, their filtered versions plus white noise."""
    rng = np.random.default_rng(seed)
    H = _filter(shape)
    clean, style = [], []
    for _ in range(n_tomograms):
        c = rng.standard_normal((n_tilts, *shape)).astype(np.float32)
        s = scipy.fft.irfft2(scipy.fft.rfft2(c) * H, s=shape)
        s = s + noise * rng.standard_normal(s.shape)
        clean.append(c)
        style.append((3.0 * s + 5.0).astype(np.float32))  # other units, as a detector's
    return style, clean, 3.0 * H


def test_the_transfer_function_and_the_noise_level_are_recovered():
    style, clean, truth = _pairs()
    model = estimate_transfer(style, clean, size=32)
    # Compare on the tile grid: the true filter sampled there.
    expected = _filter((32, 32))
    assert model.n_tilts == 2 and model.size == 32
    for i in range(2):
        estimate = model.transfer[i]
        inside = np.ones_like(expected, bool)
        inside[0, 0] = False  # the mean is not transferred
        error = np.abs(estimate[inside] - 3.0 * expected[inside])
        # The 3-bin smoothing and the tile taper blur a rapidly turning filter a little.
        assert np.median(error) < 0.15 * 3.0 and estimate[0, 0] == 0
        assert np.corrcoef(estimate[inside].real, expected[inside])[0, 1] > 0.95
        # White noise of std 0.3 in style units x 3: variance 0.81; the filter's spread
        # across the tapered tiles' edges leaks a little signal into the residual.
        assert 0.81 * 0.95 < model.noise_variance(i) < 0.81 * 1.25


def test_applying_it_matches_the_style_moments_and_correlates_with_the_style():
    style, clean, truth = _pairs(n_tomograms=4)
    model = estimate_transfer(style[1:], clean[1:], size=32)  # the first pair held out
    mean, std = style[0].mean(axis=(1, 2)), style[0].std(axis=(1, 2))
    out = apply_transfer(clean[0], model, 0, mean, std)
    assert out.dtype == np.float32 and out.shape == clean[0].shape
    np.testing.assert_allclose(out.mean(axis=(1, 2)), mean, rtol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), std, rtol=1e-4)
    for i in range(2):
        # Signal power 3^2 * mean H^2 against noise 0.81: the best achievable
        # correlation of two independent noisy copies is SNR / (1 + SNR).
        signal = (9 * _filter(clean[0].shape[1:]) ** 2).mean()
        best = signal / (signal + 0.81)
        r = np.corrcoef(out[i].ravel(), style[0][i].ravel())[0, 1]
        assert r > 0.7 * best  # H and the noise level are estimates from 3 pairs
        # A scalar scaling of the clean tilt (the paper's r) is far worse.
        assert r > np.corrcoef(clean[0][i].ravel(), style[0][i].ravel())[0, 1] + 0.2
    np.testing.assert_array_equal(out, apply_transfer(clean[0], model, 0, mean, std))
    assert not np.array_equal(out, apply_transfer(clean[0], model, 1, mean, std))


def test_without_noise_it_is_the_filter_alone_and_works_on_any_image_size():
    style, clean, _ = _pairs(noise=0.0, shape=(64, 64))
    model = estimate_transfer(style, clean, size=32)
    # Only the leakage of the filter's spread (~10 pixels here) across the edges of the
    # 32-pixel tiles is left; a scalar fit (no filter) would leave ~90 % of the signal.
    signal = min(float(np.var(s[i])) for s in style for i in range(2))
    assert max(model.noise_variance(i) for i in range(2)) < 0.3 * signal
    quiet = TransferModel(model.transfer, np.zeros_like(model.noise_power), 1)
    image = np.random.default_rng(5).standard_normal((2, 40, 72)).astype(np.float32)
    out = apply_transfer(image, quiet, 0, np.zeros(2), np.ones(2))
    expected = scipy.fft.irfft2(scipy.fft.rfft2(image) * _filter((40, 72)), s=(40, 72))
    expected = (expected - expected.mean((1, 2), keepdims=True)) / expected.std(
        (1, 2), keepdims=True
    )
    assert all(np.corrcoef(out[i].ravel(), expected[i].ravel())[0, 1] > 0.95 for i in range(2))


def test_the_model_file_round_trips_and_bad_files_are_refused(tmp_path):
    style, clean, _ = _pairs(n_tomograms=1)
    model = estimate_transfer(style, clean, size=32)
    save_transfer_model(model, tmp_path / "t.npz")
    again = load_transfer_model(tmp_path / "t.npz")
    np.testing.assert_array_equal(again.transfer, model.transfer)
    np.testing.assert_array_equal(again.noise_power, model.noise_power)
    assert again.tomograms == 1
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FaketError, match="not a transfer model"):
        load_transfer_model(tmp_path / "bad.npz")
    with pytest.raises(FaketError, match="no transfer model"):
        load_transfer_model(tmp_path / "none.npz")


def test_bad_inputs_get_clear_errors():
    style, clean, _ = _pairs(n_tomograms=2)
    with pytest.raises(FaketError, match="pairs"):
        estimate_transfer(style, clean[:1])
    with pytest.raises(FaketError, match="does not match"):
        estimate_transfer([style[0][:, :80]], [clean[0]])
    with pytest.raises(FaketError, match="same tilts"):
        estimate_transfer([style[0], style[1][:1]], [clean[0], clean[1][:1]])
    broken = style[0].copy()
    broken[1, 3, 3] = np.nan
    with pytest.raises(FaketError, match="tilt 1"):
        estimate_transfer([broken], [clean[0]], size=32)
    with pytest.raises(FaketError, match="too small"):
        estimate_transfer([style[0][:, :20, :20]], [clean[0][:, :20, :20]])
    model = estimate_transfer(style, clean, size=32)
    with pytest.raises(FaketError, match="tilts"):
        apply_transfer(clean[0][:1], model, 0, np.zeros(1), np.ones(1))
    with pytest.raises(FaketError, match="NaN"):
        TransferModel(model.transfer * np.nan, model.noise_power)

"""The SPECTRAL modality: the style noise's 2-D power spectrum, estimated, fitted, drawn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from _helpers import run_cli

from faket.errors import FaketError
from faket.io import write_mrc, write_tlt
from faket.noise import (
    NoiseModel,
    apply_noise,
    estimate_noise_model,
    estimate_noise_model_from_background,
    load_noise_model,
    save_noise_model,
)
from faket.noise.radial import match_radial, radial_bins, radial_profile
from faket.noise.spectrum import (
    NoiseSpectrum,
    coloured_noise,
    fit_log_spectra,
    full_plane_mean,
    spectrum_size,
    stack_spectra,
    tilt_spectrum,
)

ANGLES = np.linspace(-40.0, 40.0, 5)


def _transfer(shape: tuple[int, int], tilt: float = 0.0) -> np.ndarray:
    """An anisotropic noise filter on the rfft2 grid: smooth along Y, high-pass along X."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return np.exp(-((fy / (0.12 + 0.03 * tilt)) ** 2)) * (0.2 + np.sin(np.pi * fx) ** 2)


def _filtered_noise(shape, tilt, rng) -> np.ndarray:
    white = rng.standard_normal(shape)
    return np.fft.irfft2(np.fft.rfft2(white) * _transfer(shape, tilt), s=shape)


def _expected_spectrum(size: int, tilt: float = 0.0) -> np.ndarray:
    power = _transfer((size, size), tilt) ** 2
    return power / full_plane_mean(power, size)


def _pair(seed=0, shape=(5, 128, 128), r=0.6):
    """Clean stack and style = r * clean + coloured noise whose shape changes with the tilt."""
    rng = np.random.default_rng(seed)
    clean = ndi.gaussian_filter(rng.normal(size=shape), (0, 3, 3)).astype(np.float32)
    style = np.empty_like(clean)
    for i, tilt in enumerate(np.linspace(-1, 1, shape[0])):
        noise = _filtered_noise(shape[1:], tilt, rng)
        style[i] = r * clean[i] / clean[i].std() + noise / noise.std() + 50.0
    return style, clean


def test_coloured_noise_has_unit_variance_and_the_requested_spectrum():
    rng = np.random.default_rng(0)
    target = _expected_spectrum(32)
    draws = np.stack([coloured_noise((96, 80), target, rng) for _ in range(200)])
    assert draws.dtype == np.float32
    assert draws.var() == pytest.approx(1.0, rel=0.02)
    measured = (np.abs(np.fft.rfft2(draws)) ** 2).mean(axis=0) / (96 * 80)
    wanted = _transfer((96, 80)) ** 2  # the same filter sampled on the image's grid
    wanted /= full_plane_mean(wanted, 80)
    inner = wanted > 0.1 * wanted.max()
    # Bilinear interpolation of a 32-grid and 200 draws (7% per bin): within ~20%.
    ratio = measured[inner] / wanted[inner]
    assert np.median(np.abs(ratio - 1)) < 0.1
    white = np.stack([coloured_noise((64, 64), np.ones((16, 9)), rng) for _ in range(50)])
    lag = (white[:, :, 1:] * white[:, :, :-1]).mean()
    assert abs(lag) < 0.01 and white.var() == pytest.approx(1.0, rel=0.02)


def test_tilt_spectrum_measures_the_shape_of_coloured_noise():
    rng = np.random.default_rng(1)
    image = _filtered_noise((256, 256), 0.0, rng) * 7.0 + 3.0
    measured = tilt_spectrum(image, 32)
    assert measured.shape == (32, 17)
    assert full_plane_mean(measured, 32) == pytest.approx(1.0)
    expected = _expected_spectrum(32)
    inner = expected > 0.1 * expected.max()
    assert np.median(np.abs(measured[inner] / expected[inner] - 1)) < 0.15
    flat = tilt_spectrum(rng.standard_normal((256, 256)), 32)
    # 32 Hann-tapered tiles, binomially smoothed: a flat spectrum scatters by ~0.1.
    assert np.std(flat - 1) < 0.15


def test_only_tiles_inside_the_mask_are_used():
    rng = np.random.default_rng(2)
    image = rng.standard_normal((96, 96))
    image[:, 48:] = ndi.gaussian_filter(rng.standard_normal((96, 48)), 4) * 50  # structure
    mask = np.zeros((96, 96), bool)
    mask[:, :48] = True
    assert np.std(tilt_spectrum(image, 16, mask) - 1) < 0.2
    assert tilt_spectrum(image, 16).max() > 5  # the structure would dominate
    assert spectrum_size((96, 96), mask) == 24
    mask[:, 20:] = False
    assert spectrum_size((96, 96), mask) == 12
    small = np.zeros((96, 96), bool)
    small[:6, :6] = True
    with pytest.raises(FaketError, match="too small"):
        spectrum_size((96, 96), small)


def test_fitting_over_tilts_keeps_a_log_quadratic_and_averages_tomograms():
    x = np.linspace(-1, 1, 7)[:, None, None]
    base = _expected_spectrum(16)[None] + 0.1
    first = base * 10 ** (0.3 * x - 0.2 * x**2)
    second = base * 10 ** (0.1 * x)
    fitted = fit_log_spectra([first, second], order=2)
    spectrum = NoiseSpectrum(2, fitted, 7)
    for i in range(7):
        expected = base[0] * 10 ** (0.2 * x[i, 0, 0] - 0.1 * x[i, 0, 0] ** 2)
        expected /= full_plane_mean(expected, 16)
        np.testing.assert_allclose(spectrum.tilt(i), expected, rtol=1e-5)
    raw = NoiseSpectrum(-1, fit_log_spectra([first], order=-1), 7)
    np.testing.assert_allclose(
        raw.tilt(3) * full_plane_mean(first[3], 16), first[3], rtol=1e-5, atol=1e-9
    )
    with pytest.raises(FaketError, match="does not fit"):
        NoiseSpectrum(2, fitted[:2], 7)


def test_estimate_measures_the_residual_spectrum_per_tilt():
    style, clean = _pair(shape=(5, 256, 256))
    model = estimate_noise_model([style], [clean], ANGLES, order=-1)
    assert model.spectrum is not None and model.spectrum.size == 64
    for i, tilt in enumerate(np.linspace(-1, 1, 5)):
        expected = _expected_spectrum(64, tilt)
        inner = expected > 0.1 * expected.max()
        ratio = model.spectrum.tilt(i)[inner] / expected[inner]
        assert np.median(np.abs(ratio - 1)) < 0.15, i
    # The clean signal is not part of the noise: its smooth power would swamp low frequencies.
    assert model.spectrum.tilt(2)[0, 0] < 3 * _expected_spectrum(64)[0, 0]
    direct = stack_spectra(style, clean=clean, r=model.raw[0].r, size=64)
    np.testing.assert_allclose(
        NoiseSpectrum(-1, np.log10(direct), 5).tilt(1), model.spectrum.tilt(1), rtol=1e-5
    )


def test_spectral_noise_looks_like_the_style_noise_and_white_modes_stay_white():
    style, clean = _pair(seed=3)
    model = estimate_noise_model([style], [clean], ANGLES, order=2)
    spectral = apply_noise(clean, model, "spectral", seed=0)
    noisy = apply_noise(clean, model, "noisy", seed=0)
    # Same statistics as NOISY (r, sigma, mean, std); only the colour of the noise differs.
    np.testing.assert_allclose(spectral.std(axis=(1, 2)), noisy.std(axis=(1, 2)), rtol=1e-4)
    np.testing.assert_allclose(spectral.mean(axis=(1, 2)), noisy.mean(axis=(1, 2)), atol=1e-3)

    def lag(stack, axis):
        z = (stack - stack.mean(axis=(1, 2), keepdims=True)) / stack.std(axis=(1, 2), keepdims=True)
        return (z * np.roll(z, 1, axis=axis)).mean()

    # The style's noise is smooth along Y (lag 1 ~ +0.9) and anti-correlated along X.
    for axis in (1, 2):
        assert lag(spectral, axis) == pytest.approx(lag(style, axis), abs=0.06)
    assert lag(style, 1) > 0.5 and lag(style, 2) < -0.1
    # NOISY's white noise keeps only the clean signal's own (positive) correlation.
    assert lag(noisy, 2) > 0.1 and lag(spectral, 2) < -0.1
    again = apply_noise(clean, model, "spectral", seed=0)
    np.testing.assert_array_equal(spectral, again)


def test_background_estimate_has_a_spectrum_and_models_round_trip(tmp_path):
    style, _ = _pair(seed=4, r=0.0)
    mask = np.ones(style.shape[1:], bool)
    with pytest.warns(RuntimeWarning, match="clipped"):  # pure noise, all of it selected
        model = estimate_noise_model_from_background([style], mask, ANGLES, order=2)
    expected = _expected_spectrum(32, 0.0)
    inner = expected > 0.1 * expected.max()
    assert np.median(np.abs(model.spectrum.tilt(2)[inner] / expected[inner] - 1)) < 0.15
    path = save_noise_model(model, tmp_path / "model.json")
    loaded = load_noise_model(path)
    assert loaded == model
    np.testing.assert_array_equal(loaded.spectrum.log10, model.spectrum.log10)
    clean = _pair(seed=5)[1]
    np.testing.assert_array_equal(
        apply_noise(clean, loaded, "spectral", 1), apply_noise(clean, model, "spectral", 1)
    )


def test_spectral_needs_a_spectrum_and_the_cli_draws_it(tmp_path, capsys):
    style, clean = _pair(seed=6, shape=(5, 64, 64))
    white_only = estimate_noise_model([style], [clean], ANGLES, spectrum=False)
    assert white_only.spectrum is None and "noise_spectrum" not in white_only.to_dict()
    assert NoiseModel.from_dict(white_only.to_dict()) == white_only
    with pytest.raises(FaketError, match="no noise spectrum"):
        apply_noise(clean, white_only, "spectral", 0)
    write_mrc(tmp_path / "style.mrc", style, 5.0)
    write_mrc(tmp_path / "clean.mrc", clean, 5.0)
    write_tlt(tmp_path / "style.tlt", ANGLES)
    args = ["noise", "estimate", "--style", tmp_path / "style.mrc", "--clean"]
    status, _, err = run_cli([*args, tmp_path / "clean.mrc", "-o", tmp_path / "m.json"], capsys)
    assert status == 0, err
    out = tmp_path / "spectral.mrc"
    apply = ["noise", "apply", tmp_path / "clean.mrc", "--model", tmp_path / "m.json"]
    status, _, err = run_cli([*apply, "--mode", "spectral", "-o", out, "-q"], capsys)
    assert status == 0, err
    assert out.is_file()
    flags = [*args, tmp_path / "clean.mrc", "--no-spectrum", "-o", tmp_path / "w.json"]
    assert run_cli(flags, capsys)[0] == 0
    status, _, err = run_cli(
        [*apply[:-1], tmp_path / "w.json", "--mode", "spectral", "-o", tmp_path / "x.mrc"], capsys
    )
    assert status == 2 and "no noise spectrum" in err and len(err.strip().splitlines()) == 1


def test_radial_matching_gives_each_ring_the_target_power_and_keeps_the_mean():
    rng = np.random.default_rng(8)
    image = ndi.gaussian_filter(rng.standard_normal((60, 72)), 2).astype(np.float32) + 5.0
    n_bins = radial_bins(image.shape)
    assert n_bins == int(np.ceil(np.sqrt(2) * 30))
    white = radial_profile(rng.standard_normal((256, 256)), radial_bins((256, 256)))
    assert np.std(white[1:]) < 0.2 and white[1:].mean() == pytest.approx(1.0)
    target = 1.0 / (1.0 + (np.arange(n_bins) / 10.0) ** 2)
    matched = match_radial(image, target)
    assert matched.dtype == np.float32
    assert matched.mean() == pytest.approx(image.mean(), rel=1e-5)
    np.testing.assert_allclose(
        radial_profile(matched, n_bins)[1:], target[1:] / target[1:].mean(), rtol=1e-3
    )
    own = radial_profile(image, n_bins)
    np.testing.assert_allclose(match_radial(image, own), image, atol=1e-4)


def test_spectral_with_radial_matching_has_the_styles_radial_spectrum(tmp_path, capsys):
    style, clean = _pair(seed=9, shape=(5, 64, 64))
    with pytest.raises(FaketError, match="radial"):
        apply_noise(
            clean, estimate_noise_model([style], [clean], ANGLES), "spectral", 0, match_radial=True
        )
    model = estimate_noise_model([style], [clean], ANGLES, order=-1, radial=True)
    assert load_noise_model(save_noise_model(model, tmp_path / "m.json")) == model
    with pytest.raises(FaketError, match="--mode spectral"):
        apply_noise(clean, model, "noisy", 0, match_radial=True)
    out = apply_noise(clean, model, "spectral", 0, match_radial=True)
    n_bins = radial_bins(style.shape[1:])
    for i in range(5):
        expected = radial_profile(style[i], n_bins)
        np.testing.assert_allclose(
            radial_profile(out[i], n_bins)[1:], expected[1:], rtol=1e-3, atol=1e-6
        )
    write_mrc(tmp_path / "style.mrc", style, 5.0)
    write_mrc(tmp_path / "clean.mrc", clean, 5.0)
    write_tlt(tmp_path / "style.tlt", ANGLES)
    estimate = ["noise", "estimate", "--style", tmp_path / "style.mrc", "--clean"]
    estimate += [tmp_path / "clean.mrc", "--radial-spectrum", "-o", tmp_path / "r.json", "-q"]
    assert run_cli(estimate, capsys)[0] == 0
    apply = ["noise", "apply", tmp_path / "clean.mrc", "--model", tmp_path / "r.json"]
    apply += ["--mode", "spectral", "--match-radial", "-o", tmp_path / "out.mrc", "-q"]
    status, _, err = run_cli(apply, capsys)
    assert status == 0, err

"""Thon rings: the CTFFIND-style test fit on known CTFs, and on the reference microscope."""

from __future__ import annotations

import numpy as np
import pytest
from _ctf_fit import ctf, ctf_ripple, fit_defocus

from faket.microscope import simulate_tilt_series


def _ctf_image(defocus_um: float, pixel: float, snr: float, seed: int, size: int = 256):
    """White noise imaged through ``CTF`` (with a B-factor), plus white noise of power 1/snr."""
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(size, d=pixel)[:, None]
    kx = np.fft.fftfreq(size, d=pixel)[None, :]
    k = np.hypot(ky, kx)
    transfer = ctf(k, defocus_um) * np.exp(-30.0 * k**2 / 4)
    signal = np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * transfer).real
    signal /= signal.std()
    return signal + rng.standard_normal((size, size)) / np.sqrt(snr)


@pytest.mark.parametrize(("defocus_um", "pixel"), [(-2.6, 5.0), (-4.0, 5.0), (-5.3, 4.0)])
def test_fit_recovers_a_known_defocus(defocus_um, pixel):
    for seed in range(3):
        image = _ctf_image(defocus_um, pixel, snr=0.3, seed=seed)
        fitted, score = fit_defocus(image, pixel, nominal_um=-4.0)
        assert fitted == pytest.approx(defocus_um, abs=0.05)
        assert score > 0.5


def test_fit_of_white_noise_has_a_low_score_and_no_ripple():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((4, 256, 256))
    rings = np.stack([_ctf_image(-4.0, 5.0, snr=0.3, seed=s) for s in range(4)])
    # The best of 401 defoci always finds some correlation with noise, far below rings'.
    assert max(fit_defocus(image, 5.0)[1] for image in noise) < 0.65
    assert min(fit_defocus(image, 5.0)[1] for image in rings) > 0.85
    assert abs(ctf_ripple(noise, 5.0, -4.0)) < 0.01
    assert 0.2 < ctf_ripple(rings, 5.0, -4.0) < 0.6


def test_fit_tells_a_wrong_defocus_apart():
    image = _ctf_image(-4.0, 5.0, snr=0.3, seed=5)
    right = fit_defocus(image, 5.0, nominal_um=-4.0, search_um=0.5)[1]
    wrong = fit_defocus(image, 5.0, nominal_um=-2.5, search_um=0.5)[1]
    assert right > 2 * wrong


def test_default_microscope_records_fittable_thon_rings():
    # The setting scaled down: 5 Å/px, -4 µm, 120 e-/Å² over 61 tilts (9 of them
    # simulated, each with its 61-tilt share of the dose), 150 nm of default ice.
    rng = np.random.default_rng(0)
    volume = np.zeros((24, 256, 256), np.float32)
    z, y, x = np.indices(volume.shape)
    for centre in rng.uniform([6, 20, 20], [18, 236, 236], (16, 3)):
        r2 = ((np.stack([z, y, x], -1) - centre) ** 2).sum(-1)
        volume += 7.0 * np.exp(-r2 / (2 * 3.0**2))
    angles = np.arange(-48.0, 49.0, 12.0)
    settings = {"dose": {"total_e_per_a2": 120.0 * len(angles) / 61}}
    images, metadata = simulate_tilt_series(volume, 5.0, angles, settings, seed=3)
    assert metadata["ice_path_nm"].min() == pytest.approx(150.0)
    fitted = np.array([fit_defocus(image, 5.0)[0] for image in images])
    errors = np.abs(fitted - metadata["defocus_um"].to_numpy())
    assert np.mean(errors <= 0.2) >= 0.8, errors
    assert ctf_ripple(images, 5.0, -4.0) > 0.03

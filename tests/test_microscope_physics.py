"""Electron optics of the reference microscope against textbook values and the CTF."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import argrelmin

from faket.microscope import simulate_tilt_series
from faket.microscope.imaging import ImageFormation
from faket.microscope.physics import (
    critical_exposure,
    electron_wavelength,
    interaction_constant,
)
from faket.plots.modalities import radial_power_spectrum

# CODATA constants, written out here so the checks do not reuse the module's.
H, M0, E, C = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0

QUIET = {
    "ice": {"enabled": False},
    "detector": {"noise": False, "model": "ideal"},
    "dose": {"damage": "none"},
    "alignment": {"shift_std_angstrom": 0.0},
    "optics": {"defocus_std_um": 0.0, "astigmatism_um": 0.0, "b_factor": 0.0},
}


def _wavelength(volts: float) -> float:
    return H / math.sqrt(2 * M0 * E * volts * (1 + E * volts / (2 * M0 * C * C))) * 1e10


@pytest.mark.parametrize(("kv", "tabulated"), [(100, 0.037014), (200, 0.025079), (300, 0.019687)])
def test_wavelength_matches_tabulated_values(kv, tabulated):
    # Kirkland's table of relativistic wavelengths (Å).
    assert electron_wavelength(kv) == pytest.approx(tabulated, rel=2e-4)
    assert electron_wavelength(kv) == pytest.approx(_wavelength(kv * 1e3), rel=1e-9)


def test_interaction_constant_matches_tabulated_values():
    # sigma = 2 pi m e lambda / h²; Kirkland: 0.000653 (300 kV), 0.000729 (200 kV) rad/(V Å).
    assert interaction_constant(300) == pytest.approx(6.526e-4, rel=1e-3)
    assert interaction_constant(200) == pytest.approx(7.288e-4, rel=1e-3)


def test_critical_exposure_scales_like_grant_grigorieff():
    k = torch.tensor([0.1, 0.25])
    at_300 = critical_exposure(k, 300).numpy()
    assert at_300 == pytest.approx(0.245 * k.numpy() ** -1.665 + 2.81, rel=1e-6)
    # Their 200 kV factor of 0.8 follows from the beta² scaling.
    assert critical_exposure(k, 200).numpy() / at_300 == pytest.approx([0.8, 0.8], abs=0.01)


def _predicted_zeros(defocus_um, pixel, amplitude=0.07, cs_mm=2.7) -> np.ndarray:
    wavelength = _wavelength(300e3)
    k = np.linspace(1e-4, 0.5 / pixel, 400_000)
    chi = math.pi * wavelength * k**2 * defocus_um * 1e4
    chi += 0.5 * math.pi * cs_mm * 1e7 * wavelength**3 * k**4
    ctf = math.sqrt(1 - amplitude**2) * np.sin(chi) - amplitude * np.cos(chi)
    return k[np.nonzero(np.diff(np.sign(ctf)))[0]]


# At -0.5 µm and 2 Å a wrong sign of Cs would move zeros by more than 2 bins.
@pytest.mark.parametrize(("defocus_um", "pixel"), [(-0.5, 2.0), (-2.5, 3.0)])
def test_ctf_zeros_of_a_weak_point_object(defocus_um, pixel):
    # The image of a weak point object is the CTF's point-spread function: its power spectrum
    # vanishes where the CTF crosses zero.
    volume = np.zeros((8, 128, 128), np.float32)
    volume[4, 64, 64] = 1.0
    settings = {**QUIET, "optics": {**QUIET["optics"], "defocus_um": defocus_um}}
    image = simulate_tilt_series(volume, pixel, [0.0], settings, seed=0)[0][0]
    frequency, power = radial_power_spectrum(image)
    k = frequency / pixel
    bin_width = k[1] - k[0]
    observed = k[argrelmin(power)[0]]
    zeros = _predicted_zeros(defocus_um, pixel)
    # Zeros closer together than 2 bins cannot be told apart.
    gaps = np.diff(np.concatenate(([0.0], zeros, [np.inf])))
    resolvable = zeros[(gaps[:-1] > 2 * bin_width) & (gaps[1:] > 2 * bin_width)]
    resolvable = resolvable[resolvable < k[-1] - bin_width]
    assert len(resolvable) >= 4
    for zero in resolvable:
        assert np.min(np.abs(observed - zero)) <= bin_width, (zero, observed)


def test_fresnel_propagation_equals_defocus():
    # Propagating the exit wave downstream by dz and imaging in focus is a defocus of +dz.
    rng = np.random.default_rng(0)
    from faket.microscope import parse_config

    # Without coherence envelopes (which depend on the defocus) the two are identical.
    optics_settings = {**QUIET["optics"], "illumination_aperture_mrad": 0, "energy_spread_ev": 0}
    config = parse_config({**QUIET, "optics": optics_settings})
    optics = ImageFormation((32, 48), 3.0, config, "cpu")
    phase = torch.from_numpy(rng.normal(0, 50, (32, 48)).astype(np.float32))
    wave = optics.transmission(phase)
    dz = 5000.0
    in_focus, defocus = optics.objective([0.0, dz * 1e-4], np.zeros((2, 2)))
    shifted = optics.intensity(optics.propagate(wave, dz), in_focus)
    defocused = optics.intensity(wave, defocus)
    assert torch.allclose(shifted, defocused, atol=2e-5)
    back = optics.propagate(optics.propagate(wave, dz), -dz)
    assert torch.allclose(back, wave, atol=1e-5)


def test_underfocus_makes_dense_matter_dark():
    volume = np.zeros((8, 32, 32), np.float32)
    volume[3:5, 14:18, 14:18] = 5.0
    settings = {**QUIET, "optics": {**QUIET["optics"], "defocus_um": -3.0}}
    image = simulate_tilt_series(volume, 10.0, [0.0], settings, seed=0)[0][0]
    assert image[15:17, 15:17].mean() < 0.98 * np.median(image)

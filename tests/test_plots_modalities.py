"""Modality figures: the power spectrum maths and that figures are real PNGs."""

from __future__ import annotations

import numpy as np
import pytest

from faket.plots.modalities import (
    plot_power_spectra,
    plot_projections,
    plot_reconstruction_slices,
    radial_power_spectrum,
)


@pytest.mark.parametrize("cycles", [4, 10, 20])
def test_power_spectrum_peaks_at_the_frequency_of_a_cosine(cycles):
    y, x = np.mgrid[:64, :64]
    image = np.cos(2 * np.pi * cycles * (0.6 * x + 0.8 * y) / 64)
    frequency, power = radial_power_spectrum(image)
    assert abs(frequency[np.argmax(power)] - cycles / 64) <= 0.5 / 32


def test_power_spectrum_of_white_noise_is_flat():
    image = np.random.default_rng(0).normal(size=(128, 128))
    _, power = radial_power_spectrum(image)
    ring = power[16:60]  # rings with >= 100 samples
    assert ring.std() / ring.mean() < 0.2
    assert ring.mean() == pytest.approx(128 * 128, rel=0.1)  # Parseval: E|FFT|² = N σ²


def test_figures_are_written_as_png(tmp_path):
    rng = np.random.default_rng(1)
    stacks = {"noiseless": rng.random((5, 16, 16)), "noisy": rng.random((5, 16, 16))}
    angles = np.linspace(-40, 40, 5)
    paths = [
        plot_projections(stacks, angles, tmp_path / "p.png", 10.0),
        plot_power_spectra(stacks, angles, tmp_path / "s.png", 10.0),
        plot_reconstruction_slices({"a": rng.random((4, 8, 8))}, tmp_path / "r.png", 10.0),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "r.png", "s.png"]

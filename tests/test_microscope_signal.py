"""What carries the signal: damage (specimen only, averaged over the exposure), the detector's
transfer (no second pixel aperture), the ice's thickness and the support film's texture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faket.microscope import parse_config, simulate_tilt_series
from faket.microscope.ice import film_path_lengths, film_texture, ice_voxels_needed
from faket.microscope.imaging import ImageFormation
from faket.microscope.physics import damage_filter

QUIET = {
    "detector": {"noise": False, "model": "ideal"},
    "alignment": {"shift_std_angstrom": 0.0},
    "optics": {"defocus_std_um": 0.0, "astigmatism_um": 0.0},
}


def _grant_grigorieff(k: float, dose: float) -> float:
    """exp(-dose / (2 N_e(k))) with their 300 kV critical exposure, written out."""
    return math.exp(-dose / (2 * (0.245 * k**-1.665 + 2.81)))


def test_damage_is_the_mean_over_the_exposure():
    k = np.array([0.02, 0.1, 0.2])
    k2 = torch.from_numpy(k**2)
    got = damage_filter(k2, 30.0, 20.0, "exposure_filter", 300.0, 0.0).numpy()
    # Midpoint rule over 20,000 sub-exposures from 30 to 50 e-/Å².
    doses = 30.0 + (np.arange(20000) + 0.5) * 20.0 / 20000
    expected = [np.mean([_grant_grigorieff(f, d) for d in doses]) for f in k]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # The number: one 120 e-/Å² exposure at 0.1 1/Å keeps 0.52x as much signal
    # when damage is taken at the exposure's midpoint.
    whole = damage_filter(torch.tensor([0.01]), 0.0, 120.0, "exposure_filter", 300.0, 0.0)
    assert _grant_grigorieff(0.1, 60.0) / float(whole) == pytest.approx(0.515, abs=0.005)
    b_model = damage_filter(k2, 10.0, 5.0, "b_factor", 300.0, 4.0).numpy()
    rate = k**2  # b / 4 = 1 Å² per e-/Å²
    np.testing.assert_allclose(b_model, np.exp(-10 * rate) * (1 - np.exp(-5 * rate)) / (5 * rate))
    assert float(damage_filter(torch.tensor([0.0]), 0.0, 0.0, "b_factor", 300.0, 4.0)) == 1.0


def test_damage_fades_the_specimen_but_not_the_ice():
    angles = [-30.0, 0.0, 30.0, 60.0]  # dose symmetric: 0, 30, 60, -30
    ice_only = np.zeros((16, 48, 48), np.float32)
    settings = {**QUIET, "ice": {"thickness_nm": 40.0}, "dose": {"total_e_per_a2": 300.0}}
    damaged, _ = simulate_tilt_series(ice_only, 5.0, angles, settings, seed=1)
    spared = {**settings, "dose": {"total_e_per_a2": 300.0, "damage": "none"}}
    undamaged, _ = simulate_tilt_series(ice_only, 5.0, angles, spared, seed=1)
    assert damaged.std(axis=(1, 2)).min() > 0.01 * damaged.mean()  # the ice is imaged
    np.testing.assert_allclose(damaged, undamaged, rtol=2e-5)

    specimen = np.zeros((16, 48, 48), np.float32)
    specimen[6:10, 20:28, 20:28] = 5.0
    dry = {**settings, "ice": {"enabled": False}}
    faded, metadata = simulate_tilt_series(specimen, 5.0, angles, dry, seed=1)
    kept = simulate_tilt_series(specimen, 5.0, angles, {**spared, "ice": {"enabled": False}})[0]
    contrast = faded.std(axis=(1, 2)) / kept.std(axis=(1, 2))
    by_dose = contrast[np.argsort(metadata["prior_dose_e_per_a2"].to_numpy())]
    assert by_dose[0] < 0.95 and (np.diff(by_dose) < 0).all()


def test_counting_detector_does_not_apply_the_pixel_aperture_twice():
    # A voxelised specimen's image is pixel-averaged already: the counting detector adds
    # only its roll-off exp(-w² / (2 r²)) to the signal (with the sinc again it would be
    # 0.64 of that at w = 0.95 along an axis).
    config = parse_config({"detector": {"noise": False, "model": "counting", "mtf_rolloff": 2.0}})
    optics = ImageFormation((64, 48), 5.0, config, "cpu")
    image = np.random.default_rng(0).normal(100.0, 3.0, (1, 64, 48))
    measured = optics.detect(torch.from_numpy(image).float(), None)[0].double().numpy()
    w2 = (np.fft.fftfreq(64)[:, None] ** 2 + np.fft.fftfreq(48)[None, :] ** 2) / 0.25
    expected = np.fft.ifft2(np.fft.fft2(image[0]) * np.exp(-w2 / 8)).real
    np.testing.assert_allclose(measured, expected, atol=2e-4)


def test_counting_noise_keeps_the_detector_noise_power_spectrum():
    # Noise power = mean x MTF² / DQE with the full MTF (aperture included): white for an
    # ideal counter whose DQE is the aperture's sinc².
    settings = {"detector": {"model": "counting", "mtf_rolloff": 1e6, "dqe_zero": 1.0}}
    config = parse_config(settings)
    optics = ImageFormation((64, 64), 5.0, config, "cpu")
    optics.dqe = optics.aperture**2  # an ideal counter
    expected = torch.full((8, 64, 64), 50.0)
    generators = [torch.Generator().manual_seed(i) for i in range(8)]
    counts = optics.detect(expected, generators).double().numpy()
    spectrum = np.abs(np.fft.fft2(counts - counts.mean(axis=(1, 2), keepdims=True))) ** 2
    power = spectrum.mean(axis=0) / (64 * 64 * 50.0)
    assert power[1:8, 1:8].mean() == pytest.approx(1.0, rel=0.05)
    assert power[24:40, 24:40].mean() == pytest.approx(1.0, rel=0.05)


def test_ice_is_150_nm_by_default_whatever_the_volume_depth():
    for depth in (8, 40):
        volume = np.zeros((depth, 24, 24), np.float32)
        _, metadata = simulate_tilt_series(volume, 10.0, [0.0, 60.0], QUIET, seed=0)
        assert metadata["ice_path_nm"].to_numpy() == pytest.approx([150.0, 300.0])
    thin = {**QUIET, "ice": {"thickness_nm": 60.0}}
    assert simulate_tilt_series(volume, 10.0, [0.0], thin)[1]["ice_path_nm"][0] == 60.0
    assert simulate_tilt_series(volume, 10.0, [0.0], {**QUIET, "ice": {"thickness_nm": None}})[1][
        "ice_path_nm"
    ][0] == pytest.approx(40.0)


def test_ice_grows_to_hold_the_specimen_with_a_warning():
    volume = np.zeros((40, 16, 16), np.float32)
    volume[[2, 20]] = 1.0  # matter from plane 2 to 20: centred ice needs planes 2..36
    settings = {**QUIET, "ice": {"thickness_nm": 10.0}}
    with pytest.warns(UserWarning, match="thickened"):
        _, metadata = simulate_tilt_series(volume, 10.0, [0.0], settings, seed=0)
    assert metadata["ice_path_nm"][0] == pytest.approx(35.0)
    # Empty planes do not count: the same thin ice holds a specimen in the middle.
    volume[:] = 0
    volume[19:21] = 1.0
    assert simulate_tilt_series(volume, 10.0, [0.0], settings)[1]["ice_path_nm"][0] == 10.0
    for n_z, planes in [(40, (2, 20)), (41, (0, 40)), (7, (3, 3)), (30, (25, 29))]:
        voxels = ice_voxels_needed(n_z, planes)
        depth = max(n_z, voxels)
        start = (depth - voxels) // 2 - (depth - n_z) // 2
        assert start <= planes[0] and start + voxels > planes[1]
        smaller = voxels - 1
        depth = max(n_z, smaller)
        start = (depth - smaller) // 2 - (depth - n_z) // 2
        assert not (start <= planes[0] and start + smaller > planes[1])


def test_normalized_blank_ice_reads_the_zero_loss_fraction():
    volume = np.zeros((8, 24, 24), np.float32)
    settings = {**QUIET, "detector": {**QUIET["detector"], "output": "normalized"}}
    settings["ice"] = {"fluctuation_std_volts": 0.0}
    images, metadata = simulate_tilt_series(volume, 10.0, [0.0, 45.0], settings, seed=0)
    assert images[0].mean() == pytest.approx(math.exp(-150 / 350), rel=1e-4)
    np.testing.assert_allclose(images.mean(axis=(1, 2)), metadata["attenuation"], rtol=1e-4)


def test_film_transmission_is_recorded_and_explains_the_mean():
    volume = np.zeros((10, 32, 64), np.float32)
    settings = {**QUIET, "film": {"enabled": True, "edge_position": 0.5}}
    settings["ice"] = {"fluctuation_std_volts": 0.0}
    images, metadata = simulate_tilt_series(volume, 10.0, [-10.0, 0.0, 30.0], settings, seed=0)
    assert (metadata["film_transmission"] < 0.99).all()
    expected = metadata["counts_per_pixel"] * metadata["film_transmission"]
    # Up to the phase contrast of the edge, which moves a little intensity across it.
    np.testing.assert_allclose(images.mean(axis=(1, 2)), expected, rtol=5e-3)
    bare = simulate_tilt_series(volume, 10.0, [0.0], QUIET, seed=0)[1]
    assert bare["film_transmission"][0] == 1.0


def test_textured_film_varies_in_thickness_and_is_one_film_for_all_tilts():
    film = parse_config(
        {"film": {"enabled": True, "texture_std": 0.2, "texture_correlation_angstrom": 0.0}}
    ).film
    angles = np.array([0.0, 20.0])
    smooth = film_path_lengths(angles, 200, 100, film, 5.0, 10.0)
    textured = film_texture(smooth, angles, 64, film, 5.0, 10.0, seed=3)
    covered = smooth[0] > 0.99 * smooth[0].max()
    ratio = textured[0][:, covered] / smooth[0][covered]
    assert ratio.mean() == pytest.approx(1.0, abs=0.01)
    assert ratio.std() == pytest.approx(0.2, rel=0.05)
    np.testing.assert_array_equal(textured, film_texture(smooth, angles, 64, film, 5.0, 10.0, 3))
    # The film at 20 degrees: each pixel sees the film point (u + z sin) / cos.
    depth = 5.0 - film.thickness_nm * 10 / 10.0 / 2
    u = np.arange(200) - 100
    x0 = u  # at 0 degrees
    x20 = (u + depth * math.sin(math.radians(20))) / math.cos(math.radians(20))
    j = np.flatnonzero(covered)[10]
    i = int(np.argmin(np.abs(x20 - x0[j])))  # the 20-degree pixel nearest that film point
    relative20 = textured[1][:, i] / smooth[1][i]
    assert np.corrcoef(ratio[:, 10], relative20)[0, 1] > 0.6

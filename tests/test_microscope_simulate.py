"""Tilt-series simulation: flat fields, counting statistics, attenuation, multislice, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faket.errors import FaketError
from faket.microscope import (
    METADATA_COLUMNS,
    interaction_constant,
    parse_config,
    simulate_tilt_series,
)
from faket.microscope.ice import SlabGeometry, build_volume
from faket.microscope.schedule import acquisition_order, dose_per_tilt, prior_dose
from faket.tomography import project

BLANK = {
    "detector": {"noise": False, "model": "ideal"},
    "dose": {"damage": "none"},
    "alignment": {"shift_std_angstrom": 0.0},
    "ice": {"fluctuation_std_volts": 0.0},
}


def _blobs(shape=(24, 48, 48), seed=0) -> np.ndarray:
    """A few smooth dense blobs (V) in a slab."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    volume = np.zeros(shape, np.float32)
    for _ in range(6):
        centre = rng.uniform([6, 8, 8], [shape[0] - 6, shape[1] - 8, shape[2] - 8])
        r2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
        volume += 8.0 * np.exp(-r2 / (2 * rng.uniform(1.5, 3.0) ** 2))
    return volume


def test_no_specimen_no_noise_is_flat():
    volume = np.zeros((16, 40, 48), np.float32)
    images, metadata = simulate_tilt_series(volume, 8.0, [-40.0, 0.0, 30.0], BLANK, seed=1)
    assert images.shape == (3, 40, 48) and images.dtype == np.float32
    assert list(metadata.columns) == METADATA_COLUMNS
    for image, expected in zip(images, metadata["counts_per_pixel"], strict=True):
        assert np.ptp(image) < 1e-5 * image.mean()
        assert image.mean() == pytest.approx(expected, rel=1e-5)


def test_poisson_variance_equals_mean_and_scales_with_dose():
    volume = np.zeros((8, 64, 64), np.float32)
    angles = np.linspace(-30, 30, 7)
    stats = []
    for dose in (60.0, 240.0):
        settings = {**BLANK, "detector": {"noise": True, "model": "ideal"}}
        settings["dose"] = {"damage": "none", "total_e_per_a2": dose}
        images, metadata = simulate_tilt_series(volume, 5.0, angles, settings, seed=3)
        expected = metadata["counts_per_pixel"].to_numpy()
        mean = images.mean(axis=(1, 2))
        variance = images.var(axis=(1, 2), ddof=1)
        assert mean == pytest.approx(expected, rel=0.01)
        # 7 x 4096 pixels: the pooled ratio is known to about 0.7 %.
        assert variance.sum() / mean.sum() == pytest.approx(1.0, abs=0.03)
        stats.append(variance.sum())
    assert stats[1] / stats[0] == pytest.approx(4.0, rel=0.05)


def test_counting_detector_keeps_the_mean_and_colours_the_noise():
    volume = np.zeros((8, 64, 64), np.float32)
    settings = {**BLANK, "detector": {"noise": True, "model": "counting", "dqe_zero": 0.8}}
    images, metadata = simulate_tilt_series(volume, 5.0, [0.0, 10.0], settings, seed=3)
    mean = images.mean(axis=(1, 2))
    assert mean == pytest.approx(metadata["counts_per_pixel"].to_numpy(), rel=0.01)
    spectrum = np.abs(np.fft.fft2(images - mean[:, None, None])) ** 2 / images[0].size
    low = spectrum[:, :4, :4].mean() / mean.mean()
    high = spectrum[:, 28:36, 28:36].mean() / mean.mean()
    # Noise power = mean x MTF² / DQE: 1 / 0.8 at low, less towards Nyquist.
    assert low == pytest.approx(1 / 0.8, rel=0.2)
    assert high < 0.6 * low


def test_mean_intensity_follows_beer_lambert():
    volume = np.zeros((20, 32, 32), np.float32)
    angles = np.array([0.0, 20.0, 40.0, 55.0, 65.0])
    ice = {"thickness_nm": 200.0, "mean_free_path_nm": 300.0, "fluctuation_std_volts": 0.0}
    settings = {**BLANK, "ice": ice}
    images, _ = simulate_tilt_series(volume, 10.0, angles, settings, seed=0)
    mean = images.mean(axis=(1, 2))
    expected = np.exp(-200.0 / 300.0 * (1 / np.cos(np.deg2rad(angles)) - 1))
    assert mean / mean[0] == pytest.approx(expected, rel=1e-4)


def test_same_seed_same_output_and_different_seed_differs():
    volume = _blobs((16, 32, 32))
    angles = [-20.0, 0.0, 20.0]
    first, meta = simulate_tilt_series(volume, 10.0, angles, None, seed=7)
    again, meta_again = simulate_tilt_series(volume, 10.0, angles, None, seed=7)
    other, meta_other = simulate_tilt_series(volume, 10.0, angles, None, seed=8)
    np.testing.assert_array_equal(first, again)
    assert meta.equals(meta_again)
    assert not np.array_equal(first, other)
    assert not np.allclose(meta["shift_x_angstrom"], meta_other["shift_x_angstrom"])


@pytest.mark.parametrize("damaged_specimen_in_fluctuating_ice", [False, True])
def test_multislice_with_one_slab_is_the_single_slice_image(damaged_specimen_in_fluctuating_ice):
    volume = _blobs()
    angles = [-55.0, -30.0, 0.0, 47.0]
    settings = {**BLANK, "optics": {"defocus_std_um": 0.0}}
    if damaged_specimen_in_fluctuating_ice:  # specimen and ice are projected apart
        settings["dose"] = {"damage": "exposure_filter", "total_e_per_a2": 200.0}
        settings["ice"] = {"thickness_nm": 40.0}
    single, _ = simulate_tilt_series(volume, 10.0, angles, settings, seed=0)
    one, _ = simulate_tilt_series(volume, 10.0, angles, {**settings, "multislice": 1}, seed=0)
    np.testing.assert_allclose(one, single, rtol=1e-5)


def test_multislice_converges_as_slabs_increase():
    volume = _blobs()
    angles = [-50.0, 0.0, 35.0]
    settings = {**BLANK, "optics": {"defocus_std_um": 0.0}}
    images = {
        n: simulate_tilt_series(volume, 5.0, angles, {**settings, "multislice": n}, seed=0)[0]
        for n in (1, 2, 4, 8, 16)
    }
    steps = [np.abs(images[2 * n] - images[n]).max() for n in (1, 2, 4, 8)]
    assert steps[0] > 0  # the slabs do change the image
    assert all(later < 0.7 * earlier for earlier, later in zip(steps, steps[1:], strict=False))


def test_ice_fluctuations_project_as_independent_voxels():
    config = parse_config({"ice": {"fluctuation_std_volts": 0.5}})
    geometry = SlabGeometry((30, 40, 40), 30, 30, 0, 0, margin=20)
    volume = build_volume(np.zeros((30, 40, 40), np.float32), 4.0, config, geometry, seed=2)
    assert volume.shape == (30, 40, 80)
    for angle in (0.0, 50.0):
        projection = project(volume, [angle], detector_width=40)[0]
        # A sum of 30 / cos independent voxels (tilted rays interpolate, which smooths).
        assert projection.mean() == pytest.approx(0.0, abs=0.2)
        assert projection.std() <= 0.5 * math.sqrt(30 / math.cos(math.radians(angle))) * 1.05
    assert project(volume, [0.0], detector_width=40)[0].std() == pytest.approx(
        0.5 * math.sqrt(30), rel=0.05
    )


def test_support_film_darkens_its_side_of_the_image():
    volume = np.zeros((10, 32, 64), np.float32)
    settings = {**BLANK, "film": {"enabled": True, "edge_position": 0.5, "thickness_nm": 20}}
    settings["optics"] = {"defocus_um": -0.5, "defocus_std_um": 0}
    images, _ = simulate_tilt_series(volume, 10.0, [0.0], settings, seed=0)
    bare, covered = images[0][:, 5:25].mean(), images[0][:, 40:60].mean()
    # The film replaces 20 nm of ice by carbon with a shorter mean free path (Beer-Lambert)
    # and a higher potential, whose imaginary part (amplitude contrast) absorbs too.
    inelastic = math.exp(-200.0 * (1 / 1900.0 - 1 / 3500.0))
    phase = interaction_constant(300) * (12.0 - 4.57) * 200.0
    elastic = math.exp(-2 * 0.07 / math.sqrt(1 - 0.07**2) * phase)
    expected = inelastic * elastic
    assert covered / bare == pytest.approx(expected, rel=2e-3)


def test_acquisition_orders_and_doses():
    angles = np.array([-6.0, -3.0, 0.0, 3.0, 6.0, 9.0])
    np.testing.assert_array_equal(acquisition_order(angles, "sequential"), [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(acquisition_order(angles, "bidirectional"), [5, 4, 0, 1, 2, 3])
    # Hagen: 0, +3, +6, -3, -6, +9.
    np.testing.assert_array_equal(acquisition_order(angles, "dose_symmetric"), [4, 3, 0, 1, 2, 5])
    doses = dose_per_tilt(angles, 60.0, "uniform")
    assert doses == pytest.approx(np.full(6, 10.0))
    np.testing.assert_allclose(
        prior_dose(acquisition_order(angles, "sequential"), doses), np.arange(6) * 10.0
    )
    weighted = dose_per_tilt(np.array([0.0, 60.0]), 3.0, "inverse_cosine")
    assert weighted == pytest.approx([1.0, 2.0])


def test_tilt_axis_rotation_turns_the_image():
    volume = np.zeros((8, 48, 48), np.float32)
    volume[3:5, 22:26, 8:14] = 20.0  # a bar left of centre, along X
    settings = {**BLANK, "ice": {"enabled": False}, "optics": {"defocus_um": -0.3}}
    rotated = {**settings, "alignment": {"shift_std_angstrom": 0.0, "tilt_axis_angle_deg": 90.0}}
    plain = simulate_tilt_series(volume, 5.0, [0.0], settings, seed=0)[0][0]
    turned = simulate_tilt_series(volume, 5.0, [0.0], rotated, seed=0)[0][0]
    # +90 degrees (X towards Y): the dark bar moves from left of centre to below centre.
    assert plain[22:26, 8:14].mean() < plain.mean() - 5
    assert turned[8:14, 22:26].mean() < turned.mean() - 5
    np.testing.assert_allclose(np.rot90(plain, k=-1), turned, atol=0.02 * plain.mean())


def test_shifts_move_the_image_by_the_recorded_amount():
    volume = _blobs((12, 48, 48))
    base = {**BLANK, "optics": {"defocus_std_um": 0.0}}
    still = simulate_tilt_series(volume, 10.0, [0.0], base, seed=4)[0][0]
    moved, metadata = simulate_tilt_series(
        volume, 10.0, [0.0], {**base, "alignment": {"shift_std_angstrom": 30.0}}, seed=4
    )
    dx, dy = metadata.loc[0, ["shift_x_px", "shift_y_px"]]
    spectrum = np.fft.fft2(still)
    ky = np.fft.fftfreq(48)[:, None]
    kx = np.fft.fftfreq(48)[None, :]
    expected = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (kx * dx + ky * dy))).real
    inner = (slice(8, 40), slice(8, 40))
    np.testing.assert_allclose(moved[0][inner], expected[inner], rtol=2e-3)


@pytest.mark.parametrize(
    ("angles", "message"),
    [([0.0, 90.0], "90"), ([10.0, 10.0], "duplicates"), ([], "no tilt")],
)
def test_bad_angles_are_one_line_errors(angles, message):
    with pytest.raises(FaketError, match=message):
        simulate_tilt_series(np.zeros((4, 8, 8), np.float32), 10.0, angles)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(FaketError, match="voxel size"):
        simulate_tilt_series(np.zeros((4, 8, 8), np.float32), 0.0, [0.0])
    with pytest.raises(FaketError, match="Z, Y, X"):
        simulate_tilt_series(np.zeros((8, 8), np.float32), 10.0, [0.0])
    with pytest.raises(FaketError, match="seed"):
        simulate_tilt_series(np.zeros((4, 8, 8), np.float32), 10.0, [0.0], seed=-1)
    broken = np.zeros((4, 8, 8), np.float32)
    broken[1, 2, 3] = np.nan
    with pytest.raises(FaketError, match="NaN"):
        simulate_tilt_series(broken, 10.0, [0.0])


def test_multislice_places_a_layer_at_its_depth():
    # A thin layer 60 voxels (60 Å) downstream of the tilt axis is imaged like a layer at
    # the axis with 60 Å more underfocus: multislice with one slab per Z row (slab centres
    # on the voxel rows) must reproduce that, the single-slice model cannot.
    volume = np.zeros((128, 24, 24), np.float32)
    volume[64 + 60, 8:16, 10:13] = 6.0
    at_axis = np.zeros_like(volume)
    at_axis[64] = volume[124]
    optics = {"defocus_std_um": 0.0, "illumination_aperture_mrad": 0.0, "defocus_um": -0.3}
    settings = {**BLANK, "ice": {"enabled": False}, "optics": optics}
    layered = simulate_tilt_series(volume, 1.0, [0.0], {**settings, "multislice": 129}, seed=0)
    moved = {**optics, "defocus_um": -0.3 - 60 * 1e-4}
    expected = simulate_tilt_series(at_axis, 1.0, [0.0], {**settings, "optics": moved}, seed=0)
    unmoved = simulate_tilt_series(at_axis, 1.0, [0.0], settings, seed=0)[0]
    np.testing.assert_allclose(layered[0], expected[0], rtol=2e-4)
    assert np.abs(unmoved - expected[0]).max() > 20 * np.abs(layered[0] - expected[0]).max()

"""Weighted back-projection: round trips, missing wedge, options, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _phantoms import ellipse_slice, ellipsoids_volume, gaussian_volume

from faket.errors import FaketError
from faket.tomography import angular_weights, project, reconstruct

FULL = np.arange(-90.0, 90.0, 1.5)
WEDGE = np.arange(-60.0, 61.0, 2.0)


def _second_moment(profile: np.ndarray) -> float:
    profile = np.clip(profile, 0, None)
    position = np.arange(profile.size)
    mean = (profile * position).sum() / profile.sum()
    return float(np.sqrt((profile * (position - mean) ** 2).sum() / profile.sum()))


def test_full_coverage_round_trip_correlates_with_the_phantom():
    volume = ellipsoids_volume(40)
    tilt_series = project(volume, FULL, device="cpu")
    reconstruction = reconstruct(tilt_series, FULL, thickness=40, device="cpu")
    assert reconstruction.shape == volume.shape
    assert np.corrcoef(reconstruction.ravel(), volume.ravel())[0, 1] > 0.9


def test_ramp_filtered_back_projection_recovers_absolute_values():
    # Inside a uniform disc of value 1, FBP with radian angular weights gives ~1.
    section = ellipse_slice(64, 64, 22.0, 22.0)
    tilt_series = project(section[:, None, :], FULL, device="cpu")
    reconstruction = reconstruct(tilt_series, FULL, thickness=64, device="cpu")[:, 0, :]
    interior = reconstruction[32 - 8 : 32 + 8, 32 - 8 : 32 + 8]
    assert abs(interior.mean() - 1.0) < 0.01
    z, x = np.meshgrid(np.arange(64) - 32, np.arange(64) - 32, indexing="ij")
    background = reconstruction[(np.hypot(z, x) > 25) & (np.hypot(z, x) < 30)]
    assert abs(background.mean()) < 0.01  # no offset outside the disc


def test_an_off_centre_blob_comes_back_where_it_was():
    volume = gaussian_volume((32, 8, 48), (10.0, 4.0, 31.0), 2.0)
    tilt_series = project(volume, FULL, device="cpu")
    reconstruction = reconstruct(tilt_series, FULL, thickness=32, device="cpu")
    peak = np.unravel_index(np.argmax(reconstruction), reconstruction.shape)
    assert peak == (10, 4, 31)


def test_missing_wedge_elongates_along_z():
    volume = gaussian_volume((48, 4, 48), (24.0, 2.0, 24.0), 1.5)
    spread = {}
    for name, angles in {"full": FULL, "wedge": WEDGE}.items():
        tilt_series = project(volume, angles, device="cpu")
        reconstruction = reconstruct(tilt_series, angles, thickness=48, device="cpu")[:, 2, :]
        spread[name] = _second_moment(reconstruction[:, 24]) / _second_moment(reconstruction[24])
    assert spread["full"] == pytest.approx(1.0, abs=0.1)
    assert spread["wedge"] > 1.3  # the ±60° point spread function is longer in Z


def test_angular_weights_sum_to_the_covered_range():
    np.testing.assert_allclose(angular_weights(np.arange(0.0, 180.0, 2.0)), np.deg2rad(2.0))
    weights = angular_weights(np.array([10.0, -10.0, 0.0, 30.0]))
    np.testing.assert_allclose(weights, np.deg2rad([15.0, 10.0, 10.0, 20.0]))


def test_z_valid_and_binning_match_slicing_and_block_means():
    rng = np.random.default_rng(0)
    tilt_series = rng.random((7, 8, 12)).astype(np.float32)
    angles = np.linspace(-45, 45, 7)
    full = reconstruct(tilt_series, angles, thickness=10, device="cpu")
    cropped = reconstruct(tilt_series, angles, thickness=10, z_valid=(2, 8), device="cpu")
    np.testing.assert_allclose(cropped, full[2:8], rtol=1e-5, atol=1e-6)
    binned = reconstruct(tilt_series, angles, thickness=10, post_binning=2, device="cpu")
    expected = full[:, :, :].reshape(5, 2, 4, 2, 6, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(binned, expected, rtol=1e-5, atol=1e-6)


def test_pre_binning_keeps_values_in_volume_units():
    section = ellipse_slice(64, 64, 22.0, 22.0)
    volume = np.repeat(section[:, None, :], 4, axis=1)
    tilt_series = project(volume, FULL, device="cpu")
    reconstruction = reconstruct(tilt_series, FULL, thickness=32, pre_binning=2, device="cpu")
    assert reconstruction.shape == (32, 2, 32)
    assert abs(reconstruction[16 - 4 : 16 + 4, :, 16 - 4 : 16 + 4].mean() - 1.0) < 0.02


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(1)
    tilt_series = rng.random((5, 9, 10)).astype(np.float32)
    angles = [-30.0, -10.0, 0.0, 15.0, 40.0]
    whole = reconstruct(tilt_series, angles, device="cpu")
    chunked = reconstruct(tilt_series, angles, device="cpu", memory_budget_bytes=2000)
    np.testing.assert_allclose(whole, chunked, rtol=1e-6, atol=1e-6)


def test_post_binning_per_chunk_equals_binning_the_whole_volume():
    # Odd sizes everywhere: trailing voxels must be dropped exactly as bin_array does.
    rng = np.random.default_rng(2)
    tilt_series = rng.random((5, 11, 13)).astype(np.float32)
    angles = [-30.0, -10.0, 0.0, 15.0, 40.0]
    full = reconstruct(tilt_series, angles, thickness=9, z_valid=(1, 8), device="cpu")
    expected = full[:6, :9, :12].reshape(2, 3, 3, 3, 4, 3).mean(axis=(1, 3, 5))
    chunked = reconstruct(
        tilt_series,
        angles,
        thickness=9,
        z_valid=(1, 8),
        post_binning=3,
        device="cpu",
        memory_budget_bytes=3000,
    )
    assert chunked.shape == (2, 3, 4)
    np.testing.assert_allclose(chunked, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"angles_deg": [0.0, 10.0]}, "2 tilt angles for a tilt series of 3"),
        ({"filter_name": "gaussian"}, "unknown filter"),
        ({"thickness": 0}, "thickness"),
        ({"z_valid": (5, 50)}, "valid Z range"),
        ({"pre_binning": 20}, "cannot bin"),
        ({"crowther": 1.5}, "Crowther"),
        ({"filter_name": "shrec", "crowther": 0.5}, "shrec filter"),
    ],
)
def test_bad_requests_are_clear_errors(kwargs, message):
    arguments = {"angles_deg": [-10.0, 0.0, 10.0], **kwargs}
    with pytest.raises(FaketError, match=message):
        reconstruct(np.ones((3, 8, 8), dtype=np.float32), device="cpu", **arguments)


def test_nan_tilt_series_is_rejected():
    data = np.ones((3, 4, 4), dtype=np.float32)
    data[1, 2, 2] = np.nan
    with pytest.raises(FaketError, match="NaN"):
        reconstruct(data, [-10.0, 0.0, 10.0], device="cpu")

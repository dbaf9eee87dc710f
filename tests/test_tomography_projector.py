"""The projector against analytic line integrals, skimage, and its own invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _phantoms import ellipse_slice, gaussian_volume

from faket.errors import FaketError
from faket.tomography import project
from faket.tomography import projector as projector_module
from faket.tomography.geometry import projection_blocks, projection_matrix


@pytest.mark.parametrize("angle", [0.0, 17.0, 45.0, -60.0, 80.0])
def test_ellipse_centre_line_integral_is_analytic(angle):
    # Chord through the centre of x²/a² + z²/c² = 1 along the beam (sin θ, cos θ).
    semi_x, semi_z = 26.0, 14.0
    section = ellipse_slice(48, 72, semi_x, semi_z)
    tilt_series = project(section[:, None, :], [angle], device="cpu")
    theta = np.deg2rad(angle)
    chord = 2.0 / np.sqrt(np.sin(theta) ** 2 / semi_x**2 + np.cos(theta) ** 2 / semi_z**2)
    centre = tilt_series[0, 0, 72 // 2]
    assert abs(centre - chord) / chord < 0.01


def test_sphere_profile_matches_chords():
    radius = 20.0
    section = ellipse_slice(64, 64, radius, radius)
    tilt_series = project(section[:, None, :], [0.0, 33.0], device="cpu")
    u = np.arange(64) - 32
    chords = 2 * np.sqrt(np.clip(radius**2 - u**2, 0, None))
    inner = np.abs(u) < radius - 2  # the rim is where voxelisation errors live
    for tilt in tilt_series[:, 0, :]:
        assert np.max(np.abs(tilt[inner] - chords[inner]) / chords[inner]) < 0.02


def test_zero_tilt_is_a_sum_over_z_and_ninety_sums_over_x():
    rng = np.random.default_rng(0)
    volume = rng.random((9, 4, 11)).astype(np.float32)
    tilt_series = project(volume, [0.0, 90.0], detector_width=11, device="cpu")
    np.testing.assert_allclose(tilt_series[0], volume.sum(axis=0), rtol=1e-5)
    # At +90° the detector coordinate u sees z = -u: pixel j <- slice n_z//2 - (j - n_det//2).
    expected = np.zeros((4, 11), dtype=np.float32)
    for j in range(11):
        iz = 9 // 2 - (j - 11 // 2)
        if 0 <= iz < 9:
            expected[:, j] = volume[iz].sum(axis=-1)
    np.testing.assert_allclose(tilt_series[1], expected, rtol=1e-5, atol=1e-5)


def test_agrees_with_skimage_radon_per_slice():
    skimage_transform = pytest.importorskip("skimage.transform")
    volume = gaussian_volume((40, 3, 56), (23.0, 1.0, 24.5), 4.0)
    angles = np.arange(-60.0, 61.0, 6.0)
    ours = project(volume, angles, device="cpu")[:, 1, :]
    # skimage measures the whole (padded) slice; cut to the detector like SHREC.
    sinogram = skimage_transform.radon(volume[:, 1, :], theta=angles, circle=False).T
    start = (sinogram.shape[1] - 56) // 2
    reference = sinogram[:, start : start + 56]
    # Documented tolerance: 0.5% of the peak line integral for a smooth object.
    assert np.max(np.abs(ours - reference)) < 5e-3 * reference.max()


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(1)
    volume = rng.random((12, 10, 14)).astype(np.float32)
    angles = np.arange(-60.0, 61.0, 15.0)
    whole = project(volume, angles, device="cpu")
    row_bytes = 4 * 2 * (12 * 14 + angles.size * 14)
    chunked = project(volume, angles, device="cpu", memory_budget_bytes=3 * row_bytes)
    # Equal up to float32 summation order: how a sparse product blocks its reduction
    # depends on the CPU's kernels (bit-equal on AVX2, ~1 ulp apart with AVX-512).
    # A wrong chunk boundary would be off by whole line integrals.
    np.testing.assert_allclose(chunked, whole, rtol=2e-6, atol=2e-6 * float(whole.max()))


def test_detector_width_crops_the_centre_of_the_full_measurement():
    rng = np.random.default_rng(2)
    volume = rng.random((10, 3, 16)).astype(np.float32)
    angles = [-40.0, 0.0, 25.0]
    wide = project(volume, angles, detector_width=32, device="cpu")
    narrow = project(volume, angles, detector_width=12, device="cpu")
    np.testing.assert_allclose(wide[..., 16 - 6 : 16 + 6], narrow, rtol=1e-5, atol=1e-6)
    assert np.all(wide[1, :, :8] == 0) and np.all(wide[1, :, 24:] == 0)


def test_negation_and_binning():
    rng = np.random.default_rng(3)
    volume = rng.random((8, 6, 10)).astype(np.float32)
    plain = project(volume, [0.0, 30.0], device="cpu")
    negated_binned = project(volume, [0.0, 30.0], negate=True, binning=2, device="cpu")
    expected = -plain.reshape(2, 3, 2, 5, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(negated_binned, expected, rtol=1e-5)


def test_memory_mapped_volume_gives_the_same_result(tmp_path):
    rng = np.random.default_rng(4)
    volume = rng.random((8, 5, 9)).astype(np.float32)
    mapped = np.lib.format.open_memmap(
        tmp_path / "v.npy", mode="w+", dtype=np.float32, shape=volume.shape
    )
    mapped[:] = volume
    mapped.flush()
    readonly = np.load(tmp_path / "v.npy", mmap_mode="r")
    np.testing.assert_array_equal(
        project(readonly, [10.0], device="cpu"), project(volume, [10.0], device="cpu")
    )


@pytest.mark.parametrize(
    "volume, angles, message",
    [
        (np.zeros((4, 4)), [0.0], "3 dimensions"),
        (np.zeros((0, 4, 4)), [0.0], "empty"),
        (np.full((4, 4, 4), np.nan), [0.0], "NaN"),
        (np.zeros((4, 4, 4)), [], "no tilt angles"),
        (np.zeros((4, 4, 4)), [0.0, 0.0], "duplicates"),
        (np.zeros((4, 4, 4)), [np.inf], "NaN or Inf"),
    ],
)
def test_bad_input_is_a_clear_error(volume, angles, message):
    with pytest.raises(FaketError, match=message):
        project(volume, angles, device="cpu")


def test_impossible_parameters_are_errors():
    with pytest.raises(FaketError, match="binning"):
        project(np.zeros((4, 4, 4)), [0.0], binning=0, device="cpu")
    with pytest.raises(FaketError, match="detector width"):
        project(np.zeros((4, 4, 4)), [0.0], detector_width=-3, device="cpu")
    with pytest.raises(FaketError, match="device"):
        project(np.zeros((4, 4, 4)), [0.0], device="tpu")


def test_cache_tiles_sum_to_the_whole_operator(monkeypatch):
    # Blocks of Z rows (uneven last block) must add up to the one-matrix product.
    rng = np.random.default_rng(3)
    volume = rng.random((11, 6, 9)).astype(np.float32)
    angles = np.array([-60.0, -50.0, -20.0, 0.0, 35.0, 47.0, 60.0])
    cpu = torch.device("cpu")
    whole = projection_matrix((11, 9), angles, 13, cpu)
    columns = torch.from_numpy(np.ascontiguousarray(volume.transpose(0, 2, 1))).reshape(99, 6)
    expected = (whole @ columns).reshape(7, 13, 6).permute(0, 2, 1).numpy()
    blocks = projection_blocks((11, 9), angles, 13, cpu, z_block=4)
    assert [(a, b) for a, b, _ in blocks] == [(0, 4), (4, 8), (8, 11)]
    tiled = sum(op @ columns[a * 9 : b * 9] for a, b, op in blocks)
    tiled = tiled.reshape(7, 13, 6).permute(0, 2, 1).numpy()
    np.testing.assert_allclose(tiled, expected, atol=1e-5)
    # project() tiles the same way when the cache budget holds 4 Z rows of 6 Y columns.
    monkeypatch.setattr(projector_module, "CPU_GATHER_BYTES", 4 * 9 * 6 * 4)
    projected = project(volume, angles, detector_width=13, device="cpu")
    np.testing.assert_allclose(projected, expected, atol=1e-5)

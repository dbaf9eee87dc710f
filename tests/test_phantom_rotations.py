"""Rotations: uniform on SO(3), ZXZ conversions, and rotating volumes about their centre."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats
from scipy.spatial.transform import Rotation

from faket.phantom import matrices_to_zxz, random_rotations, rotate_volumes, zxz_to_matrices


def _rotated_z_statistics(matrices):
    axis = matrices[:, :, 2]  # R e_z
    cos_polar = axis[:, 2]
    azimuth = np.arctan2(axis[:, 1], axis[:, 0])
    return (
        stats.kstest(cos_polar, stats.uniform(-1, 2).cdf).pvalue,
        stats.kstest(azimuth, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue,
    )


def test_rotations_are_uniform_on_so3():
    matrices = random_rotations(20000, np.random.default_rng(3))
    p_polar, p_azimuth = _rotated_z_statistics(matrices)
    assert p_polar > 1e-3 and p_azimuth > 1e-3
    # The Haar mean of a rotation matrix is zero; a rotated x axis is uniform too.
    assert np.abs(matrices.mean(axis=0)).max() < 0.02
    assert stats.kstest(matrices[:, 2, 0], stats.uniform(-1, 2).cdf).pvalue > 1e-3
    np.testing.assert_allclose(
        matrices @ matrices.transpose(0, 2, 1),
        np.broadcast_to(np.eye(3), matrices.shape),
        atol=1e-12,
    )
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0)


def test_uniform_euler_angles_fail_the_same_statistic():
    # The check above can fail: naive uniform ZXZ angles crowd the poles.
    rng = np.random.default_rng(3)
    angles = rng.uniform([-180, 0, -180], [180, 180, 180], (20000, 3))
    p_polar, _ = _rotated_z_statistics(zxz_to_matrices(angles))
    assert p_polar < 1e-6


def test_zxz_round_trip_and_faket_io_convention():
    matrices = random_rotations(500, np.random.default_rng(1))
    angles = matrices_to_zxz(matrices)
    np.testing.assert_allclose(zxz_to_matrices(angles), matrices, atol=1e-10)
    reference = Rotation.from_euler("ZXZ", angles, degrees=True).as_matrix()
    np.testing.assert_allclose(reference, matrices, atol=1e-10)
    assert np.all((angles[:, 1] >= 0) & (angles[:, 1] <= 180))


def test_rotation_moves_a_marked_voxel_as_documented():
    volume = np.zeros((9, 9, 9), np.float32)
    volume[4, 4, 7] = 1.0  # template offset (x, y, z) = (3, 0, 0)
    quarter = zxz_to_matrices([[90.0, 0.0, 0.0]])  # +90° about z: x -> y
    out = rotate_volumes(volume, quarter)[0]
    assert out[4, 7, 4] == pytest.approx(1.0, abs=1e-5)  # offset (0, 3, 0)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)


def test_rotate_volumes_matches_scipy_interpolation():
    rng = np.random.default_rng(0)
    volume = ndimage.gaussian_filter(rng.random((2, 15, 15, 15)), (0, 1, 1, 1)).astype(np.float32)
    matrices = random_rotations(3, rng)
    out = rotate_volumes(volume, matrices, budget_bytes=200_000)  # several chunks
    c = 7
    d = np.indices((15, 15, 15)).reshape(3, -1).T - c  # (z, y, x) offsets
    for m, matrix in enumerate(matrices):
        source_xyz = d[:, ::-1] @ matrix  # R^T d as rows
        coords = (source_xyz[:, ::-1] + c).T
        for channel in range(2):
            expected = ndimage.map_coordinates(
                volume[channel], coords, order=1, mode="grid-constant"
            )
            np.testing.assert_allclose(out[m, channel].ravel(), expected, atol=2e-5)

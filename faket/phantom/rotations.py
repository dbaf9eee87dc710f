"""Rotations: uniform sampling on SO(3), ZXZ Euler angles and rotating volumes.

Convention (the one :mod:`faket.io` documents): a particle's Euler angles
``(phi, theta, psi)`` are intrinsic ZXZ angles, the matrix is
``Rotation.from_euler("ZXZ", [phi, theta, psi], degrees=True).as_matrix()``, acting on
``(x, y, z)`` column vectors, and a template point at offset ``p`` (Å, from the template
centre) sits at ``centre + R p`` in the grand model. Equivalently, grand-model voxel
``centre + d`` takes the template value at ``R^T d``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from faket.device import chunk_size, memory_budget, select_device


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rotation matrices drawn uniformly (Haar measure) from SO(3).

    A unit quaternion with four independent normal components is uniform on the
    3-sphere, which makes its rotation uniform on SO(3). (Uniform Euler angles are not.)

    Parameters
    ----------
    n
        Number of rotations.
    rng
        Random generator.

    Returns
    -------
    np.ndarray
        ``(n, 3, 3)`` rotation matrices acting on ``(x, y, z)`` vectors.
    """
    quaternions = rng.standard_normal((n, 4))
    quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
    return Rotation.from_quat(quaternions).as_matrix().reshape(n, 3, 3)


def matrices_to_zxz(matrices: np.ndarray) -> np.ndarray:
    """ZXZ Euler angles ``(phi, theta, psi)`` in degrees of ``(n, 3, 3)`` rotation matrices."""
    with warnings.catch_warnings():
        # At theta = 0 or 180 only phi + psi is defined; the matrix is still exact.
        warnings.filterwarnings("ignore", message="Gimbal lock", category=UserWarning)
        return (
            Rotation.from_matrix(np.asarray(matrices)).as_euler("ZXZ", degrees=True).reshape(-1, 3)
        )


def zxz_to_matrices(angles: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` rotation matrices of ``(n, 3)`` ZXZ Euler angles in degrees."""
    values = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    return Rotation.from_euler("ZXZ", values, degrees=True).as_matrix().reshape(-1, 3, 3)


def rotate_volumes(
    volume: np.ndarray,
    matrices: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    budget_bytes: int | None = None,
) -> np.ndarray:
    """Rotate a cubic volume about its centre voxel by many rotations (trilinear).

    Parameters
    ----------
    volume
        ``(c, n, n, n)`` channels of a ``(Z, Y, X)`` volume (or ``(n, n, n)``), ``n`` odd,
        rotated about voxel ``n // 2``.
    matrices
        ``(m, 3, 3)`` rotation matrices (see the module docstring).
    device
        Torch device.
    budget_bytes
        Memory per chunk of rotations.

    Returns
    -------
    np.ndarray
        ``(m, c, n, n, n)`` float32 rotated volumes (``(m, n, n, n)`` for a 3-D input);
        values from outside the box are 0.
    """
    dev = select_device(device)
    single = volume.ndim == 3
    vol = torch.as_tensor(np.asarray(volume, dtype=np.float32), device=dev)
    vol = vol[None] if single else vol
    n = vol.shape[-1]
    mats = np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    per_item = n**3 * 4 * (vol.shape[0] * 2 + 4)
    step = chunk_size(per_item, len(mats), memory_budget(dev, budget_bytes))
    parts = [_rotate_chunk(vol, mats[i : i + step], dev) for i in range(0, len(mats), step)]
    out = np.concatenate(parts) if parts else np.zeros((0, *vol.shape), np.float32)
    return out[:, 0] if single else out


def _rotate_chunk(vol: torch.Tensor, mats: np.ndarray, dev: torch.device) -> np.ndarray:
    n = vol.shape[-1]
    half = n // 2
    precise = torch.float32 if dev.type == "mps" else torch.float64  # MPS lacks float64
    axis = torch.arange(n, device=dev, dtype=precise) - half
    dz, dy, dx = torch.meshgrid(axis, axis, axis, indexing="ij")
    offsets = torch.stack([dx, dy, dz], dim=-1).reshape(-1, 3)  # (n³, 3) as (x, y, z)
    rot = torch.as_tensor(mats, dtype=precise, device=dev)
    # Source offset R^T d for every output offset d; row vectors: d @ R.
    source = torch.einsum("pj,mjk->mpk", offsets, rot)
    # grid_sample with align_corners=True maps -1 and 1 to the first and last voxel centres.
    grid = (source / half).reshape(len(mats), n, n, n, 3).float()
    batch = vol[None].expand(len(mats), *vol.shape)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.cpu().numpy()

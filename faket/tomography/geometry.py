"""Parallel-beam tilt geometry as sparse matrices.

Rotation about the Y (tilt) axis leaves Y untouched, so every XZ slice of a
``(Z, Y, X)`` volume sees the *same* 2-D projection geometry. We therefore build
the 2-D operator once, as a sparse matrix, and apply it to all Y slices at
once with a single sparse x dense product: the volume viewed as a
``(Z*X, Y)`` matrix. This turns the whole tilt series into one call to a tuned
library kernel (MKL on CPU, cuSPARSE on CUDA) instead of ``Y`` separate 2-D
Radon transforms.

Coordinates (shared by the projector and the back-projector, so a round trip
is aligned): voxel ``(iz, ix)`` has centred coordinates ``z = iz - Nz // 2``,
``x = ix - Nx // 2``; detector pixel ``j`` of a detector ``n_det`` wide has
``u = j - n_det // 2``. At tilt angle ``theta`` the ray through detector
coordinate ``u`` is the line ``x cos(theta) - z sin(theta) = u``; at
``theta = 0`` the beam runs along Z. This is the convention of
``skimage.transform.radon`` applied to an XZ slice stored as a ``(Z, X)`` image,
which the FakET reference code used.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch


def _as_angle_key(angles_deg: np.ndarray) -> tuple[float, ...]:
    return tuple(float(a) for a in np.asarray(angles_deg, dtype=np.float64).ravel())


def angular_weights(angles_deg: np.ndarray) -> np.ndarray:
    """Angular integration weights (radians) for weighted back-projection.

    Each tilt is weighted by the angular interval it represents: half the
    distance to its neighbours (one-sided at the ends), so evenly spaced tilts
    covering 180 degrees get ``pi / n_tilts`` each, the textbook FBP factor.

    Parameters
    ----------
    angles_deg : array, shape (n_tilts,)
        Tilt angles in degrees, any order, no duplicates.

    Returns
    -------
    array, shape (n_tilts,)
        Weights in radians, in the order of ``angles_deg``.
    """
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    n = angles.size
    if n == 1:
        return np.array([math.pi])
    order = np.argsort(angles)
    ordered = angles[order]
    gaps = np.diff(ordered)
    spacing = np.empty(n)
    spacing[0], spacing[-1] = gaps[0], gaps[-1]
    spacing[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    weights = np.empty(n)
    weights[order] = spacing
    return weights


def _interpolation_pair(
    position: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices ``i0, i0 + 1`` and linear weights for fractional ``position`` on ``[0, size)``.

    Samples outside the grid contribute zero. The lower index is clamped to
    ``[0, size - 2]`` (the weights moved with it) so every row of the sparse
    matrix has the same number of entries with distinct, increasing columns.
    """
    lower = torch.floor(position)
    frac = position - lower
    lower = lower.long()
    w_lower = torch.where((lower >= 0) & (lower < size), 1.0 - frac, 0.0)
    w_upper = torch.where((lower + 1 >= 0) & (lower + 1 < size), frac, 0.0)
    clamped = lower.clamp(0, max(size - 2, 0))
    # When clamping moved the pair, the surviving weight must move with it.
    shifted_down = lower < clamped  # lower == -1: only index 0 (= lower + 1) survives
    shifted_up = lower > clamped  # lower == size - 1: only index size - 1 (= lower) survives
    new_lower = torch.where(shifted_down, w_upper, torch.where(shifted_up, 0.0, w_lower))
    new_upper = torch.where(shifted_down, 0.0, torch.where(shifted_up, w_lower, w_upper))
    return clamped, new_lower, new_upper


def _csr(
    crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    index_dtype = torch.int32 if col.numel() < 2**31 - 1 else torch.int64
    with warnings.catch_warnings():
        # Torch flags its (well-tested) CSR support as "beta"; nothing for a user to act on.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow.to(index_dtype), col.to(index_dtype), val, size=shape, check_invariants=False
        )


@functools.lru_cache(maxsize=2)
def _projection_matrix_cached(
    n_z: int, n_x: int, angle_key: tuple[float, ...], n_det: int, device: str
) -> torch.Tensor:
    dev = torch.device(device)
    z = torch.arange(n_z, device=dev, dtype=torch.float64) - n_z // 2
    x = torch.arange(n_x, device=dev, dtype=torch.float64) - n_x // 2
    u = torch.arange(n_det, device=dev, dtype=torch.float64) - n_det // 2
    cols, vals, row_lengths = [], [], []
    for theta in np.deg2rad(angle_key):
        cos, sin = math.cos(theta), math.sin(theta)
        if abs(cos) >= abs(sin):
            # Mostly along Z: step one row of Z at a time, interpolate along X.
            x_pos = (u[:, None] + z[None, :] * sin) / cos + n_x // 2
            ix, w0, w1 = _interpolation_pair(x_pos, n_x)
            base = (torch.arange(n_z, device=dev) * n_x)[None, :]
            col = torch.stack((base + ix, base + ix + 1), dim=-1).reshape(n_det, -1)
            val = torch.stack((w0, w1), dim=-1).reshape(n_det, -1) / abs(cos)
        else:
            # Mostly along X: step one column at a time, interpolate along Z.
            z_pos = (x[None, :] * cos - u[:, None]) / sin + n_z // 2
            iz, w0, w1 = _interpolation_pair(z_pos, n_z)
            ix = torch.arange(n_x, device=dev)[None, :]
            col = torch.stack((iz * n_x + ix, (iz + 1) * n_x + ix), dim=-1).reshape(n_det, -1)
            val = torch.stack((w0, w1), dim=-1).reshape(n_det, -1) / abs(sin)
            col, order = torch.sort(col, dim=1)  # CSR rows want increasing columns
            val = torch.gather(val, 1, order)
        cols.append(col.reshape(-1))
        vals.append(val.reshape(-1).float())
        row_lengths.append(torch.full((n_det,), col.shape[1], device=dev, dtype=torch.int64))
    crow = torch.cat(
        [torch.zeros(1, device=dev, dtype=torch.int64), torch.cumsum(torch.cat(row_lengths), 0)]
    )
    return _csr(crow, torch.cat(cols), torch.cat(vals), (len(angle_key) * n_det, n_z * n_x))


def projection_matrix(
    slice_shape: tuple[int, int], angles_deg: np.ndarray, n_det: int, device: torch.device
) -> torch.Tensor:
    """Sparse matrix of line integrals through one XZ slice (Joseph's method).

    Each ray is sampled once per voxel row (or column, for rays closer to X
    than to Z), with linear interpolation between the two nearest voxels and
    the step length ``1 / |cos|`` (or ``1 / |sin|``) as weight: Joseph's
    ray-driven projector. Outside the volume the specimen is zero.

    Parameters
    ----------
    slice_shape : (n_z, n_x)
        Shape of one XZ slice of the volume, in voxels.
    angles_deg : array, shape (n_tilts,)
        Tilt angles in degrees.
    n_det : int
        Detector width in pixels (pixel size = voxel size).
    device : torch.device
        Where the matrix lives.

    Returns
    -------
    torch.Tensor, sparse CSR, shape (n_tilts * n_det, n_z * n_x), float32
        Row ``t * n_det + j`` holds the weights of detector pixel ``j`` at tilt
        ``t``; column ``iz * n_x + ix`` is voxel ``(iz, ix)``. Cached for reuse.
    """
    n_z, n_x = slice_shape
    return _projection_matrix_cached(n_z, n_x, _as_angle_key(angles_deg), n_det, str(device))


@functools.lru_cache(maxsize=2)
def _backprojection_matrix_cached(
    n_z: int, n_x: int, angle_key: tuple[float, ...], n_det: int, device: str
) -> torch.Tensor:
    dev = torch.device(device)
    z = torch.arange(n_z, device=dev, dtype=torch.float64) - n_z // 2
    x = torch.arange(n_x, device=dev, dtype=torch.float64) - n_x // 2
    theta = torch.as_tensor(np.deg2rad(angle_key), device=dev)
    weights = torch.as_tensor(angular_weights(np.asarray(angle_key)), device=dev)
    # Detector position of every voxel centre at every tilt: (n_z, n_x, n_tilts).
    u = x[None, :, None] * torch.cos(theta) - z[:, None, None] * torch.sin(theta)
    j, w0, w1 = _interpolation_pair(u + n_det // 2, n_det)
    offset = torch.arange(len(angle_key), device=dev) * n_det
    col = torch.stack((offset + j, offset + j + 1), dim=-1).reshape(n_z * n_x, -1)
    val = (torch.stack((w0, w1), dim=-1) * weights[:, None]).reshape(n_z * n_x, -1)
    crow = torch.arange(n_z * n_x + 1, device=dev, dtype=torch.int64) * col.shape[1]
    return _csr(crow, col.reshape(-1), val.reshape(-1).float(), (n_z * n_x, len(angle_key) * n_det))


def backprojection_matrix(
    slice_shape: tuple[int, int], angles_deg: np.ndarray, n_det: int, device: torch.device
) -> torch.Tensor:
    """Sparse matrix of weighted back-projection into one XZ slice (voxel-driven).

    Every voxel centre is projected onto the detector at every tilt and picks
    up the linearly interpolated (filtered) projection value, weighted by the
    tilt's angular interval (:func:`angular_weights`, radians).

    Parameters
    ----------
    slice_shape : (n_z, n_x)
        Shape of one XZ slice of the reconstruction, in voxels.
    angles_deg : array, shape (n_tilts,)
        Tilt angles in degrees.
    n_det : int
        Detector width in pixels.
    device : torch.device
        Where the matrix lives.

    Returns
    -------
    torch.Tensor, sparse CSR, shape (n_z * n_x, n_tilts * n_det), float32
        Cached for reuse.
    """
    n_z, n_x = slice_shape
    return _backprojection_matrix_cached(n_z, n_x, _as_angle_key(angles_deg), n_det, str(device))

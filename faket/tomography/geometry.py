"""Parallel-beam tilt geometry as sparse matrices.

Rotation about the Y (tilt) axis leaves Y untouched, so every XZ slice of a
``(Z, Y, X)`` volume sees the *same* 2-D projection geometry. We therefore build
the 2-D operator once, as a sparse matrix, and apply it to many Y slices at
once with sparse x dense products: the volume viewed as a ``(Z*X, Y)`` matrix.
This turns the whole tilt series into a few calls to a tuned library kernel
(MKL on CPU, cuSPARSE on CUDA) instead of ``Y`` separate 2-D Radon transforms.
On the CPU the products are limited by cache misses, so the projector applies
the operator in column blocks of a few Z rows (:func:`projection_blocks`) to
tiles of a few dozen Y rows.

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
from scipy import sparse


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
    position: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``i0, i0 + 1`` and linear weights for fractional ``position`` on ``[0, size)``.

    Samples outside the grid contribute zero. The lower index is clamped to
    ``[0, size - 2]`` (the weights moved with it) so every row of the sparse
    matrix has the same number of entries with distinct, increasing columns.
    """
    lower = np.floor(position)
    frac = position - lower
    lower = lower.astype(np.int64)
    w_lower = np.where((lower >= 0) & (lower < size), 1.0 - frac, 0.0)
    w_upper = np.where((lower + 1 >= 0) & (lower + 1 < size), frac, 0.0)
    clamped = np.clip(lower, 0, max(size - 2, 0))
    # When clamping moved the pair, the surviving weight must move with it.
    shifted_down = lower < clamped  # lower == -1: only index 0 (= lower + 1) survives
    shifted_up = lower > clamped  # lower == size - 1: only index size - 1 (= lower) survives
    new_lower = np.where(shifted_down, w_upper, np.where(shifted_up, 0.0, w_lower))
    new_upper = np.where(shifted_down, 0.0, np.where(shifted_up, w_lower, w_upper))
    return clamped, new_lower, new_upper


def _csr(
    crow: np.ndarray, col: np.ndarray, val: np.ndarray, shape: tuple[int, int], device: str
) -> torch.Tensor:
    with warnings.catch_warnings():
        # Torch flags its (well-tested) CSR support as "beta"; nothing for a user to act on.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow).to(device),
            torch.from_numpy(col).to(device),
            torch.from_numpy(val).to(device),
            size=shape,
            check_invariants=False,
        )


def _index_dtype(n_entries: int) -> type:
    # 32-bit indices halve the matrix's memory and are what the sparse kernels prefer.
    return np.int32 if n_entries < 2**31 - 1 else np.int64


def _ray_samples(
    theta: float, z: np.ndarray, x: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Columns and weights of every ray of one tilt, shape ``(n_det, 2 * samples)``."""
    n_z, n_x = z.size, x.size
    cos, sin = math.cos(theta), math.sin(theta)
    if abs(cos) >= abs(sin):
        # Mostly along Z: step one row of Z at a time, interpolate along X.
        ix, w0, w1 = _interpolation_pair((u[:, None] + z[None, :] * sin) / cos + n_x // 2, n_x)
        base = (np.arange(n_z) * n_x)[None, :]
        col = np.stack((base + ix, base + ix + 1), axis=-1).reshape(u.size, -1)
        val = np.stack((w0, w1), axis=-1).reshape(u.size, -1) / abs(cos)
        return col, val
    # Mostly along X: step one column at a time, interpolate along Z.
    iz, w0, w1 = _interpolation_pair((x[None, :] * cos - u[:, None]) / sin + n_z // 2, n_z)
    ix = np.arange(n_x)[None, :]
    col = np.stack((iz * n_x + ix, (iz + 1) * n_x + ix), axis=-1).reshape(u.size, -1)
    val = np.stack((w0, w1), axis=-1).reshape(u.size, -1) / abs(sin)
    order = np.argsort(col, axis=1, kind="stable")  # CSR rows want increasing columns
    return np.take_along_axis(col, order, 1), np.take_along_axis(val, order, 1)


def _projection_csr(
    n_z: int, n_x: int, angle_key: tuple[float, ...], n_det: int
) -> sparse.csr_matrix:
    z = np.arange(n_z, dtype=np.float64) - n_z // 2
    x = np.arange(n_x, dtype=np.float64) - n_x // 2
    u = np.arange(n_det, dtype=np.float64) - n_det // 2
    thetas = np.deg2rad(angle_key)
    per_row = [2 * (n_z if abs(math.cos(t)) >= abs(math.sin(t)) else n_x) for t in thetas]
    crow = np.zeros(len(thetas) * n_det + 1, dtype=np.int64)
    crow[1:] = np.cumsum(np.repeat(per_row, n_det))
    index_dtype = _index_dtype(max(int(crow[-1]), n_z * n_x))
    # Filled one tilt at a time: only the final matrix and one tilt's temporaries in memory.
    col = np.empty(int(crow[-1]), dtype=index_dtype)
    val = np.empty(int(crow[-1]), dtype=np.float32)
    for t, theta in enumerate(thetas):
        begin, end = crow[t * n_det], crow[(t + 1) * n_det]
        col[begin:end], val[begin:end] = (a.ravel() for a in _ray_samples(theta, z, x, u))
    shape = (len(thetas) * n_det, n_z * n_x)
    return sparse.csr_matrix((val, col, crow.astype(index_dtype)), shape=shape, copy=False)


def _to_torch(matrix: sparse.csr_matrix, device: str) -> torch.Tensor:
    index_dtype = _index_dtype(max(matrix.nnz, *matrix.shape))
    return _csr(
        matrix.indptr.astype(index_dtype, copy=False),
        matrix.indices.astype(index_dtype, copy=False),
        matrix.data.astype(np.float32, copy=False),
        matrix.shape,
        device,
    )


@functools.lru_cache(maxsize=2)
def _projection_blocks_cached(
    n_z: int, n_x: int, angle_key: tuple[float, ...], n_det: int, device: str, z_block: int
) -> tuple[tuple[int, int, torch.Tensor], ...]:
    full = _projection_csr(n_z, n_x, angle_key, n_det)
    if z_block >= n_z:
        return ((0, n_z, _to_torch(full, device)),)
    blocks = []
    for z_start in range(0, n_z, z_block):
        z_stop = min(z_start + z_block, n_z)
        # Columns iz * n_x + ix of Z rows z_start:z_stop are one contiguous range.
        part = full[:, z_start * n_x : z_stop * n_x]
        blocks.append((z_start, z_stop, _to_torch(part, device)))
    return tuple(blocks)


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
    return projection_blocks(slice_shape, angles_deg, n_det, device, n_z)[0][2]


def projection_blocks(
    slice_shape: tuple[int, int],
    angles_deg: np.ndarray,
    n_det: int,
    device: torch.device,
    z_block: int,
) -> tuple[tuple[int, int, torch.Tensor], ...]:
    """:func:`projection_matrix` cut into blocks of columns of ``z_block`` Z rows each.

    ``sum(block @ columns[z_start * n_x : z_stop * n_x])`` over the blocks equals
    ``projection_matrix(...) @ columns``; each block gathers from a slab of the volume
    small enough to stay in the CPU's cache.

    Returns
    -------
    tuple of (z_start, z_stop, operator)
        ``operator``: sparse CSR, shape ``(n_tilts * n_det, (z_stop - z_start) * n_x)``.
        Cached for reuse.
    """
    n_z, n_x = slice_shape
    key = _as_angle_key(angles_deg)
    return _projection_blocks_cached(n_z, n_x, key, n_det, str(device), max(1, int(z_block)))


@functools.lru_cache(maxsize=2)
def _backprojection_matrix_cached(
    n_z: int,
    n_x: int,
    angle_key: tuple[float, ...],
    n_det: int,
    device: str,
    z_range: tuple[int, int],
) -> torch.Tensor:
    n_tilts = len(angle_key)
    first, last = z_range
    n_rows = last - first
    x = np.arange(n_x, dtype=np.float64) - n_x // 2
    theta = np.deg2rad(np.asarray(angle_key, dtype=np.float64))
    weights = angular_weights(np.asarray(angle_key))
    offset = np.arange(n_tilts) * n_det
    per_row = 2 * n_tilts
    index_dtype = _index_dtype(max(n_rows * n_x * per_row, n_tilts * n_det))
    col = np.empty((n_rows, n_x * per_row), dtype=index_dtype)
    val = np.empty((n_rows, n_x * per_row), dtype=np.float32)
    # Blocks of Z rows keep the float64 temporaries near 64 MB whatever the volume.
    rows = max(1, 2**23 // (n_x * n_tilts))
    for start in range(0, n_rows, rows):
        z = np.arange(first + start, first + min(start + rows, n_rows), dtype=np.float64)
        z -= n_z // 2
        # Detector position of every voxel centre at every tilt: (rows, n_x, n_tilts).
        u = x[None, :, None] * np.cos(theta) - z[:, None, None] * np.sin(theta)
        j, w0, w1 = _interpolation_pair(u + n_det // 2, n_det)
        block = slice(start, start + z.size)
        col[block] = np.stack((offset + j, offset + j + 1), axis=-1).reshape(z.size, -1)
        val[block] = (np.stack((w0, w1), axis=-1) * weights[:, None]).reshape(z.size, -1)
    crow = np.arange(n_rows * n_x + 1, dtype=index_dtype) * per_row
    shape = (n_rows * n_x, n_tilts * n_det)
    return _csr(crow, col.reshape(-1), val.reshape(-1), shape, device)


def backprojection_matrix(
    slice_shape: tuple[int, int],
    angles_deg: np.ndarray,
    n_det: int,
    device: torch.device,
    z_range: tuple[int, int] | None = None,
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
    z_range : (start, stop), optional
        Only the rows of these Z slices (default all): blocks of a matrix too large to
        hold whole; the rows are those of the whole matrix.

    Returns
    -------
    torch.Tensor, sparse CSR, shape ((stop - start) * n_x, n_tilts * n_det), float32
        Cached for reuse.
    """
    n_z, n_x = slice_shape
    first, last = (0, n_z) if z_range is None else (int(z_range[0]), int(z_range[1]))
    if not 0 <= first < last <= n_z:
        raise ValueError(f"Z range {first}:{last} is outside 0:{n_z}")
    key = _as_angle_key(angles_deg)
    return _backprojection_matrix_cached(n_z, n_x, key, n_det, str(device), (first, last))

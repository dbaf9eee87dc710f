"""Projected potential of slabs perpendicular to the beam, for multislice propagation.

A tilted specimen is cut into ``N`` slabs *perpendicular to the beam* spanning the whole
depth the field of view covers at that tilt (a tilted slab of thickness ``t`` seen by a
detector ``W`` wide spans ``t / cos + W |tan|`` along the beam). Each detector ray is sampled
exactly as Joseph's projector in :mod:`faket.tomography.geometry` samples it (one sample per
voxel row, or per column beyond 45 degrees, linear interpolation, step ``1/|cos|`` or
``1/|sin|``), every sample knows its depth along the beam, and a prefix sum along the ray
splits the line integral at the slab boundaries. With one slab the result is the
projector's line integral, so multislice with ``N = 1`` reproduces the single-slice image.

Beam coordinates: the ray through detector coordinate ``u`` is ``x cos - z sin = u``; the
depth along it is ``s = x sin + z cos`` (downstream positive), 0 at the tilt axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from faket.device import chunk_size


@dataclass
class RaySamples:
    """Joseph samples of every ray at one tilt, in order of increasing depth.

    Attributes
    ----------
    index0, index1
        ``(K, W)`` flat indices of the two interpolated voxels in a volume slice padded by
        one zero voxel on every side, shape ``(n_z + 2, n_x + 2)``.
    weight0, weight1
        ``(K, W)`` interpolation weights times the step length (voxels).
    depth
        ``(K, W)`` depth ``s`` of each sample (voxels).
    """

    index0: torch.Tensor
    index1: torch.Tensor
    weight0: torch.Tensor
    weight1: torch.Tensor
    depth: torch.Tensor


def _pair(position: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower padded index and linear weights for fractional ``position`` on ``[0, size)``.

    With one zero voxel padded on each side, samples whose lower neighbour is -1 or
    ``size - 1`` need no special case; positions further out get zero weight.
    """
    lower = torch.floor(position)
    frac = position - lower
    valid = (lower >= -1) & (lower <= size - 1)
    padded = torch.clamp(lower.long() + 1, 0, size)
    return padded, torch.where(valid, 1 - frac, 0.0), torch.where(valid, frac, 0.0)


def ray_samples(theta_deg: float, n_z: int, n_x: int, n_det: int, device) -> RaySamples:
    """Sample positions of all rays at tilt ``theta_deg`` (see the module docstring)."""
    theta = math.radians(theta_deg)
    sin, cos = math.sin(theta), math.cos(theta)
    dev = torch.device(device)
    u = torch.arange(n_det, device=dev, dtype=torch.float64)[None, :] - n_det // 2
    row = n_x + 2
    if abs(cos) >= abs(sin):
        # One sample per Z row, interpolated along X.
        z = torch.arange(n_z, device=dev, dtype=torch.float64)[:, None] - n_z // 2
        x_pos = (u + z * sin) / cos + n_x // 2
        ix, w0, w1 = _pair(x_pos, n_x)
        index0 = (z.long() + n_z // 2 + 1) * row + ix
        index1 = index0 + 1
        depth = (z + u * sin) / cos
        step = 1 / abs(cos)
    else:
        # One sample per X column crossing the slab, interpolated along Z.
        reach = (n_z // 2 + 1.0) * abs(sin / cos)
        count = int(math.ceil(2 * reach)) + 3
        first = torch.floor(u / cos - reach) - 1
        x = first + torch.arange(count, device=dev, dtype=torch.float64)[:, None]
        z_pos = (x * cos - u) / sin + n_z // 2
        iz, w0, w1 = _pair(z_pos, n_z)
        column = x.long() + n_x // 2
        inside = (column >= 0) & (column < n_x)
        w0, w1 = torch.where(inside, w0, 0.0), torch.where(inside, w1, 0.0)
        index0 = iz * row + torch.clamp(column, -1, n_x) + 1
        index1 = index0 + row
        depth = (x - u * cos) / sin
        step = 1 / abs(sin)
        if sin < 0:  # depth falls along the columns: put the samples in depth order
            index0, index1, w0, w1, depth = (t.flip(0) for t in (index0, index1, w0, w1, depth))
    return RaySamples(
        index0.expand_as(depth).contiguous(),
        index1.expand_as(depth).contiguous(),
        (w0 * step).expand_as(depth).float().contiguous(),
        (w1 * step).expand_as(depth).float().contiguous(),
        depth.expand(index0.shape[0], n_det).contiguous(),
    )


def slab_boundaries(samples: RaySamples, n_slabs: int) -> torch.Tensor:
    """``n_slabs + 1`` depths (voxels) splitting the sampled depth range evenly, centred on 0."""
    used = (samples.weight0 > 0) | (samples.weight1 > 0)
    reach = float(samples.depth[used].abs().max()) + 0.5 if used.any() else 1.0
    return torch.linspace(-reach, reach, n_slabs + 1, dtype=torch.float64)


def volume_columns(volume: np.ndarray, device: torch.device) -> torch.Tensor:
    """The volume as a ``((Z + 2) (X + 2), Y)`` matrix: zero-padded XZ slices, one column per Y.

    Every ray sample then reads a contiguous row of ``Y`` values (one per XZ slice), the
    layout that makes gathering fast; it is built once and serves every tilt.
    """
    n_z, n_y, n_x = volume.shape
    columns = torch.zeros((n_z + 2, n_x + 2, n_y), dtype=torch.float32, device=device)
    for start in range(0, n_z, 16):
        stop = min(start + 16, n_z)
        block = torch.from_numpy(np.array(volume[start:stop], dtype=np.float32))
        columns[1 + start : 1 + stop, 1:-1] = block.to(device).permute(0, 2, 1)
    return columns.reshape(-1, n_y)


def slab_projections(
    columns: torch.Tensor,
    shape: tuple[int, int, int],
    theta_deg: float,
    n_det: int,
    n_slabs: int,
    budget_bytes: int,
) -> tuple[torch.Tensor, np.ndarray]:
    """Line integrals of a volume through each of ``n_slabs`` beam-perpendicular slabs.

    Parameters
    ----------
    columns : torch.Tensor, shape ((Z + 2) * (X + 2), Y)
        The volume as :func:`volume_columns` lays it out (any unit).
    shape : (Z, Y, X)
        Shape of the volume.
    theta_deg : float
        Tilt angle in degrees.
    n_det : int
        Detector width (pixels); the central ``n_det`` rays, as in the projector.
    n_slabs : int
        Number of slabs.
    budget_bytes : int
        Working memory for one chunk of Y rows.

    Returns
    -------
    slabs : torch.Tensor, shape (n_slabs, Y, n_det), float32, on the device of ``columns``
        Integrals in (value x voxel length); they sum to the projector's line integral.
    centres : np.ndarray, shape (n_slabs,)
        Depth of each slab's centre along the beam (voxels, downstream positive).
    """
    n_z, n_y, n_x = shape
    device = columns.device
    samples = ray_samples(theta_deg, n_z, n_x, n_det, device)
    bounds = slab_boundaries(samples, n_slabs)
    # Samples of ray u before boundary b_j: searchsorted along each ray's (sorted) depths.
    cuts = torch.searchsorted(
        samples.depth.T.contiguous(), bounds.to(device).expand(n_det, -1).contiguous()
    ).T  # (n_slabs + 1, n_det)
    n_samples = samples.depth.shape[0]
    rows = chunk_size(4 * 4 * (n_samples + 1) * n_det, n_y, budget_bytes)
    index0, index1 = samples.index0.reshape(-1), samples.index1.reshape(-1)
    weight0, weight1 = samples.weight0[..., None], samples.weight1[..., None]
    slabs = torch.empty((n_slabs, n_y, n_det), dtype=torch.float32, device=device)
    for start in range(0, n_y, rows):
        block = columns[:, start : start + rows]
        shape_kwy = (n_samples, n_det, block.shape[1])
        values = block.index_select(0, index0).reshape(shape_kwy).mul_(weight0)
        values.addcmul_(block.index_select(0, index1).reshape(shape_kwy), weight1)
        prefix = values.new_empty((n_samples + 1, *shape_kwy[1:]))
        prefix[0] = 0
        torch.cumsum(values, dim=0, out=prefix[1:])
        at_cuts = torch.gather(prefix, 0, cuts[..., None].expand(-1, -1, block.shape[1]))
        slabs[:, start : start + rows] = (at_cuts[1:] - at_cuts[:-1]).permute(0, 2, 1)
    centres = (0.5 * (bounds[1:] + bounds[:-1])).numpy()
    return slabs, centres

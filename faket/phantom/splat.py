"""Voxel-averaged rendering of sums of 3-D Gaussians (atoms and pseudo-atoms).

Every Gaussian is integrated exactly over each voxel (a product of 1-D ``erf``
differences), so the grid holds the *mean* potential of each voxel and its sum times the
voxel volume is the exact integral, whatever the ratio of atom width to voxel size. At
10 Å voxels an atom is far smaller than a voxel, which point sampling would alias badly.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from faket.device import chunk_size, deterministic_algorithms, memory_budget, select_device


def splat_gaussians(
    centres: np.ndarray,
    amplitudes: np.ndarray,
    sigmas: np.ndarray,
    shape: tuple[int, int, int],
    *,
    device: str | torch.device = "cpu",
    budget_bytes: int | None = None,
) -> np.ndarray:
    """Render a sum of isotropic Gaussians, averaged over every voxel.

    Parameters
    ----------
    centres
        ``(n, 3)`` Gaussian centres as ``(z, y, x)`` in voxel units; voxel ``i`` spans
        ``[i - 0.5, i + 0.5)``.
    amplitudes
        ``(n, t)`` integral of each of the ``t`` Gaussian terms of every centre, in
        value·voxel³ (e.g. V·voxel³ gives a grid in V).
    sigmas
        ``(n, t)`` standard deviation of each term in voxels (> 0).
    shape
        Output grid shape ``(Z, Y, X)``; Gaussians reaching past the edge are cut.
    device
        Torch device for the computation.
    budget_bytes
        Memory per chunk of centres; default from :func:`faket.device.memory_budget`.

    Returns
    -------
    np.ndarray
        ``shape`` float32 grid of voxel means.
    """
    dev = select_device(device)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    amplitudes = np.asarray(amplitudes, dtype=np.float64).reshape(len(centres), -1)
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(amplitudes.shape)
    grid = torch.zeros(int(np.prod(shape)), dtype=_float(dev), device=dev)
    if len(centres) == 0:
        return grid.reshape(shape).float().cpu().numpy()
    # Four standard deviations hold all but 6e-5 of a Gaussian's mass per axis.
    reach = max(4.0 * float(sigmas.max()), 0.5)
    width = int(math.ceil(2 * reach)) + 2
    per_item = width**3 * 8 * 3 + amplitudes.shape[1] * width * 3 * 8 * 4
    step = chunk_size(per_item, len(centres), memory_budget(dev, budget_bytes))
    # On CUDA index_add_ sums overlapping windows with atomics, in a varying order;
    # deterministic mode makes a seed give the same bits every run.
    with deterministic_algorithms(dev):
        for start in range(0, len(centres), step):
            part = slice(start, start + step)
            _splat_chunk(
                grid, shape, dev, centres[part], amplitudes[part], sigmas[part], reach, width
            )
    return grid.reshape(shape).float().cpu().numpy()


def _float(dev: torch.device) -> torch.dtype:
    # Accumulate in float64 where the device has it (MPS does not).
    return torch.float32 if dev.type == "mps" else torch.float64


def _splat_chunk(grid, shape, dev, centres, amplitudes, sigmas, reach, width) -> None:
    c, amp, sig = (
        torch.as_tensor(a, dtype=grid.dtype, device=dev) for a in (centres, amplitudes, sigmas)
    )
    first = torch.floor(c - reach + 0.5).long()  # (n, 3) first voxel of each window
    steps = torch.arange(width, device=dev)
    index = first[:, :, None] + steps  # (n, 3, w) voxel index along each axis
    lower = (index - 0.5 - c[:, :, None])[:, None]  # (n, 1, 3, w)
    scale = 1.0 / (math.sqrt(2.0) * sig)[:, :, None, None]  # (n, t, 1, 1)
    weights = 0.5 * (torch.erf((lower + 1.0) * scale) - torch.erf(lower * scale))  # (n,t,3,w)
    sizes = torch.as_tensor(shape, device=dev)
    inside = (index >= 0) & (index < sizes[None, :, None])
    weights = weights * inside[:, None]
    values = torch.einsum("nt,nti,ntj,ntk->nijk", amp, *weights.unbind(2))
    clipped = [index[:, a].clamp(0, shape[a] - 1) for a in range(3)]
    flat = (
        clipped[0][:, :, None, None] * (shape[1] * shape[2])
        + clipped[1][:, None, :, None] * shape[2]
        + clipped[2][:, None, None, :]
    )
    grid.index_add_(0, flat.reshape(-1), values.reshape(-1))

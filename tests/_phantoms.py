"""Small analytic phantoms shared by the tomography tests."""

from __future__ import annotations

import numpy as np


def ellipse_slice(n_z: int, n_x: int, semi_x: float, semi_z: float, supersample: int = 8):
    """Area fraction of every pixel inside the ellipse ``x²/a² + z²/c² <= 1``.

    Centred on the projector's rotation centre (``n // 2``); anti-aliased by
    averaging ``supersample²`` sub-pixel samples, so line integrals through
    it approach the analytic chord lengths.
    """
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    z = (np.arange(n_z) - n_z // 2)[:, None] + offsets[None, :]
    x = (np.arange(n_x) - n_x // 2)[:, None] + offsets[None, :]
    inside = (
        x.reshape(1, 1, n_x, supersample) ** 2 / semi_x**2
        + z.reshape(n_z, supersample, 1, 1) ** 2 / semi_z**2
    ) <= 1.0
    return inside.mean(axis=(1, 3)).astype(np.float32)


def gaussian_volume(shape, centre, sigma: float) -> np.ndarray:
    """A 3-D Gaussian blob (peak 1) at voxel coordinates ``centre`` (z, y, x)."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
    return np.exp(-r2 / (2 * sigma**2)).astype(np.float32)


def ellipsoids_volume(n: int) -> np.ndarray:
    """A few overlapping solid ellipsoids of different densities in an ``n³`` cube."""
    z, y, x = np.meshgrid(*[np.arange(n) - n / 2 for _ in range(3)], indexing="ij")
    volume = np.zeros((n, n, n), dtype=np.float32)
    for (cz, cy, cx), (az, ay, ax), value in [
        ((0, 0, 0), (0.35, 0.4, 0.3), 1.0),
        ((0.1, -0.1, 0.12), (0.1, 0.15, 0.08), 0.8),
        ((-0.12, 0.1, -0.1), (0.08, 0.1, 0.12), -0.5),
    ]:
        r2 = ((z - cz * n) / (az * n)) ** 2 + ((y - cy * n) / (ay * n)) ** 2
        volume[r2 + ((x - cx * n) / (ax * n)) ** 2 <= 1] += value
    return volume

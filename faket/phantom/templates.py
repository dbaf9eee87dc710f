"""The particle template shared by every route (atomic model, density map, built-in).

A template is a cubic, odd-sized potential box (V, voxel means) whose centre voxel
``n // 2`` is the particle's centre, plus the particle's mask: the voxels that belong to
it in ``class_mask`` / ``occupancy_mask`` and that no other object may touch. The mask
holds all of the (non-negligible) potential, is closed and hole-filled (a ring's channel
and a cage's lumen belong to the particle), always contains the centre voxel, and lies
inside the box's inscribed sphere so that any rotation about the centre keeps it whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: Potential below this fraction of the template maximum is dropped (outside the mask).
SUPPORT_FRACTION = 1e-3


@dataclass(frozen=True)
class Template:
    """One particle class ready to be placed.

    Attributes
    ----------
    name
        Class name (one word).
    source
        Where it came from: ``builtin``, a file path (with its sha256) or ``PDB:XXXX``.
    potential
        ``(n, n, n)`` float32 potential in V (voxel means), zero outside ``mask``; ``n`` odd.
    mask
        ``(n, n, n)`` bool particle mask.
    voxel_size
        Voxel size in Å.
    kind
        ``particle`` (placed from templates); vesicles and fiducials are drawn directly.
    info
        Extra provenance (atom count, B-factor policy, scale factor, ...).
    """

    name: str
    source: str
    potential: np.ndarray
    mask: np.ndarray
    voxel_size: float
    kind: str = "particle"
    info: dict = field(default_factory=dict)

    @property
    def diameter_nm(self) -> float:
        """Diameter in nm: 2 x the largest distance from the centre of a voxel above 20% of
        the peak potential, plus one voxel."""
        centre = self.mask.shape[0] // 2
        offsets = np.argwhere(self.potential >= 0.2 * self.potential.max()) - centre
        radius = float(np.sqrt((offsets**2).sum(axis=1)).max()) if len(offsets) else 0.0
        return (2 * radius + 1) * self.voxel_size / 10.0

    @property
    def integral(self) -> float:
        """Integral of the potential in V·Å³."""
        return float(self.potential.sum(dtype=np.float64)) * self.voxel_size**3


def particle_mask(potential: np.ndarray, fraction: float = SUPPORT_FRACTION) -> np.ndarray:
    """Closed, hole-filled support of a centred potential.

    Parameters
    ----------
    potential
        ``(n, n, n)`` potential with the particle centre at voxel ``n // 2``.
    fraction
        Voxels above ``fraction * max`` form the support.

    Returns
    -------
    np.ndarray
        ``(n, n, n)`` bool mask (support, closed by one voxel, 3-D hole-filled, 2-D
        hole-filled along every axis so open channels are included, plus the centre).
    """
    peak = float(potential.max())
    support = potential > fraction * peak if peak > 0 else np.zeros(potential.shape, bool)
    ball = ndimage.generate_binary_structure(3, 1)
    closed = ndimage.binary_closing(np.pad(support, 2), structure=ball)[2:-2, 2:-2, 2:-2]
    mask = ndimage.binary_fill_holes(closed | support)
    # A ring's channel is not a 3-D hole (it is open at both ends) but it is one in
    # the slices across the ring's axis; filling those puts the centre inside the mask.
    for axis in range(3):
        moved = np.moveaxis(mask, axis, 0)
        filled = np.stack([ndimage.binary_fill_holes(plane) for plane in moved])
        mask = mask | np.moveaxis(filled, 0, axis)
    centre = potential.shape[0] // 2
    mask[centre, centre, centre] = True
    return mask


def finish_template(
    name: str,
    source: str,
    potential: np.ndarray,
    voxel_size: float,
    info: dict | None = None,
) -> Template:
    """Mask a centred potential, cut it to its mask and trim the box to the mask's sphere.

    Parameters
    ----------
    name, source
        Class name and provenance.
    potential
        ``(n, n, n)`` potential (V) with the particle centre at voxel ``n // 2``, ``n`` odd.
    voxel_size
        Voxel size in Å.
    info
        Extra provenance.

    Returns
    -------
    Template
        The template in the smallest odd box whose inscribed sphere holds the mask.
    """
    potential = np.asarray(potential, dtype=np.float32)
    mask = particle_mask(potential)
    n = potential.shape[0]
    centre = n // 2
    offsets = np.argwhere(mask) - centre
    radius = float(np.sqrt((offsets**2).sum(axis=1)).max())
    # +2: one voxel for the trilinear footprint of a rotated mask, one to spare.
    half = int(np.ceil(radius)) + 2
    pad = max(half - centre, 0)
    if pad:
        potential = np.pad(potential, pad)
        mask = np.pad(mask, pad)
        centre += pad
    box = slice(centre - half, centre + half + 1)
    potential = np.where(mask, potential, 0.0).astype(np.float32)[box, box, box]
    return Template(
        name=name,
        source=source,
        potential=np.ascontiguousarray(potential),
        mask=np.ascontiguousarray(mask[box, box, box]),
        voxel_size=float(voxel_size),
        info=dict(info or {}),
    )

"""Objects drawn directly rather than from templates: vesicles and gold fiducials.

Each object is returned as a sparse stamp: integer voxel offsets ``(k, 3)`` ``(dz, dy, dx)``
from its centre voxel and the potential ``(k,)`` at those voxels. The stamp is also the
object's mask, so its potential never leaks outside the voxels it occupies.

A vesicle is an ellipsoidal lipid bilayer: two dense head-group layers (Gaussian
profiles) around a less dense hydrocarbon core, averaged over a voxel's width across the
membrane. Lipid densities are approximate (core ~0.65, head groups up to ~1.2 times the
protein potential).

Its stamp, and so its ground truth in the class and occupancy masks, is the membrane
shell only: the voxels where its potential exceeds :data:`SHELL_LEVEL` (1 mV). That is
what the SHREC 2021 ground truth does (its generator, PyTom's ``MicrographModeller``,
labels a membrane where its potential is above 0.001 V), so the lumen is background, free
for other particles, and the vesicle's listed centre voxel is not part of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from faket.phantom.physics import gold_potential, protein_potential

#: Hydrocarbon core and head-group peak potentials relative to protein.
_CORE, _HEAD = 0.65, 0.55
#: Head-group Gaussian width (nm) and how far the potential reaches beyond the bilayer (nm).
_HEAD_SIGMA_NM, MARGIN_NM = 0.4, 1.0
#: A membrane voxel belongs to the vesicle when its potential exceeds this (V), as in
#: the SHREC 2021 generator.
SHELL_LEVEL = 1e-3


@dataclass(frozen=True)
class Stamp:
    """A drawn object: voxel offsets from its centre, its potential there, its rotation.

    Attributes
    ----------
    offsets
        ``(k, 3)`` int ``(dz, dy, dx)``.
    values
        ``(k,)`` float32 potential in V.
    rotation
        ``(3, 3)`` rotation matrix of the object (identity for spheres).
    """

    offsets: np.ndarray
    values: np.ndarray
    rotation: np.ndarray


def _cube(half: int) -> np.ndarray:
    axis = np.arange(-half, half + 1)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def bilayer_profile(distance_nm: np.ndarray, thickness_nm: float, width_nm: float) -> np.ndarray:
    """Potential (V) across a bilayer, averaged over a window ``width_nm`` wide.

    Parameters
    ----------
    distance_nm
        Signed distance from the membrane mid-plane (nm), any shape.
    thickness_nm
        Bilayer thickness (head group to head group, outer edges), nm.
    width_nm
        Averaging window (the voxel size), nm.

    Returns
    -------
    np.ndarray
        Potential in V, same shape.
    """
    s = np.asarray(distance_nm, dtype=np.float64)
    lo, hi = s - width_nm / 2, s + width_nm / 2
    head = thickness_nm / 2 - _HEAD_SIGMA_NM  # head-group centres at +-head
    core = head - _HEAD_SIGMA_NM
    overlap = np.clip(np.minimum(hi, core) - np.maximum(lo, -core), 0, None)
    value = _CORE * overlap / width_nm
    scale = _HEAD_SIGMA_NM * np.sqrt(2.0)
    for centre in (-head, head):
        # Mean of a Gaussian of peak 1 over [lo, hi].
        area = 0.5 * (erf((hi - centre) / scale) - erf((lo - centre) / scale))
        value = value + _HEAD * area * _HEAD_SIGMA_NM * np.sqrt(2 * np.pi) / width_nm
    return value * protein_potential()


def vesicle(
    radii_nm: np.ndarray, rotation: np.ndarray, thickness_nm: float, voxel_size: float
) -> Stamp:
    """Stamp of an ellipsoidal vesicle.

    Parameters
    ----------
    radii_nm
        ``(3,)`` semi-axes (nm) of the membrane mid-surface along the rotated x, y, z axes.
    rotation
        ``(3, 3)`` rotation matrix (acts on ``(x, y, z)``).
    thickness_nm
        Bilayer thickness (nm).
    voxel_size
        Voxel size in Å.

    Returns
    -------
    Stamp
        The membrane shell: voxels whose potential exceeds :data:`SHELL_LEVEL`.
    """
    vox_nm = voxel_size / 10.0
    reach = thickness_nm / 2 + MARGIN_NM
    half = int(np.ceil((max(radii_nm) + reach) / vox_nm))
    offsets = _cube(half)
    d = offsets[:, ::-1] * vox_nm  # (x, y, z) nm
    local = d @ rotation  # rows: R^T d
    rho = np.sqrt(((local / np.asarray(radii_nm)) ** 2).sum(axis=1))
    length = np.sqrt((d**2).sum(axis=1))
    # Distance from the mid-surface along the ray from the centre (exact for a sphere).
    with np.errstate(divide="ignore", invalid="ignore"):
        signed = np.where(rho > 0, length * (1 - 1 / rho), -min(radii_nm))
    near = np.abs(signed) <= reach
    values = np.zeros(len(offsets))
    values[near] = bilayer_profile(signed[near], thickness_nm, vox_nm)
    keep = values > SHELL_LEVEL
    return Stamp(offsets[keep], values[keep].astype(np.float32), np.asarray(rotation, float))


def gold_bead(diameter_nm: float, voxel_size: float, supersample: int = 5) -> Stamp:
    """Stamp of a gold sphere centred on a voxel, with partial-volume edges.

    Parameters
    ----------
    diameter_nm
        Bead diameter (nm).
    voxel_size
        Voxel size in Å.
    supersample
        Sub-samples per voxel and axis for the partial volume.

    Returns
    -------
    Stamp
        Voxels the bead touches and their potential (V).
    """
    radius = diameter_nm * 10.0 / voxel_size / 2  # voxels
    half = int(np.ceil(radius + 0.5))
    offsets = _cube(half)
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    grid = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3)
    inside = np.zeros(len(offsets))
    for point in grid:  # supersample³ passes over a small cube
        inside += ((offsets + point) ** 2).sum(axis=1) <= radius**2
    fraction = inside / len(grid)
    keep = fraction > 0
    values = (fraction[keep] * gold_potential()).astype(np.float32)
    return Stamp(offsets[keep], values, np.eye(3))

"""Particle templates from density maps (MRC, EM), on the same potential scale as atomic models.

A density map has arbitrary units, so it is rescaled to a potential: its background (the
median of the box's outer shell) is removed, negative values and specks away from the
particle are cut, and the map is scaled so that its integral equals the mean potential of
protein (:func:`faket.phantom.physics.protein_potential`, about 7.9 V) times the volume
inside the 45%-of-maximum contour, or times the volume of ``mass_kda`` of protein when
the mass is given. That contour of a blurred object sits close to its true edge: maps
computed from the twelve atomic models in the project's test data at 4 Å and rescaled
this way at 10 Å have 0.96-1.06 times the atomic route's integral; the SHREC 2021 maps
(EMAN2, 30 Å resolution) 0.89-1.27 times (mean 1.15).

Maps are read with :func:`faket.io.read_mrc` (MRC, old-style MRC with a warning, TOM/PyTom
``.em``) and checked before use: a map whose strongest features are negative
(contrast-inverted, as template-matching references often are) is refused unless
``invert`` says what to do, and a particle that is implausibly small or does not fit the
stated mass at the map's voxel size gets a warning (the header's voxel size is often
wrong in such files, e.g. 1 Å for a 21 Å template).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from faket.errors import FaketError
from faket.io import read_mrc
from faket.phantom import cache
from faket.phantom.physics import AVERAGINE_MASS_DA, protein_potential, residue_volume
from faket.phantom.templates import Template, finish_template
from faket.phantom.templates_atomic import class_name_from_path

MAP_SUFFIXES = (".mrc", ".map", ".mrcs", ".rec", ".ccp4", ".em")
#: Voxels above this fraction of the maximum (and their neighbours) make the particle.
_SUPPORT_FRACTION = 0.02
#: Contour (fraction of the maximum) whose enclosed volume sets the scale.
_CONTOUR_FRACTION = 0.45
#: Negative mass (beyond 10% of the largest deviation) this many times the positive
#: mass marks an inverted map; normal maps measured 0, inverted templates 3.2.
_INVERTED_RATIO = 1.5
#: Below this the particle would be invisible in cryo-ET: the voxel size is likely wrong.
MIN_PLAUSIBLE_KDA = 10.0
#: Stated and contour-estimated masses further apart than this factor get a warning.
_MASS_FACTOR = 3.0


def resample_map(density: np.ndarray, source_voxel: float, target_voxel: float) -> np.ndarray:
    """Resample a map to ``target_voxel``, centred on its centre of mass.

    Parameters
    ----------
    density
        ``(Z, Y, X)`` non-negative density.
    source_voxel, target_voxel
        Voxel sizes in Å.

    Returns
    -------
    np.ndarray
        ``(n, n, n)`` float32 resampled density, ``n`` odd, centre of mass at ``n // 2``;
        voxel values are interpolated (a density, so the integral scales with voxel volume).
    """
    factor = target_voxel / source_voxel
    if factor > 1:
        # Matches the variance of a target voxel's box average; avoids aliasing.
        density = ndimage.gaussian_filter(density, np.sqrt((factor**2 - 1) / 12.0))
    com = np.array(ndimage.center_of_mass(density))
    occupied = np.argwhere(density > 0)
    reach = np.sqrt(((occupied - com) ** 2).sum(axis=1)).max() / factor
    half = int(np.ceil(reach)) + 2
    offsets = (np.arange(2 * half + 1) - half) * factor
    coords = np.meshgrid(*[com[a] + offsets for a in range(3)], indexing="ij")
    out = ndimage.map_coordinates(density, coords, order=1, mode="constant", cval=0.0)
    return np.clip(out, 0, None).astype(np.float32)


def _clean_density(data: np.ndarray, path: Path) -> np.ndarray:
    density = np.asarray(data, dtype=np.float64)
    if density.ndim != 3 or min(density.shape) < 3:
        raise FaketError(f"{path}: a density map must be 3-D with at least 3 voxels per side")
    shell = np.concatenate([np.moveaxis(density, a, 0)[[0, -1]].ravel() for a in range(3)])
    density = np.clip(density - np.median(shell), 0, None)
    peak = density.max()
    if not peak > 0:
        raise FaketError(f"{path}: the map has no density above its background; check the file")
    # Keep connected blobs that carry real mass; noise specks would bloat the mask.
    labels, count = ndimage.label(density > _SUPPORT_FRACTION * peak)
    mass = ndimage.sum(density, labels, index=np.arange(1, count + 1))
    keep = np.isin(labels, 1 + np.flatnonzero(mass >= 0.01 * mass.max()))
    return density * ndimage.binary_dilation(keep)


def contrast_inverted(data: np.ndarray) -> bool:
    """Whether a map's strongest features are below its background (protein negative).

    The background is the median of the box's outer shell; the map is inverted when the
    mass of values more than 10% of the largest deviation below it exceeds 1.5 times the
    mass above it.
    """
    density = np.asarray(data, dtype=np.float64)
    shell = np.concatenate([np.moveaxis(density, a, 0)[[0, -1]].ravel() for a in range(3)])
    deviation = density - np.median(shell)
    level = 0.1 * np.abs(deviation).max()
    above = deviation[deviation > level].sum()
    below = -deviation[deviation < -level].sum()
    return bool(below > _INVERTED_RATIO * max(above, 0.0)) and below > 0


def estimated_mass_kda(density: np.ndarray, voxel_size: float) -> float:
    """Protein mass (kDa) of the volume inside a cleaned map's 45%-of-maximum contour."""
    volume = float((density > _CONTOUR_FRACTION * density.max()).sum()) * voxel_size**3
    return volume / residue_volume() * AVERAGINE_MASS_DA / 1000.0


def _check_plausible(file: Path, density: np.ndarray, voxel: float, mass_kda) -> None:
    estimate = estimated_mass_kda(density, voxel)
    fix = "is the voxel size right? pass --map-voxel-size (map_voxel_size in a config)"
    if mass_kda is not None and not 1 / _MASS_FACTOR <= estimate / mass_kda <= _MASS_FACTOR:
        warnings.warn(
            f"{file}: at {voxel:g} Å/voxel the map's particle has the volume of "
            f"{estimate:.3g} kDa of protein, not the stated {mass_kda:g} kDa; {fix}",
            RuntimeWarning,
            stacklevel=3,
        )
    elif mass_kda is None and estimate < MIN_PLAUSIBLE_KDA:
        side = density.shape[0] * voxel / 10.0
        warnings.warn(
            f"{file}: at {voxel:g} Å/voxel the map's particle has the volume of only "
            f"{estimate:.3g} kDa of protein (a {side:.3g} nm box), too small to see in "
            f"cryo-ET; {fix}",
            RuntimeWarning,
            stacklevel=3,
        )


def map_potential(
    density: np.ndarray,
    source_voxel: float,
    target_voxel: float,
    *,
    mass_kda: float | None = None,
) -> tuple[np.ndarray, float]:
    """Centred, resampled and rescaled potential (V) of a cleaned density map.

    Parameters
    ----------
    density
        ``(Z, Y, X)`` non-negative density, zero away from the particle.
    source_voxel, target_voxel
        Voxel sizes in Å.
    mass_kda
        Particle mass in kDa; None estimates the volume from the half-maximum contour.

    Returns
    -------
    potential
        ``(n, n, n)`` float32 potential in V, ``n`` odd, centre of mass at ``n // 2``.
    volume
        Particle volume in Å³ used for the scale.
    """
    resampled = resample_map(density, source_voxel, target_voxel)
    if mass_kda is not None:
        volume = mass_kda * 1000.0 * residue_volume() / AVERAGINE_MASS_DA
    else:
        volume = float((resampled > _CONTOUR_FRACTION * resampled.max()).sum()) * target_voxel**3
    integral = protein_potential() * volume  # V·Å³
    scale = integral / (resampled.sum(dtype=np.float64) * target_voxel**3)
    return (resampled * scale).astype(np.float32), volume


def template_from_map(
    path: str | os.PathLike[str],
    voxel_size: float,
    *,
    name: str | None = None,
    map_voxel_size: float | None = None,
    mass_kda: float | None = None,
    invert: bool | None = None,
    cache_dir: Path | None = None,
) -> Template:
    """Particle template from an MRC density map, cached by file hash and settings.

    Parameters
    ----------
    path
        The map (``.mrc``, ``.map``, ``.mrcs``, ``.rec``, ``.ccp4``, ``.em``).
    voxel_size
        Target voxel size in Å (> 0).
    name
        Class name; default the file name without suffixes, lower case.
    map_voxel_size
        The map's voxel size in Å when its header is wrong or unset.
    mass_kda
        Particle mass in kDa, for an exact scale.
    invert
        True: the map is contrast-inverted (protein negative), flip it. False: use it as
        it is. None: detect an inverted map and refuse it, asking for one of the two.
    cache_dir
        Cache root; None disables caching.

    Returns
    -------
    Template
        The masked, centred template.
    """
    if not voxel_size > 0:
        raise FaketError(f"voxel size must be > 0 Å, got {voxel_size}")
    file = Path(path)
    data = read_mrc(file, ndim=3)
    source_voxel = map_voxel_size or data.voxel_size
    if not source_voxel > 0:
        raise FaketError(
            f"{file}: no voxel size in the map's header; pass --map-voxel-size (or "
            "map_voxel_size in the class spec)"
        )
    values = -np.asarray(data.data, dtype=np.float32) if invert else data.data
    if invert is None and contrast_inverted(values):
        raise FaketError(
            f"{file}: the map looks contrast-inverted (its strongest values are below the "
            "background, as in many template-matching maps); pass --invert (invert: true "
            "in the class spec) to flip it, or --no-invert to use it as it is"
        )
    density = _clean_density(values, file)
    _check_plausible(file, density, source_voxel, mass_kda)
    digest = cache.file_digest(file)
    name = name or class_name_from_path(file)
    source = f"{file} (sha256 {digest[:12]})"
    settings = dict(kind="map", voxel=round(float(voxel_size), 6), src=source_voxel, m=mass_kda) | (
        {"inv": True} if invert else {}
    )
    key = cache.template_key(digest, **settings)
    cached = cache.load_template(cache_dir, key, name, source)
    if cached is not None:
        return cached
    potential, volume = map_potential(density, source_voxel, voxel_size, mass_kda=mass_kda)
    info = {"particle_volume_A3": round(volume, 1), **settings}
    template = finish_template(name, source, potential, voxel_size, info)
    cache.store_template(cache_dir, key, template)
    return template

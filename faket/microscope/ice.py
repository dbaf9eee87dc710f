"""The specimen as the beam sees it: potential relative to vitreous ice, plus a support film.

The specimen (a grand model, potential in V with vacuum = 0) is embedded in a slab of
vitreous ice. Water is displaced where there is matter: a voxel whose potential reaches
``displacement_potential_volts`` (packed protein) holds no water, one with half of it holds
half the water. What the beam's *phase* sees is therefore

    ``V_specimen - V_ice * f + dV_ice * (1 - f)``,  ``f = clip(V_specimen / V_protein, 0, 1)``

relative to the mean ice potential ``V_ice``; the uniform ice phase itself is a constant
that changes no image and is dropped. ``dV_ice`` are white (or Gaussian-correlated) density
fluctuations of the water whose strength follows its compressibility: per voxel holding
``N`` molecules, ``var = V_ice² S(0) / N``. The slab is laterally infinite: it is padded
wide enough that every ray reaching the detector crosses the full thickness even at the
highest tilt. The support film, a carbon layer at the top of the ice covering
``x > edge``, is handled analytically (its projection is a path length per detector column),
optionally with a random thickness texture.

Radiation damage fades the specimen's detail but not the ice's density fluctuations
(amorphous water stays amorphous), so the volume can be built in two parts, ``specimen``
(``V_specimen - V_ice f``) and ``ice`` (``dV_ice (1 - f)``), that sum to ``all``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from faket.errors import FaketError
from faket.microscope.config import FilmConfig, IceConfig, MicroscopeConfig
from faket.microscope.physics import WATER_MOLECULES_PER_A3


@dataclass(frozen=True)
class SlabGeometry:
    """Where the specimen, the ice and the padding sit in the padded volume (voxels).

    Attributes
    ----------
    shape
        ``(Z, Y, X)`` of the input volume.
    n_z
        Z extent of the padded volume (the larger of the volume and the ice).
    ice_voxels
        Ice thickness in voxels (0 = no ice).
    pad_y, pad_x
        Image padding on each side (shifts, CTF delocalisation, tilt-axis rotation).
    margin
        Extra X padding on each side of the volume so tilted rays stay inside the ice.
    """

    shape: tuple[int, int, int]
    n_z: int
    ice_voxels: int
    pad_y: int
    pad_x: int
    margin: int

    @property
    def image_shape(self) -> tuple[int, int]:
        """Padded detector image ``(Y + 2 pad_y, X + 2 pad_x)``."""
        return self.shape[1] + 2 * self.pad_y, self.shape[2] + 2 * self.pad_x

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """Padded volume ``(n_z, Y + 2 pad_y, X + 2 pad_x + 2 margin)``."""
        n_y, n_x = self.image_shape
        return self.n_z, n_y, n_x + 2 * self.margin

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """The detector pixels of the input's (Y, X) from a padded image (last two axes)."""
        _, n_y, n_x = self.shape
        return image[..., self.pad_y : self.pad_y + n_y, self.pad_x : self.pad_x + n_x]


def fluctuation_std(ice: IceConfig, voxel_size: float) -> float:
    """Per-voxel standard deviation (V) of the ice potential fluctuations."""
    if not ice.enabled:
        return 0.0
    if ice.fluctuation_std_volts is not None:
        return float(ice.fluctuation_std_volts)
    molecules = WATER_MOLECULES_PER_A3 * voxel_size**3
    return ice.potential_volts * math.sqrt(ice.structure_factor / molecules)


def fluctuation_field(
    out: torch.Tensor, voxel_size: float, ice: IceConfig, seed: int
) -> torch.Tensor:
    """Fill ``out`` with seeded Gaussian fluctuations (V) of the ice potential, in place.

    Parameters
    ----------
    out
        ``(Z, Y, X)`` float32 CPU tensor (e.g. the ice planes of the padded volume).
    voxel_size
        Å per voxel.
    ice
        Ice settings (``correlation_length_angstrom`` smooths the white field with a Gaussian
        and rescales it so the per-voxel standard deviation stays as configured).
    seed
        Random seed.

    Returns
    -------
    torch.Tensor
        ``out``.
    """
    out.normal_(generator=torch.Generator().manual_seed(seed))
    sigma = ice.correlation_length_angstrom / voxel_size
    if sigma > 0:
        shape = out.shape
        fz = torch.fft.fftfreq(shape[0])[:, None, None]
        fy = torch.fft.fftfreq(shape[1])[None, :, None]
        fx = torch.fft.rfftfreq(shape[2])[None, None, :]
        gaussian = torch.exp(-2 * math.pi**2 * sigma**2 * (fz**2 + fy**2 + fx**2))
        out.copy_(torch.fft.irfftn(torch.fft.rfftn(out) * gaussian, s=shape))
        out /= out.std().clamp(min=1e-12)
    return out.mul_(fluctuation_std(ice, voxel_size))


#: Which terms of the volume to build: everything, the specimen's, or the ice fluctuations'.
VolumePart = Literal["all", "specimen", "ice"]


def contrast_block(
    potential: np.ndarray,
    fluctuations: torch.Tensor | None,
    in_ice: np.ndarray,
    config: MicroscopeConfig,
    part: VolumePart = "all",
) -> torch.Tensor:
    """Potential relative to the ice (V) for a block of Z planes of the input volume.

    Parameters
    ----------
    potential
        ``(z, Y, X)`` input values (converted with ``specimen.potential_scale``).
    fluctuations
        ``(z, Y, X)`` ice fluctuations (V) at the same voxels, or None.
    in_ice
        ``(z,)`` booleans: which Z planes lie inside the ice slab.
    config
        Microscope settings.
    part
        ``all``, ``specimen`` (without the fluctuations) or ``ice`` (the fluctuations where
        water remains).

    Returns
    -------
    torch.Tensor, shape (z, Y, X), float32
    """
    volts = torch.from_numpy(np.array(potential, dtype=np.float32))  # a writable copy
    if not torch.isfinite(volts).all():
        raise FaketError("the potential contains NaN or Inf values; clean the volume first")
    volts = volts * config.specimen.potential_scale
    if not config.ice.enabled:
        return volts if part != "ice" else torch.zeros_like(volts)
    displaced = torch.clamp(volts / config.specimen.displacement_potential_volts, 0, 1)
    # Outside the ice slab there is no water to displace: only the specimen remains.
    displaced *= torch.from_numpy(in_ice.astype(np.float32))[:, None, None]
    water = fluctuations * (1 - displaced) if fluctuations is not None else None
    if part == "ice":
        return water if water is not None else torch.zeros_like(volts)
    contrast = volts - config.ice.potential_volts * displaced
    if water is not None and part == "all":
        contrast += water
    return contrast


def build_volume(
    potential: np.ndarray,
    voxel_size: float,
    config: MicroscopeConfig,
    geometry: SlabGeometry,
    seed: int,
    part: VolumePart = "all",
    compact: bool = False,
) -> np.ndarray:
    """The padded volume the beam sees: specimen and ice fluctuations relative to the ice.

    Parameters
    ----------
    potential
        ``(Z, Y, X)`` input volume (may be memory-mapped; read 16 planes at a time).
    voxel_size
        Å per voxel.
    config
        Microscope settings.
    geometry
        Padding and ice placement (:func:`faket.microscope.simulate.plan_geometry`).
    seed
        Seed of the ice fluctuations (the same seed gives the same water in every part).
    part
        ``all``, ``specimen`` or ``ice`` (see :func:`contrast_block`).
    compact
        For ``specimen`` only: leave out the ice's Z planes and the X margin, which hold
        nothing of the specimen. The volume is then ``(Z or Z + 1, *image_shape)``, placed
        so that Joseph's projector (centred coordinates) gives the same line integrals.

    Returns
    -------
    np.ndarray, shape ``geometry.volume_shape`` (see ``compact``), float32
        Potential relative to the mean ice (V).
    """
    n_z, n_y, n_x = geometry.volume_shape
    depth, height, width = geometry.shape
    ice_start = (n_z - geometry.ice_voxels) // 2
    ice_stop = ice_start + geometry.ice_voxels
    z_offset = (n_z - depth) // 2
    if compact and part != "specimen":
        raise ValueError("only the specimen part can be built compact")
    # Where plane 0 of the specimen goes, and the shape that holds it.
    z_at, margin = z_offset, geometry.margin
    if compact:
        centre = z_offset - n_z // 2  # centred coordinate of plane 0
        n_z = depth if (centre + depth // 2) == 0 else depth + 1
        z_at, margin, n_x = centre + n_z // 2, 0, n_x - 2 * geometry.margin
    volume = torch.zeros((n_z, n_y, n_x), dtype=torch.float32)
    if geometry.ice_voxels and fluctuation_std(config.ice, voxel_size) > 0 and part != "specimen":
        fluctuation_field(volume[ice_start:ice_stop], voxel_size, config.ice, seed)
    ys = slice(geometry.pad_y, geometry.pad_y + height)
    xs = slice(geometry.pad_x + margin, geometry.pad_x + margin + width)
    has_ice = geometry.ice_voxels > 0
    for start in range(0, depth, 16):
        stop = min(start + 16, depth)
        planes = np.arange(start, stop) + z_offset
        in_ice = (planes >= ice_start) & (planes < ice_stop) & has_ice
        target = volume[z_at + start : z_at + stop, ys, xs]
        target[...] = contrast_block(potential[start:stop], target.clone(), in_ice, config, part)
    return volume.numpy()


def occupied_planes(potential: np.ndarray) -> tuple[int, int] | None:
    """First and last Z plane holding any non-zero value (None for an empty volume).

    Reads 16 planes at a time, so a memory-mapped volume is not loaded whole.
    """
    used = np.zeros(potential.shape[0], dtype=bool)
    for start in range(0, potential.shape[0], 16):
        block = np.asarray(potential[start : start + 16])
        used[start : start + 16] = np.any(block != 0, axis=(1, 2))
    planes = np.flatnonzero(used)
    return (int(planes[0]), int(planes[-1])) if planes.size else None


def ice_voxels_needed(n_z: int, planes: tuple[int, int] | None) -> int:
    """Fewest ice voxels that, centred like :func:`build_volume` centres them, hold ``planes``."""
    if planes is None:
        return 1
    first, last = planes
    voxels = 1
    # build_volume puts the volume at (n - n_z) // 2 and the ice at (n - voxels) // 2 of a
    # depth n = max(n_z, voxels): grow the ice until both ends lie inside it.
    while True:
        depth = max(n_z, voxels)
        start = (depth - voxels) // 2 - (depth - n_z) // 2
        if start <= first and start + voxels > last:
            return voxels
        voxels += 1


def ice_top(geometry: SlabGeometry) -> float:
    """Centred Z coordinate (voxels) of the +Z face of the ice (of the volume without ice)."""
    n_z = geometry.n_z
    thickness = geometry.ice_voxels or geometry.shape[0]
    return (n_z - thickness) // 2 + thickness - n_z // 2 - 0.5


def film_path_lengths(
    angles_deg: np.ndarray, n_det: int, n_x: int, film: FilmConfig, top: float, voxel_size: float
) -> np.ndarray:
    """Path length (voxels) of each detector column's ray through the support film.

    The film is the layer ``top - t <= z <= top`` (centred voxel coordinates) for
    ``x > (edge_position - 0.5) n_x``. Each pixel averages four sub-pixel rays so the
    edge is anti-aliased.

    Returns
    -------
    np.ndarray, shape (n_tilts, n_det), float64
    """
    thickness = film.thickness_nm * 10 / voxel_size
    z0, z1 = top - thickness, top
    edge = (film.edge_position - 0.5) * n_x
    u = (np.arange(n_det) - n_det // 2)[:, None] + (np.arange(4) - 1.5)[None, :] / 4
    out = np.empty((len(angles_deg), n_det))
    for i, theta in enumerate(np.deg2rad(np.asarray(angles_deg, dtype=np.float64))):
        sin, cos = math.sin(theta), math.cos(theta)
        # The ray x cos - z sin = u is on the film side where z sin > edge cos - u.
        if abs(sin) < 1e-12:
            inside = np.where(u > edge, thickness, 0.0)
        else:
            cut = (edge * cos - u) / sin
            if sin > 0:
                inside = np.clip(z1 - np.maximum(z0, cut), 0, thickness)
            else:
                inside = np.clip(np.minimum(z1, cut) - z0, 0, thickness)
        out[i] = inside.mean(axis=1) / cos
    return out


def film_texture(
    paths: np.ndarray,
    angles_deg: np.ndarray,
    n_y: int,
    film: FilmConfig,
    top: float,
    voxel_size: float,
    seed: int,
) -> np.ndarray:
    """Path lengths through a film of randomly varying thickness, per detector pixel.

    The film's thickness is ``t (1 + s g(y, x))``: ``g`` a seeded Gaussian field of unit
    variance with correlation length ``film.texture_correlation_angstrom`` on the film
    plane, ``s = film.texture_std``; it is one fixed film, seen by every tilt where its
    rays cross the film's mid-plane.

    Parameters
    ----------
    paths : (n_tilts, n_det) path lengths of the smooth film (:func:`film_path_lengths`).
    angles_deg : (n_tilts,) tilt angles.
    n_y : detector rows.
    film, top, voxel_size : as for :func:`film_path_lengths`.
    seed : seed of the texture.

    Returns
    -------
    np.ndarray, shape (n_tilts, n_y, n_det), float64
    """
    n_det = paths.shape[1]
    thickness = film.thickness_nm * 10 / voxel_size
    depth = top - thickness / 2
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))[:, None]
    u = np.arange(n_det) - n_det // 2
    x = (u[None, :] + depth * np.sin(theta)) / np.cos(theta)  # where each ray meets the film
    low = math.floor(x.min()) - 1
    width = math.ceil(x.max()) + 2 - low
    field = np.random.default_rng(seed).standard_normal((n_y, width))
    sigma = film.texture_correlation_angstrom / voxel_size
    if sigma > 0:
        fy = np.fft.fftfreq(n_y)[:, None]
        fx = np.fft.fftfreq(width)[None, :]
        smooth = np.exp(-2 * math.pi**2 * sigma**2 * (fy**2 + fx**2))
        field = np.fft.ifft2(np.fft.fft2(field) * smooth).real
    field /= max(field.std(), 1e-12)
    position = x - low
    left = np.floor(position).astype(int)
    weight = position - left
    sampled = field[:, left] * (1 - weight) + field[:, left + 1] * weight  # (n_y, n_tilts, n_det)
    relative = np.clip(1 + film.texture_std * sampled.transpose(1, 0, 2), 0, None)
    return paths[:, None, :] * relative

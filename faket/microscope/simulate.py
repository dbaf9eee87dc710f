"""Simulate a tilt series with the reference microscope (the BENCHMARK modality).

Per tilt: projected potential of the specimen in ice (single slice via
:func:`faket.tomography.project`, or beam-perpendicular slabs with Fresnel propagation) ->
phase-object exit wave with amplitude contrast -> objective lens (defocus, astigmatism, Cs,
coherence envelopes, B-factor) and the tilt's misalignment shift -> intensity ->
inelastic (zero-loss) attenuation over the tilted path length -> tilt-axis rotation ->
the tilt's dose -> Poisson counting with the detector's DQE and MTF.

Defocus is defined at the tilt axis (depth 0). The single-slice model puts all of the
specimen there; multislice puts each slab at its own depth, so the defocus gradient across
a tilted field of view and the thickness of the specimen are part of the image.

Radiation damage (averaged over each tilt's exposure) fades the specimen, not the ice's
density fluctuations: where both are present and damage is on, the two are projected
separately and only the specimen's projection is filtered.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import torch

from faket.device import chunk_size, memory_budget, select_device
from faket.errors import FaketError
from faket.microscope.config import MicroscopeConfig, parse_config
from faket.microscope.ice import (
    SlabGeometry,
    build_volume,
    film_path_lengths,
    film_texture,
    fluctuation_std,
    ice_top,
    ice_voxels_needed,
    occupied_planes,
)
from faket.microscope.imaging import ImageFormation, poisson_generator, rotate_images
from faket.microscope.multislice import slab_projections, volume_columns
from faket.microscope.physics import electron_wavelength
from faket.microscope.schedule import check_tilt_angles, mean_free_path_angstrom, plan_tilts
from faket.progress import progress as progress_bar
from faket.tomography import project


def _fft_friendly(n: int) -> int:
    """Smallest ``m >= n`` with ``m - n`` even and only prime factors 2, 3 and 5."""
    m = n
    while True:
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1 and (m - n) % 2 == 0:
            return m
        m += 1


def _image_padding(
    shape: tuple[int, int, int], voxel_size: float, config: MicroscopeConfig
) -> tuple[int, int]:
    """Pixels to pad the image with on each side, along Y and X (see plan_geometry)."""
    _, n_y, n_x = shape
    optics = config.optics
    k_max = math.sqrt(2) / (2 * voxel_size)
    worst_defocus = 1e4 * (
        abs(optics.defocus_um) + 4 * optics.defocus_std_um + optics.astigmatism_um / 2
    )
    wavelength = electron_wavelength(optics.voltage_kv)
    reach = wavelength * worst_defocus * k_max
    reach += optics.spherical_aberration_mm * 1e7 * wavelength**3 * k_max**3
    shift = 4 * config.alignment.shift_std_angstrom / voxel_size
    base = shift + min(reach / voxel_size, 2 * max(n_y, n_x))
    angle = math.radians(config.alignment.tilt_axis_angle_deg)
    cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
    rotation_y = max(0.0, (n_x * sin + n_y * cos - n_y) / 2)
    rotation_x = max(0.0, (n_x * cos + n_y * sin - n_x) / 2)
    pad_y = (_fft_friendly(n_y + 2 * math.ceil(base + rotation_y + 2)) - n_y) // 2
    pad_x = (_fft_friendly(n_x + 2 * math.ceil(base + rotation_x + 2)) - n_x) // 2
    return pad_y, pad_x


def plan_geometry(
    shape: tuple[int, int, int],
    voxel_size: float,
    angles_deg: np.ndarray,
    config: MicroscopeConfig,
    occupied: tuple[int, int] | None = None,
) -> SlabGeometry:
    """Ice placement and padding for a volume of ``shape`` (see :class:`SlabGeometry`).

    The ice is ``config.ice.thickness_nm`` thick (the volume's Z extent if that is None),
    centred on the volume, and at least thick enough to hold the ``occupied`` Z planes
    (first, last) of the specimen (a warning says when it had to grow). The image is
    padded by the largest random shift (4 standard deviations), the reach of the CTF's
    point-spread function at the worst defocus (``lambda |df| k + Cs lambda³ k³`` at the
    corner frequency), and what an in-plane rotation by the tilt-axis angle brings into
    view; sizes are rounded up to FFT-friendly numbers.
    """
    n_z, n_y, n_x = shape
    ice = config.ice
    ice_voxels = 0
    if ice.enabled:
        ice_voxels = n_z if ice.thickness_nm is None else round(10 * ice.thickness_nm / voxel_size)
        ice_voxels = max(ice_voxels, 1)
        needed = ice_voxels_needed(n_z, occupied)
        if needed > ice_voxels:
            warnings.warn(
                f"the specimen spans {needed * voxel_size / 10:.0f} nm in Z, more than the "
                f"{ice_voxels * voxel_size / 10:.0f} nm of ice; the ice is thickened to hold "
                "it (set microscope ice.thickness_nm to choose)",
                stacklevel=3,
            )
            ice_voxels = needed
    depth = max(n_z, ice_voxels)
    pad_y, pad_x = _image_padding(shape, voxel_size, config)
    margin = 0
    if ice_voxels and fluctuation_std(ice, voxel_size) > 0:
        # Tilted rays at the detector's edge must still cross the whole (padded) ice slab.
        steepest = math.radians(float(np.abs(angles_deg).max()))
        margin = math.ceil((depth / 2 + 1) * math.tan(steepest)) + 2
    return SlabGeometry(tuple(shape), depth, ice_voxels, pad_y, pad_x, margin)


def simulate_tilt_series(
    potential: np.ndarray,
    voxel_size_angstrom: float,
    angles_deg,
    config: MicroscopeConfig | dict | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = False,
    memory_budget_bytes: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Simulate what the reference microscope records of a specimen.

    Parameters
    ----------
    potential : array, shape (Z, Y, X)
        Specimen potential; volts after multiplying by ``config.specimen.potential_scale``
        (faket grand models are in V, vacuum = 0: scale 1). May be memory-mapped.
    voxel_size_angstrom : float
        Voxel size (Å); also the detector pixel size.
    angles_deg : array, shape (n_tilts,)
        Tilt angles in degrees (about Y, ``|angle| < 90``), in the order of the output.
    config : MicroscopeConfig or dict, optional
        Microscope settings (defaults: :class:`MicroscopeConfig`).
    seed : int
        Seed of every random choice (ice, defocus and shift errors, Poisson counts). The
        same seed gives the same output on any device up to floating-point rounding.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    progress : bool
        Draw a progress bar over the tilts.
    memory_budget_bytes : int, optional
        Working memory per chunk of the projection steps.

    Returns
    -------
    projections : np.ndarray, shape (n_tilts, Y, X), float32
        Electrons per pixel (``detector.output = "counts"``), or counts divided by the
        tilt's dose per pixel (``"normalized"``: the zero-loss fraction, ``exp(-t / l)``
        for blank ice of thickness ``t`` and mean free path ``l`` at zero tilt, ~0.65 for
        150 nm at 300 kV; less where a film covers it).
    metadata : pandas.DataFrame
        One row per tilt: :data:`faket.microscope.schedule.METADATA_COLUMNS`.
    """
    config = parse_config(config)
    volume_in, voxel_size, angles = _check_inputs(potential, voxel_size_angstrom, angles_deg)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise FaketError(f"seed must be a non-negative integer, got {seed!r}")
    dev = select_device(device)
    if dev.type == "mps":
        dev = torch.device("cpu")  # the optics need float64 and complex128, which MPS lacks
    budget = memory_budget(dev, memory_budget_bytes)
    ice_seed, plan_seed, noise_seed, film_seed = np.random.SeedSequence(int(seed)).spawn(4)

    occupied = occupied_planes(volume_in) if config.ice.enabled else None
    geometry = plan_geometry(volume_in.shape, voxel_size, angles, config, occupied)
    metadata = plan_tilts(
        angles,
        voxel_size,
        geometry.ice_voxels * voxel_size,
        config,
        np.random.default_rng(plan_seed),
    )
    optics = ImageFormation(geometry.image_shape, voxel_size, config, dev)
    film_phase, film_loss = _film(angles, geometry, voxel_size, config, optics, film_seed)
    metadata["film_transmission"] = _mean_transmission(film_phase, film_loss, geometry)
    parts = _parts(config, geometry, voxel_size)
    ice_state = int(ice_seed.generate_state(1)[0])
    n_det = geometry.image_shape[1]
    single, columns = {}, {}
    for part in parts:
        # The specimen's single-slice projection needs none of the ice's padding.
        compact = part == "specimen" and config.multislice == 0
        volume = build_volume(volume_in, voxel_size, config, geometry, ice_state, part, compact)
        if config.multislice == 0:
            single[part] = project(
                volume, angles, detector_width=n_det, device=dev, memory_budget_bytes=budget
            )
        else:
            # Y-major columns for the slab sampler; the volume itself is no longer needed.
            columns[part] = volume_columns(volume, dev)
        del volume

    tilt_seeds = noise_seed.spawn(len(angles))
    out = np.empty((len(angles), *volume_in.shape[1:]), dtype=np.float32)
    # Tilts go through the optics in batches: fewer, larger array operations.
    # About 20 float64-sized temporaries per pixel live at once in the optics below.
    batch = chunk_size(160 * geometry.image_shape[0] * n_det, len(angles), budget)
    starts = range(0, len(angles), batch)
    for start in progress_bar(starts, "simulating tilts", total=len(starts), enabled=progress):
        tilts = slice(start, min(start + batch, len(angles)))
        rows = metadata.iloc[tilts]
        doses = rows[["prior_dose_e_per_a2", "dose_e_per_a2"]].to_numpy()
        if single:
            projected = {part: torch.from_numpy(p[tilts]).to(dev) for part, p in single.items()}
            wave = optics.transmission(_damaged(projected, doses, optics) * voxel_size)
        else:
            wave = torch.stack(
                [
                    _multislice_wave(columns, geometry, angle, dose, optics, config, budget)
                    for angle, dose in zip(rows.angle_deg, doses, strict=True)
                ]
            )
        wave = wave * film_phase[tilts]
        seeds = tilt_seeds[tilts] if config.detector.noise else None
        counts = _record(wave, rows, film_loss[tilts], seeds, optics, geometry, config)
        out[tilts] = counts.cpu().numpy()
    return out, metadata


def _parts(config: MicroscopeConfig, geometry: SlabGeometry, voxel_size: float) -> list[str]:
    """The volume in one part, or specimen and ice apart when damage must spare the ice."""
    fluctuating = geometry.ice_voxels > 0 and fluctuation_std(config.ice, voxel_size) > 0
    return ["specimen", "ice"] if fluctuating and config.dose.damage != "none" else ["all"]


def _damaged(projected: dict, doses: np.ndarray, optics: ImageFormation) -> torch.Tensor:
    """Sum of the parts' projections, the specimen's filtered by the damage of ``doses``."""
    total = None
    for part, potential in projected.items():
        if part != "ice":  # "all" only exists without damage or without fluctuations
            potential = optics.damage(potential, doses[:, 0], doses[:, 1])
        total = potential if total is None else total + potential
    return total


def _record(wave, rows, film_loss, seeds, optics: ImageFormation, geometry, config):
    """From exit waves at the reference plane to what the detector records (cropped)."""
    shifts = rows[["shift_x_angstrom", "shift_y_angstrom"]].to_numpy()
    transfer = optics.objective(rows.defocus_um.to_numpy(), shifts)
    image = optics.intensity(wave, transfer) * film_loss
    image = image * optics.per_tilt(rows.attenuation).float()  # inelastic (zero-loss) losses
    image = rotate_images(image, config.alignment.tilt_axis_angle_deg)
    dose_per_pixel = optics.per_tilt(rows.dose_e_per_a2 * optics.pixel_size**2).float()
    generators = None if seeds is None else [poisson_generator(seed) for seed in seeds]
    counts = geometry.crop(optics.detect(image * dose_per_pixel, generators))
    if config.detector.output == "normalized":
        counts = counts / dose_per_pixel
    return counts


def _check_inputs(potential, voxel_size, angles_deg) -> tuple[np.ndarray, float, np.ndarray]:
    volume = potential if isinstance(potential, np.memmap) else np.asarray(potential)
    if volume.ndim != 3:
        raise FaketError(f"the potential must be a (Z, Y, X) volume, got shape {volume.shape}")
    if min(volume.shape) < 1:
        raise FaketError(f"the potential is empty (shape {volume.shape})")
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        raise FaketError(f"the potential must hold real numbers, got dtype {volume.dtype}")
    try:
        size = float(voxel_size)
    except (TypeError, ValueError):
        raise FaketError(f"voxel size must be a number of Å, got {voxel_size!r}") from None
    if not (math.isfinite(size) and size > 0):
        raise FaketError(f"voxel size must be positive (Å), got {voxel_size}")
    return volume, size, check_tilt_angles(angles_deg)


def _film(angles, geometry: SlabGeometry, voxel_size, config, optics: ImageFormation, seed):
    """Film transmission and intensity loss per tilt, ``(n_tilts, 1 or H, W)`` (1.0 without)."""
    if not config.film.enabled:
        ones = torch.ones((len(angles), 1, 1), device=optics.device)
        return ones, ones
    film, ice = config.film, config.ice
    n_y, n_det = geometry.image_shape
    top = ice_top(geometry)
    path = film_path_lengths(angles, n_det, geometry.shape[2], film, top, voxel_size)
    if film.texture_std > 0:
        state = int(seed.generate_state(1)[0])
        path = film_texture(path, angles, n_y, film, top, voxel_size, state)
    else:
        path = path[:, None, :]
    path_t = torch.from_numpy(path * voxel_size).float().to(optics.device)  # Å
    # The film replaces ice in its layer (if there is ice): contrast and losses are relative.
    contrast = film.potential_volts - (ice.potential_volts if geometry.ice_voxels else 0.0)
    extra_loss = 1 / (10 * film.mean_free_path_nm)
    if geometry.ice_voxels:
        extra_loss -= 1 / mean_free_path_angstrom(config)
    return optics.transmission(contrast * path_t), torch.exp(-extra_loss * path_t)


def _mean_transmission(phase: torch.Tensor, loss: torch.Tensor, geometry) -> np.ndarray:
    """Per tilt, the film's mean intensity factor over the detector (elastic x inelastic)."""
    factor = (phase.abs() ** 2 * loss).expand(-1, *geometry.image_shape)
    return geometry.crop(factor).mean(dim=(1, 2)).double().cpu().numpy()


def _multislice_wave(
    columns: dict,
    geometry: SlabGeometry,
    angle: float,
    doses: np.ndarray,
    optics: ImageFormation,
    config,
    budget: int,
) -> torch.Tensor:
    """Exit wave at depth 0 after propagating through ``config.multislice`` slabs.

    ``columns`` holds each volume part (:func:`volume_columns`); ``doses`` is the tilt's
    (prior dose, dose) in e-/Å².
    """
    n_det = geometry.image_shape[1]
    shape = geometry.volume_shape
    slabs = {}
    for part, part_columns in columns.items():
        slabs[part], centres = slab_projections(
            part_columns, shape, float(angle), n_det, config.multislice, budget
        )
    voxel = optics.pixel_size
    # Every slab of a tilt received the same dose.
    doses = np.broadcast_to(doses, (config.multislice, 2))
    layers = optics.transmission(_damaged(slabs, doses, optics) * voxel)
    # A plane wave stays a plane wave in free space: the first slab needs no propagation.
    wave = layers[0]
    if len(centres) > 1:
        step = optics.propagator((centres[1] - centres[0]) * voxel)  # equal slab spacing
        for layer in layers[1:]:
            wave = optics.propagate(wave, step) * layer
    # Back to the reference plane (the tilt axis), where the defocus is defined.
    return optics.propagate(wave, -centres[-1] * voxel)

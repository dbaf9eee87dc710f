"""The acquisition plan: in which order tilts are recorded, their dose, focus and shifts.

Everything random here comes from one seeded generator, so a plan (and its metadata file)
can be reproduced exactly; the simulation follows the plan.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from faket.errors import FaketError
from faket.microscope.config import MicroscopeConfig
from faket.microscope.physics import ice_mean_free_path_nm

#: Columns of the per-tilt metadata table, in order.
METADATA_COLUMNS = [
    "tilt_index",
    "angle_deg",
    "acquisition_order",
    "dose_e_per_a2",
    "prior_dose_e_per_a2",
    "defocus_um",
    "astigmatism_um",
    "astigmatism_angle_deg",
    "shift_x_angstrom",
    "shift_y_angstrom",
    "shift_x_px",
    "shift_y_px",
    "tilt_axis_angle_deg",
    "ice_path_nm",
    "attenuation",
    "counts_per_pixel",
    "film_transmission",
]


def check_tilt_angles(angles_deg) -> np.ndarray:
    """Tilt angles (degrees) as float64: finite, unique, ``|angle| < 90``."""
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 0:
        raise FaketError("no tilt angles given")
    if not np.isfinite(angles).all():
        raise FaketError("tilt angles contain NaN or Inf")
    if np.abs(angles).max() >= 90:
        raise FaketError(
            f"tilt angle {angles[np.abs(angles).argmax()]:g} is not below 90 degrees in "
            "magnitude; a slab cannot be imaged edge-on"
        )
    if np.unique(np.round(angles, 6)).size != angles.size:
        raise FaketError("tilt angles contain duplicates; each image needs its own angle")
    return angles


def acquisition_order(angles_deg: np.ndarray, scheme: str, group_size: int = 2) -> np.ndarray:
    """Position (0 = first) at which each tilt is recorded.

    ``sequential``: from the lowest angle up. ``bidirectional``: from the tilt nearest 0 up
    to the highest, then from the next one below down to the lowest. ``dose_symmetric``
    (Hagen et al. 2017): the tilt nearest 0, then alternating groups of ``group_size``
    tilts on the positive and the negative side, each side moving outwards.

    Returns
    -------
    np.ndarray, shape (n_tilts,), int
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    by_angle = np.argsort(angles, kind="stable")
    if scheme == "sequential":
        sequence = list(by_angle)
    else:
        start = int(np.argmin(np.abs(angles[by_angle])))
        upper = list(by_angle[start + 1 :])
        lower = list(by_angle[:start][::-1])
        sequence = [by_angle[start]]
        if scheme == "bidirectional":
            sequence += upper + lower
        elif scheme == "dose_symmetric":
            while upper or lower:
                sequence += upper[:group_size] + lower[:group_size]
                upper, lower = upper[group_size:], lower[group_size:]
        else:
            raise FaketError(f"unknown tilt scheme {scheme!r}")
    order = np.empty(angles.size, dtype=int)
    order[np.asarray(sequence, dtype=int)] = np.arange(angles.size)
    return order


def dose_per_tilt(angles_deg: np.ndarray, total: float, distribution: str) -> np.ndarray:
    """Dose (e-/Å²) of each tilt: equal shares, or shares proportional to ``1 / cos``."""
    angles = np.asarray(angles_deg, dtype=np.float64)
    if distribution == "uniform":
        weights = np.ones_like(angles)
    elif distribution == "inverse_cosine":
        weights = 1 / np.cos(np.deg2rad(angles))
    else:
        raise FaketError(f"unknown dose distribution {distribution!r}")
    return total * weights / weights.sum()


def prior_dose(order: np.ndarray, doses: np.ndarray) -> np.ndarray:
    """Dose (e-/Å²) each tilt's specimen received before its own exposure."""
    received = np.zeros_like(doses)
    sequence = np.argsort(order)
    received[sequence] = np.concatenate(([0.0], np.cumsum(doses[sequence])[:-1]))
    return received


def plan_tilts(
    angles_deg: np.ndarray,
    voxel_size: float,
    ice_thickness_angstrom: float,
    config: MicroscopeConfig,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Per-tilt acquisition plan as the metadata table (:data:`METADATA_COLUMNS`).

    ``attenuation`` is the Beer-Lambert factor of the ice alone, ``exp(-t / (cos l))``;
    ``counts_per_pixel`` the expected electrons per pixel of blank ice (before the film and
    the detector's conversion); ``film_transmission`` the mean intensity factor of the
    support film over the field of view (1 here; the simulation fills it in).
    """
    angles = check_tilt_angles(angles_deg)
    doses = dose_per_tilt(angles, config.dose.total_e_per_a2, config.dose.distribution)
    order = acquisition_order(angles, config.dose.scheme, config.dose.group_size)
    optics, alignment = config.optics, config.alignment
    defocus = optics.defocus_um + optics.defocus_std_um * rng.standard_normal(angles.size)
    shifts = alignment.shift_std_angstrom * rng.standard_normal((angles.size, 2))
    path = ice_thickness_angstrom / np.cos(np.deg2rad(angles))
    attenuation = np.exp(-path / mean_free_path_angstrom(config))
    return pd.DataFrame(
        {
            "tilt_index": np.arange(angles.size),
            "angle_deg": angles,
            "acquisition_order": order,
            "dose_e_per_a2": doses,
            "prior_dose_e_per_a2": prior_dose(order, doses),
            "defocus_um": defocus,
            "astigmatism_um": optics.astigmatism_um,
            "astigmatism_angle_deg": optics.astigmatism_angle_deg,
            "shift_x_angstrom": shifts[:, 0],
            "shift_y_angstrom": shifts[:, 1],
            "shift_x_px": shifts[:, 0] / voxel_size,
            "shift_y_px": shifts[:, 1] / voxel_size,
            "tilt_axis_angle_deg": alignment.tilt_axis_angle_deg,
            "ice_path_nm": path / 10,
            "attenuation": attenuation,
            "counts_per_pixel": doses * voxel_size**2 * attenuation,
            "film_transmission": 1.0,
        },
        columns=METADATA_COLUMNS,
    )


def mean_free_path_angstrom(config: MicroscopeConfig) -> float:
    """Inelastic mean free path of the ice (Å) at the configured voltage."""
    if config.ice.mean_free_path_nm is not None:
        return 10 * config.ice.mean_free_path_nm
    return 10 * ice_mean_free_path_nm(config.optics.voltage_kv)

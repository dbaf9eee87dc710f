"""Input validation shared by the projector and the reconstruction."""

from __future__ import annotations

import numpy as np

from faket.errors import FaketError


def check_array(data: np.ndarray, ndim: int, what: str) -> np.ndarray:
    """Check rank, size, dtype and values of ``data``; return it as float32.

    Memory-mapped arrays are returned as they are (their values are checked
    chunk by chunk by the caller with :func:`check_finite`), so a volume larger
    than RAM is never loaded whole.
    """
    array = data if isinstance(data, np.memmap) else np.asarray(data)
    if array.ndim != ndim:
        raise FaketError(f"{what} must have {ndim} dimensions, got shape {array.shape}")
    if array.size == 0:
        raise FaketError(f"{what} is empty (shape {array.shape})")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise FaketError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if isinstance(array, np.memmap):
        return array
    array = array.astype(np.float32, copy=False)
    check_finite(array, what)
    return array


def check_finite(array: np.ndarray, what: str) -> None:
    """Fail with one line if ``array`` holds NaN or Inf."""
    if not np.isfinite(array).all():
        raise FaketError(f"{what} contains NaN or Inf values; clean the data first")


def check_angles(angles_deg, n_tilts: int | None = None) -> np.ndarray:
    """Return tilt angles (degrees) as float64 after checking count, values and duplicates."""
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 0:
        raise FaketError("no tilt angles given")
    if not np.isfinite(angles).all():
        raise FaketError("tilt angles contain NaN or Inf")
    if n_tilts is not None and angles.size != n_tilts:
        raise FaketError(
            f"{angles.size} tilt angles for a tilt series of {n_tilts} images; "
            "give one angle per image"
        )
    if np.unique(np.round(angles, 6)).size != angles.size:
        raise FaketError("tilt angles contain duplicates; each image needs its own angle")
    return angles


def check_positive_int(value: int, what: str) -> int:
    """Return ``value`` if it is an integer >= 1, else fail with one line."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise FaketError(f"{what} must be a positive integer, got {value}")
    return int(value)

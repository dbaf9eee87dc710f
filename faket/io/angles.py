"""Tilt angles: IMOD ``.tlt`` files and regular tilt schemes.

Angles are float64 degrees, one per tilt image, in the order of the tilt series.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.io.atomic import write_text_atomic

__all__ = [
    "check_angle_count",
    "format_angle",
    "read_tlt",
    "tilt_range",
    "validate_angles",
    "write_tlt",
]

MAX_TILT = 90.0  # degrees; beyond this the beam would pass the grid edge-on or from behind


def read_tlt(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IMOD ``.tlt`` file: one tilt angle in degrees per line.

    Surrounding whitespace and blank lines are ignored.

    Parameters
    ----------
    path
        The angle file.

    Returns
    -------
    np.ndarray
        ``(n_tilts,)`` float64 angles in degrees, in file order.

    Raises
    ------
    FaketError
        If the file is missing or empty, or a line is not a finite number within ±90°
        (the message names the line number).
    """
    file = Path(path)
    if not file.is_file():
        raise FaketError(f"angle file {file} does not exist; check the path")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FaketError(f"{file} is not a text file; pass an IMOD .tlt angle file") from None
    angles = [
        _parse_angle(file, number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not angles:
        raise FaketError(f"angle file {file} contains no angles; write one angle per line")
    return np.asarray(angles, dtype=np.float64)


def _parse_angle(file: Path, number: int, field: str) -> float:
    try:
        angle = float(field)
    except ValueError:
        words = field.split()
        if len(words) > 1:
            raise FaketError(
                f"{file}, line {number}: {len(words)} values where a tilt-angle file has one "
                "angle per line (is this an IMOD .xf or .xtilt file?); pass the .tlt file"
            ) from None
        raise FaketError(
            f"{file}, line {number}: {field[:40]!r} is not a number; write one angle per line"
        ) from None
    if not math.isfinite(angle) or abs(angle) > MAX_TILT:
        raise FaketError(
            f"{file}, line {number}: angle {field} is outside -90..90 degrees; fix the file"
        )
    return angle


def write_tlt(path: str | os.PathLike[str], angles: Sequence[float] | np.ndarray) -> Path:
    """Write tilt angles as an IMOD ``.tlt`` file, atomically.

    Each angle is written on its own line, with two decimals as IMOD does (``-60.00``)
    when that is exact, else with as many digits as it takes to read back the same number
    (``-59.986``): the file says exactly which angles were used.

    Parameters
    ----------
    path
        The output file; its folder must exist.
    angles
        ``(n_tilts,)`` angles in degrees, each within ±90.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    file = Path(path)
    values = _check_angles(np.asarray(angles, dtype=np.float64), f"cannot write {file}")
    return write_text_atomic(file, "".join(f"{format_angle(a)}\n" for a in values.tolist()))


def format_angle(angle: float) -> str:
    """``-60.00`` for angles exact at two decimals, else the shortest exact repr."""
    angle = float(angle) + 0.0  # -0.0 -> 0.0, so no "-0.00"
    two = f"{angle:.2f}"
    return two if float(two) == angle else repr(angle)


def validate_angles(values: np.ndarray, source: str) -> np.ndarray:
    """Check angles read from ``source``: a non-empty 1-D list of finite values within ±90°.

    Returns
    -------
    np.ndarray
        ``values`` as float64.

    Raises
    ------
    FaketError
        Naming ``source`` and the fix.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise FaketError(f"{source} contains no tilt angles; pass the angle file of the series")
    bad = ~np.isfinite(values) | (np.abs(values) > MAX_TILT)
    if values.ndim != 1 or bad.any():
        first = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise FaketError(
            f"{source}: angle {first + 1} ({values.ravel()[first]}) is outside -90..90 "
            "degrees; fix the file"
        )
    return values


def _check_angles(values: np.ndarray, context: str) -> np.ndarray:
    if values.ndim != 1 or values.size == 0:
        raise FaketError(
            f"{context}: expected a non-empty list of angles, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > MAX_TILT):
        raise FaketError(f"{context}: every angle must be a finite number within -90..90 degrees")
    return values


def tilt_range(start: float, stop: float, step: float) -> np.ndarray:
    """Evenly spaced tilt angles from ``start`` to ``stop``.

    ``stop`` is included when it lies on the grid (within a rounding tolerance), so
    ``tilt_range(-60, 60, 2)`` gives the 61 angles -60, -58, ..., 60.

    Parameters
    ----------
    start, stop
        First and last angle in degrees, ``-90 <= start <= stop <= 90``.
    step
        Increment in degrees, > 0.

    Returns
    -------
    np.ndarray
        ``(n_tilts,)`` float64 angles in degrees, ascending.

    Raises
    ------
    FaketError
        For a non-positive step, ``start > stop``, or angles beyond ±90°.
    """
    context = f"invalid tilt range {start}..{stop} step {step}"
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise FaketError(f"{context}: all three numbers must be finite")
    if step <= 0:
        raise FaketError(f"{context}: the step must be positive")
    if start > stop:
        raise FaketError(f"{context}: start must not exceed stop; swap them")
    if max(abs(start), abs(stop)) > MAX_TILT:
        raise FaketError(f"{context}: angles must lie within -90..90 degrees")
    # The tolerance absorbs floating-point error such as (0.3 - 0.0) / 0.1 = 2.9999999999999996.
    intervals = (stop - start) / step
    count = math.floor(intervals + 1e-9) + 1
    angles = start + step * np.arange(count, dtype=np.float64)
    if abs(intervals - round(intervals)) <= 1e-9:
        angles[-1] = stop  # exact end point instead of an accumulated rounding error
    return angles


def check_angle_count(
    angles: Sequence[float] | np.ndarray, n_tilts: int, source: str | os.PathLike[str] = ""
) -> None:
    """Check that there is exactly one angle per tilt image.

    Parameters
    ----------
    angles
        ``(n_angles,)`` tilt angles.
    n_tilts
        Number of images in the tilt series.
    source
        Where the angles came from (a file name), used in the error message.

    Raises
    ------
    FaketError
        If ``len(angles) != n_tilts``.
    """
    n_angles = len(angles)
    if n_angles != n_tilts:
        where = f"the angle file {source}" if str(source) else "the angle list"
        raise FaketError(
            f"tilt series has {n_tilts} tilts but {where} has {n_angles} angles; "
            "pass the angle file that belongs to this tilt series"
        )

"""The in-memory particle table shared by all particle-list formats.

A particle list is a :class:`pandas.DataFrame` with the columns of :data:`COLUMNS`:
``class_name`` (str, no whitespace), ``x``, ``y``, ``z`` (float, voxels of the grand model)
and ``phi``, ``theta``, ``psi`` (float, ZXZ Euler angles in degrees; see
:mod:`faket.io.star` for the exact convention).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from faket.errors import FaketError

__all__ = ["COLUMNS", "existing_file", "validate_particles"]

COLUMNS = ["class_name", "x", "y", "z", "phi", "theta", "psi"]
NUMERIC = COLUMNS[1:]


def validate_particles(
    df: pd.DataFrame, source: str | os.PathLike[str] = "particle list"
) -> pd.DataFrame:
    """Check a particle list and return a clean copy with exactly :data:`COLUMNS`.

    Parameters
    ----------
    df
        Particle list; extra columns are dropped, numeric columns may be strings.
    source
        What the list is (a file name), used in error messages.

    Returns
    -------
    pd.DataFrame
        ``(n_particles, 7)``: ``class_name`` as str, the rest as float64, index 0..n-1.

    Raises
    ------
    FaketError
        If a column is missing, a class name is empty or contains whitespace, or a
        coordinate or angle is not a finite number.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise FaketError(
            f"{source}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}"
        )
    out = pd.DataFrame({"class_name": _clean_names(df["class_name"], source)})
    for column in NUMERIC:
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise FaketError(
                f"{source}: particle {bad[0] + 1} has a missing, non-numeric or non-finite "
                f"{column}; fix or remove that particle"
            )
        out[column] = values
    return out


def _clean_names(names: pd.Series, source: object) -> np.ndarray:
    if names.isna().any():
        raise FaketError(f"{source}: some particles have no class_name; give every particle one")
    clean = names.astype(str).to_numpy(dtype=object)
    for name in clean:
        if not name or len(name.split()) != 1 or name != name.strip():
            raise FaketError(
                f"{source}: class name {name!r} is empty or contains whitespace; "
                "use single words such as 1s3x or ribosome"
            )
    return clean


def existing_file(path: str | os.PathLike[str], kind: str) -> Path:
    """Return ``path`` as a Path, or raise FaketError naming it as ``kind`` if it is absent."""
    file = Path(path)
    if not file.is_file():
        raise FaketError(f"{kind} {file} does not exist; check the path")
    return file

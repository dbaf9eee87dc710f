"""Particle lists: SHREC ``particle_locations.txt``, CSV and RELION-style STAR files.

In memory a particle list is a :class:`pandas.DataFrame` with the columns of
:data:`COLUMNS`: ``class_name`` (str, no whitespace), ``x``, ``y``, ``z`` (float, voxels of
the grand model) and ``phi``, ``theta``, ``psi`` (float, degrees): SHREC's ``Z1 X Z2``
Euler angles, read as intrinsic ZXZ rotations. The STAR functions and the conversion to
RELION's ZYZ angles live in :mod:`faket.io.star` and are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from faket.errors import FaketError
from faket.io._table import COLUMNS, existing_file, validate_particles
from faket.io.atomic import atomic_path, write_text_atomic
from faket.io.star import read_particles_star, relion_to_zxz, write_particles_star, zxz_to_relion

__all__ = [
    "COLUMNS",
    "read_particles",
    "read_particles_csv",
    "read_particles_star",
    "read_shrec_particles",
    "relion_to_zxz",
    "validate_particles",
    "write_particles_csv",
    "write_particles_star",
    "write_shrec_particles",
    "zxz_to_relion",
]

_SHREC_FORMAT = "'class x y z [Z1 X Z2]'"


def read_shrec_particles(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a SHREC 2021 ``particle_locations.txt`` file.

    Each line is ``class x y z [Z1 X Z2]`` separated by whitespace. Missing rotation
    columns mean no rotation (0); columns after the seventh are ignored. Blank lines and
    lines starting with ``#`` are skipped.

    Parameters
    ----------
    path
        The particle file.

    Returns
    -------
    pd.DataFrame
        ``(n_particles, 7)`` particle list with :data:`COLUMNS`; empty if the file lists
        no particles.

    Raises
    ------
    FaketError
        If the file is missing or a line is malformed (the message names the line).
    """
    file = existing_file(path, "particle file")
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            rows.append(_parse_shrec_line(file, number, fields))
    return validate_particles(pd.DataFrame(rows, columns=COLUMNS), file)


def _parse_shrec_line(file: Path, number: int, fields: list[str]) -> list:
    # Five or six fields would be a partial rotation: ambiguous, so rejected.
    if len(fields) < 4 or len(fields) in (5, 6):
        raise FaketError(
            f"{file}, line {number}: expected {_SHREC_FORMAT}, got {len(fields)} fields; "
            "fix that line"
        )
    numbers = fields[1:7] + ["0"] * (7 - min(len(fields), 7))
    values = []
    for field in numbers:
        try:
            value = float(field)
        except ValueError:
            raise FaketError(
                f"{file}, line {number}: {field[:40]!r} is not a number; expected {_SHREC_FORMAT}"
            ) from None
        if not np.isfinite(value):
            raise FaketError(f"{file}, line {number}: {field} is not a finite number; fix it")
        values.append(value)
    return [fields[0], *values]


def _format_number(value: float) -> str:
    # Up to three decimals, never scientific notation, no "-0".
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def write_shrec_particles(path: str | os.PathLike[str], df: pd.DataFrame) -> Path:
    """Write a particle list as a SHREC ``particle_locations.txt`` file, atomically.

    Each line is ``class x y z Z1 X Z2`` with numbers rounded to three decimals.

    Parameters
    ----------
    path
        The output file; its folder must exist.
    df
        Particle list with :data:`COLUMNS`.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    clean = validate_particles(df, f"cannot write {path}")
    lines = [
        " ".join([row[0], *(_format_number(v) for v in row[1:])]) + "\n"
        for row in clean.itertuples(index=False)
    ]
    return write_text_atomic(path, "".join(lines))


def write_particles_csv(path: str | os.PathLike[str], df: pd.DataFrame) -> Path:
    """Write a particle list as CSV with a header row of :data:`COLUMNS`, atomically.

    Numbers are written with full precision, so reading gives back identical values.

    Parameters
    ----------
    path
        The output file; its folder must exist.
    df
        Particle list with :data:`COLUMNS`.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    clean = validate_particles(df, f"cannot write {path}")
    with atomic_path(path) as tmp:
        clean.to_csv(tmp, index=False)
    return Path(path)


def read_particles_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a particle list written by :func:`write_particles_csv`.

    Parameters
    ----------
    path
        CSV file whose header names (at least) :data:`COLUMNS`.

    Returns
    -------
    pd.DataFrame
        ``(n_particles, 7)`` particle list with :data:`COLUMNS`.
    """
    file = existing_file(path, "particle file")
    try:
        # Everything is read as text first so that class names such as "1e5" or "NA" stay
        # names; validate_particles converts the numeric columns.
        df = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        message = " ".join(str(err).split())
        raise FaketError(f"cannot read {file} as CSV ({message}); check the file") from None
    return validate_particles(df, file)


def read_particles(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a particle list, choosing the format by file suffix.

    Parameters
    ----------
    path
        ``.txt`` (SHREC ``particle_locations.txt``), ``.csv`` or ``.star``.

    Returns
    -------
    pd.DataFrame
        ``(n_particles, 7)`` particle list with :data:`COLUMNS`.
    """
    readers = {
        ".txt": read_shrec_particles,
        ".csv": read_particles_csv,
        ".star": read_particles_star,
    }
    suffix = Path(path).suffix.lower()
    if suffix not in readers:
        raise FaketError(
            f"{path}: unknown particle list format {suffix or '(no suffix)'!r}; "
            "use .txt (SHREC), .csv or .star"
        )
    return readers[suffix](path)

"""RELION-style STAR particle lists and the Euler-angle conversion they need.

Rotation convention: a particle's ``(phi, theta, psi)`` are SHREC's ``Z1 X Z2`` Euler
angles, read as intrinsic ZXZ rotations, i.e. the rotation
``Rotation.from_euler("ZXZ", [phi, theta, psi], degrees=True)`` of
:mod:`scipy.spatial.transform`. STAR files store the *same* rotation as RELION-style
``(rot, tilt, psi)`` intrinsic ZYZ angles, ``rotation.as_euler("ZYZ", degrees=True)``, so
``Rotation.from_euler("ZYZ", [rot, tilt, psi], degrees=True)`` gives back the identical
matrix. (RELION's own ``Euler_angles2matrix`` returns the transpose of this matrix, the
map from particle to reference.) Angles change in the conversion; rotation matrices do not.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from scipy.spatial.transform import Rotation

from faket.errors import FaketError
from faket.io._table import existing_file, validate_particles
from faket.io.atomic import atomic_path

__all__ = ["read_particles_star", "relion_to_zxz", "write_particles_star", "zxz_to_relion"]

_STAR_POSITION = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
_STAR_ANGLES = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]


def zxz_to_relion(angles: np.ndarray) -> np.ndarray:
    """Convert ZXZ ``(phi, theta, psi)`` to RELION-style ZYZ ``(rot, tilt, psi)``.

    Parameters
    ----------
    angles
        ``(n, 3)`` intrinsic ZXZ Euler angles in degrees.

    Returns
    -------
    np.ndarray
        ``(n, 3)`` intrinsic ZYZ Euler angles in degrees describing the same rotations.
    """
    return _convert_euler(angles, "ZXZ", "ZYZ")


def relion_to_zxz(angles: np.ndarray) -> np.ndarray:
    """Convert RELION-style ZYZ ``(rot, tilt, psi)`` to ZXZ ``(phi, theta, psi)``.

    Parameters
    ----------
    angles
        ``(n, 3)`` intrinsic ZYZ Euler angles in degrees.

    Returns
    -------
    np.ndarray
        ``(n, 3)`` intrinsic ZXZ Euler angles in degrees describing the same rotations.
    """
    return _convert_euler(angles, "ZYZ", "ZXZ")


def _convert_euler(angles: np.ndarray, source: str, target: str) -> np.ndarray:
    values = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    if len(values) == 0:
        return values.copy()
    with warnings.catch_warnings():
        # At theta = 0 or 180 only phi + psi is defined; scipy picks psi = 0 and warns.
        # The rotation matrix is still exact, which is all that matters here.
        warnings.filterwarnings("ignore", message="Gimbal lock", category=UserWarning)
        rotation = Rotation.from_euler(source, values, degrees=True)
        return rotation.as_euler(target, degrees=True)


def write_particles_star(
    path: str | os.PathLike[str], df: pd.DataFrame, voxel_size: float | None = None
) -> Path:
    """Write a particle list as a RELION-style STAR file, atomically.

    One data block ``particles`` with ``rlnCoordinateX/Y/Z`` (voxels),
    ``rlnAngleRot/Tilt/Psi`` (ZYZ degrees, see module docstring), ``rlnClassNumber``
    (1-based, in order of first appearance of each class name), ``fktClassName`` and, when
    ``voxel_size`` is given, ``rlnDetectorPixelSize`` and ``rlnImagePixelSize`` (Å).
    Numbers are written with six decimals.

    Parameters
    ----------
    path
        The output file; its folder must exist.
    df
        Particle list with :data:`COLUMNS`.
    voxel_size
        Voxel size in Å of the volume the coordinates refer to, or None to omit it.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    clean = validate_particles(df, f"cannot write {path}")
    codes, _ = pd.factorize(clean["class_name"])
    relion = zxz_to_relion(clean[["phi", "theta", "psi"]].to_numpy())
    star = pd.DataFrame(clean[["x", "y", "z"]].to_numpy(), columns=_STAR_POSITION)
    star[_STAR_ANGLES] = relion
    star["rlnClassNumber"] = codes + 1
    star["fktClassName"] = clean["class_name"].to_numpy()
    if voxel_size is not None:
        if not np.isfinite(voxel_size) or voxel_size <= 0:
            raise FaketError(f"cannot write {path}: voxel size {voxel_size} Å must be > 0")
        star["rlnDetectorPixelSize"] = float(voxel_size)
        star["rlnImagePixelSize"] = float(voxel_size)
    with atomic_path(path) as tmp:
        starfile.write({"particles": star}, tmp)
    return Path(path)


def read_particles_star(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a particle list from a STAR file.

    Uses the ``particles`` data block (or the only table in the file). Missing angle
    columns mean no rotation; class names come from ``fktClassName``, else from
    ``rlnClassNumber``, else are ``"particle"``.

    Parameters
    ----------
    path
        The STAR file.

    Returns
    -------
    pd.DataFrame
        ``(n_particles, 7)`` particle list with :data:`COLUMNS` (angles converted to ZXZ).
    """
    table = _star_table(existing_file(path, "particle file"))
    missing = [c for c in _STAR_POSITION if c not in table.columns]
    if missing:
        raise FaketError(f"{path}: STAR table lacks {', '.join(missing)}; add the coordinates")
    angles = np.zeros((len(table), 3))
    for i, column in enumerate(_STAR_ANGLES):
        if column in table.columns:
            angles[:, i] = pd.to_numeric(table[column], errors="coerce")
    if "fktClassName" in table.columns:
        names = table["fktClassName"]
    elif "rlnClassNumber" in table.columns:
        names = table["rlnClassNumber"].astype(str)
    else:
        names = pd.Series(["particle"] * len(table))
    df = pd.DataFrame({"class_name": names.to_numpy(dtype=object)})
    df[["x", "y", "z"]] = table[_STAR_POSITION].to_numpy()
    df[["phi", "theta", "psi"]] = relion_to_zxz(angles) if np.isfinite(angles).all() else angles
    return validate_particles(df, path)


def _star_table(file: Path) -> pd.DataFrame:
    try:
        blocks = starfile.read(file, always_dict=True, parse_as_string=["fktClassName"])
    except Exception as err:  # starfile raises assorted types for malformed input
        message = " ".join(str(err).split())
        raise FaketError(f"cannot read {file} as a STAR file ({message}); check the file") from err
    tables = {name: b for name, b in blocks.items() if isinstance(b, pd.DataFrame)}
    if "particles" in tables:
        return tables["particles"]
    if len(tables) == 1:
        return next(iter(tables.values()))
    raise FaketError(f"{file} has no 'particles' table; write it with faket or rename the block")

"""Tilt angles from the files other tools write: IMOD, SerialEM, RELION 5 and PyTom.

:func:`read_angles` picks the reader by suffix:

``.tlt``, ``.rawtlt`` (and any other suffix)
    IMOD: one angle per line (:func:`faket.io.read_tlt`).
``.mdoc``
    SerialEM's metadata of a tilt series (read with :mod:`mdocfile`): the ``TiltAngle``
    of each ``[ZValue = n]`` section, in Z order, which is the order of the images in the
    stack (for a dose-symmetric scheme that is not sorted by angle).
``.star``
    RELION 5 (read with :mod:`starfile`): a tilt-series STAR file (one row per tilt) gives
    ``rlnTomoYTilt`` (the refined tilt) or else ``rlnTomoNominalStageTiltAngle``; a
    ``tomograms.star`` that names exactly one tilt series in ``rlnTomoTiltSeriesStarFile``
    is followed to that file.
``.xml``
    PyTom's projection list: the ``TiltAngle`` attribute of each ``Projection`` element,
    in document order.

Files that hold something else (IMOD ``.xtilt``, ``.xf``, etomo ``.edf``, RELION 4/Warp
projection matrices, several tilt series at once) are refused with a message that says
which file to pass instead.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.io.angles import read_tlt, validate_angles

__all__ = ["ANGLE_SUFFIXES", "read_angles"]

#: Suffixes :func:`read_angles` reads with a format-specific reader.
ANGLE_SUFFIXES = (".tlt", ".rawtlt", ".mdoc", ".star", ".xml")
_NOT_ANGLES = {
    ".xtilt": "an IMOD .xtilt file (tilts about X, all ~0)",
    ".xf": "an IMOD .xf file (in-plane alignment transforms)",
    ".edf": "an etomo .edf settings file",
    ".com": "an IMOD command file",
    ".mrc": "an MRC image file",
    ".mrcs": "an MRC image stack",
    ".em": "an EM image file",
}
_TILT_COLUMNS = ("rlnTomoYTilt", "rlnTomoNominalStageTiltAngle")
_MATRIX_COLUMN = "rlnTomoProjZ"


def read_angles(path: str | os.PathLike[str]) -> np.ndarray:
    """Tilt angles in degrees, one per image of the tilt series, in stack order.

    Parameters
    ----------
    path
        An IMOD ``.tlt``/``.rawtlt``, SerialEM ``.mdoc``, RELION 5 ``.star`` or PyTom
        projection-list ``.xml`` file (see the module docstring).

    Returns
    -------
    np.ndarray
        ``(n_tilts,)`` float64 angles in degrees.

    Raises
    ------
    FaketError
        If the file is missing, of a kind that holds no tilt angles, unreadable, or has
        angles outside ±90°.
    """
    file = Path(path)
    if not file.is_file():
        raise FaketError(f"angle file {file} does not exist; check the path")
    suffix = file.suffix.lower()
    if suffix in _NOT_ANGLES:
        raise FaketError(
            f"{file} is {_NOT_ANGLES[suffix]}, not a list of tilt angles; pass the .tlt "
            "(or .rawtlt, .mdoc) file of the tilt series"
        )
    if suffix == ".mdoc":
        angles = _mdoc_angles(file)
    elif suffix == ".star":
        angles = _star_angles(file)
    elif suffix == ".xml":
        angles = _projection_list_angles(file)
    else:
        return read_tlt(file)
    return validate_angles(angles, str(file))


def _mdoc_angles(file: Path) -> np.ndarray:
    import mdocfile

    try:
        table = mdocfile.read(file)
    except Exception as error:  # noqa: BLE001 - mdocfile raises many types for bad files
        raise FaketError(
            f"cannot read {file} as a SerialEM .mdoc file ({type(error).__name__}); pass the "
            "tilt series' .mdoc or a .tlt file"
        ) from None
    if "TiltAngle" not in table.columns or table["TiltAngle"].isna().all() or table.empty:
        raise FaketError(
            f"{file} has no TiltAngle entries (a montage or frame .mdoc?); pass the tilt "
            "series' .mdoc or a .tlt file"
        )
    if "ZValue" in table.columns:
        table = table.sort_values("ZValue", kind="stable")
    return _numbers(table["TiltAngle"], file, "TiltAngle")


def _star_angles(file: Path) -> np.ndarray:
    import starfile

    try:
        blocks = starfile.read(file, always_dict=True)
    except Exception as error:  # noqa: BLE001 - starfile raises many types for bad files
        raise FaketError(
            f"cannot read {file} as a STAR file ({type(error).__name__}); pass a RELION 5 "
            "tilt-series STAR file or a .tlt file"
        ) from None
    tables = {name: t for name, t in blocks.items() if hasattr(t, "columns")}
    for table in tables.values():
        for column in _TILT_COLUMNS:
            if column in table.columns:
                return _numbers(table[column], file, column)
    for table in tables.values():
        if "rlnTomoTiltSeriesStarFile" in table.columns:
            return _follow_tomograms_table(file, table)
    with_matrices = [name for name, t in tables.items() if _MATRIX_COLUMN in t.columns]
    if with_matrices:
        raise FaketError(
            f"{file} describes {len(with_matrices)} tilt series by RELION 4/Warp projection "
            "matrices, not tilt angles; pass the tilt series' .tlt, .mdoc or RELION 5 "
            "tilt-series STAR file"
        )
    if any("rlnTomoTomogramsFile" in t for t in blocks.values() if isinstance(t, dict)):
        raise FaketError(
            f"{file} is a RELION optimisation set (it only names other files); pass the "
            "tilt-series STAR file of one tomogram"
        )
    raise FaketError(
        f"{file} has no tilt angles (no {' or '.join(_TILT_COLUMNS)} column); pass a RELION "
        "5 tilt-series STAR file or a .tlt file"
    )


def _follow_tomograms_table(file: Path, table) -> np.ndarray:
    names = [str(n) for n in table["rlnTomoTiltSeriesStarFile"]]
    if len(names) != 1:
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise FaketError(
            f"{file} lists {len(names)} tilt series ({shown}); pass the tilt-series STAR "
            "file of the one you mean"
        )
    target = Path(names[0])
    # RELION writes paths relative to its project folder; try that guess and the file's.
    for candidate in (target, file.parent / target, file.parent / target.name):
        if candidate.is_file() and candidate.resolve() != file.resolve():
            return read_angles(candidate)
    raise FaketError(
        f"{file} names the tilt-series STAR file {target}, which does not exist; run from "
        "the RELION project folder or pass that file"
    )


def _projection_list_angles(file: Path) -> np.ndarray:
    try:
        root = ElementTree.parse(file).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise FaketError(
            f"cannot read {file} as XML ({error}); pass a PyTom projection list"
        ) from None
    projections = root.iter("Projection")
    values = [p.get("TiltAngle") for p in projections]
    if not values or any(v is None for v in values):
        raise FaketError(
            f"{file} is not a PyTom projection list (no Projection elements with a TiltAngle); "
            "pass a projection-list .xml or a .tlt file"
        )
    return _numbers(values, file, "TiltAngle")


def _numbers(values, file: Path, what: str) -> np.ndarray:
    try:
        angles = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise FaketError(f"{file}: a {what} value is not a number; fix the file") from None
    return angles

"""Read and write MRC volumes and tilt series.

Arrays are exactly as :mod:`mrcfile` returns them: a volume is ``(Z, Y, X)`` and a tilt
series is ``(n_tilts, Y, X)``. The voxel size in Å is stored in the MRC header.

TOM/PyTom ``.em`` files are read by the same function (see :mod:`faket.io.em`), so every
command that reads MRC also reads EM. Old-style MRC files without the MRC2014 ``'MAP '``
tag (EMDB maps from before 2014, PyTom templates) are read with a warning when their
header and size are consistent; anything else without the tag is refused.

Unsigned 8-bit data follows the IMOD convention: MRC mode 0 is signed by the MRC2014
standard, but IMOD marks unsigned bytes with its header stamp and a cleared "signed" flag.
Reading honours that flag and writing sets it, so ``uint8`` survives a round trip
instead of being widened to ``uint16`` as plain :mod:`mrcfile` does.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt

from faket import __version__
from faket.errors import FaketError
from faket.io._mrcutil import (
    SUPPORTED_DTYPES,
    chunked_stats,
    count_nonfinite,
    imod_unsigned_bytes,
    prepare_for_mrc,
    set_imod_byte_sign,
    update_stats,
)
from faket.io.atomic import atomic_path, check_target
from faket.io.em import EM_SUFFIXES, read_em

__all__ = [
    "SUPPORTED_DTYPES",
    "MrcData",
    "count_nonfinite",
    "format_summary",
    "is_tilt_series",
    "mrc_summary",
    "read_mrc",
    "write_mrc",
]


@dataclass(frozen=True)
class MrcData:
    """Data and voxel size of an MRC file.

    Attributes
    ----------
    data
        The array, ``(Z, Y, X)`` for a volume or ``(n_tilts, Y, X)`` for a tilt series.
    voxel_size
        Isotropic voxel size in Å: the header's X size rounded to 6 significant digits
        (float32 precision), or 0.0 when the header leaves it unset (unknown).
    is_stack
        True when the header marks the file as an image stack (MRC space group 0, MZ = 1,
        more than one section): a tilt series rather than a volume.
    """

    data: np.ndarray
    voxel_size: float
    is_stack: bool = False


def read_mrc(
    path: str | os.PathLike[str],
    *,
    mmap: bool = False,
    allow_nonfinite: bool = False,
    ndim: int | tuple[int, ...] | None = None,
) -> MrcData:
    """Read an MRC file.

    Parameters
    ----------
    path
        The MRC file.
    mmap
        Memory-map the data instead of loading it; the array is then a read-only
        :class:`numpy.memmap` in the file's byte order.
    allow_nonfinite
        Accept NaN/Inf values instead of raising.
    ndim
        Required number of dimensions (e.g. ``3``) or a tuple of accepted ones (``(2, 3)``).

    Returns
    -------
    MrcData
        The array (dtype float16, float32, int8, int16, uint8 or uint16) and voxel size in Å.

    Raises
    ------
    FaketError
        If the file is missing, not an MRC (or ``.em``) file, truncated, empty, has the
        wrong number of dimensions or an unsupported data type, or contains NaN/Inf values.

    Warns
    -----
    RuntimeWarning
        For an old-style MRC file without the 'MAP ' tag, and for anisotropic voxels (the
        X size is used).
    """
    file = _existing_file(path)
    if file.suffix.lower() in EM_SUFFIXES:
        data, voxel_size = read_em(file, mmap)
        stack = False
    else:
        data, voxel_size, stack = _load(file, mmap)
    _check_loaded(file, data, ndim, allow_nonfinite)
    return MrcData(data=data, voxel_size=voxel_size, is_stack=stack)


def _existing_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if not file.exists():
        raise FaketError(f"{file} does not exist; check the path")
    if file.is_dir():
        raise FaketError(f"{file} is a folder, not an MRC file; pass the path of an .mrc file")
    return file


def _load(file: Path, mmap: bool) -> tuple[np.ndarray, float, bool]:
    # mrcfile warns about header quirks it can live with (e.g. an odd machine stamp);
    # pass them on with the file name instead of letting them look like faket's own.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            data, header = _open(file, mmap, permissive=False)
        except ValueError as err:
            if "Map ID string not found" not in str(err):
                raise FaketError(_explain_read_error(file, err)) from err
            data, header = _open_old_style(file, mmap, err)
        except OSError as err:
            raise FaketError(f"cannot read {file}: {err.strerror or err}") from err
    for warning in caught:
        if "Map ID string not found" not in str(warning.message):
            warnings.warn(f"{file}: {_one_line(warning.message)}", RuntimeWarning, stacklevel=3)
    if imod_unsigned_bytes(header) and data.dtype == np.int8:
        data = data.view(np.uint8)
    if not mmap and not data.dtype.isnative:
        # Torch and many numpy routines want native byte order; loaded data is a copy anyway.
        data = data.astype(data.dtype.newbyteorder("="))
    # MRC2014's image stack: space group 0 and one sample per section (MZ = 1). Space
    # group 0 alone is not enough: EMAN2 and old EMDB maps write it for volumes too.
    stack = int(header.ispg) == 0 and int(header.mz) == 1 and data.ndim == 3
    stack = stack and data.shape[0] > 1
    return data, _voxel_size(file, header, stack), stack


def _open(file: Path, mmap: bool, permissive: bool) -> tuple[np.ndarray | None, np.recarray]:
    opener = mrcfile.mmap if mmap else mrcfile.open
    with opener(file, mode="r", permissive=permissive) as mrc:
        # Copy the header: it belongs to the file object, which is closed on return.
        return mrc.data, mrc.header.copy()


def _open_old_style(file: Path, mmap: bool, err: ValueError) -> tuple[np.ndarray, np.recarray]:
    """An MRC file from before MRC2014 (no 'MAP ' tag): accepted if its header adds up."""
    refusal = f"{file} is not an MRC file (no 'MAP ' tag in its header); pass an MRC file"
    try:
        data, header = _open(file, mmap, permissive=True)
    except (ValueError, OSError):
        raise FaketError(refusal) from err
    shape = (int(header.nz), int(header.ny), int(header.nx))
    if data is None or min(shape) < 1:
        raise FaketError(refusal) from err
    expected = 1024 + int(header.nsymbt) + data.nbytes
    if file.stat().st_size != expected:
        raise FaketError(refusal) from err
    # Without the file name: _load adds it when it passes the warnings on.
    warnings.warn(
        "an old-style MRC file (no 'MAP ' tag); reading it anyway, check its voxel size",
        RuntimeWarning,
        stacklevel=4,
    )
    return data, header


def _voxel_size(file: Path, header: np.recarray, stack: bool) -> float:
    """X voxel size in Å, rounded to the ~6 significant digits a float32 header holds."""
    sizes = [_axis_size(float(header.cella[a]), int(header[m])) for a, m in _CELL]
    x, y, z = sizes
    # An image stack's Z "size" is the section spacing, often arbitrary: not compared.
    other = [y] if stack or int(header.nz) == 1 else [y, z]
    if x > 0 and any(s > 0 and abs(s - x) > 1e-3 * x for s in other):
        warnings.warn(
            f"{file}: anisotropic voxel size (X, Y, Z) = ({x:g}, {y:g}, {z:g}) Å; faket "
            f"assumes cubic voxels and uses the X size {x:g} Å; resample the file to cubic "
            "voxels if that is wrong",
            RuntimeWarning,
            stacklevel=4,
        )
    return x


_CELL = (("x", "mx"), ("y", "my"), ("z", "mz"))


def _axis_size(cell: float, samples: int) -> float:
    size = cell / samples if samples > 0 else 0.0
    # Rounding turns 3.4200000762939453 (3.42 after float32 storage) back into 3.42.
    return float(f"{size:.6g}") if np.isfinite(size) and size > 0 else 0.0


def _explain_read_error(file: Path, err: ValueError) -> str:
    message = str(err)
    if "Map ID string not found" in message:
        return f"{file} is not an MRC file (no 'MAP ' tag in its header); pass an MRC file"
    if "enough bytes for MRC header" in message:
        size = file.stat().st_size
        if size == 0:
            return f"{file} is empty (0 bytes); re-create or re-download it"
        return (
            f"{file} is too small ({size} bytes) to be an MRC file; "
            "it is truncated or not an MRC file"
        )
    if "Expected" in message or "mmap length" in message:
        return (
            f"{file} is truncated or corrupt: it holds less data than its header promises; "
            "re-create or re-download it"
        )
    return f"cannot read {file} as MRC ({_one_line(message)}); check that it is a valid MRC file"


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _check_loaded(
    file: Path, data: np.ndarray, ndim: int | tuple[int, ...] | None, allow_nonfinite: bool
) -> None:
    if data.dtype.newbyteorder("=") not in SUPPORTED_DTYPES:
        raise FaketError(
            f"{file} holds {data.dtype.name} data, which faket does not support; "
            "convert it to float32 (e.g. with IMOD newstack -mode 2)"
        )
    if ndim is not None:
        accepted = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if data.ndim not in accepted:
            raise FaketError(
                f"{file}: expected {_describe_ndim(accepted)}, got {data.ndim}-D data of "
                f"shape {tuple(data.shape)}; pass a file of the right kind"
            )
    if 0 in data.shape:
        raise FaketError(
            f"{file} contains no data (shape {tuple(data.shape)}); pass a non-empty file"
        )
    if not allow_nonfinite:
        bad = count_nonfinite(data)
        if bad:
            raise FaketError(
                f"{file} contains {bad} NaN/Inf values; replace them with finite values first"
            )


def _describe_ndim(accepted: tuple[int, ...]) -> str:
    names = {2: "a 2-D image", 3: "a 3-D volume"}
    if len(accepted) == 1:
        return names.get(accepted[0], f"{accepted[0]}-D data")
    return " or ".join(f"{n}-D" for n in accepted) + " data"


def write_mrc(
    path: str | os.PathLike[str],
    data: np.ndarray,
    voxel_size: float,
    *,
    overwrite: bool = True,
    dtype: npt.DTypeLike | None = None,
    stack: bool = False,
) -> Path:
    """Write an array to an MRC file atomically.

    Parameters
    ----------
    path
        The output file; its folder must exist.
    data
        A 2-D image ``(Y, X)`` or 3-D array ``(Z, Y, X)`` / ``(n_tilts, Y, X)``.
    voxel_size
        Isotropic voxel size in Å, stored in the header; 0 means unknown (as MRC readers
        take it).
    overwrite
        If False, raise when ``path`` exists.
    dtype
        Data type in the file. By default floating data is stored as float32 (float16 stays
        float16), bool as int8, int8/int16/uint8/uint16 keep their type, and other integer
        types become int16 when their values fit. Floats cast to an integer type are rounded.
    stack
        Mark 3-D data as an image stack (a tilt series, MRC space group 0) rather than a
        volume, so that readers (and ``faket info``) know its first axis is the tilt.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    FaketError
        For NaN/Inf or empty data, a negative voxel size, an unsupported data type or
        values out of its range, a missing folder, or an existing file with
        ``overwrite=False``.
    """
    target = check_target(path, overwrite=overwrite)
    voxel_size = float(voxel_size)
    if not np.isfinite(voxel_size) or voxel_size < 0:
        raise FaketError(
            f"cannot write {target}: voxel size {voxel_size} Å must be > 0 (or 0 for unknown)"
        )
    array = prepare_for_mrc(target, np.asarray(data), dtype)
    with atomic_path(target, overwrite=overwrite) as tmp, mrcfile.new(tmp) as mrc:
        if array.dtype == np.uint8:
            mrc.set_data(array.view(np.int8))
            set_imod_byte_sign(mrc.header, signed=False)
        else:
            mrc.set_data(array)
            if array.dtype == np.int8:
                set_imod_byte_sign(mrc.header, signed=True)
        if stack and array.ndim == 3:
            mrc.set_image_stack()
        mrc.voxel_size = voxel_size
        update_stats(mrc.header, array)
        # mrcfile stamps the time into label 1; a fixed label makes equal data give
        # byte-identical files (reproducible, comparable runs).
        mrc.header.label[0] = f"faket {__version__}".ljust(80).encode("ascii")
        mrc.header.nlabl = 1
    return target


def mrc_summary(path: str | os.PathLike[str]) -> dict:
    """Summarise an MRC file without loading it into memory.

    Parameters
    ----------
    path
        The MRC file.

    Returns
    -------
    dict
        ``shape`` (tuple), ``dtype`` (str), ``voxel_size`` (Å), ``min``, ``max``, ``mean``
        and ``std`` (population standard deviation) over the finite values (NaN if there
        are none), ``n_nonfinite`` and ``tilt_series`` (bool, see
        :func:`is_tilt_series`).
    """
    mrc = read_mrc(path, mmap=True, allow_nonfinite=True)
    stats = chunked_stats(mrc.data)
    return {
        "shape": tuple(int(n) for n in mrc.data.shape),
        "dtype": mrc.data.dtype.name,
        "voxel_size": mrc.voxel_size,
        "tilt_series": is_tilt_series(path, mrc),
        **stats,
    }


#: Suffixes that IMOD, RELION and Warp give tilt series and image stacks.
STACK_SUFFIXES = (".mrcs", ".st", ".ali", ".preali")


def is_tilt_series(path: str | os.PathLike[str], mrc: MrcData) -> bool:
    """Whether a 3-D file holds a tilt series ``(n_tilts, Y, X)`` rather than a volume.

    True when the header marks an image stack, the suffix is a stack's (``.mrcs``,
    ``.st``, ``.ali``, ``.preali``), or an angle file ``NAME.tlt``/``NAME.rawtlt`` beside
    it has one line per section.
    """
    if mrc.data.ndim != 3:
        return False
    file = Path(path)
    if mrc.is_stack or file.suffix.lower() in STACK_SUFFIXES:
        return True
    for suffix in (".tlt", ".rawtlt"):
        beside = file.with_suffix(suffix)
        try:
            lines = [line for line in beside.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError):
            continue
        if len(lines) == mrc.data.shape[0]:
            return True
    return False


def format_summary(summary: dict, path: str | os.PathLike[str]) -> str:
    """Format a :func:`mrc_summary` result as human-readable lines.

    Parameters
    ----------
    summary
        The dict returned by :func:`mrc_summary`.
    path
        The file the summary describes (shown in the first line).

    Returns
    -------
    str
        Several lines of text without a trailing newline.
    """
    shape = summary["shape"]
    tilts = bool(summary.get("tilt_series"))
    axes = "(Y, X)" if len(shape) == 2 else "(n_tilts, Y, X)" if tilts else "(Z, Y, X)"
    vs = summary["voxel_size"]
    lines = [
        f"File:        {path}",
        f"Shape:       {' x '.join(str(n) for n in shape)}  {axes}",
        f"Data type:   {summary['dtype']}",
        f"Voxel size:  {vs:g} Å"
        + ("" if vs > 0 else "  (unknown: not set in the header; commands take --voxel-size)"),
    ]
    if vs > 0:
        sides = shape[1:] if tilts else shape
        what = "  (each tilt)" if tilts else ""
        lines.append(f"Extent:      {' x '.join(f'{n * vs:g}' for n in sides)} Å{what}")
    lines += [
        f"Min / max:   {summary['min']:.6g} / {summary['max']:.6g}",
        f"Mean ± std:  {summary['mean']:.6g} ± {summary['std']:.6g}",
        f"NaN/Inf:     {summary['n_nonfinite']}",
    ]
    return "\n".join(lines)

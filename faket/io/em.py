"""Reading TOM/PyTom ``.em`` files (the EM format of the TOM toolbox) with :mod:`emfile`.

An EM file is a 512-byte header (machine stamp, data type, X/Y/Z sizes, a comment and 40
integer parameters) followed by the raw data, X fastest. Parameter 7 holds the object
pixel size in Å x 1000 (0 when unset). :mod:`emfile` reads files written on a PC
(little-endian, machine stamp 6), which is what TOM, PyTom and emfile itself write; other
stamps are refused with a message rather than read as garbage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faket.errors import FaketError

__all__ = ["EM_SUFFIXES", "read_em"]

EM_SUFFIXES = (".em",)
_HEADER_BYTES = 512
_LITTLE_ENDIAN_STAMP = 6
_MACHINES = {0: "OS-9", 1: "VAX", 2: "Convex", 3: "SGI", 4: "Sun", 5: "Mac"}
#: EM data-type codes and the numpy types faket keeps them as (wider ones become float32).
_TYPES = {1: np.int8, 2: np.int16, 4: np.int32, 5: np.float32, 9: np.float64}
_COMPLEX = (8, 10)


def read_em(file: Path, mmap: bool = False) -> tuple[np.ndarray, float]:
    """Data and pixel size of an EM file.

    Parameters
    ----------
    file
        An existing ``.em`` file.
    mmap
        Memory-map float32/int16/int8 data instead of loading it (read-only).

    Returns
    -------
    data
        ``(Z, Y, X)`` array, or ``(Y, X)`` for a single image; int32 and float64 data
        become float32.
    voxel_size
        Object pixel size in Å from the header, 0.0 when unset.

    Raises
    ------
    FaketError
        For files that are too short, not little-endian EM files, complex, or truncated.
    """
    import emfile

    size = file.stat().st_size
    if size < _HEADER_BYTES:
        raise FaketError(
            f"{file} is too small ({size} bytes) to be an EM file; it is truncated or not "
            "an EM file"
        )
    header, _ = emfile.read(file, header_only=True)
    machine, code = int(header["machine"]), int(header["dtype"])
    shape = (int(header["zdim"]), int(header["ydim"]), int(header["xdim"]))
    if machine in _MACHINES:
        raise FaketError(
            f"{file} is a big-endian EM file ({_MACHINES[machine]}); faket reads PC "
            "(little-endian) EM files: convert it to MRC, e.g. with EMAN2 e2proc3d.py"
        )
    if machine != _LITTLE_ENDIAN_STAMP or code not in (*_TYPES, *_COMPLEX) or min(shape) < 1:
        raise FaketError(
            f"{file} is not an EM file (unknown machine stamp {machine} or data type {code}); "
            "pass a TOM/PyTom .em file or an MRC file"
        )
    if code in _COMPLEX:
        raise FaketError(f"{file} holds complex data; faket reads real images and volumes")
    dtype = np.dtype(_TYPES[code])
    expected = _HEADER_BYTES + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < expected:
        raise FaketError(
            f"{file} is truncated or corrupt: it holds less data than its header promises; "
            "re-create or re-download it"
        )
    keep_mapped = mmap and dtype in (np.float32, np.int16, np.int8)
    _, data = emfile.read(file, mmap=keep_mapped)
    if not keep_mapped:
        data = np.asarray(data)
        if dtype in (np.int32, np.float64):
            data = data.astype(np.float32)
    if shape[0] == 1:
        data = data[0]  # a single image is 2-D, as mrcfile returns it
    return data, _pixel_size(header)


def _pixel_size(header: dict) -> float:
    value = int(header.get("OBJ", 0))
    return float(f"{value / 1000.0:.6g}") if value > 0 else 0.0

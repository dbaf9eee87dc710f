"""Low-level helpers for :mod:`faket.io.mrc`: dtypes, chunked scans, IMOD header flags,
resident pages of memory maps."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faket.errors import FaketError

SUPPORTED_DTYPES = tuple(
    np.dtype(t) for t in (np.float16, np.float32, np.int8, np.int16, np.uint8, np.uint16)
)

_IMOD_STAMP = 1146047817  # the bytes "IMOD" read as a little-endian int32
_IMOD_WORD = 10  # imodStamp sits at byte 152 = 112 (start of header.extra2) + 4 * 10
_CHUNK_BYTES = 64 * 2**20  # bounds memory for chunked scans of memory-mapped data


def _mapping(array: object) -> mmap.mmap | None:
    """The :class:`mmap.mmap` behind a (view of a) :class:`numpy.memmap`, else None."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release_pages(array: object) -> None:
    """Drop the resident pages of the memory map behind ``array`` (no-op for plain arrays).

    The mapping stays valid: a later access reads the pages back from the page cache or
    the file. Writable maps are flushed first, so nothing written is lost.

    Parameters
    ----------
    array : ndarray
        A :class:`numpy.memmap` or a view of one; anything else is left alone.
    """
    mapping = _mapping(array)
    if mapping is None or not hasattr(mapping, "madvise") or mapping.closed:
        return
    try:
        mapping.flush()
    except (OSError, ValueError, TypeError):  # read-only maps need no flush
        pass
    try:
        mapping.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # e.g. a platform without the advice: pages stay
        pass


def row_chunks(data: np.ndarray, itemsize: int | None = None) -> Iterator[np.ndarray]:
    """Yield slabs along axis 0 of at most ~64 MiB each (counting ``itemsize`` per value)."""
    if data.ndim == 0 or data.shape[0] == 0:
        yield data
        return
    row_bytes = max(1, int(np.prod(data.shape[1:])) * (itemsize or data.itemsize))
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, data.shape[0], step):
        yield data[start : start + step]


def count_nonfinite(data: np.ndarray) -> int:
    """Count NaN/Inf values slab by slab, so memory-mapped files stay out of RAM.

    Parameters
    ----------
    data
        Any array; integer arrays have no non-finite values.

    Returns
    -------
    int
        The number of NaN, +Inf and -Inf values.
    """
    if not np.issubdtype(data.dtype, np.inexact):
        return 0
    total = 0
    for chunk in row_chunks(data):
        total += int(np.count_nonzero(~np.isfinite(chunk)))
        release_pages(chunk)
    return total


def imod_unsigned_bytes(header: np.recarray) -> bool:
    """True for mode-0 files that IMOD marked as holding unsigned bytes."""
    if int(header.mode) != 0:
        return False
    words = np.frombuffer(bytes(header.extra2), dtype=header.dtype["nx"])
    return int(words[_IMOD_WORD]) == _IMOD_STAMP and not int(words[_IMOD_WORD + 1]) & 1


def set_imod_byte_sign(header: np.recarray, *, signed: bool) -> None:
    raw = bytearray(bytes(header.extra2))
    offset = 4 * _IMOD_WORD
    words = np.array([_IMOD_STAMP, int(signed)], dtype=header.dtype["nx"])
    raw[offset : offset + 8] = words.tobytes()
    header.extra2 = bytes(raw)


def update_stats(header: np.recarray, data: np.ndarray) -> None:
    # Computed here rather than with mrc.update_header_stats() because uint8 data is
    # handed to mrcfile as an int8 view, whose statistics would be wrong.
    header.dmin = data.min()
    header.dmax = data.max()
    header.dmean = data.mean(dtype=np.float64)
    header.rms = data.std(dtype=np.float64)


def chunked_stats(data: np.ndarray) -> dict:
    """Min, max, mean, std of the finite values and the NaN/Inf count, slab by slab."""
    # Chan et al.'s pairwise update of count, mean and sum of squared deviations: stable
    # in float64 even when the mean is large compared with the spread.
    n, mean, m2 = 0, 0.0, 0.0
    lo, hi, nonfinite = np.inf, -np.inf, 0
    for chunk in row_chunks(data, itemsize=8):
        values = np.asarray(chunk, dtype=np.float64).ravel()
        release_pages(chunk)
        finite = np.isfinite(values)
        nonfinite += int(values.size - np.count_nonzero(finite))
        values = values[finite]
        if values.size == 0:
            continue
        k, chunk_mean = values.size, float(values.mean())
        chunk_m2 = float(np.sum((values - chunk_mean) ** 2))
        delta, total = chunk_mean - mean, n + k
        mean += delta * k / total
        m2 += chunk_m2 + delta**2 * n * k / total
        n = total
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    if n == 0:
        nan = float("nan")
        return {"min": nan, "max": nan, "mean": nan, "std": nan, "n_nonfinite": nonfinite}
    std = float(np.sqrt(m2 / n))
    return {"min": lo, "max": hi, "mean": mean, "std": std, "n_nonfinite": nonfinite}


def prepare_for_mrc(target: Path, data: np.ndarray, dtype: npt.DTypeLike | None) -> np.ndarray:
    """Validate ``data`` for ``target`` and cast it to the dtype it will have in the file."""
    if data.ndim not in (2, 3):
        raise FaketError(f"cannot write {target}: expected 2-D or 3-D data, got shape {data.shape}")
    if 0 in data.shape:
        raise FaketError(f"cannot write {target}: the data is empty (shape {data.shape})")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool) or np.iscomplexobj(data):
        raise FaketError(f"cannot write {target}: {data.dtype} data cannot be stored in MRC")
    if count_nonfinite(data):
        raise FaketError(f"cannot write {target}: the data contains NaN/Inf values")
    out = np.dtype(dtype) if dtype is not None else _default_dtype(target, data)
    if out not in SUPPORTED_DTYPES:
        names = ", ".join(t.name for t in SUPPORTED_DTYPES)
        raise FaketError(f"cannot write {target}: dtype {out} is not one of {names}")
    if np.issubdtype(out, np.integer):
        return _to_integer(target, data, out)
    with np.errstate(over="ignore"):  # overflow is detected just below, with a clear message
        cast = data.astype(out, copy=False)
    if count_nonfinite(cast):
        raise FaketError(f"cannot write {target}: values overflow {out.name}; rescale the data")
    return cast


def _default_dtype(target: Path, data: np.ndarray) -> np.dtype:
    if data.dtype == bool:
        return np.dtype(np.int8)
    if np.issubdtype(data.dtype, np.floating):
        return np.dtype(np.float16 if data.dtype == np.float16 else np.float32)
    native = data.dtype.newbyteorder("=")
    return native if native in SUPPORTED_DTYPES else np.dtype(np.int16)


def _to_integer(target: Path, data: np.ndarray, out: np.dtype) -> np.ndarray:
    info = np.iinfo(out)
    lo, hi = data.min(), data.max()
    if lo < info.min or hi > info.max:
        raise FaketError(
            f"cannot write {target}: values {lo}..{hi} do not fit {out.name} "
            f"({info.min}..{info.max}); pass dtype=np.float32 or rescale the data"
        )
    if np.issubdtype(data.dtype, np.floating):
        data = np.rint(data)
    return data.astype(out, copy=False)

"""Weighted (filtered) back-projection of a tilt series into a volume."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from faket.device import CPU_GATHER_BYTES, chunk_size, memory_budget, select_device
from faket.errors import FaketError
from faket.io import release_pages
from faket.progress import progress as progress_bar
from faket.tomography._checks import check_angles, check_array, check_positive_int
from faket.tomography.binning import bin_array
from faket.tomography.filters import FILTERS, filter_response, padded_length, shrec_filter
from faket.tomography.geometry import backprojection_matrix


def filter_tilt_series(
    tilt_series: np.ndarray,
    filter_name: str = "ramp",
    crowther: float | None = None,
    device: str | torch.device = "auto",
    memory_budget_bytes: int | None = None,
    *,
    pre_binning: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Apply a reconstruction filter to every image of a tilt series.

    1-D filters act along the detector axis (X) on rows zero-padded to
    :func:`~faket.tomography.filters.padded_length`; ``"shrec"`` is the
    paper's 2-D filter, applied with an unpadded 2-D FFT as its reference
    code does. Works on blocks of tilts, so a memory-mapped input is never
    resident as a whole.

    Parameters
    ----------
    tilt_series : array, shape (n_tilts, Y, X)
    filter_name : str
        One of :data:`faket.tomography.filters.FILTERS`.
    crowther : float, optional
        Crowther frequency as a fraction of Nyquist (1-D filters only).
    device, memory_budget_bytes
        As in :func:`reconstruct`.
    pre_binning : int
        Average ``n x n`` pixel blocks of each tilt first (and divide the filtered
        result by ``n``, the binned pixel length).
    out : array, shape (n_tilts, Y // n, X // n), optional
        Where to write the result (e.g. a memory-mapped file).

    Returns
    -------
    array, shape (n_tilts, Y // n, X // n), float32
    """
    if filter_name not in FILTERS:
        raise FaketError(f"unknown filter {filter_name!r}; choose one of {', '.join(FILTERS)}")
    dev = select_device(device)
    n_tilts = tilt_series.shape[0]
    _check_binnable(tilt_series.shape, pre_binning)
    n_y, n_det = (n // pre_binning for n in tilt_series.shape[1:])
    if filter_name == "shrec":
        if crowther is not None:
            raise FaketError("the shrec filter has its own Crowther frequency; drop --crowther")
        response = torch.as_tensor(shrec_filter(n_y, n_det), dtype=torch.float32, device=dev)
        per_tilt = 16 * n_y * n_det  # complex64 spectrum + real copies
    elif filter_name != "none":
        n_fft = padded_length(n_det)
        full = filter_response(filter_name, n_fft, crowther)
        response = torch.as_tensor(full[: n_fft // 2 + 1], dtype=torch.float32, device=dev)
        per_tilt = 16 * n_y * n_fft
    else:
        per_tilt = 8 * n_y * n_det
    per_tilt += 4 * n_y * n_det * pre_binning**2
    tilts = chunk_size(per_tilt, n_tilts, memory_budget(dev, memory_budget_bytes))
    filtered = np.empty((n_tilts, n_y, n_det), dtype=np.float32) if out is None else out
    for start in range(0, n_tilts, tilts):
        raw = np.array(tilt_series[start : start + tilts], dtype=np.float32)
        release_pages(tilt_series)
        block = torch.from_numpy(bin_array(raw, pre_binning, axes=(1, 2))).to(dev)
        if filter_name == "shrec":
            block = torch.fft.ifft2(torch.fft.fft2(block) * response).real
        elif filter_name != "none":
            spectrum = torch.fft.rfft(block, n=n_fft, dim=-1) * response
            block = torch.fft.irfft(spectrum, n=n_fft, dim=-1)[..., :n_det]
        if pre_binning > 1:
            block /= pre_binning
        filtered[start : start + tilts] = block.cpu().numpy()
        release_pages(filtered)
    return filtered


def reconstruction_shape(
    tilt_shape: tuple[int, int, int],
    *,
    thickness: int | None = None,
    pre_binning: int = 1,
    z_valid: tuple[int, int] | None = None,
    post_binning: int = 1,
) -> tuple[int, int, int]:
    """Shape ``(Z, Y, X)`` of :func:`reconstruct`'s result for these arguments."""
    pre_binning = check_positive_int(pre_binning, "pre-binning")
    factor = check_positive_int(post_binning, "post-binning")
    _check_binnable(tilt_shape, pre_binning)
    n_y, n_det = (n // pre_binning for n in tilt_shape[1:])
    n_z = check_positive_int(thickness if thickness is not None else n_det, "thickness")
    z_start, z_stop = _check_z_valid(z_valid, n_z)
    for size, name in (
        (z_stop - z_start, "valid Z range"),
        (n_y, "Y axis"),
        (n_det, "detector width"),
    ):
        if size < factor:
            raise FaketError(f"cannot post-bin a {name} of {size} voxels by {factor}; bin less")
    return ((z_stop - z_start) // factor, n_y // factor, n_det // factor)


def reconstruct(
    tilt_series: np.ndarray,
    angles_deg,
    *,
    thickness: int | None = None,
    filter_name: str = "ramp",
    crowther: float | None = None,
    pre_binning: int = 1,
    z_valid: tuple[int, int] | None = None,
    post_binning: int = 1,
    device: str | torch.device = "auto",
    memory_budget_bytes: int | None = None,
    progress: bool = False,
    out: np.ndarray | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Weighted back-projection of a tilt series (rotation about Y) into a volume.

    Steps: optional pre-binning of the projections, filtering
    (:func:`filter_tilt_series`), back-projection of every XZ slice with one
    sparse operator applied to chunks of Y rows, cropping to the valid Z
    range, optional post-binning. The geometry matches
    :func:`faket.tomography.project`, so ``reconstruct(project(v))``
    approximates ``v`` in place and in value (with full angular coverage).

    Detector-sized series stay in bounded memory: a filtered series larger than
    :data:`FILTERED_IN_MEMORY` chunks goes to a temporary memory-mapped file, an
    operator larger than one chunk budget is built and applied in blocks of Z slices,
    and ``out`` (e.g. a memory-mapped output file) receives the volume chunk by chunk.

    Parameters
    ----------
    tilt_series : array, shape (n_tilts, Y, X)
        Projections (line integrals); may be memory-mapped.
    angles_deg : array, shape (n_tilts,)
        Tilt angles in degrees.
    thickness : int, optional
        Number of Z slices to reconstruct, in (pre-binned) pixels, centred on
        the tilt axis. Default: the (pre-binned) detector width.
    filter_name : str
        ``ramp``, ``shepp-logan``, ``cosine``, ``hamming``, ``hann``, ``shrec``
        or ``none`` (plain back-projection).
    crowther : float, optional
        Crowther frequency as a fraction of Nyquist for the 1-D filters.
    pre_binning : int
        Average ``n x n`` pixel blocks of the projections first.
    z_valid : (start, stop), optional
        Keep Z slices ``start:stop`` of the reconstruction (before post-binning).
    post_binning : int
        Average ``n x n x n`` voxel blocks of the result.
    device, memory_budget_bytes, progress
        Compute device, working memory per chunk (bytes), progress bar.
    out : array, optional
        Writable array of :func:`reconstruction_shape` to fill (float32).
    scratch_dir : path, optional
        Folder of the temporary filtered series (default: the system's temp folder).

    Returns
    -------
    array, shape (Z', Y', X'), float32
        The reconstruction in the units of the projected volume (the
        line integrals are divided by the pre-binned pixel length); ``out`` if given.
    """
    tilt_series = check_array(tilt_series, 3, "tilt series")
    angles = check_angles(angles_deg, tilt_series.shape[0])
    shape = reconstruction_shape(
        tilt_series.shape,
        thickness=thickness,
        pre_binning=pre_binning,
        z_valid=z_valid,
        post_binning=post_binning,
    )
    factor = post_binning
    n_tilts, n_y, n_det = tilt_series.shape[0], *(n // pre_binning for n in tilt_series.shape[1:])
    n_z = thickness if thickness is not None else n_det
    z_start, _ = _check_z_valid(z_valid, n_z)
    z_stop = z_start + shape[0] * factor
    n_y_used = shape[1] * factor
    dev = select_device(device)
    budget = memory_budget(dev, memory_budget_bytes)
    if out is not None and tuple(out.shape) != shape:
        raise FaketError(f"the output array has shape {tuple(out.shape)}, not {shape}")
    volume = np.empty(shape, dtype=np.float32) if out is None else out
    with _filtered_buffer((n_tilts, n_y, n_det), budget, scratch_dir) as buffer:
        filtered = filter_tilt_series(
            tilt_series, filter_name, crowther, dev, memory_budget_bytes,
            pre_binning=pre_binning, out=buffer,
        )  # fmt: skip
        # Per Y row: the sinogram columns in, the slice out (twice: the product and its view).
        bytes_per_row = 4 * (2 * n_tilts * n_det + 2 * (z_stop - z_start) * n_det)
        rows = chunk_size(bytes_per_row, n_y_used, budget)
        if dev.type == "cpu":
            # Keep the gathered sinogram block in cache (see faket.device.CPU_GATHER_BYTES).
            rows = min(rows, max(4, CPU_GATHER_BYTES // (4 * n_tilts * n_det)))
        rows = max(factor, rows // factor * factor)
        blocks = _z_blocks(z_start, z_stop, factor, n_det * 2 * n_tilts * 8, budget)
        starts = [(z, y) for z in blocks for y in range(0, n_y_used, rows)]
        for (z0, z1), start in progress_bar(
            starts, "back-projecting", total=len(starts), enabled=progress
        ):
            operator = backprojection_matrix((n_z, n_det), angles, n_det, dev, (z0, z1))
            stop = min(start + rows, n_y_used)
            # (n_tilts, y, X) -> (n_tilts, X, y) -> (n_tilts * X, y): the operator's columns.
            block = np.ascontiguousarray(np.swapaxes(filtered[:, start:stop, :], 1, 2))
            release_pages(filtered)
            columns = torch.from_numpy(block).to(dev).reshape(n_tilts * n_det, stop - start)
            slices = (operator @ columns).reshape(z1 - z0, n_det, stop - start)
            del block, columns
            slices = bin_array(slices.permute(0, 2, 1), factor, axes=(0, 1, 2))
            zs = slice((z0 - z_start) // factor, (z1 - z_start) // factor)
            volume[zs, start // factor : stop // factor, :] = slices.cpu().numpy()
            release_pages(volume)
    return volume


#: Filtered tilt series up to this many chunk budgets stay in memory; larger ones go
#: to a temporary memory-mapped file.
FILTERED_IN_MEMORY = 4


@contextmanager
def _filtered_buffer(shape, budget: int, folder) -> Iterator[np.ndarray | None]:
    """None (filter into memory), or a temporary memory-mapped float32 array."""
    if 4 * int(np.prod(shape)) <= FILTERED_IN_MEMORY * budget:
        yield None
        return
    with tempfile.TemporaryFile(dir=folder, prefix=".faket-filtered-") as handle:
        mapped = np.memmap(handle, dtype=np.float32, mode="w+", shape=shape)
        try:
            yield mapped
        finally:
            del mapped


def _z_blocks(z_start, z_stop, factor, bytes_per_z, budget) -> list[tuple[int, int]]:
    """Blocks of Z slices whose operators fit ``budget`` (multiples of ``factor``)."""
    per_block = max(factor, (budget // max(1, bytes_per_z)) // factor * factor)
    return [(z, min(z + per_block, z_stop)) for z in range(z_start, z_stop, per_block)]


def _check_binnable(shape, factor: int) -> None:
    for n in shape[1:]:
        if n < factor:
            raise FaketError(f"cannot bin an axis of {n} samples by {factor}; bin less")


def _check_z_valid(z_valid: tuple[int, int] | None, n_z: int) -> tuple[int, int]:
    if z_valid is None:
        return 0, n_z
    start, stop = (int(v) for v in z_valid)
    if not 0 <= start < stop <= n_z:
        raise FaketError(
            f"valid Z range {start}:{stop} is outside the reconstruction's 0:{n_z}; "
            "choose 0 <= start < stop <= thickness"
        )
    return start, stop

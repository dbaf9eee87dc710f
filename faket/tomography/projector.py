"""Parallel-beam projection of a volume into a tilt series."""

from __future__ import annotations

import numpy as np
import torch

from faket.device import CPU_GATHER_BYTES, chunk_size, memory_budget, select_device
from faket.progress import progress as progress_bar
from faket.tomography._checks import (
    check_angles,
    check_array,
    check_finite,
    check_positive_int,
)
from faket.tomography.binning import bin_array
from faket.tomography.geometry import projection_blocks

#: Y rows per CPU chunk: enough columns for the sparse kernel to vectorise over.
CPU_ROWS = 32


def project(
    volume: np.ndarray,
    angles_deg,
    *,
    detector_width: int | None = None,
    negate: bool = False,
    binning: int = 1,
    device: str | torch.device = "auto",
    memory_budget_bytes: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Tilt series of line integrals through a volume tilted about the Y axis.

    Every XZ slice is Radon-transformed with the same sparse operator
    (:func:`faket.tomography.geometry.projection_matrix`, Joseph's method),
    applied to many Y rows at once; Y is processed in chunks that fit the
    memory budget, so the volume may be a memory-mapped file.

    Parameters
    ----------
    volume : array, shape (Z, Y, X)
        The specimen (e.g. electrostatic potential), any real dtype.
    angles_deg : array, shape (n_tilts,)
        Tilt angles in degrees; 0 looks straight down Z.
    detector_width : int, optional
        Detector width in pixels (pixel = voxel). The whole volume is measured
        and the central ``detector_width`` pixels kept, as SHREC does (a
        detector wider than the volume sees zeros at the edges). Default: X.
    negate : bool
        Return ``-line integral`` (the paper's convention: dense particles dark).
    binning : int
        Average ``binning x binning`` blocks of the projections (Y and detector).
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    memory_budget_bytes : int, optional
        Working memory per chunk (default: 512 MB on CPU, half the free GPU memory).
        On the CPU chunks are further cut to cache-sized tiles (:data:`CPU_ROWS` rows,
        :data:`faket.device.CPU_GATHER_BYTES`), which is several times faster.
    progress : bool
        Draw a progress bar over the chunks.

    Returns
    -------
    array, shape (n_tilts, Y // binning, detector_width // binning), float32
        Line integrals in units of (value x voxel length).
    """
    volume = check_array(volume, 3, "volume")
    angles = check_angles(angles_deg)
    n_z, n_y, n_x = volume.shape
    n_det = check_positive_int(
        detector_width if detector_width is not None else n_x, "detector width"
    )
    binning = check_positive_int(binning, "binning")
    dev = select_device(device)
    # Per Y row: one input column (n_z * n_x) and one output column (n_tilts * n_det).
    bytes_per_row = 4 * (n_z * n_x + angles.size * n_det)
    rows = chunk_size(bytes_per_row, n_y, memory_budget(dev, memory_budget_bytes))
    z_block = n_z
    if dev.type == "cpu":
        # Cache-sized tiles: a few dozen Y columns, gathered from slabs of a few Z rows.
        rows = min(rows, CPU_ROWS)
        z_block = max(1, CPU_GATHER_BYTES // (4 * n_x * rows))
    blocks = projection_blocks((n_z, n_x), angles, n_det, dev, z_block)
    tilt_series = np.empty((angles.size, n_y, n_det), dtype=np.float32)
    starts = range(0, n_y, rows)
    for start in progress_bar(starts, "projecting", total=len(starts), enabled=progress):
        stop = min(start + rows, n_y)
        # One copy, straight into the operator's layout: (Z, X, y) -> (Z * X, y) columns.
        block = np.ascontiguousarray(np.swapaxes(volume[:, start:stop, :], 1, 2), np.float32)
        check_finite(block, "volume")
        columns = torch.from_numpy(block).to(dev).reshape(n_z * n_x, stop - start)
        sinograms = None
        for z_start, z_stop, operator in blocks:
            part = operator @ columns[z_start * n_x : z_stop * n_x]
            sinograms = part if sinograms is None else sinograms.add_(part)
        sinograms = sinograms.reshape(angles.size, n_det, stop - start)
        tilt_series[:, start:stop, :] = sinograms.cpu().numpy().transpose(0, 2, 1)
    if negate:
        np.negative(tilt_series, out=tilt_series)
    return bin_array(tilt_series, binning, axes=(1, 2))

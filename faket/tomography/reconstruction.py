"""Weighted (filtered) back-projection of a tilt series into a volume."""

from __future__ import annotations

import numpy as np
import torch

from faket.device import CPU_GATHER_BYTES, chunk_size, memory_budget, select_device
from faket.errors import FaketError
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
) -> np.ndarray:
    """Apply a reconstruction filter to every image of a tilt series.

    1-D filters act along the detector axis (X) on rows zero-padded to
    :func:`~faket.tomography.filters.padded_length`; ``"shrec"`` is the
    paper's 2-D filter, applied with an unpadded 2-D FFT as its reference
    code does.

    Parameters
    ----------
    tilt_series : array, shape (n_tilts, Y, X)
    filter_name : str
        One of :data:`faket.tomography.filters.FILTERS`.
    crowther : float, optional
        Crowther frequency as a fraction of Nyquist (1-D filters only).
    device, memory_budget_bytes
        As in :func:`reconstruct`.

    Returns
    -------
    array, shape (n_tilts, Y, X), float32
    """
    if filter_name not in FILTERS:
        raise FaketError(f"unknown filter {filter_name!r}; choose one of {', '.join(FILTERS)}")
    if filter_name == "none":
        return np.array(tilt_series, dtype=np.float32)
    dev = select_device(device)
    n_tilts, n_y, n_det = tilt_series.shape
    if filter_name == "shrec":
        if crowther is not None:
            raise FaketError("the shrec filter has its own Crowther frequency; drop --crowther")
        response = torch.as_tensor(shrec_filter(n_y, n_det), dtype=torch.float32, device=dev)
        per_tilt = 16 * n_y * n_det  # complex64 spectrum + real copies
    else:
        n_fft = padded_length(n_det)
        full = filter_response(filter_name, n_fft, crowther)
        response = torch.as_tensor(full[: n_fft // 2 + 1], dtype=torch.float32, device=dev)
        per_tilt = 16 * n_y * n_fft
    tilts = chunk_size(per_tilt, n_tilts, memory_budget(dev, memory_budget_bytes))
    filtered = np.empty((n_tilts, n_y, n_det), dtype=np.float32)
    for start in range(0, n_tilts, tilts):
        block = torch.from_numpy(np.array(tilt_series[start : start + tilts], dtype=np.float32))
        block = block.to(dev, torch.float32)
        if filter_name == "shrec":
            out = torch.fft.ifft2(torch.fft.fft2(block) * response).real
        else:
            spectrum = torch.fft.rfft(block, n=n_fft, dim=-1) * response
            out = torch.fft.irfft(spectrum, n=n_fft, dim=-1)[..., :n_det]
        filtered[start : start + tilts] = out.cpu().numpy()
    return filtered


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
) -> np.ndarray:
    """Weighted back-projection of a tilt series (rotation about Y) into a volume.

    Steps: optional pre-binning of the projections, filtering
    (:func:`filter_tilt_series`), back-projection of every XZ slice with one
    sparse operator applied to chunks of Y rows, cropping to the valid Z
    range, optional post-binning. The geometry matches
    :func:`faket.tomography.project`, so ``reconstruct(project(v))``
    approximates ``v`` in place and in value (with full angular coverage).

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

    Returns
    -------
    array, shape (Z', Y', X'), float32
        The reconstruction in the units of the projected volume (the
        line integrals are divided by the pre-binned pixel length).
    """
    tilt_series = check_array(tilt_series, 3, "tilt series")
    angles = check_angles(angles_deg, tilt_series.shape[0])
    pre_binning = check_positive_int(pre_binning, "pre-binning")
    post_binning = check_positive_int(post_binning, "post-binning")
    binned = bin_array(np.asarray(tilt_series, dtype=np.float32), pre_binning, axes=(1, 2))
    n_tilts, n_y, n_det = binned.shape
    n_z = check_positive_int(thickness if thickness is not None else n_det, "thickness")
    z_start, z_stop = _check_z_valid(z_valid, n_z)
    dev = select_device(device)
    filtered = filter_tilt_series(binned, filter_name, crowther, dev, memory_budget_bytes)
    if pre_binning > 1:
        filtered /= pre_binning
    operator = backprojection_matrix((n_z, n_det), angles, n_det, dev)

    # Post-binning happens chunk by chunk, so only the binned volume is ever held whole.
    factor = post_binning
    n_z_kept = z_stop - z_start
    for size, name in ((n_z_kept, "valid Z range"), (n_y, "Y axis"), (n_det, "detector width")):
        if size < factor:
            raise FaketError(f"cannot post-bin a {name} of {size} voxels by {factor}; bin less")
    z_stop = z_start + (n_z_kept // factor) * factor
    n_y_used = (n_y // factor) * factor
    # Per Y row: the sinogram columns in, the slice out (twice: the product and its view).
    bytes_per_row = 4 * (2 * n_tilts * n_det + 2 * n_z * n_det)
    rows = chunk_size(bytes_per_row, n_y_used, memory_budget(dev, memory_budget_bytes))
    if dev.type == "cpu":
        # Keep the gathered sinogram block in cache (see faket.device.CPU_GATHER_BYTES).
        rows = min(rows, max(4, CPU_GATHER_BYTES // (4 * n_tilts * n_det)))
    rows = max(factor, rows // factor * factor)
    volume = np.empty(
        ((z_stop - z_start) // factor, n_y_used // factor, n_det // factor), dtype=np.float32
    )
    starts = range(0, n_y_used, rows)
    for start in progress_bar(starts, "back-projecting", total=len(starts), enabled=progress):
        stop = min(start + rows, n_y_used)
        # (n_tilts, y, X) -> (n_tilts, X, y) -> (n_tilts * X, y): the operator's column order.
        block = np.ascontiguousarray(np.swapaxes(filtered[:, start:stop, :], 1, 2))
        columns = torch.from_numpy(block).to(dev).reshape(n_tilts * n_det, stop - start)
        slices = (operator @ columns).reshape(n_z, n_det, stop - start)[z_start:z_stop]
        del block, columns
        slices = bin_array(slices.permute(0, 2, 1), factor, axes=(0, 1, 2))
        volume[:, start // factor : stop // factor, :] = slices.cpu().numpy()
    return volume


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

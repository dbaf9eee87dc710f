"""File wrappers: estimate from MRC files, apply from a memory-mapped MRC to a new MRC.

Everything here only opens files and calls the array functions; inputs are memory-mapped
and processed tilt by tilt, so stacks larger than the RAM work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import mrcfile
import numpy as np

from faket.errors import FaketError
from faket.io import atomic_path, check_target, read_mrc
from faket.noise.apply import noisy_tilts, style_statistics
from faket.noise.build import estimate_noise_model, estimate_noise_model_from_background
from faket.noise.model import NoiseModel

__all__ = ["apply_noise_file", "check_angles_match", "estimate_noise_model_files"]

PathLike = str | os.PathLike[str]


def estimate_noise_model_files(
    style_paths: Sequence[PathLike],
    clean_paths: Sequence[PathLike] | None,
    angles_deg: Sequence[float] | np.ndarray,
    order: int = 2,
    *,
    mask: np.ndarray | None = None,
    show_progress: bool = False,
) -> NoiseModel:
    """Estimate a noise model from MRC files (paired by position, memory-mapped).

    Parameters
    ----------
    style_paths : sequence of paths
        Style tilt series (n_tilts, Y, X).
    clean_paths : sequence of paths or None
        Noiseless tilt series, one per style file. None: estimate on the background
        regions given by ``mask`` (real data without noiseless content).
    angles_deg : array, shape (n_tilts,)
    order : int
        Aggregation polynomial order (-1 raw, 0, 2).
    mask : bool array, shape (Y, X) or (n_tilts, Y, X), optional
        Region to estimate on; required when ``clean_paths`` is None.
    show_progress : bool

    Returns
    -------
    NoiseModel
        With the file names in its provenance.
    """
    styles = [read_mrc(p, mmap=True, ndim=3).data for p in style_paths]
    provenance: dict = {"style": [str(p) for p in style_paths]}
    if mask is not None:
        provenance["region_pixels"] = int(np.count_nonzero(mask))
    if clean_paths is None:
        if mask is None:
            raise FaketError("without noiseless (--clean) stacks, select background regions")
        return estimate_noise_model_from_background(
            styles, mask, angles_deg, order, provenance=provenance, show_progress=show_progress
        )
    if len(clean_paths) != len(style_paths):
        raise FaketError(
            f"{len(style_paths)} style files but {len(clean_paths)} clean files; "
            "give one noiseless file per style file, in the same order"
        )
    cleans = [read_mrc(p, mmap=True, ndim=3).data for p in clean_paths]
    for style_path, clean_path, style, clean in zip(
        style_paths, clean_paths, styles, cleans, strict=True
    ):
        if style.shape != clean.shape:
            raise FaketError(
                f"{style_path} {tuple(style.shape)} and {clean_path} {tuple(clean.shape)} "
                "differ in shape; pair each style file with its own noiseless projections"
            )
    provenance["clean"] = [str(p) for p in clean_paths]
    return estimate_noise_model(
        styles,
        cleans,
        angles_deg,
        order,
        masks=mask,
        provenance=provenance,
        show_progress=show_progress,
    )


def check_angles_match(
    angles_deg: Sequence[float] | np.ndarray,
    model: NoiseModel,
    source: str,
    tolerance_deg: float = 0.01,
) -> None:
    """Raise FaketError unless ``angles_deg`` equal the model's angles (within tolerance)."""
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size != model.n_tilts:
        raise FaketError(
            f"{source} has {angles.size} tilt angles but the noise model has {model.n_tilts}"
        )
    worst = int(np.argmax(np.abs(angles - model.angles_deg)))
    if abs(angles[worst] - model.angles_deg[worst]) > tolerance_deg:
        raise FaketError(
            f"tilt angles of {source} differ from the noise model's (tilt {worst}: "
            f"{angles[worst]:g} vs {model.angles_deg[worst]:g} degrees); "
            "use a model estimated with the same tilt scheme"
        )


def apply_noise_file(
    input_path: PathLike,
    model: NoiseModel,
    mode: str,
    output_path: PathLike,
    *,
    seed: int = 0,
    style_path: PathLike | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
    voxel_size: float | None = None,
) -> Path:
    """Apply a noise modality to a noiseless MRC tilt series, tilt by tilt.

    The input is memory-mapped and the output is written into a memory-mapped temporary
    file that replaces ``output_path`` only when complete, so peak memory is a few tilts.

    Parameters
    ----------
    input_path : path
        Noiseless tilt series (n_tilts, Y, X).
    model : NoiseModel
    mode : {"baseline", "noisy", "content"}
    output_path : path
        Output MRC (float32, the input's voxel size).
    seed : int
    style_path : path, optional
        Match per-tilt mean/std to this style tilt series instead of the model.
    overwrite : bool
    show_progress : bool
    voxel_size : float, optional
        Pixel size (Å) written to the output instead of the input's.

    Returns
    -------
    Path
    """
    target = check_target(output_path, overwrite=overwrite)
    clean = read_mrc(input_path, mmap=True, ndim=3)
    stats = None
    if style_path is not None:
        stats = style_statistics(read_mrc(style_path, mmap=True, ndim=3).data)
    tilts = noisy_tilts(clean.data, model, mode, seed, target=stats, show_progress=show_progress)
    with atomic_path(target, overwrite=overwrite) as tmp:
        with mrcfile.new_mmap(tmp, shape=clean.data.shape, mrc_mode=2) as mrc:
            low, high, total, squares = np.inf, -np.inf, 0.0, 0.0
            for i, tilt in enumerate(tilts):
                mrc.data[i] = tilt
                low, high = min(low, float(tilt.min())), max(high, float(tilt.max()))
                total += float(tilt.sum(dtype=np.float64))
                squares += float(np.square(tilt, dtype=np.float64).sum())
            n = clean.data.size
            mean = total / n
            pixel = clean.voxel_size if voxel_size is None else voxel_size
            _write_header(mrc, pixel, low, high, mean, squares / n - mean * mean)
    return target


def _write_header(
    mrc: mrcfile.mrcfile.MrcFile,
    voxel_size: float,
    low: float,
    high: float,
    mean: float,
    variance: float,
) -> None:
    mrc.set_image_stack()  # a tilt series, not a volume (see faket.io.write_mrc)
    if voxel_size > 0:
        mrc.voxel_size = voxel_size
    mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = low, high, mean
    mrc.header.rms = float(np.sqrt(max(variance, 0.0)))

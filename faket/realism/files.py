"""Compare two tilt series (or tomograms) on disk: ``compare.json`` and ``compare.png``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.io import check_target, read_image_folder, read_mrc, write_text_atomic
from faket.realism.metrics import Comparison, compare_stacks

__all__ = ["REPORT", "FIGURE", "compare_files", "read_stack"]

REPORT = "compare.json"
FIGURE = "compare.png"
PathLike = str | os.PathLike[str]


def read_stack(path: PathLike) -> tuple[np.ndarray, float]:
    """Images ``(n, Y, X)`` to compare, and their pixel size (Å; 0.0 when unknown).

    ``path`` is an MRC or TOM/PyTom ``.em`` file (a tilt series or tomogram, memory-mapped
    where the format allows; a single image counts as one tilt) or a folder of one image
    per tilt, such as PyTom's projection folders (:func:`faket.io.read_image_folder`).
    """
    file = Path(path)
    if file.is_dir():
        folder = read_image_folder(file)
        return folder.data, folder.voxel_size
    data = read_mrc(file, mmap=True, ndim=(2, 3))
    stack = data.data[None] if data.data.ndim == 2 else data.data
    return stack, data.voxel_size


def compare_files(
    simulated: PathLike,
    reference: PathLike,
    output_dir: PathLike,
    *,
    tomogram: bool = False,
    labels: tuple[str, str] | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Comparison:
    """Compare ``simulated`` with ``reference``; write the report and figure to ``output_dir``.

    Parameters
    ----------
    simulated, reference : paths
        Tilt series (tilts paired by index) or tomograms (XY slices paired by index): MRC
        or ``.em`` files, or folders of one image per tilt (:func:`read_stack`).
    output_dir : path
        Folder for ``compare.json`` and ``compare.png`` (created).
    tomogram : bool
        The inputs are tomograms (only changes the report's wording).
    labels : (simulated, reference), optional
        Names in the figure; default the file names.
    overwrite : bool
        Replace an existing report.
    show_progress : bool
        Draw a progress bar over the images.

    Returns
    -------
    Comparison
    """
    from faket import __version__
    from faket.plots.realism import plot_realism

    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise FaketError(f"{folder} is a file; give a folder for the report")
    sim, sim_pixel = read_stack(simulated)
    ref, ref_pixel = read_stack(reference)
    folder.mkdir(parents=True, exist_ok=True)
    report = check_target(folder / REPORT, overwrite=overwrite)
    figure = check_target(folder / FIGURE, overwrite=overwrite)
    if sim_pixel > 0 and ref_pixel > 0 and abs(sim_pixel - ref_pixel) > 1e-3 * ref_pixel:
        warnings.warn(
            f"pixel sizes differ ({sim_pixel:g} vs {ref_pixel:g} Å); frequencies are compared "
            "in cycles per pixel",
            stacklevel=2,
        )
    comparison = compare_stacks(sim, ref, show_progress=show_progress)
    names = labels or (Path(simulated).name, Path(reference).name)
    record = {
        "faket_version": __version__,
        "simulated": str(simulated),
        "reference": str(reference),
        "kind": "tomogram" if tomogram else "tilt series",
        "images": int(sim.shape[0]),
        "pixel_size_angstrom": {"simulated": sim_pixel, "reference": ref_pixel},
        **comparison.to_dict(),
    }
    write_text_atomic(report, json.dumps(record, indent=2) + "\n", overwrite=overwrite)
    pixel = ref_pixel if ref_pixel > 0 else None
    plot_realism({names[0]: comparison}, figure, reference=names[1], pixel_size_angstrom=pixel)
    return comparison

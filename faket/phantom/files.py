"""A grand-model folder: the files SHREC ships, written all-or-nothing, and read back."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from faket import __version__
from faket.errors import FaketError
from faket.io import (
    atomic_path,
    read_mrc,
    read_shrec_particles,
    write_mrc,
    write_particles_csv,
    write_particles_star,
    write_shrec_particles,
    write_text_atomic,
)
from faket.io.atomic import remove_stale_temporaries
from faket.phantom.config import parse_config
from faket.phantom.grandmodel import GrandModel

#: File of each output in a grand-model folder.
FILES = {
    "potential": "grandmodel.mrc",
    "class_mask": "class_mask.mrc",
    "occupancy": "occupancy_mask.mrc",
    "particles": "particle_locations.txt",
    "particles_csv": "particle_locations.csv",
    "particles_star": "particle_locations.star",
    "classes": "classes.csv",
    "config": "phantom_config.json",
}


def check_folder(folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Check that a grand model can be written to ``folder`` (without creating it), and
    delete the temporary files a killed earlier run left there.

    Raises
    ------
    FaketError
        If the parent folder is missing, ``folder`` is a file, or (without ``overwrite``)
        any output file already exists.
    """
    target = Path(folder)
    if not target.parent.is_dir():
        raise FaketError(f"cannot write {target}: folder {target.parent} does not exist")
    if target.exists() and not target.is_dir():
        raise FaketError(f"{target} is a file; pass a folder for the grand model")
    writable = target if target.is_dir() else target.parent
    if not os.access(writable, os.W_OK | os.X_OK):
        raise FaketError(
            f"cannot write {target}: folder {writable} is not writable; choose another output "
            "folder or change its permissions"
        )
    existing = [name for name in FILES.values() if (target / name).exists()]
    if existing and not overwrite:
        raise FaketError(
            f"{target / existing[0]} already exists; pass --overwrite or choose another folder"
        )
    for name in FILES.values():  # left by a phantom run that was killed while writing
        remove_stale_temporaries(target, target=name)
    return target


def write_grand_model(
    model: GrandModel, folder: str | os.PathLike[str], *, overwrite: bool = False
) -> dict[str, Path]:
    """Write every file of a grand model into ``folder`` (created if needed).

    All files are first written under temporary names and renamed together at the end,
    so an error leaves none of them behind (and earlier versions untouched).

    Parameters
    ----------
    model
        The grand model.
    folder
        Output folder; its parent must exist.
    overwrite
        Replace existing output files.

    Returns
    -------
    dict
        Output key (see :data:`FILES`) -> path.
    """
    target = check_folder(folder, overwrite=overwrite)
    created = not target.exists()
    target.mkdir(exist_ok=True)
    paths = {key: target / name for key, name in FILES.items()}
    try:
        with ExitStack() as stack:
            tmp = {key: stack.enter_context(atomic_path(p)) for key, p in paths.items()}
            _write_all(model, tmp)
    except BaseException:
        if created and not any(target.iterdir()):
            target.rmdir()
        raise
    return paths


def _write_all(model: GrandModel, tmp: dict[str, Path]) -> None:
    size = model.voxel_size
    write_mrc(tmp["potential"], model.potential, size)
    write_mrc(tmp["class_mask"], model.class_mask, size)
    labels = model.occupancy
    # MRC has no 32-bit integer mode; float32 holds integers up to 2**24 exactly.
    write_mrc(tmp["occupancy"], labels, size, dtype=None if labels.dtype != np.int32 else "f4")
    for key in ("potential", "class_mask", "occupancy"):
        _fixed_label(tmp[key])
    write_shrec_particles(tmp["particles"], model.particles)
    write_particles_csv(tmp["particles_csv"], model.particles)
    write_particles_star(tmp["particles_star"], model.particles, voxel_size=size)
    _drop_star_timestamp(tmp["particles_star"])
    with atomic_path(tmp["classes"]) as path:
        model.classes.to_csv(path, index=False)
    write_text_atomic(tmp["config"], json.dumps(resolved_config(model), indent=2) + "\n")


def _fixed_label(path: Path) -> None:
    # mrcfile stamps the creation time into the header's first label; overwrite it in
    # place (MRC2014: label 1 = bytes 224-303) so the same config and seed give
    # byte-identical files.
    with open(path, "r+b") as handle:
        handle.seek(224)
        handle.write(f"faket {__version__} grand model".ljust(80).encode("ascii"))


def _drop_star_timestamp(path: Path) -> None:
    # starfile's header comment carries the time of writing; drop it for reproducibility.
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and lines[0].startswith("# Created by the starfile"):
        path.write_text("".join(lines[1:]), encoding="utf-8")


def resolved_config(model: GrandModel) -> dict:
    """The settings plus what they resolved to (classes, counts), as JSON-ready data."""
    return {
        "faket_version": __version__,
        "config": model.config.model_dump(mode="json"),
        "classes": model.classes.to_dict(orient="records"),
        "objects": len(model.particles),
        "unplaced": model.unplaced,
    }


def read_grand_model(folder: str | os.PathLike[str]) -> GrandModel:
    """Read a grand-model folder written by :func:`write_grand_model` (no templates).

    Parameters
    ----------
    folder
        The folder.

    Returns
    -------
    GrandModel
        Arrays, particle list, class table and settings.
    """
    base = Path(folder)
    missing = [name for name in FILES.values() if not (base / name).is_file()]
    if missing:
        raise FaketError(f"{base} is not a complete grand model: {missing[0]} is missing")
    potential = read_mrc(base / FILES["potential"], ndim=3)
    stored = json.loads((base / FILES["config"]).read_text(encoding="utf-8"))
    occupancy = read_mrc(base / FILES["occupancy"], ndim=3).data
    return GrandModel(
        potential=potential.data,
        class_mask=read_mrc(base / FILES["class_mask"], ndim=3).data,
        occupancy=occupancy if occupancy.dtype.kind in "iu" else occupancy.astype(np.int32),
        particles=read_shrec_particles(base / FILES["particles"]),
        classes=pd.read_csv(base / FILES["classes"], keep_default_na=False),
        voxel_size=potential.voxel_size,
        config=parse_config(stored["config"]),
        unplaced=stored.get("unplaced", {}),
    )

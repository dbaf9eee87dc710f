"""Ready-made phantom worlds (``faket phantom --preset czii``).

``czii``: the CZII 2024-25 object-identification world (:mod:`faket.phantom.czii`): the six
particle types in 630 x 630 x 184 voxels at 10 Å. Each type is its PDB entry's atomic
model when one is at hand (a ``--models`` folder, the download cache, or a download of the
entry's first biological assembly when online), else the built-in stand-in of the same
name; :func:`czii_classes` says which, and why. A model whose size does not match the
competition's radius (an asymmetric unit, say) is not used.
"""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.phantom.cache import default_cache_dir
from faket.phantom.config import ClassSpec
from faket.phantom.czii import CZII_OBJECTS, CZII_SHAPE, CZII_VOXEL_SIZE
from faket.phantom.download import fetch_pdb

#: RCSB's first biological assembly of an entry (what sits in a specimen).
ASSEMBLY_URL = "https://files.rcsb.org/download/{id}-assembly1.cif"
#: Accepted ratio of a model's size (sphere of its radius of gyration) to the CZII radius.
SIZE_RANGE = (0.6, 1.6)
#: Particles per tomogram, of the order of the competition's training tomograms.
CZII_COUNTS = {
    "apo-ferritin": 50,
    "beta-amylase": 12,
    "beta-galactosidase": 12,
    "ribosome": 40,
    "thyroglobulin": 30,
    "virus-like-particle": 14,
}
#: The CZII world with the built-in stand-ins (what :func:`phantom_preset` resolves).
CZII_PHANTOM: dict = {
    "shape": CZII_SHAPE,
    "voxel_size": CZII_VOXEL_SIZE,
    "classes": [{"source": name, "count": CZII_COUNTS[name]} for name in CZII_OBJECTS],
    "vesicles": 3,
    "vesicle_radius_nm": (20.0, 50.0),
    "fiducials": 0,
}
_SUFFIXES = ("-assembly1.cif", ".cif", ".cif.gz", ".mmcif", ".pdb", ".pdb.gz", ".ent")


def find_local_model(pdb_id: str, folders: Sequence[str | os.PathLike[str]]) -> Path | None:
    """The first ``<id><suffix>`` file (any case) in ``folders``, or None."""
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        names = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
        for suffix in _SUFFIXES:
            found = names.get(f"{pdb_id.lower()}{suffix}")
            if found is not None:
                return found
    return None


def model_radius_A(path: str | os.PathLike[str]) -> float:
    """Radius (Å) of the sphere with the atoms' radius of gyration: ``sqrt(5/3) Rg``."""
    from faket.phantom.templates_atomic import read_atoms

    positions = read_atoms(path, implicit_hydrogens=False).positions
    centred = positions - positions.mean(axis=0)
    return float(np.sqrt(5.0 / 3.0 * (centred**2).sum(axis=1).mean()))


def _download(pdb_id: str, cache: Path, url: str, opener: Callable) -> tuple[Path | None, str]:
    try:
        return fetch_pdb(pdb_id, cache, url=url, timeout=20.0, opener=opener), ""
    except FaketError as error:
        # fetch_pdb's message: "cannot download PDB X from URL (REASON); what to do".
        found = re.search(r"\((.*?)\);", str(error))
        return None, found.group(1) if found else str(error)


def czii_classes(
    models: Sequence[str | os.PathLike[str]] = (),
    *,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str = ASSEMBLY_URL,
    opener: Callable = urllib.request.urlopen,
) -> tuple[list[ClassSpec], list[str]]:
    """The six CZII classes: atomic models where available, built-in stand-ins otherwise.

    Parameters
    ----------
    models : folders searched for ``<pdb id>.cif`` / ``.pdb`` (e.g. ``-assembly1.cif``).
    download : try RCSB for entries not found locally (cached for later offline runs).
    cache_dir : download cache root; default :func:`faket.phantom.cache.default_cache_dir`.
    url, opener : where and how to download (tests use a ``file://`` template).

    Returns
    -------
    (specs, notes)
        One class spec per type (its competition name and particle count), and one line
        per type saying which model it uses and why.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = cache / "assemblies"  # kept apart from the asymmetric units fetch_pdb caches
    specs, notes = [], []
    for name, item in CZII_OBJECTS.items():
        path = find_local_model(item.pdb_id, [*models, cache / "pdb"])
        why = "not in the --models folders or the download cache"
        if path is None and download:
            path, reason = _download(item.pdb_id, cache, url, opener)
            why = f"download failed: {reason}" if path is None else why
        elif path is None:
            why += ", downloads off"
        if path is not None:
            radius = model_radius_A(path)
            ratio = radius / item.radius_A
            if SIZE_RANGE[0] <= ratio <= SIZE_RANGE[1]:
                specs.append(ClassSpec(source=str(path), name=name, count=CZII_COUNTS[name]))
                notes.append(f"{name}: atomic model {path} (PDB {item.pdb_id})")
                continue
            why = (
                f"{path.name} is {radius:.0f} Å in radius, not ~{item.radius_A:.0f} Å "
                "(only part of the complex?)"
            )
        specs.append(ClassSpec(source=name, count=CZII_COUNTS[name]))
        notes.append(f"{name}: built-in stand-in (PDB {item.pdb_id}: {why})")
    return specs, notes


def phantom_preset(
    name: str, models: Sequence[str | os.PathLike[str]] = (), *, download: bool = True, **fetch
) -> tuple[dict, list[str]]:
    """Phantom settings of a named world and what was chosen for its classes.

    Parameters
    ----------
    name : ``czii``.
    models, download, fetch : as in :func:`czii_classes`.

    Returns
    -------
    (settings, notes)
        Settings for :func:`faket.phantom.parse_config`; one note per class.
    """
    if name != "czii":
        raise FaketError(f"unknown phantom preset {name!r}; choose czii")
    specs, notes = czii_classes(models, download=download, **fetch)
    settings = dict(CZII_PHANTOM)
    settings["classes"] = [spec.model_dump(exclude_none=True) for spec in specs]
    return settings, notes

"""What is in a file: the library behind ``faket info``.

Every file a faket user is likely to hold is either described (volumes and tilt series
in MRC or EM format, tilt-angle files, particle lists, atomic models, noise models) or
refused with one line that says what it is and what to pass instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.io import format_summary, mrc_summary, read_angles

__all__ = ["KINDS", "describe_file"]

_VOLUMES = (".mrc", ".mrcs", ".map", ".rec", ".st", ".ali", ".preali", ".ccp4", ".em")
_ANGLES = (".tlt", ".rawtlt", ".mdoc", ".xml", ".xtilt", ".xf", ".edf")
_ATOMIC = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")
_IMAGES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm4", ".dm3", ".eer", ".h5", ".hdf")
#: What ``faket info`` reads, for the refusal of anything else.
KINDS = (
    "MRC/EM volumes and tilt series (.mrc .mrcs .map .rec .st .em), tilt angles (.tlt "
    ".rawtlt .mdoc .star .xml), particle lists (.txt .csv .star), atomic models (.pdb "
    ".cif) and noise models (.json)"
)


def describe_file(path: str | os.PathLike[str]) -> str:
    """A few lines of text saying what ``path`` holds.

    Parameters
    ----------
    path
        Any file.

    Returns
    -------
    str
        Lines without a trailing newline; the first names the file.

    Raises
    ------
    FaketError
        For files faket cannot use, saying what they are and what to pass instead.
    """
    file = Path(path)
    if not file.is_file():
        raise FaketError(f"{file}: no such file; check the path")
    name = file.name.lower()
    suffix = file.suffix.lower()
    if name.endswith(_VOLUMES):
        return format_summary(mrc_summary(file), file)
    if name.endswith(_ATOMIC):
        return _describe_atomic(file)
    if suffix in _IMAGES:
        raise FaketError(
            f"{file} is a {suffix.lstrip('.').upper()} image, which faket does not read; "
            "convert it to MRC (e.g. IMOD tif2mrc, or EMAN2 e2proc2d.py/e2proc3d.py)"
        )
    if suffix in _ANGLES:
        return _describe_angles(file, read_angles(file))
    if suffix == ".star":
        return _describe_star(file)
    if suffix == ".csv":
        return _describe_particles(file)
    if suffix == ".txt":
        return _describe_text(file)
    if suffix == ".json":
        return _describe_noise_model(file)
    raise FaketError(
        f"{file}: faket does not read {suffix or 'suffix-less'} files; it reads {KINDS}"
    )


def _describe_angles(file: Path, angles: np.ndarray) -> str:
    steps = np.diff(np.sort(angles))
    step = f"{np.median(steps):.4g}°" if steps.size else "-"
    order = "ascending" if np.all(np.diff(angles) > 0) else "acquisition order"
    return "\n".join(
        [
            f"File:        {file}",
            "Kind:        tilt angles",
            f"Tilts:       {angles.size}, {order}",
            f"Range:       {angles.min():.6g}° .. {angles.max():.6g}° (median step {step})",
        ]
    )


def _describe_particles(file: Path) -> str:
    from faket.io import read_particles

    particles = read_particles(file)
    counts = particles["class_name"].value_counts()
    classes = ", ".join(f"{name} {n}" for name, n in counts.items())
    return "\n".join(
        [
            f"File:        {file}",
            "Kind:        particle list",
            f"Particles:   {len(particles)}",
            f"Classes:     {classes or '-'}",
        ]
    )


def _describe_star(file: Path) -> str:
    try:
        return _describe_particles(file)
    except FaketError as particle_error:
        if "no 'particles' table" not in str(particle_error):
            raise
    return _describe_angles(file, read_angles(file))


def _describe_text(file: Path) -> str:
    lines = [line.split() for line in file.read_text(errors="replace").splitlines()]
    if all(len(words) <= 1 for words in lines if words and not words[0].startswith("#")):
        return _describe_angles(file, read_angles(file))
    return _describe_particles(file)


def _describe_atomic(file: Path) -> str:
    from faket.phantom.templates_atomic import read_atoms

    atoms = read_atoms(file, implicit_hydrogens=False)
    extent = atoms.positions.max(axis=0) - atoms.positions.min(axis=0)
    return "\n".join(
        [
            f"File:        {file}",
            "Kind:        atomic model (first model, waters left out)",
            f"Atoms:       {len(atoms.elements)}",
            f"Extent:      {' x '.join(f'{v / 10:.1f}' for v in extent)} nm (X, Y, Z)",
            f"Use:         faket phantom --classes {file}",
        ]
    )


def _describe_noise_model(file: Path) -> str:
    from faket.noise import load_noise_model

    try:
        model = load_noise_model(file)
    except FaketError as error:
        raise FaketError(
            f"{file} is not a faket noise model ({error}); faket info reads {KINDS}"
        ) from None
    return "\n".join(
        [
            f"File:        {file}",
            "Kind:        noise model",
            f"Tilts:       {model.n_tilts}, order {model.order}",
            f"r:           {model.curves.r.min():.3g} .. {model.curves.r.max():.3g}",
            f"sigma:       {model.curves.sigma.min():.3g} .. {model.curves.sigma.max():.3g}",
        ]
    )

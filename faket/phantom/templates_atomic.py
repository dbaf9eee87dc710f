"""Coulomb potential of an atomic model (PDB or mmCIF, read with gemmi).

Each atom contributes the five Gaussians of its electron scattering factor (see
:mod:`faket.phantom.physics`), weighted by its occupancy and widened by a B-factor,
integrated over every voxel. Crystallographic waters are dropped by default (the
microscope adds the ice). X-ray models usually lack hydrogens, which carry ~18% of a
protein's potential; by default each residue without hydrogens gets its tabulated count
as "united atoms" spread over its heavy atoms, which is exact for the integral and off by
under 1 Å in position.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np
import torch

from faket.errors import FaketError
from faket.phantom import cache
from faket.phantom.physics import POTENTIAL_CONSTANT, scattering_coefficients
from faket.phantom.splat import splat_gaussians
from faket.phantom.templates import Template, finish_template

ATOMIC_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")


@dataclass(frozen=True)
class Atoms:
    """Scatterers of a model: real atoms and united-atom hydrogens.

    Attributes
    ----------
    positions
        ``(n, 3)`` coordinates ``(x, y, z)`` in Å.
    elements
        ``(n,)`` element symbols.
    weights
        ``(n,)`` occupancy (times the hydrogen share for united-atom hydrogens).
    b_factors
        ``(n,)`` isotropic B-factors in Å².
    """

    positions: np.ndarray
    elements: np.ndarray
    weights: np.ndarray
    b_factors: np.ndarray

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 5)`` scattering amplitudes (Å) and ``(n, 5)`` widths (Å²) per scatterer."""
        table = {el: scattering_coefficients(el) for el in np.unique(self.elements)}
        a = np.stack([table[el][0] for el in self.elements])
        b = np.stack([table[el][1] for el in self.elements])
        return a, b

    def scattering_weights(self) -> np.ndarray:
        """``(n,)`` ``occupancy * f(0)``: each scatterer's share of the potential integral."""
        a, _ = self.coefficients()
        return self.weights * a.sum(axis=1)

    def centre(self) -> np.ndarray:
        """Scattering-weighted centre ``(x, y, z)`` in Å: the potential's centre of mass."""
        w = self.scattering_weights()
        return (self.positions * w[:, None]).sum(axis=0) / w.sum()


def read_atoms(
    path: str | os.PathLike[str], *, implicit_hydrogens: bool = True, keep_waters: bool = False
) -> Atoms:
    """Read the first model of a PDB or mmCIF file.

    Parameters
    ----------
    path
        ``.pdb``, ``.ent``, ``.cif``, ``.mmcif`` (optionally ``.gz``).
    implicit_hydrogens
        Add tabulated hydrogens to residues that have none (united atoms).
    keep_waters
        Keep water molecules (normally part of the ice, not of the particle).

    Returns
    -------
    Atoms
        The scatterers.

    Raises
    ------
    FaketError
        If the file is missing, unreadable or holds no atoms.
    """
    structure = _read_structure(Path(path))
    if not keep_waters:
        structure.remove_waters()
    rows: list[tuple] = []
    for chain in structure[0]:
        for residue in chain:
            rows.extend(_residue_rows(residue, implicit_hydrogens))
    if not rows:
        raise FaketError(f"{path}: no atoms in the first model; pass a PDB/mmCIF with coordinates")
    x, y, z, elements, weights, b = zip(*rows, strict=True)
    return Atoms(
        positions=np.column_stack([x, y, z]).astype(np.float64),
        elements=np.asarray(elements),
        weights=np.asarray(weights, dtype=np.float64),
        b_factors=np.asarray(b, dtype=np.float64),
    )


def _read_structure(path: Path) -> gemmi.Structure:
    if not path.is_file():
        raise FaketError(f"atomic model {path} does not exist; check the path")
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as err:
        reason = " ".join(str(err).split())[:120]
        raise FaketError(
            f"cannot read {path} as PDB/mmCIF ({reason}); pass a valid .pdb or .cif file"
        ) from None
    if len(structure) == 0:
        raise FaketError(f"{path}: no models found; pass a PDB/mmCIF file with coordinates")
    return structure


def _residue_rows(residue: gemmi.Residue, implicit_hydrogens: bool) -> list[tuple]:
    rows = [
        (a.pos.x, a.pos.y, a.pos.z, a.element.name, a.occ, a.b_iso) for a in residue if a.occ > 0
    ]
    if not implicit_hydrogens or not rows or any(a.is_hydrogen() for a in residue):
        return rows
    share = _missing_hydrogens(residue, len(rows)) / len(rows)
    if share > 0:
        rows += [(x, y, z, "H", occ * share, b) for x, y, z, _, occ, b in rows]
    return rows


def _missing_hydrogens(residue: gemmi.Residue, n_heavy: int) -> float:
    info = gemmi.find_tabulated_residue(residue.name)
    if info is None or not info.found():
        # Unknown ligand: organic matter has about one hydrogen per heavy atom.
        return float(n_heavy)
    count = float(info.hydrogen_count)
    if info.is_amino_acid() or info.is_nucleic_acid():
        # The tabulated monomer is free; each link in a chain releases water (2 H).
        count -= 2.0
    return max(count, 0.0)


def atomic_potential(
    atoms: Atoms,
    voxel_size: float,
    *,
    b_factor: float | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-averaged Coulomb potential of atoms, centred on their scattering centre.

    Parameters
    ----------
    atoms
        The scatterers.
    voxel_size
        Voxel size in Å (> 0).
    b_factor
        B-factor (Å²) for every atom; None uses each atom's B from the file (negative
        values count as 0).
    device
        Torch device.

    Returns
    -------
    potential
        ``(n, n, n)`` float32 potential in V, ``n`` odd, centre at voxel ``n // 2``.
    centre
        ``(3,)`` the scattering-weighted centre ``(x, y, z)`` in Å that voxel ``n // 2``
        represents.
    """
    a, b = atoms.coefficients()
    blur = atoms.b_factors if b_factor is None else np.full(len(a), float(b_factor))
    variances = (b + np.clip(blur, 0, None)[:, None]) / (8 * np.pi**2)  # Å²
    sigmas = np.sqrt(variances) / voxel_size
    amplitudes = POTENTIAL_CONSTANT * a * atoms.weights[:, None] / voxel_size**3
    centre = atoms.centre()
    relative = (atoms.positions - centre) / voxel_size  # (x, y, z) voxels
    reach = np.sqrt((relative**2).sum(axis=1)).max() + 4 * sigmas.max()
    half = int(np.ceil(reach)) + 1
    size = 2 * half + 1
    grid = splat_gaussians(
        relative[:, ::-1] + half, amplitudes, sigmas, (size, size, size), device=device
    )
    return grid, centre


def template_from_atomic_model(
    path: str | os.PathLike[str],
    voxel_size: float,
    *,
    name: str | None = None,
    b_factor: float | None = None,
    implicit_hydrogens: bool = True,
    keep_waters: bool = False,
    cache_dir: Path | None = None,
    device: str | torch.device = "cpu",
) -> Template:
    """Particle template from a PDB/mmCIF file, cached by file hash and settings.

    Parameters
    ----------
    path
        The atomic model.
    voxel_size
        Voxel size in Å (> 0).
    name
        Class name; default the file name without suffixes, lower case.
    b_factor, implicit_hydrogens, keep_waters
        See :func:`atomic_potential` and :func:`read_atoms`.
    cache_dir
        Cache root (see :mod:`faket.phantom.cache`); None disables caching.
    device
        Torch device.

    Returns
    -------
    Template
        The masked, centred template.
    """
    if not voxel_size > 0:
        raise FaketError(f"voxel size must be > 0 Å, got {voxel_size}")
    file = Path(path)
    if not file.is_file():
        raise FaketError(f"atomic model {file} does not exist; check the path")
    digest = cache.file_digest(file)
    name = name or class_name_from_path(file)
    source = f"{file} (sha256 {digest[:12]})"
    settings = dict(
        kind="atomic",
        voxel=round(float(voxel_size), 6),
        b=b_factor,
        h=implicit_hydrogens,
        waters=keep_waters,
    )
    key = cache.template_key(digest, **settings)
    cached = cache.load_template(cache_dir, key, name, source)
    if cached is not None:
        return cached
    atoms = read_atoms(file, implicit_hydrogens=implicit_hydrogens, keep_waters=keep_waters)
    potential, centre = atomic_potential(atoms, voxel_size, b_factor=b_factor, device=device)
    info = {"atoms": int(len(atoms.weights)), "centre_xyz_A": centre.round(3).tolist(), **settings}
    template = finish_template(name, source, potential, voxel_size, info)
    cache.store_template(cache_dir, key, template)
    return template


def class_name_from_path(path: Path) -> str:
    """Class name from a file name: ``/a/1BXN.pdb.gz`` -> ``1bxn``, ``my map.mrc`` -> ``my_map``."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem = Path(name).stem if Path(name).suffix else name
    return "_".join(stem.split()).lower() or "particle"

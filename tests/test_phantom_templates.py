"""Particle templates: Coulomb potential of atomic models, density maps, the disk cache."""

from __future__ import annotations

from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import pytest
from scipy import ndimage

from faket.errors import FaketError
from faket.io import write_mrc
from faket.phantom import (
    atomic_potential,
    builtin_template,
    read_atoms,
    template_from_atomic_model,
)
from faket.phantom import templates_atomic as atomic_module
from faket.phantom.physics import protein_potential
from faket.phantom.templates_map import resample_map, template_from_map

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# Independent value of h² / (2 pi m0 e) in V·Å² from CODATA constants.
H, M0, E = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19
C_VA2 = H**2 / (2 * np.pi * M0 * E) * 1e20

# A tiny made-up model: one alanine and a sulfate-like ion, fixed-column PDB records.
ATOMS = [
    ("N", "ALA", "A", 1, 11.104, 6.134, -6.504, 1.00, 20.0, "N"),
    ("CA", "ALA", "A", 1, 11.639, 6.071, -5.147, 1.00, 25.0, "C"),
    ("C", "ALA", "A", 1, 13.137, 5.837, -5.184, 1.00, 30.0, "C"),
    ("O", "ALA", "A", 1, 13.703, 5.385, -4.189, 0.50, 35.0, "O"),
    ("CB", "ALA", "A", 1, 11.361, 7.382, -4.405, 1.00, 40.0, "C"),
    ("S", "SO4", "B", 2, 8.000, 9.000, -2.000, 1.00, 15.0, "S"),
]


def pdb_text(atoms=ATOMS) -> str:
    lines = []
    for serial, (name, res, chain, seq, x, y, z, occ, b, el) in enumerate(atoms, start=1):
        record = "ATOM  " if res == "ALA" else "HETATM"
        lines.append(
            f"{record}{serial:5d} {name:<4s} {res:>3s} {chain}{seq:4d}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{b:6.2f}          {el:>2s}"
        )
    return "\n".join(lines + ["END", ""])


@pytest.fixture
def tiny_pdb(tmp_path) -> Path:
    path = tmp_path / "tiny.pdb"
    path.write_text(pdb_text())
    return path


def f0(element: str) -> float:
    return float(sum(gemmi.Element(element).c4322.get_coefs()[:5]))


def test_potential_integral_and_centre_match_the_atoms(tiny_pdb):
    atoms = read_atoms(tiny_pdb, implicit_hydrogens=False)
    potential, centre = atomic_potential(atoms, voxel_size=0.5)
    expected = C_VA2 * sum(occ * f0(el) for *_, occ, _b, el in ATOMS)
    assert potential.sum(dtype=np.float64) * 0.5**3 == pytest.approx(expected, rel=0.01)
    xyz = np.array([a[4:7] for a in ATOMS])
    w = np.array([a[7] * f0(a[9]) for a in ATOMS])
    np.testing.assert_allclose(centre, (xyz * w[:, None]).sum(0) / w.sum(), atol=1e-9)
    # The potential's own centre of mass sits on the centre voxel.
    com = np.array(ndimage.center_of_mass(potential))
    np.testing.assert_allclose(com, [potential.shape[0] // 2] * 3, atol=0.02)


def test_single_atom_profile_follows_mott_bethe(tmp_path):
    path = tmp_path / "c.pdb"
    path.write_text(pdb_text([("C1", "UNL", "A", 1, 0.0, 0.0, 0.0, 1.0, 0.0, "C")]))
    atoms = read_atoms(path, implicit_hydrogens=False)
    potential, _ = atomic_potential(atoms, voxel_size=0.2, b_factor=80.0)
    a, b = np.array(gemmi.Element("C").c4322.get_coefs()).reshape(2, 5)
    c = potential.shape[0] // 2
    r = np.arange(0, 8) * 0.2
    bb = b + 80.0
    analytic = C_VA2 * (a * (4 * np.pi / bb) ** 1.5 * np.exp(-4 * np.pi**2 * r[:, None] ** 2 / bb))
    np.testing.assert_allclose(potential[c, c, c : c + 8], analytic.sum(1), rtol=0.02)


def test_implicit_hydrogens_add_the_tabulated_count(tiny_pdb):
    with_h = read_atoms(tiny_pdb, implicit_hydrogens=True)
    without = read_atoms(tiny_pdb, implicit_hydrogens=False)
    extra = with_h.scattering_weights().sum() - without.scattering_weights().sum()
    # Alanine in a chain: 7 - 2 = 5 H; SO4 is tabulated with none. The alanine's
    # half-occupied O carries a half share.
    shares = 5 / 5 * (4 + 0.5)
    assert extra == pytest.approx(shares * f0("H"), rel=1e-6)


def test_pdb_and_mmcif_give_the_same_potential(tiny_pdb, tmp_path):
    cif = tmp_path / "tiny.cif"
    structure = gemmi.read_structure(str(tiny_pdb))
    structure.setup_entities()
    structure.make_mmcif_document().write_file(str(cif))
    from_pdb = template_from_atomic_model(tiny_pdb, 2.0)
    from_cif = template_from_atomic_model(cif, 2.0)
    np.testing.assert_allclose(from_cif.potential, from_pdb.potential, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not (SHARED / "pdb" / "1s3x.pdb").exists(), reason="no shared data")
def test_real_model_integral_centre_and_mmcif(tmp_path):
    pdb = SHARED / "pdb" / "1s3x.pdb"
    atoms = read_atoms(pdb)
    potential, _ = atomic_potential(atoms, voxel_size=10.0)
    _, elements = np.unique(atoms.elements, return_inverse=True)
    f = np.array([f0(el) for el in np.unique(atoms.elements)])[elements]
    expected = C_VA2 * (atoms.weights * f).sum()
    assert potential.sum(dtype=np.float64) * 1000 == pytest.approx(expected, rel=0.01)
    com = np.array(ndimage.center_of_mass(potential))
    np.testing.assert_allclose(com, [potential.shape[0] // 2] * 3, atol=0.1)
    # A protein's interior is protein-dense: the peak is near the mean inner potential.
    assert 0.8 * protein_potential() < potential.max() < 1.4 * protein_potential()
    cif = tmp_path / "1s3x.cif"
    structure = gemmi.read_structure(str(pdb))
    structure.setup_entities()
    structure.make_mmcif_document().write_file(str(cif))
    a = template_from_atomic_model(pdb, 10.0)
    b = template_from_atomic_model(cif, 10.0)
    np.testing.assert_allclose(b.potential, a.potential, rtol=1e-5, atol=1e-5)


def test_b_factor_blurs_but_keeps_the_integral(tiny_pdb):
    atoms = read_atoms(tiny_pdb)
    sharp, _ = atomic_potential(atoms, 1.0, b_factor=0.0)
    blurred, _ = atomic_potential(atoms, 1.0, b_factor=200.0)
    assert blurred.sum() == pytest.approx(sharp.sum(), rel=0.01)
    assert blurred.max() < 0.5 * sharp.max()


def test_template_cache_is_keyed_by_file_hash(tiny_pdb, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = template_from_atomic_model(tiny_pdb, 2.0, cache_dir=cache)
    assert len(list((cache / "templates").glob("*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(atomic_module, "read_atoms", fail)
    again = template_from_atomic_model(tiny_pdb, 2.0, cache_dir=cache)
    np.testing.assert_array_equal(again.potential, first.potential)
    np.testing.assert_array_equal(again.mask, first.mask)
    tiny_pdb.write_text(pdb_text(ATOMS[:3]))  # new content -> new key -> recomputed
    with pytest.raises(AssertionError, match="recomputed"):
        template_from_atomic_model(tiny_pdb, 2.0, cache_dir=cache)


def test_template_mask_holds_the_potential_and_the_centre(tiny_pdb):
    template = template_from_atomic_model(tiny_pdb, 1.0)
    n = template.potential.shape[0]
    assert n % 2 == 1 and template.mask[n // 2, n // 2, n // 2]
    assert not template.potential[~template.mask].any()
    # Nothing reaches past the inscribed sphere, so any rotation keeps the particle whole.
    radius = np.sqrt(((np.argwhere(template.mask) - n // 2) ** 2).sum(1)).max()
    assert radius <= n // 2 - 1


@pytest.mark.parametrize("text", ["", "this is not a structure file\n", "ATOM  garbage\n"])
def test_unreadable_model_is_a_one_line_error(tmp_path, text):
    path = tmp_path / "bad.pdb"
    path.write_text(text)
    with pytest.raises(FaketError) as error:
        template_from_atomic_model(path, 10.0)
    assert "\n" not in str(error.value) and "bad.pdb" in str(error.value)


def test_voxel_size_must_be_positive(tiny_pdb):
    with pytest.raises(FaketError, match="voxel size"):
        template_from_atomic_model(tiny_pdb, 0.0)


def test_resample_keeps_centre_and_integral():
    z, y, x = np.indices((40, 40, 40))
    blob = np.exp(-((z - 17.3) ** 2 + (y - 21.0) ** 2 + (x - 19.6) ** 2) / (2 * 4.0**2))
    out = resample_map(blob, source_voxel=2.0, target_voxel=5.0)
    c = out.shape[0] // 2
    np.testing.assert_allclose(ndimage.center_of_mass(out), [c, c, c], atol=0.05)
    assert out.sum() * 5.0**3 == pytest.approx(blob.sum() * 2.0**3, rel=0.02)


def test_map_route_matches_the_pseudo_atom_scale(tmp_path):
    # A finely sampled built-in particle saved as a map in arbitrary units must come back
    # with about the potential integral of the same particle rendered directly.
    reference = builtin_template("globule_11nm", 10.0)
    fine = builtin_template("globule_11nm", 3.0)
    write_mrc(tmp_path / "g.mrc", fine.potential * 0.01 + 0.5, voxel_size=3.0)
    from_map = template_from_map(tmp_path / "g.mrc", 10.0)
    assert from_map.integral / reference.integral == pytest.approx(1.0, abs=0.15)
    np.testing.assert_allclose(from_map.diameter_nm, reference.diameter_nm, atol=2.0)


@pytest.mark.skipif(not (SHARED / "pdb" / "3qm1.pdb").exists(), reason="no shared data")
def test_map_route_matches_the_atomic_route_on_its_own_potential(tmp_path):
    pdb = SHARED / "pdb" / "3qm1.pdb"
    reference = template_from_atomic_model(pdb, 10.0)
    fine = template_from_atomic_model(pdb, 4.0)
    write_mrc(tmp_path / "3qm1.mrc", fine.potential * 37.0, voxel_size=4.0)
    from_map = template_from_map(tmp_path / "3qm1.mrc", 10.0)
    assert from_map.integral / reference.integral == pytest.approx(1.0, abs=0.1)


@pytest.mark.skipif(not (SHARED / "maps").exists(), reason="no shared data")
def test_shrec_map_and_atomic_model_agree_in_scale():
    pdb = template_from_atomic_model(SHARED / "pdb" / "1bxn.pdb", 10.0)
    mrc = template_from_map(SHARED / "maps" / "shrec2021_10A" / "1bxn.mrc", 10.0)
    assert mrc.integral / pdb.integral == pytest.approx(1.0, abs=0.2)
    assert abs(mrc.diameter_nm - pdb.diameter_nm) < 4.0


def test_map_without_voxel_size_needs_one(tmp_path):
    volume = np.zeros((9, 9, 9), np.float32)
    volume[3:6, 3:6, 3:6] = 1.0
    with mrcfile.new(tmp_path / "m.mrc") as mrc:  # header voxel size left at 0
        mrc.set_data(volume)
    with pytest.raises(FaketError, match="voxel size"):
        template_from_map(tmp_path / "m.mrc", 10.0)
    template = template_from_map(tmp_path / "m.mrc", 10.0, map_voxel_size=10.0)
    assert template.potential.max() > 0

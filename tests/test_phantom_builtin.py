"""Built-in procedural particles: count, sizes, determinism, protein-like potential."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from faket.errors import FaketError
from faket.phantom import builtin_names, builtin_template, protein_potential
from faket.phantom.builtin import pseudo_atoms
from faket.phantom.physics import POTENTIAL_CONSTANT, residue_scattering


@pytest.fixture(scope="module")
def templates():
    return {name: builtin_template(name, 10.0) for name in builtin_names()}


def test_at_least_twelve_classes_spanning_3_to_30_nm(templates):
    assert len(templates) >= 12
    diameters = sorted(t.diameter_nm for t in templates.values())
    assert 3.0 <= diameters[0] < 7.0
    assert 25.0 < diameters[-1] <= 32.0


def test_classes_are_distinct(templates):
    # Rotation-invariant fingerprints: mass, and the radial distribution of the potential.
    def fingerprint(t):
        c = t.potential.shape[0] // 2
        r = np.sqrt(((np.indices(t.potential.shape) - c) ** 2).sum(0)).round().astype(int)
        profile = np.bincount(r.ravel(), t.potential.ravel(), minlength=20)[:20]
        return profile / np.linalg.norm(profile), t.integral

    prints = [fingerprint(t) for t in templates.values()]
    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            same_shape = np.abs(prints[i][0] - prints[j][0]).max() < 0.05
            same_mass = abs(prints[i][1] / prints[j][1] - 1) < 0.05
            assert not (same_shape and same_mass), (i, j)


def test_deterministic_per_name():
    a = pseudo_atoms("ring7_15nm")
    b = pseudo_atoms("ring7_15nm")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(pseudo_atoms("ring5_11nm")[:10], a[:10])


def test_potential_has_protein_scale(templates):
    for name, template in templates.items():
        # The integral is exactly one averaged residue per pseudo-atom.
        expected = len(pseudo_atoms(name)) * POTENTIAL_CONSTANT * residue_scattering()
        assert template.integral == pytest.approx(expected, rel=0.01), name
    # Interior voxels of a big solid particle carry the protein mean potential.
    big = templates["globule_11nm"]
    core = ndimage.binary_erosion(big.potential > 0.5 * protein_potential(), iterations=2)
    assert core.sum() > 20
    assert big.potential[core].mean() == pytest.approx(protein_potential(), rel=0.1)


def test_ring_and_cage_centres_are_empty_but_in_the_mask(templates):
    for name in ("ring7_15nm", "cage_28nm", "barrel7_16nm"):
        t = templates[name]
        c = t.potential.shape[0] // 2
        assert t.potential[c, c, c] < 0.05 * protein_potential(), name
        assert t.mask[c, c, c], name


def test_unknown_builtin_is_an_error():
    with pytest.raises(FaketError, match="unknown built-in class"):
        pseudo_atoms("no_such_class")


def test_czii_stand_ins_have_the_competition_sizes_and_masses():
    from faket.phantom.czii import CZII_OBJECTS, czii_names

    assert czii_names() == [
        "apo-ferritin",
        "beta-amylase",
        "beta-galactosidase",
        "ribosome",
        "thyroglobulin",
        "virus-like-particle",
    ]
    for name, obj in CZII_OBJECTS.items():
        template = builtin_template(name, 10.0)
        # Diameter within 15% of the competition's 2 x radius; mass within 20%
        # (a pseudo-atom is one ~110 Da residue).
        assert template.diameter_nm == pytest.approx(obj.radius_A / 5.0, rel=0.15), name
        assert len(pseudo_atoms(name)) * 0.110 == pytest.approx(obj.mass_kda, rel=0.2), name
        assert template.info["radius_A"] == obj.radius_A
        assert template.info["czii_weight"] == obj.weight
    # Hollow shells: apo-ferritin and the capsid have empty centres.
    for name in ("apo-ferritin", "virus-like-particle"):
        t = builtin_template(name, 10.0)
        c = t.potential.shape[0] // 2
        assert t.potential[c, c, c] < 0.05 * protein_potential(), name


def test_d2_stand_in_is_symmetric_under_its_two_fold_axes():
    # A 180° turn about z maps the beta-amylase tetramer onto itself (up to the jittered
    # lattice of pseudo-atoms), but not a chiral, asymmetric class.
    def overlap(name):
        t = builtin_template(name, 10.0).potential
        turned = np.rot90(t, 2, axes=(1, 2))  # (z, y, x) arrays: 180° about z
        return float((t * turned).sum() / (t * t).sum())

    assert overlap("beta-amylase") > 0.98
    assert overlap("beta-galactosidase") > 0.98
    assert overlap("ribosome") < 0.9


def test_class_keywords_expand_to_their_sets():
    from faket.phantom.builtin import BUILTIN_CLASSES, CZII_STAND_INS
    from faket.phantom.classes import expand_specs

    assert [s.source for s in expand_specs(["czii"])] == list(CZII_STAND_INS)
    assert [s.source for s in expand_specs(["builtin"])] == list(BUILTIN_CLASSES)
    assert not set(BUILTIN_CLASSES) & set(CZII_STAND_INS)

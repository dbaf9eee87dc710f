"""Built-in procedural particles: offline stand-ins for real proteins, 4 to 30 nm.

Each class is a solid shape (a union of ellipsoids, capsules and shells, with pores cut
out) filled with Gaussian "pseudo-atoms", one per average amino-acid residue on a jittered
lattice at protein density. A pseudo-atom carries the scattering of a whole residue with
its hydrogens, so the potential has the scale of a real protein (about 7.9 V inside).
Subunit sizes and tilts are drawn from a generator seeded by the class name, so a class
looks the same in every run and on every machine, and shapes are chiral and lumpy (an
orientation can be told from the density) rather than perfectly symmetric.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from faket.errors import FaketError
from faket.phantom.czii import CZII_OBJECTS
from faket.phantom.physics import POTENTIAL_CONSTANT, residue_scattering, residue_volume
from faket.phantom.splat import splat_gaussians
from faket.phantom.templates import Template, finish_template

#: Width (Å) of a pseudo-atom: about a residue's radius of gyration.
PSEUDO_ATOM_SIGMA = 2.0

Shape = Callable[[np.ndarray], np.ndarray]  # (m, 3) points in Å -> (m,) bool inside


def _ellipsoid(centre, radii, rotation=None) -> Shape:
    c, r = np.asarray(centre, float), np.asarray(radii, float)
    rot = np.eye(3) if rotation is None else rotation

    def inside(p: np.ndarray) -> np.ndarray:
        local = (p - c) @ rot  # rows: R^T (p - c)
        return ((local / r) ** 2).sum(axis=1) <= 1.0

    return inside


def _capsule(start, end, radius: float) -> Shape:
    a, b = np.asarray(start, float), np.asarray(end, float)
    axis = b - a

    def inside(p: np.ndarray) -> np.ndarray:
        t = np.clip(((p - a) @ axis) / (axis @ axis), 0.0, 1.0)
        return ((p - a - t[:, None] * axis) ** 2).sum(axis=1) <= radius**2

    return inside


def _shell(r_in: float, r_out: float) -> Shape:
    def inside(p: np.ndarray) -> np.ndarray:
        r2 = (p**2).sum(axis=1)
        return (r2 >= r_in**2) & (r2 <= r_out**2)

    return inside


def _union(*shapes: Shape) -> Shape:
    return lambda p: np.logical_or.reduce([s(p) for s in shapes])


def _minus(shape: Shape, *holes: Shape) -> Shape:
    return lambda p: shape(p) & ~np.logical_or.reduce([h(p) for h in holes])


def _tilt(rng: np.random.Generator, degrees: float) -> np.ndarray:
    return Rotation.from_rotvec(rng.normal(0, np.radians(degrees), 3)).as_matrix()


def _lumps(rng, centre, radii, n: int, spread: float) -> list[Shape]:
    """A domain plus ``n`` smaller lumps on its surface (an irregular globule)."""
    parts = [_ellipsoid(centre, radii, _tilt(rng, 20))]
    for _ in range(n):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        size = np.asarray(radii) * rng.uniform(0.35, 0.55)
        parts.append(_ellipsoid(np.asarray(centre) + direction * spread * np.asarray(radii), size))
    return parts


def _ring(rng, n: int, radius: float, sub: tuple, z: float = 0.0, phase: float = 0.0):
    parts = []
    for k in range(n):
        angle = phase + 2 * np.pi * k / n
        centre = [radius * np.cos(angle), radius * np.sin(angle), z]
        # Subunits lean by ~15° about their radial direction: a chiral, propeller-like ring.
        lean = (Rotation.from_euler("z", angle) * Rotation.from_euler("x", 0.26)).as_matrix()
        scale = rng.uniform(0.92, 1.08, 3)
        parts.append(_ellipsoid(centre, np.asarray(sub) * scale, lean))
    return parts


def _directions(kind: str) -> np.ndarray:
    if kind == "octahedral":  # the 8 three-fold axes of a cube
        return np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / np.sqrt(3)
    g = (1 + np.sqrt(5)) / 2  # icosahedron vertices: the 12 five-fold axes
    v = [[0, s1, s2 * g] for s1 in (-1, 1) for s2 in (-1, 1)]
    v = np.array(
        v
        + [[s1, s2 * g, 0] for s1 in (-1, 1) for s2 in (-1, 1)]
        + [[s2 * g, 0, s1] for s1 in (-1, 1) for s2 in (-1, 1)],
        float,
    )
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _cage(r_out: float, thickness: float, pores: str, pore_radius: float) -> Shape:
    holes = [_capsule(np.zeros(3), d * (r_out + 5), pore_radius) for d in _directions(pores)]
    return _minus(_shell(r_out - thickness, r_out), *holes)


def _globule(rng, radii, lumps):
    return _union(*_lumps(rng, [0, 0, 0], radii, lumps, 0.8))


def _dimer(rng):
    return _union(
        *_lumps(rng, [-22, 0, 0], [24, 22, 20], 2, 0.8),
        *_lumps(rng, [22, 2, 0], [23, 21, 21], 2, 0.8),
    )


def _two_lobes(rng):
    large = _lumps(rng, [0, -20, 0], [80, 70, 62], 5, 0.75)
    small = _lumps(rng, [10, 62, 8], [62, 40, 46], 4, 0.75)
    cleft = _ellipsoid([0, 28, 35], [45, 14, 40])
    return _minus(_union(*large, *small), cleft)


def _cylinder6(rng):
    rings = _ring(rng, 6, 42, (24, 20, 20), z=-21) + _ring(rng, 6, 42, (24, 20, 20), 21, 0.3)
    knobs = [
        _ellipsoid([62 * np.cos(a), 62 * np.sin(a), 38], [12, 12, 10])
        for a in np.arange(6) * np.pi / 3 + 0.5
    ]
    return _union(*rings, *knobs)


def _barrel7(rng):
    parts = []
    for i, (z, radius) in enumerate([(-60, 36), (-20, 34), (20, 34), (60, 36)]):
        parts += _ring(rng, 7, radius, (17, 17, 19), z, 0.2 * i)
    return _union(*parts)


def _rod(rng):
    bumps = [_ellipsoid([0, 0, z], [20, 18, 14]) for z in rng.uniform(-55, 55, 3)]
    return _union(_capsule([0, 0, -60], [0, 0, 60], 15), *bumps)


def _filament(rng):
    beads = []
    for k in range(14):
        z = -130 + 20 * k
        angle = np.radians(60 * k)
        beads.append(_ellipsoid([15 * np.cos(angle), 15 * np.sin(angle), z], [22, 20, 16]))
    return _union(*beads)


def _d2(centre, radii, rng, lumps: int) -> list[Shape]:
    """Four copies of a lumpy subunit related by the three two-fold axes (D2)."""
    subunit = _union(*_lumps(rng, centre, radii, lumps, 0.7))
    parts: list[Shape] = []
    for signs in ((1, 1, 1), (-1, -1, 1), (-1, 1, -1), (1, -1, -1)):
        turn = np.diag(np.asarray(signs, float))  # identity or a 180° turn about x, y, z
        parts.append(lambda p, turn=turn: subunit(p @ turn))
    return parts


def _apoferritin(rng):
    # 24-mer octahedral shell, 12 nm outside, 8 nm lumen, narrow 3-fold channels.
    shell = _cage(57, 17, "octahedral", 4)
    bumps = [_ellipsoid(d * 53, [9, 9, 6]) for d in _directions("icosahedral")]
    return _minus(_union(shell, *bumps), _shell(0, 39))


def _beta_amylase(rng):
    return _union(*_d2([22, 19, 14], [27, 24, 22], rng, 2))


def _beta_galactosidase(rng):
    # Four elongated subunits in a D2 tetramer with an open central channel.
    tetramer = _union(*_d2([38, 26, 6], [46, 29, 25], rng, 3))
    return _minus(tetramer, _capsule([0, 0, -80], [0, 0, 80], 10))


def _ribosome(rng):
    large = _lumps(rng, [0, -38, 0], [104, 92, 84], 6, 0.75)
    small = _lumps(rng, [12, 74, 6], [88, 56, 68], 5, 0.75)
    tunnel = _capsule([0, -40, 0], [0, -140, 30], 9)
    return _minus(_union(*large, *small), tunnel)


def _thyroglobulin(rng):
    # Two intertwined monomers, each a chain of five domains, side by side.
    parts: list[Shape] = []
    for sign in (1, -1):
        for k, x in enumerate(np.linspace(-88, 88, 5)):
            y = sign * (20 + 6 * np.sin(k))
            parts.append(_ellipsoid([x, y, 8 * np.cos(2 * k)], [30, 28, 25], _tilt(rng, 20)))
    return _union(*parts)


def _virus_like_particle(rng):
    # Icosahedral capsid with capsomer knobs on the five- and three-fold axes.
    shell = _shell(100, 120)
    fives = [_ellipsoid(d * 121, [16, 16, 10]) for d in _directions("icosahedral")]
    faces = _directions("icosahedral")
    threes = []
    for i in range(len(faces)):
        for j in range(i + 1, len(faces)):
            for k in range(j + 1, len(faces)):
                centre = faces[i] + faces[j] + faces[k]
                norm = np.linalg.norm(centre)
                if norm > 2.7:  # the 20 faces of the icosahedron
                    threes.append(_ellipsoid(centre / norm * 120, [12, 12, 8]))
    return _union(shell, *fives, *threes)


#: name -> (shape builder, bounding radius in Å, description)
BUILTIN_CLASSES: dict[str, tuple[Callable, float, str]] = {
    "globule_4nm": (lambda r: _globule(r, [19, 17, 15], 2), 32, "small compact globule"),
    "globule_7nm": (lambda r: _globule(r, [34, 30, 26], 3), 55, "medium globule, 3 lumps"),
    "globule_11nm": (lambda r: _globule(r, [52, 46, 40], 5), 85, "large globule, 5 lumps"),
    "dimer_9nm": (_dimer, 65, "two-lobed dimer of equal globules"),
    "ring5_11nm": (lambda r: _union(*_ring(r, 5, 35, (22, 19, 20))), 70, "5-fold ring"),
    "ring7_15nm": (lambda r: _union(*_ring(r, 7, 50, (24, 21, 26))), 90, "7-fold ring"),
    "cylinder6_13nm": (_cylinder6, 90, "hexameric double ring with knobs"),
    "barrel7_16nm": (_barrel7, 95, "four stacked 7-fold rings (proteasome-like)"),
    "rod_15nm": (_rod, 85, "elongated rod"),
    "cage_12nm": (lambda r: _cage(60, 22, "octahedral", 12), 70, "hollow cage, 8 pores"),
    "twolobe_20nm": (_two_lobes, 140, "two-lobed complex (ribosome-like)"),
    "filament_28nm": (_filament, 160, "helical filament segment"),
    "cage_28nm": (lambda r: _cage(140, 30, "icosahedral", 24), 150, "icosahedral shell, 12 pores"),
}


#: Stand-ins for the six CZII particle types (:mod:`faket.phantom.czii`): the same names,
#: sizes near the competition's radii, masses and symmetries near the real complexes'.
CZII_STAND_INS: dict[str, tuple[Callable, float, str]] = {
    "apo-ferritin": (_apoferritin, 70, "octahedral 24-mer shell, 12 nm (apoferritin-like)"),
    "beta-amylase": (_beta_amylase, 70, "D2 tetramer of globules, ~220 kDa"),
    "beta-galactosidase": (_beta_galactosidase, 100, "D2 tetramer of elongated subunits"),
    "ribosome": (_ribosome, 160, "80S-like: large and small subunit, exit tunnel"),
    "thyroglobulin": (_thyroglobulin, 130, "elongated dimer of five-domain chains"),
    "virus-like-particle": (_virus_like_particle, 150, "icosahedral capsid with knobs"),
}

#: Every built-in class: the SHREC-like set, then the CZII stand-ins.
ALL_BUILTINS = BUILTIN_CLASSES | CZII_STAND_INS

#: Keywords of a config's ``classes`` that stand for a whole set of built-in classes.
BUILTIN_SETS: dict[str, list[str]] = {
    "builtin": list(BUILTIN_CLASSES),
    "czii": list(CZII_STAND_INS),
}


def builtin_names() -> list[str]:
    """Names of every built-in class: the SHREC-like set (smallest first), then the six
    CZII stand-ins (``classes: [builtin]`` gives the first set, ``[czii]`` the second)."""
    return list(ALL_BUILTINS)


def class_seed(name: str) -> int:
    """A stable 64-bit seed from a class name (same on every machine and Python run)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def pseudo_atoms(name: str) -> np.ndarray:
    """Pseudo-atom positions of a built-in class.

    Parameters
    ----------
    name
        A name from :func:`builtin_names`.

    Returns
    -------
    np.ndarray
        ``(m, 3)`` ``(x, y, z)`` positions in Å, centred on their mean.
    """
    if name not in ALL_BUILTINS:
        raise FaketError(f"unknown built-in class {name!r}; choose from {', '.join(ALL_BUILTINS)}")
    build, bound, _ = ALL_BUILTINS[name]
    rng = np.random.default_rng(class_seed(name))
    shape = build(rng)
    spacing = residue_volume() ** (1 / 3)
    axis = np.arange(-bound, bound + spacing, spacing)
    lattice = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    points = lattice + rng.uniform(-0.35, 0.35, lattice.shape) * spacing
    points = points[shape(points)]
    return points - points.mean(axis=0)


def builtin_template(
    name: str, voxel_size: float, *, device: str | torch.device = "cpu"
) -> Template:
    """Template of a built-in class at ``voxel_size`` Å.

    Parameters
    ----------
    name
        A name from :func:`builtin_names`.
    voxel_size
        Voxel size in Å (> 0).
    device
        Torch device.

    Returns
    -------
    Template
        The masked, centred template (potential in V).
    """
    if not voxel_size > 0:
        raise FaketError(f"voxel size must be > 0 Å, got {voxel_size}")
    points = pseudo_atoms(name)
    sigma = PSEUDO_ATOM_SIGMA / voxel_size
    reach = np.sqrt((points**2).sum(axis=1)).max() / voxel_size + 4 * sigma
    half = int(np.ceil(reach)) + 1
    size = 2 * half + 1
    amplitude = POTENTIAL_CONSTANT * residue_scattering() / voxel_size**3
    grid = splat_gaussians(
        points[:, ::-1] / voxel_size + half,
        np.full((len(points), 1), amplitude),
        np.full((len(points), 1), sigma),
        (size, size, size),
        device=device,
    )
    info = {"pseudo_atoms": int(len(points)), "description": ALL_BUILTINS[name][2]}
    if name in CZII_OBJECTS:
        info |= {"radius_A": CZII_OBJECTS[name].radius_A, "czii_weight": CZII_OBJECTS[name].weight}
    return finish_template(name, "builtin", grid, voxel_size, info)

"""The CZII 2024-25 cryo-ET object-identification world: its six particle types.

The competition (Kaggle, "CZII - CryoET Object Identification") scored picks of six
protein complexes in 10 Å tomograms of 630 x 630 x 184 voxels. Each type has a radius
(Å), used by the metric (a pick counts within half of it), and a weight in the metric's
weighted F-beta mean (beta-amylase, hard to tell from the others, weighs 0). The values
are the competition's. The built-in stand-ins of the same names
(:mod:`faket.phantom.builtin`) have roughly these sizes, masses and symmetries, so the
world can be built offline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CziiObject:
    """One CZII particle type.

    Attributes
    ----------
    name : the competition's name (also the built-in class name).
    radius_A : particle radius in Å (the metric's match radius is half of it).
    weight : weight in the metric's weighted F-beta mean.
    pdb_id : the structure the competition's particles are.
    mass_kda : approximate mass of the complex (kDa).
    symmetry : point-group symmetry of the complex.
    """

    name: str
    radius_A: float
    weight: float
    pdb_id: str
    mass_kda: float
    symmetry: str


#: The six CZII particle types, in the competition's order.
CZII_OBJECTS: dict[str, CziiObject] = {
    o.name: o
    for o in (
        CziiObject("apo-ferritin", 60.0, 1.0, "4V1W", 470.0, "O"),
        CziiObject("beta-amylase", 65.0, 0.0, "1FA2", 220.0, "D2"),
        CziiObject("beta-galactosidase", 90.0, 2.0, "6X1Q", 465.0, "D2"),
        CziiObject("ribosome", 150.0, 1.0, "6EK0", 4300.0, "C1"),
        CziiObject("thyroglobulin", 130.0, 2.0, "6SCJ", 660.0, "C2"),
        CziiObject("virus-like-particle", 135.0, 1.0, "6N4V", 3000.0, "I"),
    )
}

#: Tomogram shape (Z, Y, X) and voxel size (Å) of the competition's data.
CZII_SHAPE = (184, 630, 630)
CZII_VOXEL_SIZE = 10.0


def czii_names() -> list[str]:
    """Names of the six CZII particle types, in the competition's order."""
    return list(CZII_OBJECTS)

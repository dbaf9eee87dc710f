"""Specimen phantoms: particle templates and SHREC-like grand models with full ground truth.

Templates come from atomic models (Coulomb potential from electron scattering factors),
density maps, PDB IDs (downloaded once) or built-in procedural particles. A grand model
packs them, with vesicles and gold fiducials, into a slab without overlaps, and records
exactly where everything is (class mask, instance mask, particle list).

Typical use::

    from faket.phantom import make_grand_model, write_grand_model
    model = make_grand_model({"shape": (64, 128, 128), "seed": 1})
    write_grand_model(model, "tomo_000")
"""

from faket.phantom.builtin import builtin_names, builtin_template
from faket.phantom.config import ClassSpec, PhantomConfig, parse_config
from faket.phantom.download import fetch_pdb, is_pdb_id
from faket.phantom.files import FILES, check_folder, read_grand_model, write_grand_model
from faket.phantom.grandmodel import GrandModel, make_grand_model
from faket.phantom.physics import gold_potential, protein_potential
from faket.phantom.rotations import (
    matrices_to_zxz,
    random_rotations,
    rotate_volumes,
    zxz_to_matrices,
)
from faket.phantom.templates import Template
from faket.phantom.templates_atomic import atomic_potential, read_atoms, template_from_atomic_model
from faket.phantom.templates_map import template_from_map

__all__ = [
    "FILES",
    "ClassSpec",
    "GrandModel",
    "PhantomConfig",
    "Template",
    "atomic_potential",
    "builtin_names",
    "builtin_template",
    "check_folder",
    "fetch_pdb",
    "gold_potential",
    "is_pdb_id",
    "make_grand_model",
    "matrices_to_zxz",
    "parse_config",
    "protein_potential",
    "random_rotations",
    "read_atoms",
    "read_grand_model",
    "rotate_volumes",
    "template_from_atomic_model",
    "template_from_map",
    "write_grand_model",
    "zxz_to_matrices",
]

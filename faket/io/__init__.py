"""File input and output: MRC/EM volumes and tilt series, tilt angles and particle lists.

All writers are atomic (see :mod:`faket.io.atomic`), and all user-facing problems raise
:class:`faket.errors.FaketError` with a one-line message that names the file.
"""

import importlib

from faket.io.angles import (
    check_angle_count,
    format_angle,
    read_tlt,
    tilt_range,
    validate_angles,
    write_tlt,
)
from faket.io.atomic import (
    atomic_folder,
    atomic_path,
    atomic_write,
    check_target,
    write_text_atomic,
)
from faket.io.image_folder import ImageFolder, read_image_folder
from faket.io.mapped import MrcStackWriter, release_pages
from faket.io.mrc import (
    SUPPORTED_DTYPES,
    MrcData,
    count_nonfinite,
    format_summary,
    is_tilt_series,
    mrc_summary,
    read_mrc,
    write_mrc,
)
from faket.io.tilt_files import ANGLE_SUFFIXES, read_angles

# Particle lists need pandas, starfile and scipy (~1.5 s to import): loaded on first use,
# so commands that only read and write MRC files start faster.
_PARTICLE_NAMES = (
    "COLUMNS",
    "read_particles",
    "read_particles_csv",
    "read_particles_star",
    "read_shrec_particles",
    "relion_to_zxz",
    "validate_particles",
    "write_particles_csv",
    "write_particles_star",
    "write_shrec_particles",
    "zxz_to_relion",
)


def __getattr__(name: str):
    if name in _PARTICLE_NAMES:
        value = getattr(importlib.import_module("faket.io.particles"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ANGLE_SUFFIXES",
    "COLUMNS",
    "SUPPORTED_DTYPES",
    "ImageFolder",
    "MrcData",
    "MrcStackWriter",
    "atomic_folder",
    "atomic_path",
    "atomic_write",
    "check_angle_count",
    "check_target",
    "count_nonfinite",
    "format_angle",
    "format_summary",
    "is_tilt_series",
    "mrc_summary",
    "read_angles",
    "read_image_folder",
    "read_mrc",
    "read_particles",
    "read_particles_csv",
    "read_particles_star",
    "read_shrec_particles",
    "read_tlt",
    "release_pages",
    "relion_to_zxz",
    "tilt_range",
    "validate_angles",
    "validate_particles",
    "write_mrc",
    "write_particles_csv",
    "write_particles_star",
    "write_shrec_particles",
    "write_text_atomic",
    "write_tlt",
    "zxz_to_relion",
]

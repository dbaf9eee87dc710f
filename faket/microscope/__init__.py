"""Reference microscope: a physics-based tilt-series simulator (the BENCHMARK modality).

The specimen potential is embedded in vitreous ice, projected per tilt (single slice, or
multislice with Fresnel propagation), turned into an exit wave (phase object with
amplitude contrast), imaged by an objective lens with a CTF, attenuated by inelastic
scattering along the tilted path, and counted by a detector with Poisson noise, MTF and
DQE; per-tilt defocus errors and shifts are recorded in a metadata table.

Typical use::

    from faket.microscope import simulate_tilt_series
    settings = {"optics": {"defocus_um": -3.0}, "dose": {"total_e_per_a2": 100}}
    projections, metadata = simulate_tilt_series(potential, 10.0, angles, settings, seed=1)
"""

from faket.microscope.config import MicroscopeConfig, parse_config
from faket.microscope.physics import (
    ctf_curve,
    electron_wavelength,
    interaction_constant,
)
from faket.microscope.schedule import METADATA_COLUMNS, acquisition_order, dose_per_tilt
from faket.microscope.simulate import simulate_tilt_series

__all__ = [
    "METADATA_COLUMNS",
    "MicroscopeConfig",
    "acquisition_order",
    "ctf_curve",
    "dose_per_tilt",
    "electron_wavelength",
    "interaction_constant",
    "parse_config",
    "simulate_tilt_series",
]

"""Tomography core: the tilt-series projector and weighted back-projection.

- :func:`project` -- line integrals of a ``(Z, Y, X)`` volume tilted about Y.
- :func:`reconstruct` -- weighted (filtered) back-projection to a volume.
- :mod:`faket.tomography.filters` -- ramp, apodised ramps, Crowther plateau,
  the paper's SHREC-matching 2-D filter.
- :mod:`faket.tomography.geometry` -- the shared sparse-matrix geometry.
"""

from faket.tomography.binning import bin_array
from faket.tomography.filters import FILTERS, crowther_ramp, filter_response, shrec_filter
from faket.tomography.geometry import angular_weights
from faket.tomography.projector import project
from faket.tomography.reconstruction import (
    filter_tilt_series,
    reconstruct,
    reconstruction_shape,
)

__all__ = [
    "FILTERS",
    "angular_weights",
    "bin_array",
    "crowther_ramp",
    "filter_response",
    "filter_tilt_series",
    "project",
    "reconstruct",
    "reconstruction_shape",
    "shrec_filter",
]

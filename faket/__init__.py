"""faket: fast, fully annotated synthetic cryo-electron tomography training data.

The package is organised by stage of the data flow:

- :mod:`faket.io` -- MRC volumes and tilt series, tilt-angle files, particle lists.
- :mod:`faket.phantom` -- synthetic specimens ("grand models") with ground truth.
- :mod:`faket.tomography` -- the tilt-series projector and weighted back-projection.
- :mod:`faket.cli` -- the ``faket`` command line, a thin layer over the above.
"""

from faket.errors import FaketError

__version__ = "0.1.0"

__all__ = ["FaketError", "__version__"]

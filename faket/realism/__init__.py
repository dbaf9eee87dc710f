"""Realism: how close simulated data is to reference data (``faket compare``).

- :mod:`faket.realism.metrics` -- per-image statistics compared image by image.
- :mod:`faket.realism.files` -- compare two files, write ``compare.json`` and a figure.
- :mod:`faket.realism.dataset` -- every modality of a ``faket run`` dataset against its
  BENCHMARK style data (``realism.json``, ``figures/realism.png``), and
  :func:`~faket.realism.dataset.modality_realism` for tables.
"""

from faket.realism.metrics import LAGS, Comparison, compare_stacks, image_statistics

__all__ = ["LAGS", "Comparison", "compare_stacks", "image_statistics"]

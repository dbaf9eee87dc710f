"""Figure helpers: a headless backend and atomic PNG saving."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never need a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from faket.io.atomic import atomic_path  # noqa: E402


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save ``figure`` as PNG at ``path`` atomically and close it."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(figure)
    return Path(path)

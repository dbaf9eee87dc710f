"""Resolving tilt angles from ``--angles FILE`` or ``--tilt-range`` options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from faket.cli._common import require_input
from faket.errors import FaketError
from faket.io import read_angles, tilt_range

ANGLE_FILES_HELP = (
    "Tilt angles (degrees): IMOD .tlt/.rawtlt, SerialEM .mdoc, RELION 5 tilt-series .star "
    "or PyTom projection-list .xml."
)
AnglesOption = typer.Option(None, "--angles", help=ANGLE_FILES_HELP)
TiltRangeOption = typer.Option(
    None,
    "--tilt-range",
    metavar="START STOP",
    help="First and last tilt angle in degrees, two numbers (default: -60 60).",
)
TiltStepOption = typer.Option(None, "--tilt-step", help="Tilt increment in degrees (default: 2).")


def resolve_angles(
    angles_file: Path | None, tilt_range_deg: tuple[float, float] | None, tilt_step: float | None
) -> np.ndarray:
    """Angles (degrees) from an angle file or a range; default -60..60 step 2."""
    if angles_file is not None:
        if tilt_range_deg is not None or tilt_step is not None:
            raise FaketError("give either --angles or --tilt-range/--tilt-step, not both")
        return read_angles(require_input(angles_file))
    start, stop = tilt_range_deg if tilt_range_deg is not None else (-60.0, 60.0)
    return tilt_range(start, stop, tilt_step if tilt_step is not None else 2.0)


def tlt_beside(output: Path) -> Path:
    """The ``.tlt`` file written next to a tilt-series output: same name, ``.tlt`` suffix."""
    return output.with_suffix(".tlt")

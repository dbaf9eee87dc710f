"""Plausibility checks of a microscope input: does it look like a potential in volts?"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_PLAUSIBLE_POTENTIAL_V", "potential_problem"]

#: Above bulk gold's ~30 V mean potential with a wide margin: no specimen reaches this.
MAX_PLAUSIBLE_POTENTIAL_V = 100.0
#: Below vacuum (0 V) by more than round-off and interpolation ringing allow.
MIN_PLAUSIBLE_POTENTIAL_V = -1.0


def potential_problem(potential: np.ndarray, potential_scale: float = 1.0) -> str | None:
    """Why ``potential`` does not look like a specimen potential in volts, or None.

    A potential is >= 0 relative to vacuum and at most ~30 V (gold); protein is ~8 V. An
    8-bit or 16-bit tomogram (0..255, -32768..32767) or a normalised map (negative
    values) gives nonsense electron counts, so the microscope warns about such inputs.

    Parameters
    ----------
    potential
        ``(Z, Y, X)`` input, may be memory-mapped (scanned slab by slab).
    potential_scale
        Volts per input unit.

    Returns
    -------
    str or None
        A sentence naming the problem and the fix, or None when the values are plausible.
    """
    low, high = np.inf, -np.inf
    step = max(1, (1 << 24) // max(1, int(np.prod(potential.shape[1:]))))
    for start in range(0, potential.shape[0], step):
        slab = np.asarray(potential[start : start + step], dtype=np.float64) * potential_scale
        low, high = min(low, float(slab.min())), max(high, float(slab.max()))
    kind = ""
    if np.issubdtype(potential.dtype, np.integer):
        kind = f"{potential.dtype.name} data, like a reconstructed tomogram, "
    if kind or high > MAX_PLAUSIBLE_POTENTIAL_V or low < MIN_PLAUSIBLE_POTENTIAL_V:
        return (
            f"the input holds {kind}values {low:.4g}..{high:.4g} V, not a specimen potential "
            f"in volts (0 in vacuum, ~8 V protein, ~30 V gold); the simulated counts will be "
            "meaningless: pass a grand model from faket phantom, or --potential-scale to "
            "convert its units to volts"
        )
    return None

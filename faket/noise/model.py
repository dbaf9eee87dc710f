"""The noise model: per-tilt noise statistics, their aggregation, and the JSON file.

A :class:`NoiseCurves` holds four per-tilt quantities of one tilt series (or of an
aggregate of several):

``r``
    Scale of the standardized noiseless signal inside the standardized style tilt.
``sigma``
    Standard deviation of the residual noise, in units of the style tilt's std.
``style_mean``, ``style_std``
    Mean and (population) standard deviation of the style tilt, in its own units.

A :class:`NoiseModel` aggregates the curves of several training tomograms (paper sec. 3.2):
each quantity's curve over the tilt index is fitted by a polynomial of a chosen order
(-1 = the raw curve, 0 = a constant, 2 = the paper's NOISY), and the fits are averaged over
the tomograms. The raw per-tomogram curves are kept for plots and provenance.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faket.errors import FaketError

__all__ = [
    "FORMAT",
    "QUANTITIES",
    "VERSION",
    "NoiseCurves",
    "NoiseModel",
    "aggregate_curves",
    "fit_curve",
    "load_noise_model",
    "save_noise_model",
]

FORMAT = "faket-noise-model"
VERSION = 1
QUANTITIES = ("r", "sigma", "style_mean", "style_std")


@dataclass(frozen=True, eq=False)
class NoiseCurves:
    """Per-tilt noise statistics, each an array of shape ``(n_tilts,)`` (float64).

    Attributes
    ----------
    r : array
        Scale of the standardized clean signal in the standardized style tilt (unitless).
    sigma : array
        Residual noise std in units of the style tilt's std (unitless, >= 0).
    style_mean, style_std : array
        Mean and population std of each style tilt (the style file's units; std > 0).
    """

    r: np.ndarray
    sigma: np.ndarray
    style_mean: np.ndarray
    style_std: np.ndarray

    def __post_init__(self) -> None:
        arrays = {name: np.asarray(getattr(self, name), dtype=np.float64) for name in QUANTITIES}
        n = arrays["r"].shape
        if any(a.ndim != 1 or a.shape != n for a in arrays.values()):
            shapes = {k: a.shape for k, a in arrays.items()}
            raise FaketError(f"noise curves must be 1-D and of equal length, got {shapes}")
        for name, value in arrays.items():
            object.__setattr__(self, name, value)

    @property
    def n_tilts(self) -> int:
        """Number of tilts."""
        return int(self.r.size)

    def as_dict(self) -> dict[str, np.ndarray]:
        """The four curves by name."""
        return {name: getattr(self, name) for name in QUANTITIES}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoiseCurves):
            return NotImplemented
        return all(np.array_equal(getattr(self, q), getattr(other, q)) for q in QUANTITIES)


def fit_curve(curve: np.ndarray, order: int) -> np.ndarray:
    """Least-squares polynomial of the tilt index fitted to a per-tilt curve.

    Parameters
    ----------
    curve : array, shape (n_tilts,)
    order : int
        -1 returns the curve unchanged; 0 its mean; k >= 1 a degree-k polynomial of the
        tilt index 0..n_tilts-1 evaluated at the same indices.

    Returns
    -------
    array, shape (n_tilts,), float64
    """
    values = np.asarray(curve, dtype=np.float64)
    _check_order(order, values.size)
    if order == -1:
        return values.copy()
    if order == 0:
        return np.full(values.size, values.mean())
    index = np.arange(values.size, dtype=np.float64)
    # Polynomial.fit maps the indices to [-1, 1] first, which keeps the fit well conditioned.
    return np.polynomial.Polynomial.fit(index, values, order)(index)


def _check_order(order: int, n_tilts: int) -> None:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)):
        raise FaketError(f"polynomial order must be an integer, got {order!r}")
    if order < -1 or order >= max(n_tilts, 1):
        raise FaketError(
            f"polynomial order {order} is not possible with {n_tilts} tilts; "
            f"use -1 (raw), 0 (constant) or an order below {n_tilts}"
        )


def aggregate_curves(curves: Sequence[NoiseCurves], order: int) -> NoiseCurves:
    """Fit every quantity of every tomogram with ``order`` and average over tomograms.

    Parameters
    ----------
    curves : sequence of NoiseCurves, all with the same number of tilts
    order : int
        See :func:`fit_curve`.

    Returns
    -------
    NoiseCurves
        The mean over tomograms of the fitted curves.
    """
    if len(curves) == 0:
        raise FaketError("no noise curves to aggregate; estimate at least one tilt series")
    n_tilts = {c.n_tilts for c in curves}
    if len(n_tilts) != 1:
        raise FaketError(f"tilt series with different numbers of tilts: {sorted(n_tilts)}")
    fitted = {
        q: np.mean([fit_curve(getattr(c, q), order) for c in curves], axis=0) for q in QUANTITIES
    }
    return NoiseCurves(**fitted)


def clip_negative_r(curves: NoiseCurves, angles_deg: np.ndarray) -> NoiseCurves:
    """``curves`` with ``r`` clipped to >= 0; warns where it was negative.

    Parameters
    ----------
    curves : NoiseCurves
    angles_deg : array, shape (n_tilts,)
        For the warning (which tilt angles were clipped).

    Returns
    -------
    NoiseCurves
    """
    negative = np.flatnonzero(curves.r < 0)
    if not negative.size:
        return curves
    worst = int(negative[np.argmin(curves.r[negative])])
    where = f" at {angles_deg[worst]:g} deg" if angles_deg.shape == curves.r.shape else ""
    warnings.warn(
        f"the fitted noise curve r is negative at {negative.size} tilt(s) (lowest "
        f"{curves.r[worst]:.3g}{where}), which would invert the signal there; clipped to 0",
        RuntimeWarning,
        stacklevel=3,
    )
    values = curves.as_dict()
    values["r"] = np.clip(values["r"], 0.0, None)
    return NoiseCurves(**values)


@dataclass(frozen=True, eq=False)
class NoiseModel:
    """Aggregated tilt-dependent noise statistics, ready to apply.

    Attributes
    ----------
    angles_deg : array, shape (n_tilts,)
        Tilt angles in degrees, one per tilt.
    order : int
        Polynomial order of the aggregation (-1 raw, 0 constant, 2 the paper's NOISY).
    curves : NoiseCurves
        The aggregated per-tilt r, sigma, style mean and style std.
    raw : tuple of NoiseCurves
        The per-tomogram curves the model was aggregated from (may be empty).
    provenance : dict
        JSON-serialisable facts about the estimation (files, time, method, version).
    """

    angles_deg: np.ndarray
    order: int
    curves: NoiseCurves
    raw: tuple[NoiseCurves, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        angles = np.asarray(self.angles_deg, dtype=np.float64)
        object.__setattr__(self, "angles_deg", angles)
        object.__setattr__(self, "order", int(self.order))
        object.__setattr__(self, "raw", tuple(self.raw))
        _check_model(self)

    @classmethod
    def from_curves(
        cls,
        raw: Sequence[NoiseCurves],
        angles_deg: Sequence[float] | np.ndarray,
        order: int = 2,
        provenance: dict[str, Any] | None = None,
    ) -> NoiseModel:
        """Aggregate per-tomogram curves (see :func:`aggregate_curves`) into a model.

        A fitted ``r`` below 0 (a polynomial overshooting at noise-dominated high tilts)
        would invert the signal there; it is clipped to 0, with a warning.
        """
        angles = np.asarray(angles_deg, dtype=np.float64)
        curves = clip_negative_r(aggregate_curves(raw, order), angles)
        return cls(
            angles_deg=angles,
            order=order,
            curves=curves,
            raw=tuple(raw),
            provenance=dict(provenance or {}),
        )

    @property
    def n_tilts(self) -> int:
        """Number of tilts."""
        return self.curves.n_tilts

    r = property(lambda self: self.curves.r, doc="Aggregated r per tilt.")
    sigma = property(lambda self: self.curves.sigma, doc="Aggregated sigma per tilt.")
    style_mean = property(lambda self: self.curves.style_mean, doc="Style mean per tilt.")
    style_std = property(lambda self: self.curves.style_std, doc="Style std per tilt.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoiseModel):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (floats are exact: JSON keeps Python's float repr)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "order": self.order,
            "angles_deg": _floats(self.angles_deg),
            **{q: _floats(a) for q, a in self.curves.as_dict().items()},
            "raw": {q: [_floats(getattr(c, q)) for c in self.raw] for q in QUANTITIES},
            "provenance": self.provenance,
        }

    def to_json(self) -> str:
        """The model as JSON text, one line per curve."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        # Put every list of numbers on one line so the file stays readable.
        return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "noise model") -> NoiseModel:
        """Build a model from :meth:`to_dict` output; bad content raises FaketError."""
        _check_header(data, source)
        try:
            n_tomos = len(data["raw"]["r"]) if data.get("raw") else 0
            raw = tuple(
                NoiseCurves(**{q: _array(data["raw"][q][k]) for q in QUANTITIES})
                for k in range(n_tomos)
            )
            return cls(
                angles_deg=_array(data["angles_deg"]),
                order=_integer(data["order"]),
                curves=NoiseCurves(**{q: _array(data[q]) for q in QUANTITIES}),
                raw=raw,
                provenance=dict(data.get("provenance") or {}),
            )
        except FaketError as err:
            raise FaketError(f"{source}: {err}") from None
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise FaketError(
                f"{source}: malformed noise model ({type(err).__name__}: {err}); "
                "re-create it with 'faket noise estimate'"
            ) from None

    @classmethod
    def from_json(cls, text: str, source: str = "noise model") -> NoiseModel:
        """Parse :meth:`to_json` output; malformed or mismatched JSON raises FaketError."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise FaketError(
                f"{source}: not valid JSON (line {err.lineno}: {err.msg}); "
                "re-create it with 'faket noise estimate'"
            ) from None
        return cls.from_dict(data, source)


_NUMBER_LIST = re.compile(r"\[\s*([-+0-9.eE,\s]+?)\s*\]")


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def _array(values: Any) -> np.ndarray:
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise FaketError("expected a list of numbers")
    return np.asarray(values, dtype=np.float64)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaketError(f"order must be an integer, got {value!r}")
    return value


def _check_header(data: Any, source: str) -> None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FaketError(
            f'{source} is not a faket noise model (no "format": "{FORMAT}"); '
            "pass a file written by 'faket noise estimate'"
        )
    version = data.get("version")
    if version != VERSION:
        raise FaketError(
            f"{source}: noise model version {version!r} is not supported (this faket reads "
            f"version {VERSION}); re-create it with this faket's 'faket noise estimate'"
        )


def _check_model(model: NoiseModel) -> None:
    n = model.curves.n_tilts
    if n == 0:
        raise FaketError("a noise model needs at least one tilt")
    if model.angles_deg.shape != (n,):
        raise FaketError(f"{model.angles_deg.size} tilt angles for {n} tilts of noise curves")
    _check_order(model.order, n)
    for curves in (model.curves, *model.raw):
        if curves.n_tilts != n:
            raise FaketError(f"raw curves with {curves.n_tilts} tilts in a {n}-tilt model")
        values = np.stack(list(curves.as_dict().values()))
        if not np.all(np.isfinite(values)):
            raise FaketError("noise curves contain NaN or infinite values")
        if np.any(curves.sigma < 0) or np.any(curves.style_std <= 0):
            raise FaketError("noise curves need sigma >= 0 and style_std > 0 at every tilt")
    if not np.all(np.isfinite(model.angles_deg)):
        raise FaketError("tilt angles must be finite numbers")


def save_noise_model(
    model: NoiseModel, path: str | os.PathLike[str], *, overwrite: bool = True
) -> Path:
    """Write ``model`` as JSON to ``path`` atomically; returns the path."""
    from faket.io import write_text_atomic

    return write_text_atomic(path, model.to_json(), overwrite=overwrite)


def load_noise_model(path: str | os.PathLike[str]) -> NoiseModel:
    """Read a noise model JSON file; a missing, malformed or mismatched file raises FaketError."""
    file = Path(path)
    if not file.is_file():
        raise FaketError(f"noise model {file} does not exist; run 'faket noise estimate' first")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FaketError(f"cannot read noise model {file}: {err}") from None
    return NoiseModel.from_json(text, source=str(file))

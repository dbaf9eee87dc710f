"""Physical constants of the specimen potential shared by every template route.

The electrostatic (Coulomb) potential of a neutral atom follows from its electron
scattering factor ``f(s) = sum_i a_i exp(-b_i s²)`` (``s = sin(theta)/lambda`` in 1/Å,
Peng et al. 1996 / International Tables C 4.3.2.2, as tabulated by gemmi) through the
Mott-Bethe relation:

``V(r) = C * sum_i a_i (4 pi / b_i)^(3/2) exp(-4 pi² r² / b_i)`` with ``C = h² / (2 pi m0 e)``.

Each term is a 3-D Gaussian with variance ``b_i / (8 pi²)`` (Å²) and integral ``C a_i``
(V·Å³), so the integral of an atom's potential is ``C f(0)``. A B-factor ``B`` adds
``B / (8 pi²)`` to every variance and leaves the integral unchanged.

Protein-scale constants (used by the built-in particles and to normalise density maps)
come from the average amino-acid composition ("averagine", Senko et al. 1995,
C4.9384 H7.7583 N1.3577 O1.4773 S0.0417, 111.1254 Da) packed at 1.35 g/cm³.
"""

from __future__ import annotations

from functools import cache

import gemmi
import numpy as np

#: Planck constant (J s), electron rest mass (kg) and elementary charge (C), CODATA 2018.
_H, _M0, _E = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19
#: ``h² / (2 pi m0 e)`` in V·Å² (about 47.88): potential per unit scattering factor.
POTENTIAL_CONSTANT = _H**2 / (2 * np.pi * _M0 * _E) * 1e20
#: Average amino-acid residue with hydrogens, atoms per residue.
AVERAGINE = {"C": 4.9384, "H": 7.7583, "N": 1.3577, "O": 1.4773, "S": 0.0417}
#: Average residue mass (Da) and protein density (g/cm³).
AVERAGINE_MASS_DA = 111.1254
PROTEIN_DENSITY = 1.35
_DALTON_G = 1.66053906660e-24
#: Gold: density (g/cm³) and molar mass (g/mol); Avogadro's number.
_GOLD_DENSITY, _GOLD_MOLAR_MASS, _AVOGADRO = 19.32, 196.96657, 6.02214076e23


@cache
def scattering_coefficients(element: str) -> tuple[np.ndarray, np.ndarray]:
    """Electron scattering-factor Gaussian coefficients of one element.

    Parameters
    ----------
    element
        Element symbol (``"C"``, ``"Au"``); unknown symbols fall back to gemmi's default.

    Returns
    -------
    a, b : np.ndarray
        ``(5,)`` amplitudes (Å) and ``(5,)`` widths (Å²) of ``f(s) = sum a exp(-b s²)``.
    """
    coefs = np.asarray(gemmi.Element(element).c4322.get_coefs(), dtype=np.float64)
    return coefs[:5], coefs[5:]


def forward_scattering(element: str) -> float:
    """``f(0)`` of an element in Å: the potential integral is ``POTENTIAL_CONSTANT * f(0)``."""
    return float(scattering_coefficients(element)[0].sum())


def residue_volume() -> float:
    """Volume (Å³) of one average residue at protein density."""
    return AVERAGINE_MASS_DA * _DALTON_G / PROTEIN_DENSITY * 1e24


def residue_scattering() -> float:
    """``f(0)`` (Å) of one average residue, hydrogens included."""
    return sum(count * forward_scattering(el) for el, count in AVERAGINE.items())


def protein_potential() -> float:
    """Mean potential (V) of densely packed protein in vacuum, about 7.9 V."""
    return POTENTIAL_CONSTANT * residue_scattering() / residue_volume()


def gold_potential() -> float:
    """Mean potential (V) of bulk gold, about 30 V."""
    atoms_per_a3 = _GOLD_DENSITY / _GOLD_MOLAR_MASS * _AVOGADRO * 1e-24
    return POTENTIAL_CONSTANT * forward_scattering("Au") * atoms_per_a3

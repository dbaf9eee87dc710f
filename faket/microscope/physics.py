"""Electron optics: wavelength, interaction constant, CTF, envelopes, propagation, detector.

Conventions (Kirkland, *Advanced Computing in Electron Microscopy*, with the sign of the
defocus flipped so that *negative defocus is underfocus*, as cryo-EM users quote it):

- spatial frequency ``k`` in 1/Å, numpy FFT layout (``fftfreq``);
- wave aberration ``chi(k) = pi lambda k² df + (pi/2) Cs lambda³ k⁴`` (rad), ``df`` in Å;
- the objective transfers the exit wave's spectrum by ``exp(-i chi) E_s E_t exp(-B k²/4)``;
- free-space propagation over a distance ``dz`` (Å, downstream positive) multiplies it by
  ``exp(-i pi lambda dz k²)``: the same as a defocus of ``+dz``;
- a weak phase ``phi`` with amplitude-contrast fraction ``A`` gives the intensity
  ``1 + 2 (CTF * phi) / sqrt(1 - A²)`` with ``CTF = sqrt(1 - A²) sin chi - A cos chi``
  (negative at low frequency in underfocus: dense matter is dark).
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Planck constant (J s), electron rest mass (kg), elementary charge (C), speed of light (m/s).
_H, _M0, _E, _C = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0
#: Water molecules per Å³ in vitreous ice (0.94 g/cm³).
WATER_MOLECULES_PER_A3 = 0.94 / 18.015 * 0.602214076
#: Inelastic mean free path (nm) of vitreous ice at 300 kV.
ICE_MEAN_FREE_PATH_300KV_NM = 350.0


def _check_voltage(voltage_kv: float) -> float:
    if not voltage_kv > 0:
        raise ValueError(f"voltage must be positive, got {voltage_kv} kV")
    return float(voltage_kv) * 1e3


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength (Å): ``h / sqrt(2 m0 e V (1 + e V / (2 m0 c²)))``."""
    volts = _check_voltage(voltage_kv)
    momentum2 = 2 * _M0 * _E * volts * (1 + _E * volts / (2 * _M0 * _C**2))
    return _H / math.sqrt(momentum2) * 1e10


def lorentz_factor(voltage_kv: float) -> float:
    """``gamma = 1 + e V / (m0 c²)``."""
    return 1 + _E * _check_voltage(voltage_kv) / (_M0 * _C**2)


def beta_squared(voltage_kv: float) -> float:
    """``(v / c)²`` of the beam electrons; inelastic cross-sections scale roughly as 1/β²."""
    return 1 - 1 / lorentz_factor(voltage_kv) ** 2


def interaction_constant(voltage_kv: float) -> float:
    """Phase shift per projected potential, ``sigma = 2 pi gamma m0 e lambda / h²`` (rad/(V Å)).

    About 6.5e-4 rad/(V Å) at 300 kV, 7.3e-4 at 200 kV.
    """
    wavelength_m = electron_wavelength(voltage_kv) * 1e-10
    sigma = 2 * math.pi * lorentz_factor(voltage_kv) * _M0 * _E * wavelength_m / _H**2
    return sigma * 1e-10


def ice_mean_free_path_nm(voltage_kv: float) -> float:
    """Inelastic mean free path of vitreous ice (nm): 350 nm at 300 kV, scaled by β²."""
    return ICE_MEAN_FREE_PATH_300KV_NM * beta_squared(voltage_kv) / beta_squared(300.0)


def frequency_grid(
    shape: tuple[int, int], pixel_size: float, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial frequencies (1/Å) of a ``(ny, nx)`` image in FFT layout.

    Returns
    -------
    ky, kx : torch.Tensor, shapes (ny, 1) and (1, nx), float64
    """
    ny, nx = shape
    ky = torch.fft.fftfreq(ny, d=pixel_size, dtype=torch.float64, device=device)[:, None]
    kx = torch.fft.fftfreq(nx, d=pixel_size, dtype=torch.float64, device=device)[None, :]
    return ky, kx


def defocus_field(
    ky: torch.Tensor,
    kx: torch.Tensor,
    defocus_um: float,
    astigmatism_um: float = 0.0,
    astigmatism_angle_deg: float = 0.0,
) -> torch.Tensor:
    """Direction-dependent defocus (Å): ``df - (astig / 2) cos(2 (phi - phi_a))``.

    Along ``phi_a`` the defocus is ``df - astig / 2`` (more underfocused), across it
    ``df + astig / 2``.
    """
    phi = torch.atan2(ky, kx)
    angle = math.radians(astigmatism_angle_deg)
    return 1e4 * (defocus_um - 0.5 * astigmatism_um * torch.cos(2 * (phi - angle)))


def aberration_phase(
    k2: torch.Tensor, defocus_angstrom: torch.Tensor | float, cs_mm: float, wavelength: float
) -> torch.Tensor:
    """Wave aberration ``chi`` (rad) at squared frequency ``k2`` (1/Å²)."""
    cs = cs_mm * 1e7
    return math.pi * wavelength * k2 * defocus_angstrom + 0.5 * math.pi * cs * wavelength**3 * k2**2


def focal_spread(
    chromatic_aberration_mm: float,
    energy_spread_ev: float,
    lens_stability: float,
    voltage_kv: float,
) -> float:
    """Standard deviation of the defocus (Å): ``Cc sqrt((dE/E)² + (dV/V)² + (2 dI/I)²)``."""
    relative = math.sqrt(
        (energy_spread_ev / _check_voltage(voltage_kv)) ** 2
        + lens_stability**2
        + (2 * lens_stability) ** 2
    )
    return chromatic_aberration_mm * 1e7 * relative


def coherence_envelope(
    k2: torch.Tensor,
    defocus_angstrom: torch.Tensor | float,
    *,
    cs_mm: float,
    wavelength: float,
    aperture_mrad: float,
    focal_spread_angstrom: float,
) -> torch.Tensor:
    """Partial-coherence damping of the wave (quasi-coherent approximation, Kirkland).

    Spatial: ``exp(-(pi alpha)² k² (df + Cs lambda² k²)²)`` for illumination semi-angle
    ``alpha``; temporal: ``exp(-(pi lambda Delta k²)² / 2)`` for focal spread ``Delta``.
    """
    alpha = aperture_mrad * 1e-3
    gradient = defocus_angstrom + cs_mm * 1e7 * wavelength**2 * k2
    spatial = torch.exp(-((math.pi * alpha) ** 2) * k2 * gradient**2)
    temporal = torch.exp(-0.5 * (math.pi * wavelength * focal_spread_angstrom * k2) ** 2)
    return spatial * temporal


def b_factor_envelope(k2: torch.Tensor, b_factor: float) -> torch.Tensor:
    """Amplitude damping ``exp(-B k² / 4)`` for a B-factor ``B`` (Å²)."""
    return torch.exp(-0.25 * b_factor * k2)


def fresnel_propagator(k2: torch.Tensor, distance: float, wavelength: float) -> torch.Tensor:
    """Free-space propagator ``exp(-i pi lambda dz k²)`` over ``distance`` Å (complex128)."""
    return torch.polar(torch.ones_like(k2), -math.pi * wavelength * distance * k2)


def critical_exposure(k: torch.Tensor, voltage_kv: float) -> torch.Tensor:
    """Grant & Grigorieff (2015) critical exposure (e-/Å²) at frequency ``k`` (1/Å).

    ``N_e(k) = 0.245 k^-1.665 + 2.81`` at 300 kV; other voltages scale with β² (damage per
    electron grows as the inelastic cross-section), which reproduces their factor 0.8 at
    200 kV.
    """
    safe = torch.clamp(k, min=1e-6)
    return (0.245 * safe**-1.665 + 2.81) * (beta_squared(voltage_kv) / beta_squared(300.0))


def damage_filter(
    k2: torch.Tensor,
    prior_dose: torch.Tensor | float,
    dose: torch.Tensor | float,
    model: str,
    voltage_kv: float,
    b_factor_per_dose: float,
) -> torch.Tensor | None:
    """Amplitude attenuation of the specimen, averaged over one exposure.

    During an exposure the specimen keeps fading: the electrons that arrive after a dose
    ``D`` (e-/Å²) see its detail attenuated by ``exp(-a D)``, with
    ``a = 1 / (2 N_e(k))`` (``exposure_filter``, Grant & Grigorieff 2015) or
    ``a = b k² / 4`` (``b_factor``). An image recorded from ``prior_dose`` to
    ``prior_dose + dose`` is their mean: ``exp(-a D0) (1 - exp(-a d)) / (a d)``.
    ``none``: None. The doses broadcast against ``k2`` (e.g. shape ``(n_tilts, 1, 1)``).
    """
    if model == "none":
        return None
    if model == "exposure_filter":
        rate = 1 / (2 * critical_exposure(torch.sqrt(k2), voltage_kv))
    elif model == "b_factor":
        rate = 0.25 * b_factor_per_dose * k2
    else:
        raise ValueError(f"unknown damage model {model!r}")
    exponent = rate * dose
    # (1 - exp(-x)) / x, equal to 1 at x = 0.
    mean_over_exposure = torch.where(
        exponent > 1e-12, -torch.expm1(-exponent) / exponent.clamp(min=1e-12), 1.0
    )
    return torch.exp(-rate * prior_dose) * mean_over_exposure


def pixel_aperture(ky: torch.Tensor, kx: torch.Tensor, pixel_size: float) -> torch.Tensor:
    """Transfer of a square pixel's area average, ``sinc(pi wx / 2) sinc(pi wy / 2)``.

    ``w`` is the frequency in Nyquist units. Voxelised specimens (every faket grand model)
    already hold voxel averages, so their images carry this factor before any detector.
    """
    nyquist = 0.5 / pixel_size
    return torch.sinc(ky / nyquist / 2) * torch.sinc(kx / nyquist / 2)


def detector_transfer(
    ky: torch.Tensor,
    kx: torch.Tensor,
    pixel_size: float,
    model: str,
    mtf_rolloff: float,
    dqe_zero: float,
    dqe_nyquist: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MTF and DQE of the detector at the image's frequencies.

    ``counting``: ``MTF = sinc(pi wx / 2) sinc(pi wy / 2) exp(-w² / (2 r²))`` (the square
    pixel aperture, :func:`pixel_aperture`, times a roll-off of width ``r``: the MTF a
    detector's data sheet quotes), ``DQE = dqe0 - (dqe0 - dqeN) min(w, 1)²``, with ``w`` the
    frequency in Nyquist units. ``ideal``: both 1.

    Returns
    -------
    mtf, dqe : torch.Tensor, shape (ny, nx), float64
    """
    nyquist = 0.5 / pixel_size
    wy, wx = ky / nyquist, kx / nyquist
    if model == "ideal":
        ones = torch.ones(torch.broadcast_shapes(wy.shape, wx.shape), dtype=wy.dtype)
        return ones.to(wy.device), ones.to(wy.device)
    w2 = wy**2 + wx**2
    mtf = pixel_aperture(ky, kx, pixel_size) * torch.exp(-w2 / (2 * mtf_rolloff**2))
    dqe = dqe_zero - (dqe_zero - dqe_nyquist) * torch.clamp(w2, max=1.0)
    return mtf, dqe


def ctf_curve(
    k: np.ndarray,
    *,
    defocus_um: float,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
) -> np.ndarray:
    """The linear CTF ``sqrt(1 - A²) sin chi - A cos chi`` at frequencies ``k`` (1/Å).

    For plots and checks; no envelopes.
    """
    k2 = torch.as_tensor(np.asarray(k, dtype=np.float64)) ** 2
    chi = aberration_phase(k2, 1e4 * defocus_um, cs_mm, electron_wavelength(voltage_kv))
    a = amplitude_contrast
    return (math.sqrt(1 - a * a) * torch.sin(chi) - a * torch.cos(chi)).numpy()

"""From projected potential to detector counts, one tilt at a time.

The steps follow the physics in order: the specimen's transmission function
``exp((i - w) sigma V_p)`` (phase-object approximation; ``w = A / sqrt(1 - A²)`` gives the
amplitude-contrast fraction ``A``), optional Fresnel propagation between slabs, the
objective lens (defocus with astigmatism, Cs, coherence envelopes, B-factor, the tilt's
image shift), the intensity, inelastic attenuation (applied by the caller), then the
detector: Poisson counting with the DQE and MTF of a counting camera.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from faket.microscope.config import MicroscopeConfig
from faket.microscope.physics import (
    aberration_phase,
    b_factor_envelope,
    coherence_envelope,
    damage_filter,
    defocus_field,
    detector_transfer,
    electron_wavelength,
    focal_spread,
    frequency_grid,
    fresnel_propagator,
    interaction_constant,
    pixel_aperture,
)


class ImageFormation:
    """Frequency grids and constants of one simulation, on one device.

    Parameters
    ----------
    shape
        ``(ny, nx)`` of the (padded) images.
    pixel_size
        Å per pixel.
    config
        Microscope settings.
    device
        Where the FFTs run.
    """

    def __init__(self, shape: tuple[int, int], pixel_size: float, config: MicroscopeConfig, device):
        self.shape, self.pixel_size, self.config = shape, pixel_size, config
        self.device = torch.device(device)
        optics = config.optics
        self.wavelength = electron_wavelength(optics.voltage_kv)
        self.sigma = interaction_constant(optics.voltage_kv)
        amplitude = optics.amplitude_contrast
        self.absorption = amplitude / math.sqrt(1 - amplitude**2)
        self.ky, self.kx = frequency_grid(shape, pixel_size, self.device)
        self.k2 = self.ky**2 + self.kx**2
        self.focal_spread = focal_spread(
            optics.chromatic_aberration_mm,
            optics.energy_spread_ev,
            optics.lens_stability,
            optics.voltage_kv,
        )
        detector = config.detector
        ky, kx = self.ky, torch.fft.rfftfreq(shape[1], d=pixel_size, dtype=torch.float64)
        self.mtf, self.dqe = detector_transfer(
            ky,
            kx[None, :].to(self.device),
            pixel_size,
            detector.model,
            detector.mtf_rolloff,
            detector.dqe_zero,
            detector.dqe_nyquist,
        )
        # The specimen is voxel-averaged already: the detector adds only what its MTF has
        # beyond the pixel's own area average (see detect).
        self.aperture = pixel_aperture(ky, kx[None, :].to(self.device), pixel_size)

    def per_tilt(self, values) -> torch.Tensor:
        """Per-tilt numbers as a float64 ``(n, 1, 1)`` tensor that broadcasts over images."""
        return torch.tensor(np.array(values, dtype=np.float64), device=self.device)[:, None, None]

    def damage(self, potential: torch.Tensor, prior_dose, dose) -> torch.Tensor:
        """Projected potentials ``(n, ny, nx)`` low-passed by radiation damage.

        ``prior_dose`` (e-/Å²) received before the image, ``dose`` during it: one number per
        image, or one for all. The attenuation is averaged over the exposure.
        """
        dose_config = self.config.dose
        prior = self.per_tilt(np.broadcast_to(prior_dose, potential.shape[:1]))
        dose = self.per_tilt(np.broadcast_to(dose, potential.shape[:1]))
        response = damage_filter(
            self.k2,
            prior,
            dose,
            dose_config.damage,
            self.config.optics.voltage_kv,
            dose_config.b_factor_per_dose,
        )
        if response is None:
            return potential
        return torch.fft.ifft2(torch.fft.fft2(potential) * response).real.float()

    def transmission(self, potential_va: torch.Tensor) -> torch.Tensor:
        """``exp((i - w) sigma V_p)`` for a projected potential in V Å (complex64)."""
        phase = self.sigma * potential_va
        return torch.polar(torch.exp(-self.absorption * phase), phase)

    def propagator(self, distance: float) -> torch.Tensor:
        """Fresnel kernel for ``distance`` Å (downstream positive), complex64."""
        return fresnel_propagator(self.k2, distance, self.wavelength).to(torch.complex64)

    def propagate(self, wave: torch.Tensor, distance: float | torch.Tensor) -> torch.Tensor:
        """Fresnel propagation over ``distance`` Å, or with a kernel from :meth:`propagator`."""
        if not isinstance(distance, torch.Tensor):
            if distance == 0:
                return wave
            distance = self.propagator(distance)
        return torch.fft.ifft2(torch.fft.fft2(wave) * distance)

    def objective(self, defocus_um, shift_angstrom) -> torch.Tensor:
        """Transfer functions of the objective, one per tilt (complex64, FFT layout).

        Parameters
        ----------
        defocus_um : array, shape (n,)
            Defocus of each tilt (µm, negative = underfocus).
        shift_angstrom : array, shape (n, 2)
            ``(dx, dy)`` per tilt: the image content moves by ``+dx`` along X.

        Returns
        -------
        torch.Tensor, shape (n, ny, nx), complex64
        """
        optics = self.config.optics
        defocus = defocus_field(
            self.ky,
            self.kx,
            self.per_tilt(defocus_um),
            optics.astigmatism_um,
            optics.astigmatism_angle_deg,
        )
        chi = aberration_phase(self.k2, defocus, optics.spherical_aberration_mm, self.wavelength)
        envelope = coherence_envelope(
            self.k2,
            defocus,
            cs_mm=optics.spherical_aberration_mm,
            wavelength=self.wavelength,
            aperture_mrad=optics.illumination_aperture_mrad,
            focal_spread_angstrom=self.focal_spread,
        ) * b_factor_envelope(self.k2, optics.b_factor)
        shifts = np.asarray(shift_angstrom, dtype=np.float64).reshape(-1, 2)
        ramp = self.kx * self.per_tilt(shifts[:, 0]) + self.ky * self.per_tilt(shifts[:, 1])
        return torch.polar(envelope, -(chi + 2 * math.pi * ramp)).to(torch.complex64)

    def intensity(self, wave: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
        """``|IFFT(FFT(wave) H)|²`` (float32)."""
        image = torch.fft.ifft2(torch.fft.fft2(wave) * transfer)
        return (image.real**2 + image.imag**2).float()

    def detect(self, expected: torch.Tensor, generators: list | None) -> torch.Tensor:
        """Detector counts (float32) from expected electrons per pixel, ``(n, ny, nx)``.

        The expected image comes from a voxelised specimen, so it is already averaged over
        each pixel's area: its signal is transferred by ``MTF / aperture`` (the detector's
        MTF without the pixel aperture, which would otherwise be counted twice). With
        ``generators`` None, that noise-free signal. Otherwise Poisson counts, image ``i``
        drawn with ``generators[i]`` on the CPU (so a seed gives the same counts on every
        device and in any batching), with the noise power spectrum ``mean * MTF² / DQE``
        (white for an ideal counter, whose DQE is the aperture's sinc²): the expected image
        is pre-filtered by ``sqrt(DQE / DQE0) / aperture``, counted at ``DQE0`` times the
        dose, post-filtered by ``MTF sqrt(DQE0 / DQE)`` and divided by ``DQE0``.
        """
        ideal = self.config.detector.model == "ideal"
        if generators is None:
            return expected if ideal else self._filter(expected, self.mtf / self.aperture)
        if ideal:
            return self._poisson(expected, generators)
        dqe0 = float(self.dqe[0, 0])
        pre = torch.sqrt(self.dqe / dqe0) / self.aperture
        prefiltered = self._filter(expected, pre).clamp(min=0)
        counts = self._poisson(dqe0 * prefiltered, generators)
        return self._filter(counts, self.mtf * torch.sqrt(dqe0 / self.dqe)) / dqe0

    def _filter(self, image: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft2(image.double()) * response
        return torch.fft.irfft2(spectrum, s=image.shape[-2:]).float()

    @staticmethod
    def _poisson(rate: torch.Tensor, generators: list) -> torch.Tensor:
        rates = rate.detach().cpu().double()
        counts = torch.stack(
            [torch.poisson(r, generator=g) for r, g in zip(rates, generators, strict=True)]
        )
        return counts.float().to(rate.device)


def rotate_images(images: torch.Tensor, angle_deg: float) -> torch.Tensor:
    """Rotate images ``(n, ny, nx)`` about their centre by ``angle_deg`` (X towards Y), bicubic."""
    if angle_deg == 0:
        return images
    n_y, n_x = images.shape[-2:]
    angle = math.radians(angle_deg)
    y = torch.arange(n_y, device=images.device, dtype=torch.float32) - (n_y - 1) / 2
    x = torch.arange(n_x, device=images.device, dtype=torch.float32) - (n_x - 1) / 2
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    # Output pixel p shows the input at R(-angle) p.
    src_x = math.cos(angle) * xx + math.sin(angle) * yy
    src_y = -math.sin(angle) * xx + math.cos(angle) * yy
    grid = torch.stack((src_x / ((n_x - 1) / 2), src_y / ((n_y - 1) / 2)), dim=-1)
    rotated = torch.nn.functional.grid_sample(
        images[:, None],
        grid.expand(images.shape[0], -1, -1, -1),
        mode="bicubic",
        padding_mode="border",
        align_corners=True,
    )
    return rotated[:, 0]


def poisson_generator(seed: np.random.SeedSequence) -> torch.Generator:
    """A CPU generator seeded from ``seed`` (one per tilt: independent of processing order)."""
    return torch.Generator().manual_seed(int(seed.generate_state(1, dtype=np.uint64)[0]))

"""Settings of the reference microscope, validated by pydantic (unknown keys are errors).

Every parameter carries its unit in its name or description. The defaults describe a
typical cryo-ET session on a 300 kV field-emission microscope with an energy filter and a
counting detector: -4 µm defocus, 120 e-/Å² over the tilt series, dose-symmetric
acquisition. Settings are grouped (``optics``, ``specimen``, ``ice``, ``film``, ``dose``,
``detector``, ``alignment``); a partial dict such as ``{"optics": {"defocus_um": -3}}``
keeps every other default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from faket.errors import FaketError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OpticsConfig(_Strict):
    """Electron source, objective lens and coherence."""

    voltage_kv: float = Field(300.0, gt=0, le=3000, description="Accelerating voltage (kV).")
    defocus_um: float = Field(
        -4.0,
        ge=-100,
        le=100,
        description="Mean defocus (µm) at the tilt axis; negative = underfocus (dark particles).",
    )
    defocus_std_um: float = Field(
        0.1, ge=0, description="Standard deviation of the per-tilt defocus error (µm)."
    )
    astigmatism_um: float = Field(
        0.05, ge=0, description="Difference between the two principal defoci (µm)."
    )
    astigmatism_angle_deg: float = Field(
        30.0, description="Direction of the more-underfocused axis, from X towards Y (degrees)."
    )
    spherical_aberration_mm: float = Field(
        2.7, ge=0, description="Spherical aberration Cs of the objective (mm)."
    )
    chromatic_aberration_mm: float = Field(
        2.7, ge=0, description="Chromatic aberration Cc (mm): sets the focal spread."
    )
    energy_spread_ev: float = Field(
        0.3, ge=0, description="Energy spread of the source (eV, standard deviation = FWHM/2.35)."
    )
    lens_stability: float = Field(
        1e-6,
        ge=0,
        description="Relative instability of high voltage and lens current (dV/V = dI/I).",
    )
    illumination_aperture_mrad: float = Field(
        0.02, ge=0, description="Illumination semi-angle (mrad) of the spatial-coherence envelope."
    )
    amplitude_contrast: float = Field(
        0.07,
        ge=0,
        lt=1,
        description="Amplitude-contrast fraction A (imaginary part / modulus of the potential).",
    )
    b_factor: float = Field(
        50.0, ge=0, description="Static B-factor (Å²) for drift and vibration: exp(-B k²/4)."
    )


class SpecimenConfig(_Strict):
    """How the input volume becomes an electrostatic potential."""

    potential_scale: float = Field(
        1.0,
        gt=0,
        description="Volts per input unit: 1 for faket grand models (potential in V); set it "
        "for volumes in other units.",
    )
    displacement_potential_volts: float = Field(
        7.93,
        gt=0,
        description="Specimen potential (V) at which a voxel holds no water: the mean "
        "potential of packed protein (faket.phantom.physics.protein_potential()).",
    )


class IceConfig(_Strict):
    """The vitreous-ice slab the specimen is embedded in."""

    enabled: bool = Field(True, description="Embed the specimen in ice.")
    thickness_nm: float | None = Field(
        150.0,
        gt=0,
        description="Ice thickness (nm), centred on the volume; thickened to hold the "
        "specimen's occupied Z planes if they reach further; null = the volume's Z extent.",
    )
    potential_volts: float = Field(
        4.57,
        gt=0,
        description="Mean potential of vitreous water (V; neutral-atom scattering factors, "
        "0.94 g/cm³, consistent with the phantom's protein potential).",
    )
    structure_factor: float = Field(
        0.064,
        ge=0,
        description="S(q->0) of water: sets the per-voxel density fluctuation "
        "var = (V_ice)² S(0) / (molecules per voxel).",
    )
    fluctuation_std_volts: float | None = Field(
        None, ge=0, description="Per-voxel fluctuation std (V); null = from structure_factor."
    )
    correlation_length_angstrom: float = Field(
        0.0, ge=0, description="Gaussian correlation length of the fluctuations (Å); 0 = white."
    )
    mean_free_path_nm: float | None = Field(
        None,
        gt=0,
        description="Inelastic mean free path (nm); null = 350 nm at 300 kV, scaled by v²/c².",
    )


class FilmConfig(_Strict):
    """An optional carbon support-film edge parallel to the tilt axis."""

    enabled: bool = Field(False, description="Add a support film covering one side.")
    thickness_nm: float = Field(15.0, gt=0, description="Film thickness (nm).")
    edge_position: float = Field(
        0.75, ge=0, le=1, description="Edge position across X (0 = left, 1 = right edge)."
    )
    potential_volts: float = Field(12.0, gt=0, description="Mean potential of carbon (V).")
    mean_free_path_nm: float = Field(
        190.0, gt=0, description="Inelastic mean free path of carbon (nm)."
    )
    texture_std: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Relative rms variation of the film's thickness (0 = a smooth film; "
        "amorphous carbon gives Thon rings through it).",
    )
    texture_correlation_angstrom: float = Field(
        10.0, ge=0, description="Gaussian correlation length of the film texture (Å)."
    )


class DoseConfig(_Strict):
    """Electron dose: how much, in which order, and what it does to the specimen."""

    total_e_per_a2: float = Field(
        120.0, gt=0, le=1e5, description="Total dose over the tilt series (e-/Å²)."
    )
    scheme: Literal["dose_symmetric", "sequential", "bidirectional"] = Field(
        "dose_symmetric",
        description="Acquisition order: dose_symmetric (Hagen), sequential (lowest angle "
        "first), bidirectional (0 to the highest, then down to the lowest).",
    )
    group_size: int = Field(2, ge=1, description="Tilts per side in a dose-symmetric group.")
    distribution: Literal["uniform", "inverse_cosine"] = Field(
        "uniform", description="Dose per tilt: equal, or proportional to 1/cos(tilt)."
    )
    damage: Literal["none", "exposure_filter", "b_factor"] = Field(
        "exposure_filter",
        description="Radiation damage by the dose received so far: Grant & Grigorieff (2015) "
        "exposure filter, a B-factor growing with dose, or none.",
    )
    b_factor_per_dose: float = Field(
        4.0, ge=0, description="Damage B-factor growth (Å² per e-/Å²), damage = b_factor."
    )


class DetectorConfig(_Strict):
    """Electron counting and the detector's transfer of signal and noise."""

    noise: bool = Field(True, description="Draw Poisson counts (false: expected counts).")
    model: Literal["ideal", "counting"] = Field(
        "counting",
        description="ideal (MTF = DQE = 1) or counting (pixel sinc MTF with a Gaussian "
        "roll-off; DQE falling from dqe_zero to dqe_nyquist).",
    )
    mtf_rolloff: float = Field(
        2.0, gt=0, description="Gaussian width (Nyquist units) of the counting MTF roll-off."
    )
    dqe_zero: float = Field(0.8, gt=0, le=1, description="DQE at zero frequency.")
    dqe_nyquist: float = Field(0.45, gt=0, le=1, description="DQE at the Nyquist frequency.")
    output: Literal["counts", "normalized"] = Field(
        "counts",
        description="Electrons per pixel, or counts divided by the tilt's dose per pixel "
        "(blank ice at 0 degrees then reads exp(-thickness / mean free path), ~0.65 for "
        "150 nm at 300 kV).",
    )


class AlignmentConfig(_Strict):
    """Imperfections of the tilt geometry, recorded in the metadata."""

    shift_std_angstrom: float = Field(
        5.0, ge=0, description="Standard deviation of random per-tilt image shifts (Å)."
    )
    tilt_axis_angle_deg: float = Field(
        0.0,
        ge=-180,
        le=180,
        description="In-plane rotation of the tilt axis away from Y (degrees, counter-clockwise).",
    )


class MicroscopeConfig(_Strict):
    """Everything that defines a simulated tilt series (besides the specimen and the angles)."""

    optics: OpticsConfig = Field(default_factory=OpticsConfig)
    specimen: SpecimenConfig = Field(default_factory=SpecimenConfig)
    ice: IceConfig = Field(default_factory=IceConfig)
    film: FilmConfig = Field(default_factory=FilmConfig)
    dose: DoseConfig = Field(default_factory=DoseConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    alignment: AlignmentConfig = Field(default_factory=AlignmentConfig)
    multislice: int = Field(
        0,
        ge=0,
        le=4096,
        description="0 = single-slice projection; N >= 1 = N slabs perpendicular to the beam "
        "with Fresnel propagation between them.",
    )

    @model_validator(mode="after")
    def _check(self) -> MicroscopeConfig:
        if self.detector.dqe_nyquist > self.detector.dqe_zero:
            raise ValueError("detector.dqe_nyquist must not exceed detector.dqe_zero")
        return self


#: Command-line shortcuts: option name -> (group, field).
SHORTCUTS = {
    "defocus": ("optics", "defocus_um"),
    "voltage": ("optics", "voltage_kv"),
    "dose": ("dose", "total_e_per_a2"),
    "potential_scale": ("specimen", "potential_scale"),
    "ice_thickness": ("ice", "thickness_nm"),
}


def parse_config(
    config: MicroscopeConfig | dict[str, Any] | None = None, **changes: Any
) -> MicroscopeConfig:
    """Validate a config (or a nested dict), applying shortcut ``changes``.

    Parameters
    ----------
    config
        A config, a nested dict of settings, or None for the defaults.
    **changes
        ``defocus`` (µm), ``voltage`` (kV), ``dose`` (e-/Å²), ``potential_scale`` (V per
        input unit), ``ice_thickness`` (nm) or any top-level field (``multislice``); None
        values are ignored.

    Returns
    -------
    MicroscopeConfig
        The validated settings.

    Raises
    ------
    FaketError
        One line naming the first bad setting.
    """
    if isinstance(config, MicroscopeConfig):
        data = config.model_dump()
    else:
        # Copy one level deep: the shortcuts below write into the groups.
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in (config or {}).items()}
    for name, value in changes.items():
        if value is None:
            continue
        if name in SHORTCUTS:
            group, field = SHORTCUTS[name]
            section = data.setdefault(group, {})
            if not isinstance(section, dict):
                raise FaketError(f"microscope setting {group} must be a mapping")
            section[field] = value
        else:
            data[name] = value
    try:
        return MicroscopeConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        raise FaketError(f"microscope setting {where}: {message}") from None

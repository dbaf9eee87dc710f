"""Settings of a grand model, validated by pydantic (unknown keys are errors)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from faket.errors import FaketError

#: Particles per µm³ when no count is given: SHREC 2021's ~1,500 in 200 x 512 x 512 at 10 Å.
DEFAULT_DENSITY = 28_000.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ClassSpec(_Strict):
    """One particle class with its own settings."""

    source: str = Field(
        ..., description="Built-in class name, a PDB/mmCIF/MRC file path, or a PDB ID."
    )
    name: str | None = Field(
        None, pattern=r"^\S+$", description="Class name (one word); default from the source."
    )
    count: int | None = Field(None, ge=0, description="Particles of this class.")
    map_voxel_size: float | None = Field(
        None, gt=0, description="Voxel size (Å) of an MRC map whose header is wrong."
    )
    mass_kda: float | None = Field(None, gt=0, description="Mass of a map's particle (kDa).")
    invert: bool | None = Field(
        None,
        description="Flip a map's contrast (protein negative, as in template-matching maps); "
        "null = detect inverted maps and refuse them.",
    )


class PhantomConfig(_Strict):
    """Everything that defines a grand model; the same config and seed give the same files."""

    shape: tuple[int, int, int] = Field(
        (200, 512, 512), description="Volume shape Z Y X in voxels (a slab like SHREC's)."
    )
    voxel_size: float = Field(10.0, gt=0, description="Voxel size in Å.")
    classes: list[str | ClassSpec] = Field(
        ["builtin"],
        description="Particle classes: 'builtin' (the 13 SHREC-like built-ins), 'czii' (the "
        "six CZII stand-ins), built-in names, "
        "PDB/mmCIF/MRC files, PDB IDs (downloaded), or class specs.",
    )
    per_class: int | None = Field(
        None, ge=0, description="Particles per class; null = from number_density."
    )
    number_density: float = Field(
        DEFAULT_DENSITY, ge=0, description="Particles per µm³ (all classes) when no count given."
    )
    vesicles: int | None = Field(
        None, ge=0, description="Number of vesicles; null = 5 per 512 x 512 nm of slab area."
    )
    vesicle_radius_nm: tuple[float, float] = Field(
        (10.0, 40.0),
        description="Range of vesicle radii (nm); the top is capped at 80% of what fits.",
    )
    vesicle_aspect: float = Field(1.3, ge=1, description="Largest vesicle axis ratio.")
    membrane_thickness_nm: float = Field(4.0, gt=0, description="Lipid bilayer thickness (nm).")
    fiducials: int | None = Field(
        None, ge=0, description="Number of gold fiducials; null = 10 per 512 x 512 nm of area."
    )
    fiducial_diameter_nm: float = Field(10.0, gt=0, description="Gold bead diameter (nm).")
    seed: int = Field(0, ge=0, description="Random seed.")
    b_factor: float | None = Field(
        None, ge=0, description="B-factor (Å²) for atomic models; null = from the file."
    )
    implicit_hydrogens: bool = Field(True, description="Add missing hydrogens (united atoms).")
    max_attempts: int = Field(200, ge=1, description="Placement tries per object.")
    allow_partial: bool = Field(
        False, description="Keep going when not all objects fit (else it is an error)."
    )
    cache: bool = Field(True, description="Cache templates and downloads on disk.")

    def object_counts(self) -> tuple[int, int]:
        """Vesicles and fiducials to place (defaults scale with the slab's XY area)."""
        area = self.shape[1] * self.shape[2] * (self.voxel_size / 5120.0) ** 2
        vesicles = self.vesicles if self.vesicles is not None else int(np.ceil(5 * area))
        fiducials = self.fiducials if self.fiducials is not None else int(np.ceil(10 * area))
        return vesicles, fiducials

    @model_validator(mode="after")
    def _check(self) -> PhantomConfig:
        if min(self.shape) < 8:
            raise ValueError(f"shape {self.shape} is too small; use at least 8 voxels per axis")
        low, high = self.vesicle_radius_nm
        if not 0 < low <= high:
            raise ValueError("vesicle_radius_nm must be (min, max) with 0 < min <= max")
        return self


def parse_config(config: PhantomConfig | dict[str, Any] | None = None, **changes) -> PhantomConfig:
    """Validate a config (or a dict), applying ``changes``; errors become one-line FaketErrors.

    Parameters
    ----------
    config
        A config, a dict of fields, or None for the defaults.
    **changes
        Fields to override (None values are ignored).

    Returns
    -------
    PhantomConfig
        The validated config.
    """
    if isinstance(config, PhantomConfig):
        data = config.model_dump()
    else:
        data = dict(config or {})
    data.update({k: v for k, v in changes.items() if v is not None})
    try:
        return PhantomConfig.model_validate(data)
    except ValidationError as err:
        # The most specific error (deepest location) names the real culprit in unions.
        first = max(err.errors(), key=lambda e: len(e["loc"]))
        # Drop pydantic's union-branch tags (classes.0.str -> classes.0).
        where = ".".join(str(p) for p in first["loc"] if p not in ("str", "ClassSpec"))
        where = where or "config"
        message = first["msg"].removeprefix("Value error, ")
        raise FaketError(f"phantom setting {where}: {message}") from None

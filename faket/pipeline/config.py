"""The dataset configuration: one validated file describes a whole dataset.

Loaded from YAML, TOML or JSON and validated by pydantic (unknown keys and
wrong types are errors that name the key). Presets (``demo``, ``small``,
``shrec``) give a starting point; :func:`commented_yaml` writes a config with
every field's description as a comment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from faket.errors import FaketError
from faket.microscope.config import MicroscopeConfig
from faket.phantom import PhantomConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The paper's modalities: every dataset gets them unless its config lists others.
PAPER_MODALITIES = ("noiseless", "benchmark", "baseline", "noisy", "content", "faket")
#: Opt-in modalities: ``spectral`` (NOISY with the style noise's 2-D power spectrum) and
#: ``faket_spectral`` (FAKET initialised from ``spectral`` instead of NOISY).
SPECTRAL_MODALITIES = ("spectral", "faket_spectral")
#: Opt-in ablation: ``faket_random`` (the NST step with random VGG-19 weights whatever
#: ``nst.weights`` says: the paper's FAKET_RANDOM, beside FAKET made another way).
ABLATION_MODALITIES = ("faket_random",)
MODALITIES = PAPER_MODALITIES + SPECTRAL_MODALITIES + ABLATION_MODALITIES
#: ``nst.weights`` values besides a state-dict path.
NST_WEIGHTS = ("auto", "imagenet", "random", "transfer")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TiltScheme(_Strict):
    """Tilt angles of every tilt series (degrees, inclusive range)."""

    start: float = Field(-60.0, description="First tilt angle (degrees).")
    stop: float = Field(60.0, description="Last tilt angle (degrees).")
    step: float = Field(2.0, gt=0, description="Tilt increment (degrees).")

    def angles(self) -> np.ndarray:
        """The tilt angles in degrees."""
        from faket.io import tilt_range

        return tilt_range(self.start, self.stop, self.step)


class NoiseSettings(_Strict):
    """How the FakET noise model is estimated from (benchmark, noiseless) pairs."""

    estimate_from: list[int] | None = Field(
        None, description="Tomogram indices to estimate from; null = all training tomograms."
    )
    order: int = Field(2, ge=-1, le=6, description="Polynomial order for NOISY (paper: 2).")
    match_radial_spectrum: bool = Field(
        False,
        description="SPECTRAL also matches each tilt's radially averaged power spectrum to "
        "the style's, as SHREC's simulator did (corrects a phantom whose own spectrum "
        "differs from the style specimen's).",
    )

    def hashed(self) -> dict:
        """The settings that define the noise model (the radial option only when on, so
        that datasets made before it keep their hashes)."""
        data = self.model_dump(mode="json")
        if not data["match_radial_spectrum"]:
            del data["match_radial_spectrum"]
        return data


class StyleSettings(_Strict):
    """Which tomogram's benchmark projections serve as the style of tomogram i."""

    offset: int = Field(
        1,
        ge=1,
        description="Style of training tomogram i = benchmark of training tomogram "
        "(i + offset) mod n_train (paper: 1). Must not map a tomogram onto itself.",
    )


class NSTSettings(_Strict):
    """Neural style transfer (FAKET modality); defaults are the paper's."""

    weights: str = Field(
        "auto",
        description="FAKET's style: imagenet or random (seeded) VGG-19 weights, a "
        "state-dict path, transfer (no network: a per-tilt transfer function and "
        "coloured residual noise measured from the noise model's (benchmark, noiseless) "
        "pairs, see faket.noise.transfer), or auto (imagenet if available offline, else "
        "transfer; the choice is recorded in the written config, the manifest, the run "
        "log and the figures).",
    )

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, value: str) -> str:
        if value not in NST_WEIGHTS and not Path(value).expanduser().is_file():
            raise ValueError(
                f"{value!r} is neither {', '.join(NST_WEIGHTS)} nor an existing state-dict file"
            )
        return value

    iterations: int = Field(1, ge=1, description="Adam iterations (paper: 1).")
    step_size: float = Field(0.15, gt=0, description="Adam step size (paper: 0.15).")
    precision: Literal["fp32", "tf32", "bf16", "fp16", "mixed"] = Field(
        "fp32",
        description="Arithmetic: fp32 (full float32), tf32 (NVIDIA), bf16 (GPUs and CPUs "
        "with AVX-512 BF16/AMX), fp16 (GPU) or mixed (the fastest of these that suits the "
        "device).",
    )


class ReconstructionSettings(_Strict):
    """Weighted back-projection of every tilt series."""

    filter: str = Field("shrec", description="ramp, shepp-logan, cosine, hamming, hann, shrec.")

    @field_validator("filter")
    @classmethod
    def _known_filter(cls, value: str) -> str:
        from faket.tomography.filters import FILTERS

        if value not in FILTERS:
            raise ValueError(f"unknown filter {value!r}; choose one of {', '.join(FILTERS)}")
        return value

    crowther: float | None = Field(
        None, gt=0, le=1, description="Crowther frequency (fraction of Nyquist), 1-D filters."
    )
    thickness: int | None = Field(
        None, gt=0, description="Z slices before binning; null = the phantom's Z."
    )
    pre_binning: int = Field(1, ge=1, description="Bin projections before back-projection.")
    z_valid: tuple[int, int] | None = Field(None, description="Keep Z slices [start, stop).")
    post_binning: int = Field(1, ge=1, description="Bin the reconstruction (paper: 2).")


class CopickSettings(_Strict):
    """Writing the dataset as a copick project too (needs pip install 'faket[copick]')."""

    enabled: bool = Field(False, description="Also write a copick project after the run.")
    folder: str = Field(
        "copick", min_length=1, description="Project folder (relative to the dataset folder)."
    )
    user_id: str = Field("faket", min_length=1, description="Owner of the picks and masks.")
    session_id: str = Field("0", min_length=1, description="Their session (0 = a tool's).")
    levels: int = Field(3, ge=1, le=8, description="OME-Zarr scales per tomogram (3: 1, 2, 4).")
    compress: bool = Field(
        False, description="Blosc-compress the tomograms (~8% smaller, slower to write)."
    )


class DatasetConfig(_Strict):
    """A whole dataset: how many tomograms, what they contain, and every modality's settings."""

    name: str = Field("dataset", description="A label for the dataset (free text).")
    n_tomograms: int = Field(4, ge=2, description="Number of tomograms (training + test).")
    test_tomogram: int = Field(
        -1,
        description="Index of the BENCHMARK-only test tomogram (-1 = the last); the others "
        "are training tomograms (the last of them is a natural validation tomogram).",
    )
    seed: int = Field(0, ge=0, description="Master seed; every random choice derives from it.")
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="Compute device: auto, cpu, cuda, cuda:N, mps.",
    )
    modalities: list[Literal[MODALITIES]] = Field(  # type: ignore[valid-type]
        list(PAPER_MODALITIES),
        description=f"Modalities to produce: {', '.join(MODALITIES)} (the last three, noise "
        "with the style noise's 2-D spectrum, FAKET initialised from it and FAKET with "
        "random VGG-19 weights, are opt-in).",
    )
    tilt: TiltScheme = Field(default_factory=TiltScheme, description="Tilt scheme (degrees).")
    phantom: PhantomConfig = Field(
        default_factory=lambda: PhantomConfig(),
        description="Grand-model settings (see `faket phantom --help`); the seed is "
        "replaced by one derived from the master seed per tomogram.",
    )
    microscope: MicroscopeConfig = Field(
        default_factory=lambda: MicroscopeConfig(),
        description="Reference-microscope (BENCHMARK) settings (see `faket microscope --help`).",
    )
    noise: NoiseSettings = Field(
        default_factory=NoiseSettings,
        description="Noise-model estimation (BASELINE/NOISY/CONTENT).",
    )
    style: StyleSettings = Field(
        default_factory=StyleSettings, description="Style pairing between tomograms."
    )
    nst: NSTSettings = Field(
        default_factory=NSTSettings, description="Neural style transfer (FAKET)."
    )
    reconstruction: ReconstructionSettings = Field(
        default_factory=ReconstructionSettings, description="Weighted back-projection."
    )
    copick: CopickSettings = Field(
        default_factory=CopickSettings,
        description="A copick project of the dataset (faket export copick, run by faket run).",
    )

    @property
    def test_index(self) -> int:
        """The test tomogram's index in 0 .. n_tomograms - 1."""
        return self.test_tomogram % self.n_tomograms

    @property
    def training_indices(self) -> list[int]:
        """Indices of the tomograms that get every modality."""
        return [i for i in range(self.n_tomograms) if i != self.test_index]

    def style_source(self, index: int) -> int:
        """The tomogram whose benchmark projections are the style of tomogram ``index``."""
        train = self.training_indices
        position = train.index(index)
        return train[(position + self.style.offset) % len(train)]

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        if not -self.n_tomograms <= self.test_tomogram < self.n_tomograms:
            raise ValueError(
                f"test_tomogram {self.test_tomogram} is out of range for {self.n_tomograms} "
                "tomograms"
            )
        if self.style.offset % (self.n_tomograms - 1) == 0:
            raise ValueError(
                "style.offset maps every tomogram onto itself; choose an offset that is not a "
                f"multiple of the {self.n_tomograms - 1} training tomograms"
            )
        estimate = self.noise.estimate_from
        if estimate is not None:
            bad = [i for i in estimate if i not in self.training_indices]
            if bad or not estimate:
                raise ValueError(
                    f"noise.estimate_from must list training tomograms {self.training_indices}"
                )
        if not {"noiseless", "benchmark"} <= set(self.modalities):
            raise ValueError(
                "modalities must include noiseless and benchmark (the others need them)"
            )
        return self


def _first_error(error: ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "") or "config"
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def parse_dataset_config(data: dict[str, Any] | DatasetConfig | None, source: str = "config"):
    """Validate ``data``; problems become a one-line :class:`FaketError` naming the key."""
    if isinstance(data, DatasetConfig):
        return data
    try:
        return DatasetConfig.model_validate(data or {})
    except ValidationError as error:
        raise FaketError(f"{source}: {_first_error(error)}") from None


def load_dataset_config(path: str | os.PathLike[str]) -> DatasetConfig:
    """Read a dataset config from a YAML, TOML or JSON file.

    A ``preset: NAME`` key starts from that preset (``demo``, ``small``, ``shrec``) and
    the file's other keys change it (nested sections key by key). An empty file is an
    error: its defaults would silently mean a full-size run.
    """
    file = Path(path)
    if not file.is_file():
        raise FaketError(f"{file}: no such config file")
    text = file.read_text()
    try:
        if file.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        detail = str(error).splitlines()[0]
        raise FaketError(
            f"{file}: not valid {file.suffix.lstrip('.') or 'YAML'} ({detail})"
        ) from None
    if data is not None and not isinstance(data, dict):
        raise FaketError(f"{file}: the config must be a mapping of settings")
    if not data:
        raise FaketError(
            f"{file} is empty, which would mean the full-size defaults (4 tomograms of "
            "200 x 512 x 512 voxels); start from a preset: faket config init --preset small "
            f"> {file.name} (or write 'preset: small')"
        )
    if "preset" in data:
        data = _on_preset(data, str(file))
    return parse_dataset_config(data, source=str(file))


def _on_preset(data: dict[str, Any], source: str) -> dict[str, Any]:
    from faket.pipeline.presets import PRESETS

    name = data.pop("preset")
    if name not in PRESETS:
        raise FaketError(f"{source}: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return _merged(PRESETS[name], data)


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out

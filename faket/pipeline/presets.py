"""Ready-made dataset configs, and writing a config as commented YAML."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from faket.errors import FaketError
from faket.phantom.presets import CZII_PHANTOM, phantom_preset
from faket.pipeline.config import DatasetConfig, parse_dataset_config

PRESETS: dict[str, dict[str, Any]] = {
    # Minutes on a laptop CPU: the README's main job.
    "demo": {
        "name": "faket demo",
        "n_tomograms": 3,
        "tilt": {"start": -60.0, "stop": 60.0, "step": 3.0},
        "phantom": {
            "shape": (48, 96, 96),
            "voxel_size": 10.0,
            "per_class": 1,
            "vesicles": 1,
            "fiducials": 2,
            "vesicle_radius_nm": (8.0, 14.0),
        },
        "reconstruction": {"filter": "shrec"},
    },
    # The evaluation-sized dataset: 4 training (the last one validates), 1 test tomogram.
    "small": {
        "name": "faket small",
        "n_tomograms": 5,
        "tilt": {"start": -60.0, "stop": 60.0, "step": 2.0},
        "phantom": {
            "shape": (64, 160, 160),
            "voxel_size": 10.0,
            "per_class": 4,
            "vesicles": 2,
            "fiducials": 3,
            "vesicle_radius_nm": (10.0, 20.0),
        },
        "reconstruction": {"filter": "shrec"},
    },
    # The Table-1 experiment on a 2-core CPU in about an hour (see PRESET_REASONS).
    "cpu": {
        "name": "faket cpu benchmark",
        "n_tomograms": 5,
        "modalities": ["noiseless", "benchmark", "baseline", "noisy", "faket"],
        "tilt": {"start": -60.0, "stop": 60.0, "step": 3.0},
        "phantom": {
            "shape": (96, 320, 320),
            "voxel_size": 10.0,
            "classes": ["czii"],
            "per_class": 80,
            "vesicles": 2,
            "vesicle_radius_nm": (15.0, 30.0),
            "fiducials": 4,
            "allow_partial": True,
        },
        "reconstruction": {"filter": "shrec"},
    },
    # SHREC 2021 sizes: 61 x 1024 x 1024 projections, 180 x 512 x 512 tomograms (GPU).
    "shrec": {
        "name": "faket shrec-like",
        "n_tomograms": 10,
        "tilt": {"start": -60.0, "stop": 60.0, "step": 2.0},
        "phantom": {"shape": (360, 1024, 1024), "voxel_size": 5.0},
        "reconstruction": {"filter": "shrec", "thickness": 360, "post_binning": 2},
    },
    # The CZII competition's world: six types, 630 x 630 x 184 tomograms at 10 Å (GPU),
    # written as a copick project as the competition's tools expect.
    "czii": {
        "name": "faket czii-like",
        "n_tomograms": 8,
        "tilt": {"start": -60.0, "stop": 60.0, "step": 2.0},
        "phantom": CZII_PHANTOM,
        "reconstruction": {"filter": "shrec"},
        "copick": {"enabled": True},
    },
}


#: Why a preset's values are what they are: written as comments by ``faket config init``.
PRESET_REASONS: dict[str, dict[str, str]] = {
    "cpu": {
        "name": "The CPU benchmark world: faket run + faket experiment --preset cpu "
        "--seeds 3 --judge both (5 modalities x 3 seeds x 2 judges) in about an hour on "
        "2 cores; benchmarks/README.md has the measured run.",
        "n_tomograms": "3 training tomograms (the last of the 4 non-test ones validates) "
        "and 1 BENCHMARK test tomogram: more training tomograms cost generation time, not "
        "training time (training is capped in steps).",
        "modalities": "The experiment's five; no CONTENT (only the network-based FAKET "
        "needs it; without ImageNet weights FAKET is the transfer style).",
        "tilt": "41 tilts (3 degree steps): the reconstruction quality of 2 degree steps "
        "is not what separates modalities, and 30 % fewer projections are generated.",
        "shape": "96 x 320 x 320 voxels of 10 Å (a 0.96 x 3.2 x 3.2 µm slab): room for "
        "~480 particles per tomogram, so the test tomogram alone has ~80 per class (the "
        "'small' preset's has 4): the classifier's 95 % intervals of class F1 narrow to "
        "a few hundredths (DeepFinder's are dominated by the seed spread).",
        "voxel_size": "10 Å, no binning: the smallest CZII object (apoferritin, radius "
        "60 Å) is still 12 voxels across; the same slab at 6.3 Å would have 4x the voxels.",
        "classes": "The six CZII objects (apoferritin, beta-amylase, beta-galactosidase, "
        "ribosome, thyroglobulin, virus-like particle). With the 13 SHREC-like classes "
        "(several of them alike at 10 Å) a BENCHMARK-trained picker reached class F1 0.63 "
        "after 120 'small' epochs; with these six it reached 0.90 (seeds 0.89-0.90, cosine "
        "step decay) in the CPU budget, and the CZII F-beta metric applies to them.",
        "per_class": "80 per class and tomogram (480 particles): crowded, so that "
        "picking must separate neighbours, and enough test particles per class.",
        "vesicles": "Two 15-30 nm vesicles per tomogram: membranes as distractors (not "
        "scored, as in SHREC).",
        "fiducials": "Four gold fiducials: the strong outliers real tomograms have (not scored).",
        "allow_partial": "Particles may be cut by the slab's faces, as in a real lamella.",
    },
}


def preset(name: str) -> DatasetConfig:
    """The validated config of a named preset (``demo``, ``small``, ``cpu``, ``shrec``,
    ``czii`` with its built-in stand-ins; :func:`resolve_preset` looks for atomic models)."""
    if name not in PRESETS:
        raise FaketError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return parse_dataset_config(PRESETS[name], source=f"preset {name}")


def resolve_preset(
    name: str, models: list | tuple = (), *, download: bool = True
) -> tuple[DatasetConfig, list[str]]:
    """A preset with its classes resolved where the preset says how (``czii``: atomic
    models when available, see :func:`faket.phantom.presets.czii_classes`), and notes."""
    config = preset(name)
    if name != "czii":
        return config, []
    phantom, notes = phantom_preset("czii", models, download=download)
    data = config.model_dump(mode="json") | {"phantom": phantom}
    return parse_dataset_config(data, source=f"preset {name}"), notes


def commented_yaml(config: DatasetConfig, reasons: dict[str, str] | None = None) -> str:
    """``config`` as YAML with each setting's description as a comment above it, and
    (``reasons``, keyed by setting name, e.g. :data:`PRESET_REASONS`) why it has its value."""
    lines = [
        "# faket dataset configuration. Run: faket run THIS_FILE -o DATASET_DIR",
        "# Every key is optional; unknown keys are errors. Schema: faket config schema",
    ]
    _emit(config, config.model_dump(mode="json"), 0, lines, reasons or {})
    return "\n".join(lines) + "\n"


def _emit(
    model: BaseModel, values: dict[str, Any], depth: int, lines: list[str], reasons: dict
) -> None:
    indent = "  " * depth
    for key, field in type(model).model_fields.items():
        value = values[key]
        if field.description:
            lines.append(f"{indent}# {field.description}")
        if key in reasons:
            lines.append(f"{indent}# Why this value: {reasons[key]}")
        child = getattr(model, key)
        if isinstance(child, BaseModel):
            lines.append(f"{indent}{key}:")
            _emit(child, value, depth + 1, lines, reasons)
        else:
            dumped = yaml.safe_dump({key: value}, default_flow_style=True, width=1000).strip()
            lines.append(f"{indent}{dumped.removeprefix('{').removesuffix('}')}")

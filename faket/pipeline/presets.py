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


def preset(name: str) -> DatasetConfig:
    """The validated config of a named preset (``demo``, ``small``, ``shrec``, ``czii`` with
    its built-in stand-ins; :func:`resolve_preset` looks for atomic models)."""
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


def commented_yaml(config: DatasetConfig) -> str:
    """``config`` as YAML with each setting's description as a comment above it."""
    lines = [
        "# faket dataset configuration. Run: faket run THIS_FILE -o DATASET_DIR",
        "# Every key is optional; unknown keys are errors. Schema: faket config schema",
    ]
    _emit(config, config.model_dump(mode="json"), 0, lines)
    return "\n".join(lines) + "\n"


def _emit(model: BaseModel, values: dict[str, Any], depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    for key, field in type(model).model_fields.items():
        value = values[key]
        if field.description:
            lines.append(f"{indent}# {field.description}")
        child = getattr(model, key)
        if isinstance(child, BaseModel):
            lines.append(f"{indent}{key}:")
            _emit(child, value, depth + 1, lines)
        else:
            dumped = yaml.safe_dump({key: value}, default_flow_style=True, width=1000).strip()
            lines.append(f"{indent}{dumped.removeprefix('{').removesuffix('}')}")

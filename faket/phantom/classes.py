"""Turn the ``classes`` entries of a config into templates and particle counts."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from faket.errors import FaketError
from faket.phantom.builtin import BUILTIN_SETS, builtin_names, builtin_template
from faket.phantom.cache import default_cache_dir
from faket.phantom.config import ClassSpec, PhantomConfig
from faket.phantom.czii import CZII_OBJECTS
from faket.phantom.download import fetch_pdb, is_pdb_id
from faket.phantom.templates import Template
from faket.phantom.templates_atomic import ATOMIC_SUFFIXES, template_from_atomic_model
from faket.phantom.templates_map import MAP_SUFFIXES, template_from_map

#: Class names reserved for the objects drawn directly.
RESERVED = ("vesicle", "fiducial", "background")


def expand_specs(entries: list[str | ClassSpec]) -> list[ClassSpec]:
    """Expand ``builtin`` (the SHREC-like built-in set) and ``czii`` (the six CZII stand-ins)
    into their classes and strings into specs; drop repeats."""
    specs: list[ClassSpec] = []
    for entry in entries:
        spec = ClassSpec(source=entry) if isinstance(entry, str) else entry
        if spec.source in BUILTIN_SETS:
            names = BUILTIN_SETS[spec.source]
            specs += [spec.model_copy(update={"source": n, "name": None}) for n in names]
        else:
            specs.append(spec)
    unique: dict[tuple, ClassSpec] = {}
    for spec in specs:
        unique.setdefault((spec.source, spec.name), spec)
    return list(unique.values())


def load_template(
    spec: ClassSpec, config: PhantomConfig, device: str | torch.device = "cpu"
) -> Template:
    """The template of one class spec.

    Parameters
    ----------
    spec
        Built-in name, file path or PDB ID, with options.
    config
        Supplies the voxel size, B-factor policy and cache setting.
    device
        Torch device for the potential computation.

    Returns
    -------
    Template
        The template, named ``spec.name`` when given.
    """
    source = spec.source.strip()
    cache_dir = default_cache_dir() if config.cache else None
    if source in builtin_names():
        template = _builtin(source, config.voxel_size)
    else:
        path = Path(source).expanduser()
        if not path.exists() and is_pdb_id(source):
            path = fetch_pdb(source, cache_dir or default_cache_dir())
        template = _from_file(path, spec, config, cache_dir, device)
    if spec.name:
        template = replace(template, name=spec.name)
    if template.name in CZII_OBJECTS and "czii_weight" not in template.info:
        # A CZII type from an atomic model or map carries the competition's radius and weight.
        item = CZII_OBJECTS[template.name]
        extra = {"radius_A": item.radius_A, "czii_weight": item.weight}
        template = replace(template, info={**template.info, **extra})
    return template


@lru_cache(maxsize=64)
def _builtin(name: str, voxel_size: float) -> Template:
    # Built-ins are cheap but a pipeline builds many tomograms in one process.
    template = builtin_template(name, voxel_size)
    template.potential.setflags(write=False)
    template.mask.setflags(write=False)
    return template


def check_class_sources(config: PhantomConfig) -> None:
    """Fail now, with one line, if a class is neither built-in, a usable file nor a PDB ID.

    Cheap (no template is computed): a dataset run calls it before its first step.
    """
    for spec in expand_specs(config.classes):
        source = spec.source.strip()
        if source in builtin_names():
            continue
        path = Path(source).expanduser()
        if not path.exists() and is_pdb_id(source):
            continue
        if not path.exists():
            raise FaketError(
                f"unknown class {spec.source!r}: not a built-in class "
                f"({', '.join(builtin_names())}), an existing file, or a PDB ID; check the name"
            )
        if not path.name.lower().endswith(ATOMIC_SUFFIXES + MAP_SUFFIXES):
            raise FaketError(
                f"{path}: unknown file type; use .pdb/.cif (atomic model) or .mrc/.map/.em "
                "(density map)"
            )


def _from_file(path: Path, spec, config, cache_dir, device) -> Template:
    lower = path.name.lower()
    if not path.exists():
        raise FaketError(
            f"unknown class {spec.source!r}: not a built-in class ({', '.join(builtin_names())}), "
            "an existing file, or a PDB ID; check the name"
        )
    if lower.endswith(ATOMIC_SUFFIXES):
        return template_from_atomic_model(
            path,
            config.voxel_size,
            b_factor=config.b_factor,
            implicit_hydrogens=config.implicit_hydrogens,
            cache_dir=cache_dir,
            device=device,
        )
    if lower.endswith(MAP_SUFFIXES):
        return template_from_map(
            path,
            config.voxel_size,
            map_voxel_size=spec.map_voxel_size,
            mass_kda=spec.mass_kda,
            invert=spec.invert,
            cache_dir=cache_dir,
        )
    raise FaketError(
        f"{path}: unknown file type; use .pdb/.cif (atomic model) or .mrc/.map/.em (density map)"
    )


def with_map_options(
    entries: list[str | ClassSpec], map_voxel_size: float | None, invert: bool | None
) -> list[str | ClassSpec]:
    """``entries`` with ``map_voxel_size``/``invert`` set on every density-map class.

    The command line's ``--map-voxel-size`` and ``--invert`` apply to the maps among the
    classes (values not given, None, leave the entries as they are).
    """
    changes = {k: v for k, v in (("map_voxel_size", map_voxel_size), ("invert", invert))
               if v is not None}  # fmt: skip
    if not changes:
        return list(entries)
    if map_voxel_size is not None and not map_voxel_size > 0:
        raise FaketError(f"--map-voxel-size {map_voxel_size}: must be a positive size in Å")
    out: list[str | ClassSpec] = []
    for entry in entries:
        spec = ClassSpec(source=entry) if isinstance(entry, str) else entry
        if spec.source.lower().endswith(MAP_SUFFIXES):
            out.append(spec.model_copy(update=changes))
        else:
            out.append(entry)
    return out


def load_templates(config: PhantomConfig, device: str | torch.device = "cpu") -> list[Template]:
    """Templates of all configured classes, with unique, unreserved names."""
    specs = expand_specs(config.classes)
    return unique_names([load_template(spec, config, device) for spec in specs])


def unique_names(templates: list[Template]) -> list[Template]:
    """Number repeated class names (``1bxn``, ``1bxn_2``); reject reserved ones."""
    seen: dict[str, int] = {}
    renamed = []
    for template in templates:
        name = template.name
        if name.lower() in RESERVED:
            raise FaketError(f"class name {name!r} is reserved; name the class differently")
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            # Same file name in two folders: keep both, numbered.
            template = replace(template, name=f"{name}_{seen[name]}")
        renamed.append(template)
    return renamed


def default_count(config: PhantomConfig, n_classes: int) -> int:
    """Particles per class without an explicit count: ``per_class``, else from the density."""
    if config.per_class is not None:
        return config.per_class
    z, y, x = config.shape
    volume_um3 = z * y * x * (config.voxel_size * 1e-4) ** 3
    return int(np.ceil(config.number_density * volume_um3 / max(n_classes, 1)))


def particle_counts(config: PhantomConfig, n_classes: int) -> list[int]:
    """Requested particles per configured class: its own count, else :func:`default_count`."""
    default = default_count(config, n_classes)
    return [s.count if s.count is not None else default for s in expand_specs(config.classes)]

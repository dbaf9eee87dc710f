"""The paper's "data cost" column: what making each modality's training data cost.

Read from the dataset's manifests (``faket run`` records, per step, its wall time, peak
host memory, peak GPU memory and device; see :mod:`faket.pipeline.resources`). A
modality's cost is the sum of its own steps' wall times over the training tomograms
(the data a network trains on), and the largest peak memory among them. What every
modality shares (the phantom and the noiseless projections) is left out, as is the
simulation of the reference projections that the noise model and FAKET learn from,
because the paper's Table 1 counts them the same way (BASELINE ~20 s, FAKET ~12 min,
BENCHMARK ~150 h).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from faket.evaluation.data import DATASET_CONFIG, dataset_split
from faket.pipeline.config import load_dataset_config
from faket.pipeline.manifest import Manifest

#: Per-tomogram projection steps a modality needs, when more than its own
#: ``projections_<modality>`` (add entries for new modalities); its reconstruction is
#: always added.
TOMOGRAM_STEPS: dict[str, tuple[str, ...]] = {
    "faket": ("projections_noisy", "projections_content", "projections_faket"),
}
#: Dataset-level steps a modality needs (the noise model for the noise-based ones).
DATASET_STEPS: dict[str, tuple[str, ...]] = {
    name: ("noise_model",) for name in ("baseline", "noisy", "content", "faket")
}


def modality_steps(modality: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(per-tomogram steps, dataset steps)`` of a modality; unknown modalities default
    to their own projections and reconstruction."""
    own = TOMOGRAM_STEPS.get(modality, (f"projections_{modality}",))
    return (*own, f"reconstruction_{modality}"), DATASET_STEPS.get(modality, ())


@dataclass
class DataCost:
    """Cost of one modality's training data.

    Attributes
    ----------
    wall_seconds : float
        Sum of the steps' wall times (a serial-equivalent time: with parallel workers the
        elapsed time was shorter).
    peak_rss_bytes, gpu_peak_bytes : int or None
        Largest host / GPU peak among the steps (None when not recorded).
    devices : list of str
        Devices the steps ran on (``cpu``, ``cuda:0``, ... with the GPU's name).
    n_steps : int
    missing : list of str
        ``folder/step`` entries the manifests lack (the cost is then a lower bound).
    """

    wall_seconds: float = 0.0
    peak_rss_bytes: int | None = None
    gpu_peak_bytes: int | None = None
    devices: list[str] = field(default_factory=list)
    n_steps: int = 0
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return {
            "wall_seconds": round(self.wall_seconds, 3),
            "peak_rss_bytes": self.peak_rss_bytes,
            "gpu_peak_bytes": self.gpu_peak_bytes,
            "devices": list(self.devices),
            "n_steps": self.n_steps,
            "missing_steps": list(self.missing),
        }

    @classmethod
    def from_dict(cls, data: dict) -> DataCost:
        """The inverse of :meth:`as_dict`."""
        return cls(
            wall_seconds=float(data["wall_seconds"]),
            peak_rss_bytes=data.get("peak_rss_bytes"),
            gpu_peak_bytes=data.get("gpu_peak_bytes"),
            devices=list(data.get("devices", [])),
            n_steps=int(data.get("n_steps", 0)),
            missing=list(data.get("missing_steps", [])),
        )

    def describe(self) -> str:
        """A table cell, e.g. ``42 s (1.3 GiB RAM, cpu x2)`` or ``12 min (7.8 GiB GPU, ...)``."""
        if self.n_steps == 0:
            return "n/a"
        parts = [_duration(self.wall_seconds)]
        memory = []
        if self.gpu_peak_bytes:
            memory.append(f"{_gibibytes(self.gpu_peak_bytes)} GPU")
        if self.peak_rss_bytes:
            memory.append(f"{_gibibytes(self.peak_rss_bytes)} RAM")
        detail = ", ".join(memory + [", ".join(self.devices) or "device not recorded"])
        suffix = " (incomplete)" if self.missing else ""
        return f"{parts[0]} ({detail}){suffix}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _gibibytes(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def _device_label(entry: dict) -> str | None:
    device = entry.get("device")
    if device is None:
        return None
    if entry.get("device_name"):
        return f"{device} ({entry['device_name']})"
    if device == "cpu" and entry.get("threads"):
        return f"cpu x{entry['threads']}"
    return str(device)


def data_cost(dataset_dir: str | os.PathLike[str], modality: str) -> DataCost:
    """The cost of ``modality``'s training data in a ``faket run`` dataset."""
    split = dataset_split(dataset_dir, validation=False)
    per_tomogram, dataset_level = modality_steps(modality)
    entries: list[tuple[str, dict | None]] = []
    for folder in split.train:
        steps = Manifest(folder).steps
        entries += [(f"{folder.name}/{s}", steps.get(s)) for s in per_tomogram]
    dataset_manifest = Manifest(Path(dataset_dir)).steps
    entries += [(s, dataset_manifest.get(s)) for s in dataset_level]
    cost = DataCost()
    for where, entry in entries:
        if entry is None:
            cost.missing.append(where)
            continue
        cost.n_steps += 1
        cost.wall_seconds += float(entry.get("seconds", 0.0))
        for key in ("peak_rss_bytes", "gpu_peak_bytes"):
            if entry.get(key) is not None:
                setattr(cost, key, max(getattr(cost, key) or 0, int(entry[key])))
        label = _device_label(entry)
        if label and label not in cost.devices:
            cost.devices.append(label)
    return cost


def vgg_weights(dataset_dir: str | os.PathLike[str]) -> str:
    """The VGG-19 weights the dataset's FAKET projections were made with.

    From the manifests (``projections_faket`` records them); for datasets made before
    that, the config's ``nst.weights`` unless it is ``auto``; else ``unknown``.
    """
    split = dataset_split(dataset_dir, validation=False)
    used = []
    for folder in split.train:
        entry = Manifest(folder).steps.get("projections_faket") or {}
        weights = (entry.get("info") or {}).get("weights")
        if weights and weights not in used:
            used.append(str(weights))
    if used:
        return ", ".join(used)
    configured = load_dataset_config(Path(dataset_dir) / DATASET_CONFIG).nst.weights
    return configured if configured != "auto" else "unknown"

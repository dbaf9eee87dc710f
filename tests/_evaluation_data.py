"""Tiny synthetic annotated tomograms shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faket.evaluation import GroundTruth, Tomogram
from faket.evaluation.targets import sphere_labels
from faket.io import write_mrc, write_shrec_particles

#: Two classes told apart by size and contrast (radius in voxels, value inside).
CLASSES = {"small": (2.5, 1.0), "big": (4.0, -1.0)}
CLASS_TABLE = pd.DataFrame(
    {"id": [1, 2], "name": ["small", "big"], "kind": "particle", "diameter_nm": [0.5, 0.8]}
)


def synthetic_tomogram(seed: int, shape=(24, 40, 40), n: int = 8, noise: float = 0.3) -> Tomogram:
    """Balls of two classes (alternating) at random, well-separated integer centres.

    With ``voxel_size = 1 Å`` and the class table's diameters the class radii come out
    as the painted radii (2.5 and 4 voxels).
    """
    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    while len(centres) < n:
        centre = np.round(rng.uniform(5, np.array(shape) - 5))
        if all(np.linalg.norm(centre - c) > 10 for c in centres):
            centres.append(centre)
    names = ["small" if k % 2 == 0 else "big" for k in range(n)]
    radii = np.array([CLASSES[c][0] for c in names])
    occupancy = sphere_labels(shape, np.array(centres), np.arange(1, n + 1), radii)
    occupancy = occupancy.astype(np.int32)
    value = np.array([0.0] + [CLASSES[c][1] for c in names])[occupancy]
    volume = (value + rng.normal(0, noise, shape)).astype(np.float32)
    xyz = np.array(centres)[:, ::-1]
    particles = pd.DataFrame(
        {"class_name": names, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
    ).assign(phi=0.0, theta=0.0, psi=0.0)
    truth = GroundTruth(particles, occupancy, CLASS_TABLE.copy())
    class_mask = np.array([0] + [1 if c == "small" else 2 for c in names])[occupancy]
    return Tomogram.from_truth(volume, truth, class_mask=class_mask, voxel_size=1.0)


def write_tomogram(folder: Path, tomogram: Tomogram, modalities=("benchmark",)) -> None:
    """Write a tomogram folder as ``faket run`` does (truth files and reconstructions)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_shrec_particles(folder / "particle_locations.txt", tomogram.particles)
    write_mrc(folder / "occupancy_mask.mrc", tomogram.truth.occupancy.astype(np.uint16), 1.0)
    write_mrc(folder / "class_mask.mrc", tomogram.class_mask.astype(np.uint8), 1.0)
    CLASS_TABLE.to_csv(folder / "classes.csv", index=False)
    for modality in modalities:
        write_mrc(folder / f"reconstruction_{modality}.mrc", tomogram.volume, 1.0)


def write_dataset(root: Path, modalities=("benchmark", "faket")) -> Path:
    """A 3-tomogram dataset folder (train, validation, test) with a dataset config."""
    from faket.pipeline import commented_yaml, parse_dataset_config

    config = parse_dataset_config({"n_tomograms": 3, "phantom": {"shape": (24, 40, 40)}})
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_config.yaml").write_text(commented_yaml(config))
    for index in range(3):
        write_tomogram(root / f"tomo_{index:03d}", synthetic_tomogram(index), modalities)
    return root

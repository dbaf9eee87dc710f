"""Realism of every modality of a ``faket run`` dataset against its BENCHMARK style data.

For each training tomogram, each modality's projections are compared
(:func:`faket.realism.metrics.compare_stacks`) with the same tomogram's BENCHMARK
projections: the kind of data the noise model and the style transfer imitate, with the same
specimen, so that only noise and imaging differ. BENCHMARK itself gets a control row: the
test tomogram's BENCHMARK projections against each training tomogram's (another specimen,
the same microscope), the floor that the others can be read against.

Written by ``faket run``: ``DATASET/realism.json`` (per modality: the summary averaged over
the training tomograms, and each tomogram's) and ``DATASET/figures/realism.png`` (first
training tomogram). :func:`modality_realism` reads one modality's numbers back, e.g. for
the experiment's table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.io import read_mrc, write_text_atomic
from faket.realism.metrics import Comparison, compare_stacks

__all__ = ["FIGURE", "REPORT", "dataset_realism", "modality_realism", "write_dataset_realism"]

REPORT = "realism.json"
FIGURE = "figures/realism.png"
REFERENCE = "benchmark"


def _projections(folder: Path, modality: str) -> np.ndarray:
    return read_mrc(folder / f"projections_{modality}.mrc", mmap=True, ndim=3).data


def dataset_realism(config, dataset_dir: str | os.PathLike[str]) -> tuple[dict, dict]:
    """Compare every modality of a dataset with its BENCHMARK projections.

    Parameters
    ----------
    config : faket.pipeline.config.DatasetConfig
    dataset_dir : path

    Returns
    -------
    report : dict
        What ``realism.json`` holds.
    first : dict of modality -> Comparison
        The comparisons of the first training tomogram (for the figure).
    """
    root = Path(dataset_dir)
    test = root / f"tomo_{config.test_index:03d}"
    per_modality: dict[str, dict[str, dict]] = {}
    first: dict[str, Comparison] = {}
    for index in config.training_indices:
        folder = root / f"tomo_{index:03d}"
        reference = _projections(folder, REFERENCE)
        for modality in config.modalities:
            other = test if modality == REFERENCE else folder
            comparison = compare_stacks(_projections(other, modality), reference)
            per_modality.setdefault(modality, {})[folder.name] = comparison.summary
            if index == config.training_indices[0]:
                first[modality] = comparison
    modalities = {}
    for modality, tomograms in per_modality.items():
        keys = next(iter(tomograms.values()))
        mean = {k: float(np.mean([t[k] for t in tomograms.values()])) for k in keys}
        modalities[modality] = {"summary": mean, "per_tomogram": tomograms}
    report = {
        "reference": "each training tomogram's projections_benchmark.mrc",
        "benchmark_row": f"the test tomogram ({test.name}) against each training tomogram",
        "tomograms": [f"tomo_{i:03d}" for i in config.training_indices],
        "modalities": modalities,
    }
    return report, first


def write_dataset_realism(config, dataset_dir: str | os.PathLike[str]) -> dict:
    """Write ``realism.json`` and ``figures/realism.png`` of a dataset; returns the report."""
    from faket.plots.realism import plot_realism

    root = Path(dataset_dir)
    report, first = dataset_realism(config, root)
    (root / "figures").mkdir(exist_ok=True)
    labels = {("benchmark (test tomogram)" if m == REFERENCE else m): c for m, c in first.items()}
    pixel = read_mrc(root / f"tomo_{config.training_indices[0]:03d}" / "grandmodel.mrc", mmap=True)
    plot_realism(labels, root / FIGURE, reference="benchmark", pixel_size_angstrom=pixel.voxel_size)
    write_text_atomic(root / REPORT, json.dumps(report, indent=2) + "\n")
    return report


def modality_realism(dataset_dir: str | os.PathLike[str], modality: str) -> dict[str, float]:
    """One modality's realism summary (means over the training tomograms).

    Reads ``DATASET/realism.json`` (written by ``faket run``); computes it from the
    dataset's saved config when the file is missing.

    Returns
    -------
    dict
        ``mean_error``, ``std_error``, ``histogram_w1``, ``spectrum_log_rms``,
        ``anisotropy_error``, ``autocorrelation_error``, ``anisotropy_simulated``,
        ``anisotropy_reference`` (see :mod:`faket.realism.metrics`).
    """
    root = Path(dataset_dir)
    path = root / REPORT
    if path.is_file():
        report = json.loads(path.read_text())
    else:
        from faket.pipeline.config import load_dataset_config
        from faket.pipeline.dataset import CONFIG_FILE

        config_file = root / CONFIG_FILE
        if not config_file.is_file():
            raise FaketError(f"{root} is not a faket dataset (no {CONFIG_FILE}); run faket run")
        report, _ = dataset_realism(load_dataset_config(config_file), root)
    modalities = report["modalities"]
    if modality not in modalities:
        raise FaketError(f"{root / REPORT} has no {modality!r}; it has {', '.join(modalities)}")
    return dict(modalities[modality]["summary"])

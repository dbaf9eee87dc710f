"""Realism of every modality of a ``faket run`` dataset against its BENCHMARK style data.

For each training tomogram, each modality's projections are compared
(:func:`faket.realism.metrics.compare_stacks`) with the same tomogram's BENCHMARK
projections: the kind of data the noise model and the style transfer imitate, with the same
specimen, so that only noise and imaging differ. BENCHMARK itself gets a control row: the
test tomogram's BENCHMARK projections against each training tomogram's (another specimen,
the same microscope), the floor that the others can be read against.

Written by ``faket run``: ``DATASET/realism.json`` (per modality: the summary averaged over
the training tomograms, and each tomogram's) and ``DATASET/figures/realism.png`` (first
training tomogram). :func:`realism_summaries` reads every modality's numbers back (the
experiment's table shows them beside the F1 scores), :func:`modality_realism` one's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.io import read_mrc, write_text_atomic
from faket.realism.metrics import Comparison, compare_stacks

__all__ = [
    "FIGURE",
    "REPORT",
    "dataset_realism",
    "modality_realism",
    "realism_summaries",
    "write_dataset_realism",
]

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


def realism_summaries(dataset_dir: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """Every modality's realism summary (means over the training tomograms).

    Reads ``DATASET/realism.json`` (written by ``faket run``); computes it (without
    writing it) from the dataset's saved config when the file is missing, e.g. for a
    dataset made before realism reports.

    Returns
    -------
    dict of modality -> dict
        ``mean_error``, ``std_error``, ``histogram_w1``, ``spectrum_log_rms``,
        ``mean_spectrum_log_rms``, ``anisotropy_error``, ``autocorrelation_error``,
        ``anisotropy_simulated``, ``anisotropy_reference`` (see
        :mod:`faket.realism.metrics`).

    Raises
    ------
    FaketError
        If the folder is not a dataset or ``realism.json`` is unreadable.
    """
    root = Path(dataset_dir)
    path = root / REPORT
    if path.is_file():
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            modalities = report["modalities"]
            return {name: dict(entry["summary"]) for name, entry in modalities.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise FaketError(
                f"{path} is not a realism report ({type(err).__name__}: {err}); delete it "
                "and run faket run again to rewrite it"
            ) from None
    from faket.pipeline.config import load_dataset_config
    from faket.pipeline.dataset import CONFIG_FILE

    config_file = root / CONFIG_FILE
    if not config_file.is_file():
        raise FaketError(f"{root} is not a faket dataset (no {CONFIG_FILE}); run faket run")
    report, _ = dataset_realism(load_dataset_config(config_file), root)
    return {name: dict(entry["summary"]) for name, entry in report["modalities"].items()}


def modality_realism(dataset_dir: str | os.PathLike[str], modality: str) -> dict[str, float]:
    """One modality's realism summary (:func:`realism_summaries`)."""
    summaries = realism_summaries(dataset_dir)
    if modality not in summaries:
        raise FaketError(
            f"the realism report of {dataset_dir} has no {modality!r}; it has "
            f"{', '.join(summaries)}"
        )
    return summaries[modality]

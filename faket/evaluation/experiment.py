"""DeepFinder training on a ``faket run`` dataset and testing, per modality and seed.

For every modality and seed: train on that modality's reconstructions of the training
tomograms (the last one validates), then segment the test tomogram *reconstructed from
BENCHMARK projections* (the stand-in for SHREC's test tomogram) and score it. The
DeepFinder summary files are the paper's Table 1 (``table.csv/txt``: localization F1,
classification F1 macro; mean and spread over seeds; % of BENCHMARK), fig. 8 (per-class
F1), figs. 6-7 (validation F1 per epoch) and figs. 9-11 (confusion matrices averaged over
seeds). :mod:`faket.evaluation.comparison` runs the whole experiment (both judges,
intervals, ``table.md``/``table.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from faket.errors import FaketError
from faket.evaluation.data import DatasetSplit, Tomogram, dataset_split, load_tomogram
from faket.evaluation.report import write_scores
from faket.evaluation.scoring import Scores
from faket.evaluation.training import TrainConfig, TrainResult, predict_and_score, train
from faket.io import atomic_path, write_shrec_particles, write_text_atomic

#: Modalities a network can be trained on (the dataset's reconstructions).
MODALITIES = (
    "benchmark",
    "faket",
    "noisy",
    "baseline",
    "content",
    "noiseless",
    "spectral",
    "faket_spectral",
    "faket_random",
)
TEST_MODALITY = "benchmark"


def volume_name(modality: str) -> str:
    """File of a modality's reconstruction in a tomogram folder."""
    return f"reconstruction_{modality}.mrc"


def load_split(
    split: DatasetSplit, modality: str, with_class_mask: bool = True
) -> tuple[list[Tomogram], Tomogram | None]:
    """Training and validation tomograms of one modality (one of :data:`MODALITIES`, or
    any other whose reconstructions the dataset holds)."""
    if modality not in MODALITIES and not (split.train[0] / volume_name(modality)).is_file():
        raise FaketError(
            f"unknown modality {modality!r}: the dataset has no {volume_name(modality)}; "
            f"choose from {', '.join(available_modalities(split.train[0]))}"
        )

    def load(folder: Path, truth: bool) -> Tomogram:
        return load_tomogram(
            folder,
            volume_name(modality),
            frame=split.frame,
            with_truth=truth,
            with_class_mask=with_class_mask and not truth,
        )

    held_out = load(split.validation, True) if split.validation else None
    return [load(f, False) for f in split.train], held_out


def available_modalities(folder: Path) -> list[str]:
    """Modalities whose reconstruction a tomogram folder holds."""
    found = sorted(
        p.name[len("reconstruction_") : -len(".mrc")] for p in folder.glob("reconstruction_*.mrc")
    )
    return found or list(MODALITIES)


def write_test(
    folder: Path, predictions: pd.DataFrame, scores: Scores, title: str, overwrite: bool = True
) -> None:
    """``predictions.txt`` (SHREC), ``predictions.csv`` (with cluster sizes) and scores."""
    folder.mkdir(parents=True, exist_ok=True)
    write_shrec_particles(folder / "predictions.txt", predictions)
    with atomic_path(folder / "predictions.csv") as temporary:
        predictions.to_csv(temporary, index=False)
    write_scores(scores, folder, overwrite=overwrite, title=title)


def train_on_dataset(
    dataset_dir: str | os.PathLike[str],
    modality: str,
    config: TrainConfig,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    validation: bool = True,
    test: bool = True,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    tomograms: tuple[list[Tomogram], Tomogram | None, Tomogram] | None = None,
) -> tuple[TrainResult, Scores | None]:
    """Train on one modality of a dataset; optionally test on the BENCHMARK test tomogram.

    Parameters
    ----------
    dataset_dir : folder made by ``faket run``.
    modality : training modality (``benchmark``, ``faket``, ...).
    config : training settings.
    run_dir : where checkpoints, history and ``test/`` scores go.
    validation : validate on the last training tomogram each epoch.
    test : score the best epoch on the test tomogram.
    tomograms : already loaded ``(train, validation, test)`` (reused across seeds).

    Returns
    -------
    (TrainResult, Scores or None)
    """
    if tomograms is None:
        tomograms = load_dataset(dataset_dir, modality, validation=validation)
    train_set, held_out, test_tomogram = tomograms
    result = train(
        train_set,
        held_out,
        config,
        run_dir=run_dir,
        overwrite=overwrite,
        progress=progress,
        log=log,
    )
    if not test:
        return result, None
    predictions, scores = predict_and_score(
        result.model, test_tomogram, config, config.device, progress=progress
    )
    if run_dir is not None:
        write_test(Path(run_dir) / "test", predictions, scores, f"{modality}, seed {config.seed}")
    return result, scores


def load_dataset(
    dataset_dir: str | os.PathLike[str], modality: str, validation: bool = True
) -> tuple[list[Tomogram], Tomogram | None, Tomogram]:
    """``(train, validation, test)`` tomograms: the modality's reconstructions for
    training and validation, the BENCHMARK reconstruction of the test tomogram."""
    split = dataset_split(dataset_dir, validation=validation)
    train_set, held_out = load_split(split, modality)
    test_tomogram = load_tomogram(split.test, volume_name(TEST_MODALITY), frame=split.frame)
    return train_set, held_out, test_tomogram


@dataclass
class RunRecord:
    """One trained model of an experiment."""

    modality: str
    seed: int
    best_epoch: int
    scores: dict
    history: pd.DataFrame
    confusion: pd.DataFrame
    run_dir: Path | None = None


def train_run(dataset_dir: str, modality: str, config: dict, run_dir: str) -> None:
    """One experiment run in a worker process: train, test, write ``run_dir``."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    train_on_dataset(dataset_dir, modality, TrainConfig(**config), run_dir, overwrite=True)


def deepfinder_runs(
    dataset_dir: str | os.PathLike[str],
    results: Path,
    modalities: Sequence[str],
    seeds: Sequence[int],
    config: TrainConfig,
    *,
    jobs: int | None = 1,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[RunRecord]:
    """Train (or read back) one DeepFinder model per modality and seed.

    Runs live in ``RESULTS/MODALITY/seed_N/``; finished ones (``test/scores.json``
    present) are read back, not redone, so an interrupted experiment resumes. With
    ``jobs`` 1 the dataset is loaded once per modality and reused across its seeds;
    with more, the runs are spread over processes (:mod:`faket.evaluation.jobs`; None:
    :func:`~faket.evaluation.jobs.worker_count` for the runs left).
    """
    from faket.evaluation.jobs import run_folders, run_job_list, training_jobs, worker_count

    pairs, pending = run_folders(results, modalities, seeds)
    workers = worker_count(config.device, len(pending), jobs)
    if workers > 1:
        queue = training_jobs(train_run, dataset_dir, pending, config, judge="DeepFinder")
        run_job_list(queue, workers, log=log)
    else:
        loaded: dict[str, tuple] = {}
        for modality, seed, run_dir in pending:
            if modality not in loaded:
                loaded = {modality: load_dataset(dataset_dir, modality)}
            run_dir.mkdir(parents=True, exist_ok=True)
            if log:
                log(f"DeepFinder: training {modality}, seed {seed}")
            train_on_dataset(
                dataset_dir,
                modality,
                config.model_copy(update={"seed": seed}),
                run_dir,
                overwrite=True,
                progress=progress,
                log=log,
                tomograms=loaded[modality],
            )
    return [read_run(run_dir, m, s) for m, s, run_dir in pairs]


def read_run(run_dir: Path, modality: str, seed: int) -> RunRecord:
    """A finished run's test scores, history and confusion matrix."""
    scores = json.loads((run_dir / "test" / "scores.json").read_text(encoding="utf-8"))
    history = pd.read_csv(run_dir / "history.csv")
    confusion = pd.read_csv(run_dir / "test" / "confusion_matrix.csv", index_col=0)
    best = int(history.loc[history["best"].astype(bool), "epoch"].iloc[-1])
    return RunRecord(modality, seed, best, scores, history, confusion, run_dir)


KEYS = ("localization_f1", "classification_f1_macro_shrec", "classification_f1_macro", "czii_fbeta")


def summary_table(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Per modality: mean, standard deviation (ddof = 1), min, max over seeds of the test
    scores, best epochs and the means as % of the BENCHMARK means."""
    rows = []
    for modality in dict.fromkeys(r.modality for r in records):
        mine = [r for r in records if r.modality == modality]
        row: dict = {"modality": modality, "seeds": len(mine)}
        for key in KEYS:
            values = np.array([r.scores.get(key) for r in mine], dtype=float)
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            row |= {f"{key}_mean": values.mean(), f"{key}_std": spread}
            row |= {f"{key}_min": values.min(), f"{key}_max": values.max()}
        row["best_epoch_mean"] = float(np.mean([r.best_epoch for r in mine]))
        rows.append(row)
    table = pd.DataFrame(rows)
    if "benchmark" in set(table["modality"]):
        reference = table.set_index("modality").loc["benchmark"]
        for key in KEYS:
            base = reference[f"{key}_mean"]
            table[f"{key}_pct_benchmark"] = 100 * table[f"{key}_mean"] / base if base else np.nan
    return table


def table_text(table: pd.DataFrame) -> str:
    """The Table 1 analogue as aligned text: mean ± std (and % of BENCHMARK)."""
    header = ("modality", "seeds", "localization F1", "classification F1 macro (SHREC)")
    lines = [f"{header[0]:<11} {header[1]:>5}  {header[2]:<24} {header[3]:<32}"]
    for _, row in table.iterrows():
        cells = []
        for key in KEYS[:2]:
            cell = f"{row[f'{key}_mean']:.3f} ± {row[f'{key}_std']:.3f}"
            if (
                f"{key}_pct_benchmark" in row
                and row[f"{key}_pct_benchmark"] == row[f"{key}_pct_benchmark"]
            ):
                cell += f" ({row[f'{key}_pct_benchmark']:.0f}%)"
            cells.append(cell)
        lines.append(f"{row['modality']:<11} {int(row['seeds']):>5}  {cells[0]:<24} {cells[1]:<32}")
    return "\n".join(lines) + "\n"


def write_summary(results: Path, records: Sequence[RunRecord], table: pd.DataFrame) -> None:
    """``table.csv``, ``table.txt``, ``per_class_f1.csv/.png``, ``validation_curves.png``,
    ``confusion_<modality>.png``."""
    from faket.plots.confusion import plot_confusion_matrix, plot_per_class_f1
    from faket.plots.training import plot_validation_curves

    with atomic_path(results / "table.csv") as temporary:
        table.to_csv(temporary, index=False)
    write_text_atomic(results / "table.txt", table_text(table))
    per_class = pd.DataFrame(
        [
            {"modality": r.modality, "seed": r.seed, "class_name": name, "f1": f1}
            for r in records
            for name, f1 in r.scores["per_class_f1"].items()
        ]
    )
    with atomic_path(results / "per_class_f1.csv") as temporary:
        per_class.to_csv(temporary, index=False)
    order = [c for c in records[0].confusion.index if c != "background"] if records else []
    plot_per_class_f1(per_class, results / "per_class_f1.png", order=order)
    histories = {}
    for r in records:
        histories.setdefault(r.modality, []).append(r.history)
    plot_validation_curves(histories, results / "validation_curves.png")
    for modality in dict.fromkeys(r.modality for r in records):
        matrices = [r.confusion for r in records if r.modality == modality]
        plot_confusion_matrix(
            matrices, results / f"confusion_{modality}.png", title=f"{modality} (test tomogram)"
        )

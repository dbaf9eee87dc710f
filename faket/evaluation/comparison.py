"""The paper's modality comparison (Table 1), judged twice and with honest intervals.

For every training modality and seed, two judges train on the modality's reconstructions
of the training tomograms and are tested on the BENCHMARK reconstruction of the test
tomogram:

- ``deepfinder``: the DeepFinder-style picker (:mod:`faket.evaluation.experiment`),
  scored with the SHREC 2021 metrics and the CZII F-beta;
- ``classify``: the subtomogram classifier (:mod:`faket.evaluation.classify`).

Runs are resumable (a run with ``test/scores.json`` is read back). DeepFinder runs are
re-scored from their saved predictions with the experiment's scoring settings, so the
tables always use one convention. The summary (:mod:`faket.evaluation.table`) gives
every number as mean over seeds, seed spread and a 95 % hierarchical bootstrap interval
(:mod:`faket.evaluation.statistics`), paired differences between modalities, the data
cost of each modality and the stability of the ranking across seeds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from faket.errors import FaketError
from faket.evaluation.classify import ClassifyConfig, classify_on_dataset, load_classify_data
from faket.evaluation.data import dataset_split
from faket.evaluation.experiment import RunRecord, deepfinder_runs, train_run
from faket.evaluation.report import scores_dict
from faket.evaluation.scoring import GroundTruth, Scores, load_truth, score
from faket.evaluation.table import summarise, write_tables
from faket.evaluation.training import TrainConfig
from faket.io import write_text_atomic

#: The judges, in the order they run.
JUDGES = ("deepfinder", "classify")
#: Paired differences ``a - b`` reported whenever both modalities were trained. Add pairs
#: here (or pass ``differences``) for new modalities.
DEFAULT_DIFFERENCES: tuple[tuple[str, str], ...] = (
    ("faket", "baseline"),
    ("faket", "benchmark"),
    ("noisy", "baseline"),
    ("faket", "noisy"),
    ("faket_random", "baseline"),
    ("faket", "faket_random"),
    ("spectral", "baseline"),
    ("faket_spectral", "baseline"),
    ("faket_spectral", "faket"),
)
SETTINGS_FILE = "experiment_config.json"
CLASSIFY_FOLDER = "classify"


@dataclass
class ClassifyRecord:
    """One trained classifier of an experiment: its test scores and per-box predictions."""

    modality: str
    seed: int
    best_epoch: int
    scores: dict
    predictions: pd.DataFrame
    history: pd.DataFrame


@dataclass
class DeepFinderRun:
    """A DeepFinder run re-scored on the test tomogram, with what the bootstrap needs."""

    record: RunRecord
    scores: Scores
    predictions: pd.DataFrame


@dataclass
class ExperimentRuns:
    """Everything the summary is made from."""

    seeds: list[int]
    deepfinder: list[DeepFinderRun] = field(default_factory=list)
    classify: list[ClassifyRecord] = field(default_factory=list)
    truth: GroundTruth | None = None


def parse_difference(text: str) -> tuple[str, str]:
    """``"faket-baseline"`` -> ``("faket", "baseline")`` (modality names have no ``-``)."""
    parts = text.split("-")
    if len(parts) != 2 or not all(parts):
        raise FaketError(f"difference {text!r}: write it as MODALITY-MODALITY, e.g. faket-baseline")
    return parts[0], parts[1]


def classify_run(dataset_dir: str, modality: str, config: dict, run_dir: str) -> None:
    """One classifier run in a worker process: train, test, write ``run_dir``."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    classify_on_dataset(dataset_dir, modality, ClassifyConfig(**config), run_dir, overwrite=True)


def classify_runs(
    dataset_dir: str | os.PathLike[str],
    results: Path,
    modalities: Sequence[str],
    seeds: Sequence[int],
    config: ClassifyConfig,
    *,
    jobs: int | None = 1,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[ClassifyRecord]:
    """Train (or read back) one classifier per modality and seed, in
    ``RESULTS/classify/MODALITY/seed_N/``; with ``jobs`` 1 boxes are loaded once per
    modality and the test boxes once for the whole experiment, with more the runs are
    spread over processes (:mod:`faket.evaluation.jobs`; None: as many as
    :func:`~faket.evaluation.jobs.worker_count` says for the runs left)."""
    from faket.evaluation.jobs import run_folders, run_job_list, worker_count

    folder = results / CLASSIFY_FOLDER
    pairs, pending = run_folders(folder, modalities, seeds)
    workers = worker_count(config.device, len(pending), jobs)
    if workers > 1:
        run_job_list(classify_jobs(dataset_dir, pending, config), workers, log=log)
    else:
        data, data_modality, test = None, None, None
        for modality, seed, run_dir in pending:
            if data is None or data_modality != modality:
                data = load_classify_data(dataset_dir, modality, config, test=test)
                data_modality, test = modality, data.test
            run_dir.mkdir(parents=True, exist_ok=True)
            if log:
                log(f"classifier: training {modality}, seed {seed}")
            classify_on_dataset(
                dataset_dir,
                modality,
                config.model_copy(update={"seed": seed}),
                run_dir,
                data=data,
                overwrite=True,
                progress=progress,
            )
    return [read_classify_run(run_dir, m, s) for m, s, run_dir in pairs]


def classify_jobs(dataset_dir, pending, config: ClassifyConfig) -> list:
    """The process jobs (:class:`faket.evaluation.jobs.Job`) of pending classifier runs
    ``(modality, seed, run_dir)``: each process is one run with one thread, whatever
    ``config.threads`` says."""
    from faket.evaluation.jobs import training_jobs

    single = config.model_copy(update={"threads": None})
    return training_jobs(classify_run, dataset_dir, pending, single, judge="classifier")


def train_judges_together(
    dataset_dir: str | os.PathLike[str],
    results: Path,
    modalities: Sequence[str],
    seeds: Sequence[int],
    config: TrainConfig,
    classify_settings: ClassifyConfig,
    *,
    jobs: int | None = None,
    log: Callable[[str], None] | None = None,
) -> bool:
    """Train the pending runs of both judges from one queue of parallel processes.

    DeepFinder's runs go first and the classifier's short ones after them, so that they
    fill the cores that would idle while the last DeepFinder runs finish (with 15 runs
    on 2 cores, one core would otherwise wait a whole run). Does nothing, and returns
    False, where runs would not be parallel (``jobs`` 1, a GPU, at most one run left):
    :func:`deepfinder_runs` and :func:`classify_runs` then train them one by one,
    loading each modality's data once.
    """
    from faket.evaluation.jobs import run_folders, run_job_list, training_jobs, worker_count

    deepfinder = run_folders(results, modalities, seeds)[1]
    classifier = run_folders(results / CLASSIFY_FOLDER, modalities, seeds)[1]
    workers = worker_count(config.device, len(deepfinder) + len(classifier), jobs)
    if workers <= 1:
        return False
    queue = training_jobs(train_run, dataset_dir, deepfinder, config, judge="DeepFinder")
    queue += classify_jobs(dataset_dir, classifier, classify_settings)
    run_job_list(queue, workers, log=log)
    return True


def read_classify_run(run_dir: Path, modality: str, seed: int) -> ClassifyRecord:
    """A finished classification run's scores, per-box predictions and history."""
    scores = json.loads((run_dir / "test" / "scores.json").read_text(encoding="utf-8"))
    predictions = pd.read_csv(run_dir / "test" / "predictions.csv", keep_default_na=False)
    history = pd.read_csv(run_dir / "history.csv")
    best = int(history.loc[history["best"].astype(bool), "epoch"].iloc[-1])
    return ClassifyRecord(modality, seed, best, scores, predictions, history)


def rescore(records: Sequence[RunRecord], truth: GroundTruth, config: TrainConfig) -> list:
    """Score every run's saved test predictions again with ``config``'s exclusions and
    convention (the numbers of runs made with other settings, or before the CZII metric
    existed, then agree with the rest)."""
    from faket.io import read_particles

    runs = []
    for record in records:
        predictions = read_particles(record.run_dir / "test" / "predictions.csv")
        scores = score(
            predictions,
            truth,
            exclude=config.exclude,
            exclusion_convention=config.exclusion_convention,
        )
        record.scores = scores_dict(scores)
        record.confusion = scores.confusion
        runs.append(DeepFinderRun(record, scores, predictions))
    return runs


def run_experiment(
    dataset_dir: str | os.PathLike[str],
    results_dir: str | os.PathLike[str],
    modalities: Sequence[str],
    seeds: int | Sequence[int],
    config: TrainConfig,
    *,
    judges: Sequence[str] = JUDGES,
    classify_settings: ClassifyConfig | None = None,
    differences: Sequence[tuple[str, str]] = DEFAULT_DIFFERENCES,
    replicates: int = 2000,
    jobs: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train and test every judge on every modality and seed; write the tables and figures.

    Writes ``experiment_config.json`` (these settings) first, then the runs, then
    ``table.md``, ``table.json``, ``f1_by_modality.png`` and (DeepFinder) ``table.csv``,
    ``table.txt``, ``per_class_f1.csv/.png``, ``validation_curves.png`` and
    ``confusion_MODALITY.png``.

    Returns
    -------
    dict
        The content of ``table.json`` (see :func:`faket.evaluation.table.summarise`).
    """
    unknown = [j for j in judges if j not in JUDGES]
    if unknown or not judges:
        raise FaketError(
            f"unknown judge {unknown[0] if unknown else ''!r}; use deepfinder, classify"
        )
    results = Path(results_dir)
    if not results.parent.is_dir():
        raise FaketError(f"cannot write {results}: folder {results.parent} does not exist")
    if results.exists() and not results.is_dir():
        raise FaketError(f"{results} is a file; pass a folder for the results")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list or not modalities:
        raise FaketError("the experiment needs at least one modality and one seed")
    classify_settings = classify_settings or ClassifyConfig(device=config.device)
    split = dataset_split(dataset_dir)
    results.mkdir(exist_ok=True)
    settings = {
        "dataset": str(Path(dataset_dir).resolve()),
        "modalities": list(modalities),
        "seeds": seed_list,
        "judges": list(judges),
        "replicates": replicates,
        "differences": [f"{a}-{b}" for a, b in differences],
        "deepfinder": config.model_dump(mode="json"),
        "classify": classify_settings.model_dump(mode="json"),
    }
    write_text_atomic(results / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")
    runs = ExperimentRuns(seed_list)
    if set(judges) == set(JUDGES):
        train_judges_together(
            dataset_dir,
            results,
            modalities,
            seed_list,
            config,
            classify_settings,
            jobs=jobs,
            log=log,
        )
    if "deepfinder" in judges:
        records = deepfinder_runs(
            dataset_dir,
            results,
            modalities,
            seed_list,
            config,
            jobs=jobs,
            progress=progress,
            log=log,
        )
        runs.truth = load_truth(split.test)
        runs.deepfinder = rescore(records, runs.truth, config)
    if "classify" in judges:
        runs.classify = classify_runs(
            dataset_dir,
            results,
            modalities,
            seed_list,
            classify_settings,
            jobs=jobs,
            progress=progress,
            log=log,
        )
    summary = summarise(runs, dataset_dir, config, differences=differences, replicates=replicates)
    write_tables(results, runs, summary)
    return summary

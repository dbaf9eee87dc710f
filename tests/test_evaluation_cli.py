"""``faket evaluate`` and ``faket experiment`` on tiny synthetic datasets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _evaluation_data import synthetic_tomogram, write_dataset, write_tomogram

from faket.cli.main import main
from faket.evaluation import load_truth, score
from faket.io import read_mrc, read_particles, write_shrec_particles

REQUIRED = {
    "localization_recall",
    "localization_precision",
    "localization_f1",
    "classification_f1_macro",
    "classification_f1_macro_shrec",
    "per_class_f1",
    "n_predictions",
    "n_ground_truth",
}
TINY = ["--epochs", "1", "--patch-size", "16", "--widths", "4,4,4", "--max-batches", "2"]


def _run(argv: list[str]) -> None:
    """Run the command line; Typer exits with status 0 after a command."""
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    assert stop.value.code == 0


def _fails(capsys, argv: list[str], match: str) -> None:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("faket: error:") and match in error


def test_score_writes_the_contracted_scores_json(tmp_path, capsys):
    tomogram = synthetic_tomogram(0)
    write_tomogram(tmp_path / "tomo", tomogram)
    predictions = tomogram.particles.iloc[[0, 1, 2, 2]].copy()
    predictions.loc[predictions.index[-1], "x"] += 1  # a duplicate, one voxel off
    write_shrec_particles(tmp_path / "pred.txt", predictions)
    out = tmp_path / "scores"
    argv = ["evaluate", "score", str(tmp_path / "pred.txt"), "--truth", str(tmp_path / "tomo")]
    _run([*argv, "-o", str(out), "--exclude", "big", "-q"])
    data = json.loads((out / "scores.json").read_text())
    assert REQUIRED <= set(data)
    # Excluding 'big' leaves the 4 small particles; predictions 0 and 2 are small ones.
    expected = score(predictions, load_truth(tmp_path / "tomo"), exclude=["big"])
    assert data["n_ground_truth"] == 4 and data["n_predictions"] == 4
    assert data["localization_recall"] == pytest.approx(expected.localization_recall) == 0.5
    assert data["per_class_f1"] == pytest.approx(expected.per_class_f1)
    for name in ("report.txt", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png"):
        assert (out / name).is_file()
    _fails(capsys, [*argv, "-o", str(out)], "already exists")
    _fails(
        capsys,
        [*argv, "-o", str(out), "--overwrite", "--exclude", "big", "small"],
        "no particles left",
    )


def test_score_errors_are_one_line(tmp_path, capsys):
    write_shrec_particles(tmp_path / "pred.txt", synthetic_tomogram(0).particles)
    argv = ["evaluate", "score", str(tmp_path / "pred.txt"), "-o", str(tmp_path / "out")]
    _fails(capsys, [*argv, "--truth", str(tmp_path / "nowhere")], "no such ground-truth folder")
    _fails(
        capsys,
        [*argv[:2], str(tmp_path / "missing.txt"), *argv[3:], "--truth", "."],
        "no such file",
    )


def test_train_predict_segment_locate_and_experiment(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "data")
    run = tmp_path / "run"
    _run(["evaluate", "train", str(dataset), "--modality", "faket", "-o", str(run), *TINY, "-q"])
    for name in ("best.pt", "last.pt", "history.csv", "history.png", "test/scores.json"):
        assert (run / name).is_file()
    test_scores = json.loads((run / "test" / "scores.json").read_text())
    assert test_scores["n_ground_truth"] == 8  # the test tomogram's particles

    volume = str(dataset / "tomo_002" / "reconstruction_benchmark.mrc")
    model = ["--model", str(run / "best.pt")]
    _run(["evaluate", "predict", volume, *model, "-o", str(tmp_path / "p.csv"), "-q"])
    assert "cluster_size" in pd.read_csv(tmp_path / "p.csv").columns
    _run(["evaluate", "segment", volume, *model, "-o", str(tmp_path / "labels.mrc"), "-q"])
    assert read_mrc(tmp_path / "labels.mrc").data.shape == (24, 40, 40)
    labels = str(tmp_path / "labels.mrc")
    _run(["evaluate", "locate", labels, *model, "-o", str(tmp_path / "p.txt")])
    read_particles(tmp_path / "p.txt")  # a valid SHREC list (possibly empty)
    _fails(
        capsys,
        ["evaluate", "train", str(dataset), "--modality", "magic", "-o", str(tmp_path / "r2")],
        "unknown modality",
    )

    results = tmp_path / "results"
    realism = {m: {"spectrum_log_rms": x, "histogram_w1": x / 2} for m, x in [("faket", 0.3)]}
    report = {"modalities": {m: {"summary": v} for m, v in realism.items()}}
    (dataset / "realism.json").write_text(json.dumps(report))  # as faket run writes it
    argv = ["experiment", str(dataset), "-o", str(results), "--modalities", "benchmark"]
    argv += ["faket", "--seeds", "2", "--epochs", "1", "--settings", str(_settings(tmp_path))]
    argv += ["--classify-settings", str(_classify_settings(tmp_path)), "--bootstrap", "200"]
    _run([*argv, "--difference", "benchmark-faket"])
    table = pd.read_csv(results / "table.csv")
    assert list(table["modality"]) == ["benchmark", "faket"]
    assert table.loc[0, "localization_f1_pct_benchmark"] == pytest.approx(100.0) or (
        table.loc[0, "localization_f1_mean"] == 0
    )
    for name in ("table.txt", "per_class_f1.png", "validation_curves.png", "confusion_faket.png"):
        assert (results / name).is_file()
    for name in ("table.md", "f1_by_modality.png", "experiment_config.json"):
        assert (results / name).is_file()
    summary = json.loads((results / "table.json").read_text())
    for metric in ("localization_f1", "classification_f1_macro", "classification_f1_macro_shrec"):
        entry = summary["modalities"]["faket"][metric]
        assert entry["ci_low"] <= entry["mean"] <= entry["ci_high"]
        assert len(entry["seeds"]) == 2
        difference = summary["differences"]["faket-benchmark"][metric]
        assert set(difference) == {"mean", "ci_low", "ci_high"}
    assert "benchmark-faket" in summary["differences"]  # the extra one asked for
    main = summary["modalities"]["faket"]["classification_f1_macro"]
    half = (main["ci_high"] - main["ci_low"]) / 2
    planned = 2 if half <= 0.04 else int(np.ceil(2 * (half / 0.04) ** 2 - 1e-9))
    assert main["seeds_for_target"] == planned and summary["settings"]["target_half_width"] == 0.04
    assert f"faket ±{half:.3f} ({planned})" in (results / "table.md").read_text()
    assert "classification_f1_macro" in summary["classify"]["modalities"]["faket"]
    assert summary["rank_correlation"]["localization_f1"]["seed_sets"] == [[0], [1]]
    assert summary["settings"]["exclusion_convention"] == "shrec"  # the paper preset
    assert set(summary["data_cost"]) == {"benchmark", "faket"}
    assert summary["realism"] == {"benchmark": None, "faket": realism["faket"]}
    assert "| 0.300 | 0.150 |" in (results / "table.md").read_text()
    assert (results / "realism_vs_f1.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "DeepFinder" in out and "Subtomogram classifier" in out
    # Resuming trains nothing: the runs are read back and the table comes out the same.
    stamp = (results / "faket" / "seed_1" / "best.pt").stat().st_mtime_ns
    boxes = (results / "classify" / "faket" / "seed_1" / "best.pt").stat().st_mtime_ns
    _run([*argv, "--difference", "benchmark-faket", "-q"])
    assert (results / "faket" / "seed_1" / "best.pt").stat().st_mtime_ns == stamp
    assert (results / "classify" / "faket" / "seed_1" / "best.pt").stat().st_mtime_ns == boxes
    assert json.loads((results / "table.json").read_text()) == summary
    _fails(capsys, [*argv, "--preset", "laptop"], "unknown training preset 'laptop'")
    _fails(capsys, [*argv, "--difference", "faket"], "MODALITY-MODALITY")


def test_classify_command_writes_its_run(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "data")
    run = tmp_path / "run"
    settings = str(_classify_settings(tmp_path))
    _run(
        [
            "evaluate",
            "classify",
            str(dataset),
            "-m",
            "faket",
            "-o",
            str(run),
            "--settings",
            settings,
        ]
    )
    data = json.loads((run / "test" / "scores.json").read_text())
    assert data["n_boxes"] == 8 + 4 and set(data["per_class_f1"]) == {"small", "big"}
    assert "test F1 macro" in capsys.readouterr().err
    for name in ("best.pt", "history.png", "classify_config.json", "test/confusion_matrix.png"):
        assert (run / name).is_file()
    argv = ["evaluate", "classify", str(dataset), "-m", "faket", "-o", str(run)]
    _fails(capsys, argv, "already exists")
    _fails(capsys, [*argv, "-f", "--epochs", "0"], "classification setting epochs")


def _settings(folder):
    path = folder / "settings.yaml"
    path.write_text("patch_size: 16\nwidths: [4, 4, 4]\nmax_batches: 2\ndevice: cpu\n")
    return path


def _classify_settings(folder):
    path = folder / "classify.yaml"
    path.write_text("epochs: 2\nwidths: [4, 8, 8]\nthreads: 1\ndevice: cpu\n")
    return path


def test_parallel_runs_give_the_same_models_as_one_after_the_other(tmp_path):
    import torch

    from faket.evaluation.classify import ClassifyConfig
    from faket.evaluation.comparison import classify_runs
    from faket.evaluation.experiment import deepfinder_runs
    from faket.evaluation.jobs import default_jobs, threads_per_job
    from faket.evaluation.training import TrainConfig

    dataset = write_dataset(tmp_path / "data")
    config = TrainConfig(epochs=1, patch_size=16, widths=(4, 4, 4), max_batches=2, device="cpu")
    boxes = ClassifyConfig(epochs=2, widths=(4, 8, 8), device="cpu")
    results = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_job(2))  # what each of the 2 jobs gets
    try:
        for jobs in (1, 2):
            folder = tmp_path / f"jobs_{jobs}"
            found = deepfinder_runs(dataset, folder, ["faket"], [0, 1], config, jobs=jobs)
            found += classify_runs(dataset, folder, ["faket"], [0, 1], boxes, jobs=jobs)
            results[jobs] = [
                (r.modality, r.seed, r.scores, r.history.filter(like="loss").to_numpy().tolist())
                for r in found
            ]
    finally:
        torch.set_num_threads(threads)
    # Same seeds, same threads: the same training, loss for loss (and seeds differ).
    assert len(results[2]) == 4 and results[1] == results[2]
    assert results[2][0][3] != results[2][1][3] and results[2][2][3] != results[2][3][3]
    # Never more jobs than runs, and one job on a single run.
    assert default_jobs("cpu", 1) == 1 and 1 <= default_jobs("cpu", 3) <= 3

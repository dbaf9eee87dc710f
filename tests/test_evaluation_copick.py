"""Scoring and predicting from copick runs: the same numbers as from the dataset folders."""

from __future__ import annotations

import json

import copick
import numpy as np
import pandas as pd
import pytest
from _evaluation_data import synthetic_tomogram, write_dataset

from faket.cli.main import main
from faket.errors import FaketError
from faket.evaluation import load_truth, score
from faket.evaluation.copick import copick_truth, copick_volume
from faket.io import copick as cp
from faket.io import copick_write as cpw
from faket.io import read_mrc, read_particles, write_shrec_particles
from faket.pipeline.export import export_copick

TINY = ["--epochs", "1", "--patch-size", "16", "--widths", "4,4,4", "--max-batches", "2"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("copick_eval")
    dataset = write_dataset(base / "data", modalities=("benchmark", "faket"))
    export_copick(dataset, base / "project", progress=False)
    return dataset, base / "project" / "copick_config.json"


def _run(argv) -> None:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    assert stop.value.code == 0


def _perturbed(particles: pd.DataFrame) -> pd.DataFrame:
    """Some hits, a miss, a wrong class, a duplicate."""
    out = particles.iloc[[0, 1, 2, 2, 5]].copy()
    out.iloc[1, out.columns.get_loc("x")] += 30  # far from everything
    out.iloc[2, out.columns.get_loc("class_name")] = "big" if out.iloc[2, 0] == "small" else "small"
    return out


def test_copick_truth_scores_like_the_tomogram_folder(project):
    dataset, config = project
    folder_truth = load_truth(dataset / "tomo_002")
    loaded = copick_truth(config, "tomo_002")
    assert loaded.voxel_size == 1.0 and loaded.instance_source == "segmentation"
    assert len(loaded.truth.particles) == len(folder_truth.particles) == 8
    shifted = folder_truth.particles.copy()
    shifted["x"] += 1.5  # beyond half the small radius (1.25 Å), within half the big (2 Å)
    for predictions in (folder_truth.particles, _perturbed(folder_truth.particles), shifted):
        a, b = score(predictions, folder_truth), score(predictions, loaded.truth)
        assert b.localization_f1 == pytest.approx(a.localization_f1)
        assert b.classification_f1_macro == pytest.approx(a.classification_f1_macro)
        assert b.per_class_f1 == pytest.approx(a.per_class_f1)
        assert b.czii_fbeta is not None
        assert b.czii_fbeta == pytest.approx(a.czii_fbeta)
    assert score(shifted, loaded.truth).czii_fbeta == pytest.approx(0.5)  # small 0, big 1
    assert score(folder_truth.particles, loaded.truth).localization_f1 == 1.0
    perturbed = score(_perturbed(folder_truth.particles), loaded.truth)
    assert 0 < perturbed.localization_recall < 1


def test_copick_volume_is_the_reconstruction(project):
    dataset, config = project
    volume, size, kind = copick_volume(config, "tomo_000", tomo_type="faket")
    expected = read_mrc(dataset / "tomo_000" / "reconstruction_faket.mrc").data
    np.testing.assert_array_equal(volume, expected)
    assert (size, kind) == (1.0, "faket")
    with pytest.raises(FaketError, match=r"tomograms \['benchmark', 'faket'\]; pass --tomo-type"):
        copick_volume(config, "tomo_000")
    with pytest.raises(FaketError, match="no run 'TS_1'; its runs: tomo_000, tomo_001, tomo_002"):
        copick_volume(config, "TS_1")


def test_trained_model_scores_a_copick_run_end_to_end(project, tmp_path, capsys):
    dataset, config = project
    run = tmp_path / "run"
    _run(
        [
            "evaluate",
            "train",
            dataset,
            "--modality",
            "faket",
            "-o",
            run,
            *TINY,
            "-q",
            "--no-test",
            "--no-validation",
        ]
    )
    model = ["--model", run / "best.pt"]
    mrc = dataset / "tomo_002" / "reconstruction_benchmark.mrc"
    _run(["evaluate", "predict", mrc, *model, "-o", tmp_path / "from_mrc.csv", "-q"])
    _run(
        [
            "evaluate",
            "predict",
            config,
            "--run",
            "tomo_002",
            "--tomo-type",
            "benchmark",
            *model,
            "-o",
            tmp_path / "from_copick.csv",
        ]
    )
    assert "run tomo_002, benchmark at 1 Å" in capsys.readouterr().err
    a, b = (pd.read_csv(tmp_path / f"from_{s}.csv") for s in ("mrc", "copick"))
    pd.testing.assert_frame_equal(a, b)
    _run(
        [
            "evaluate",
            "score",
            tmp_path / "from_mrc.csv",
            "--truth",
            dataset / "tomo_002",
            "-o",
            tmp_path / "s_folder",
            "-q",
        ]
    )
    _run(
        [
            "evaluate",
            "score",
            tmp_path / "from_copick.csv",
            "--truth",
            config.parent,
            "--run",
            "tomo_002",
            "-o",
            tmp_path / "s_copick",
        ]
    )
    printed = capsys.readouterr().err
    assert "instances from segmentation" in printed
    folder_scores, copick_scores = (
        json.loads((tmp_path / s / "scores.json").read_text()) for s in ("s_folder", "s_copick")
    )
    keys = ("localization_f1", "classification_f1_macro", "czii_fbeta", "n_predictions")
    for key in (*keys, "n_ground_truth"):
        assert copick_scores[key] == pytest.approx(folder_scores[key])
    assert f"CZII F-beta {copick_scores['czii_fbeta']:.4f}" in printed
    assert copick_scores["n_ground_truth"] == 8


def _portal_like_project(folder, radius_A: float = 2.0, voxel_size: float = 1.0):
    """A project as the Data Portal gives one: a tomogram and points (Å), no masks."""
    tomogram = synthetic_tomogram(4)
    objects = cp.pickable_objects(
        pd.DataFrame(
            {
                "id": [1, 2],
                "name": ["small", "big"],
                "kind": "particle",
                "radius_A": [radius_A, 2 * radius_A],
            }
        )
    )
    root = cp.new_project(folder / "c.json", folder, objects, name="portal")
    run = root.new_run("TS_5_4")
    cpw.write_tomogram(run, "wbp", tomogram.volume, voxel_size, levels=1)
    xyz = tomogram.particles[["x", "y", "z"]].to_numpy() * voxel_size
    for name in ("small", "big"):
        rows = (tomogram.particles["class_name"] == name).to_numpy()
        for user in ("data-portal", "curation"):
            cpw.write_picks(
                run,
                name,
                xyz[rows],
                np.tile(np.eye(3), (rows.sum(), 1, 1)),
                user_id=user,
                session_id="0",
            )
    return folder / "c.json", tomogram


def test_points_only_truth_paints_balls_of_the_object_radius(tmp_path):
    config, tomogram = _portal_like_project(tmp_path)
    with pytest.raises(FaketError, match="several users/sessions.*pass --user-id"):
        copick_truth(config, "TS_5_4")
    loaded = copick_truth(config, "TS_5_4", user_id="curation")
    assert loaded.instance_source == "spheres"
    truth = loaded.truth
    assert sorted(truth.particles["class_name"]) == sorted(tomogram.particles["class_name"])
    for index, row in truth.particles.iterrows():
        z, y, x = (int(row[c]) for c in ("z", "y", "x"))
        radius = 2 if row["class_name"] == "small" else 4  # balls do not touch
        assert truth.occupancy[z, y, x] == index + 1
        assert truth.occupancy[z, y, x + radius] == index + 1  # on the sphere
        assert truth.occupancy[z, y, x + radius + 1] != index + 1  # just outside it
    assert score(truth.particles, truth).localization_f1 == 1.0


def test_score_cli_copick_errors(tmp_path, capsys):
    config, tomogram = _portal_like_project(tmp_path)
    write_shrec_particles(tmp_path / "p.txt", tomogram.particles)
    argv = ["evaluate", "score", tmp_path / "p.txt", "--truth", config, "-o", tmp_path / "s"]
    for extra, message in (
        ([], "pass --run NAME"),
        (["--run", "TS_5_4", "--voxel-spacing", "7"], "no voxel spacing 7.0"),
    ):
        with pytest.raises(SystemExit) as stop:
            main([str(a) for a in [*argv, *extra]])
        assert stop.value.code == 2
        assert message in capsys.readouterr().err
    _run([*argv, "--run", "TS_5_4", "--user-id", "data-portal", "-q"])
    assert json.loads((tmp_path / "s" / "scores.json").read_text())["localization_f1"] == 1.0
    assert len(read_particles(tmp_path / "p.txt")) == len(tomogram.particles)
    assert copick.from_file(str(config)).get_run("TS_5_4") is not None


def test_czii_on_a_copick_run_measures_in_angstrom(tmp_path, capsys):
    """At 10 Å per voxel, a 1.5-voxel (15 Å) offset misses the small class (radius 20 Å,
    threshold 10 Å) and hits the big one (40 Å, threshold 20 Å); read as Å it would hit both."""
    config, tomogram = _portal_like_project(tmp_path, radius_A=20.0, voxel_size=10.0)
    truth = copick_truth(config, "TS_5_4", user_id="curation").truth
    assert truth.voxel_size == 10.0
    key = ["class_name", "x", "y", "z"]
    tables = (truth.particles, tomogram.particles)
    read, written = (t[key].sort_values(key).to_numpy() for t in tables)
    np.testing.assert_array_equal(read[:, 0], written[:, 0])
    np.testing.assert_allclose(read[:, 1:].astype(float), written[:, 1:].astype(float))
    shifted = tomogram.particles.copy()
    shifted["x"] += 1.5
    scores = score(shifted, truth)
    assert scores.czii.per_class.loc["small", ["tp", "fp", "fn"]].tolist() == [0, 4, 4]
    assert scores.czii.per_class.loc["big", ["tp", "fp", "fn"]].tolist() == [4, 0, 0]
    assert scores.czii_fbeta == pytest.approx(0.5)
    write_shrec_particles(tmp_path / "p.txt", shifted)
    _run(["evaluate", "score", tmp_path / "p.txt", "--truth", config, "--run", "TS_5_4",
          "--user-id", "curation", "-o", tmp_path / "s"])  # fmt: skip
    printed = capsys.readouterr().err
    assert "CZII F-beta 0.5000" in printed and "localization F1 1.0000" in printed

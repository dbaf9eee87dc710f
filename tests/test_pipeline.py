"""The dataset pipeline end to end: files, resumability, Dask, config errors."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from faket.cli.main import main
from faket.errors import FaketError
from faket.io import read_mrc
from faket.pipeline import commented_yaml, parse_dataset_config, preset, run_dataset
from faket.pipeline.config import MODALITIES, PAPER_MODALITIES

TINY = {
    "name": "tiny",
    "n_tomograms": 3,
    "device": "cpu",
    "tilt": {"start": -60.0, "stop": 60.0, "step": 10.0},
    "phantom": {
        "shape": (24, 48, 48),
        "classes": ["globule_4nm", "dimer_9nm", "ring5_11nm"],
        "per_class": 2,
        "vesicles": 0,
        "fiducials": 1,
    },
    "nst": {"weights": "random"},
    "reconstruction": {"filter": "ramp"},
    # The spectral modality of the fixture also matches radial spectra (paper modalities
    # are unaffected; the noise model then also holds the style's radial spectra).
    "noise": {"match_radial_spectrum": True},
}


# Orchestration tests skip the (slow on CPU) style transfer; the fixture covers it.
NO_FAKET = {**TINY, "modalities": ["noiseless", "benchmark", "baseline", "noisy", "content"]}


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every data file under ``folder`` (not logs, manifests or figures)."""
    # realism.json summarises the dataset's modality list, which differs between configs.
    skip = {"manifest.json", "run_log.csv", "dataset_config.yaml", "realism.json"}
    return {
        str(path.relative_to(folder)): hashlib.sha256(_content(path)).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in skip and path.suffix != ".png"
    }


def _content(path: Path) -> bytes:
    if path.name == "noise_model.json":  # its provenance records when it was made
        data = json.loads(path.read_text())
        data.pop("provenance")
        return json.dumps(data, sort_keys=True).encode()
    return path.read_bytes()


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    # Every modality: the paper's and the opt-in spectral ones.
    folder = tmp_path_factory.mktemp("dataset")
    config = parse_dataset_config({**TINY, "modalities": list(MODALITIES)})
    summary = run_dataset(config, folder, progress=False)
    return folder, summary


def test_the_default_modalities_are_the_papers():
    config = parse_dataset_config({})
    assert config.modalities == list(PAPER_MODALITIES)
    # Datasets made before the radial option keep the noise model's hash (and all after it).
    assert config.noise.hashed() == {"estimate_from": None, "order": 2}
    radial = parse_dataset_config({"noise": {"match_radial_spectrum": True}}).noise.hashed()
    assert radial["match_radial_spectrum"] is True
    assert set(PAPER_MODALITIES) < set(MODALITIES)
    assert {"spectral", "faket_spectral", "faket_random"} == set(MODALITIES) - set(PAPER_MODALITIES)


def test_every_file_of_the_layout_is_produced(tiny_dataset):
    folder, summary = tiny_dataset
    assert (folder / "noise_model.json").exists() and (folder / "dataset_config.yaml").exists()
    for name in ("projections.png", "power_spectra.png", "reconstructions.png", "noise_curves.png"):
        assert (folder / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    for index in range(3):
        tomogram = folder / f"tomo_{index:03d}"
        expected = MODALITIES if index < 2 else ("noiseless", "benchmark")
        for modality in expected:
            tilt_series = read_mrc(tomogram / f"projections_{modality}.mrc")
            assert tilt_series.data.shape == (13, 48, 48)
            assert tilt_series.voxel_size == pytest.approx(10.0)
            assert np.isfinite(tilt_series.data).all() and tilt_series.data.std() > 0
            assert read_mrc(tomogram / f"reconstruction_{modality}.mrc").data.shape == (24, 48, 48)
        for ground_truth in ("grandmodel.mrc", "occupancy_mask.mrc", "particle_locations.txt"):
            assert (tomogram / ground_truth).exists()
        np.testing.assert_allclose(
            np.loadtxt(tomogram / "tilt_angles.tlt"), np.arange(-60.0, 61.0, 10.0)
        )
    assert not (folder / "tomo_002" / "projections_faket.mrc").exists()  # test: BENCHMARK only
    assert all(record.ran for record in summary.records)


def test_spectral_modalities_colour_the_noise_and_initialise_the_style_transfer(tiny_dataset):
    from faket.noise import apply_noise, load_noise_model
    from faket.noise.radial import radial_profile
    from faket.pipeline.steps import derive_seed

    folder, _ = tiny_dataset
    model = load_noise_model(folder / "noise_model.json")
    assert model.spectrum is not None
    tomogram = folder / "tomo_000"
    spectral, noisy, clean, faket, faket_spectral = (
        read_mrc(tomogram / f"projections_{m}.mrc").data
        for m in ("spectral", "noisy", "noiseless", "faket", "faket_spectral")
    )
    # SPECTRAL is the library's spectral noise (radially matched, as configured) with the
    # tomogram's noise seed.
    seed = derive_seed(0, 0, "noise")
    expected = apply_noise(clean, model, "spectral", seed, match_radial=True)
    np.testing.assert_array_equal(spectral, expected)
    for i in (0, 6, 12):
        target = model.spectrum.radial(i)
        measured = radial_profile(spectral[i], len(target))
        np.testing.assert_allclose(measured[1:], target[1:] / target[1:].mean(), rtol=1e-3)
    np.testing.assert_allclose(spectral.std(axis=(1, 2)), noisy.std(axis=(1, 2)), rtol=1e-4)

    def correlation(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    # Each style transfer stays close to its own initialisation (one Adam step).
    assert correlation(faket_spectral, spectral) > correlation(faket_spectral, noisy) + 0.1
    assert correlation(faket, noisy) > correlation(faket, spectral) + 0.1


def test_run_reports_the_realism_of_every_modality(tiny_dataset):
    from faket.realism.dataset import modality_realism, realism_summaries
    from faket.realism.metrics import compare_stacks

    folder, _ = tiny_dataset
    report = json.loads((folder / "realism.json").read_text())
    assert set(report["modalities"]) == set(MODALITIES)
    assert report["tomograms"] == ["tomo_000", "tomo_001"]
    assert (folder / "figures" / "realism.png").read_bytes()[:4] == b"\x89PNG"
    noisy = modality_realism(folder, "noisy")
    # The mean over the training tomograms of each tomogram's comparison with its BENCHMARK.
    expected = [
        compare_stacks(
            read_mrc(folder / t / "projections_noisy.mrc").data,
            read_mrc(folder / t / "projections_benchmark.mrc").data,
        ).summary["spectrum_log_rms"]
        for t in ("tomo_000", "tomo_001")
    ]
    assert noisy["spectrum_log_rms"] == pytest.approx(np.mean(expected))
    # Noise with the style noise's spectrum looks more like the style than white noise.
    spectral = modality_realism(folder, "spectral")
    assert spectral["mean_spectrum_log_rms"] < noisy["mean_spectrum_log_rms"]
    with pytest.raises(FaketError, match="no 'nonsense'"):
        modality_realism(folder, "nonsense")
    # A dataset without realism.json (made before it) is measured from its config.
    saved = realism_summaries(folder)
    report_file = folder / "realism.json"
    kept = report_file.read_bytes()
    report_file.unlink()
    try:
        assert realism_summaries(folder) == saved  # JSON keeps floats exactly
        assert not report_file.exists()  # reading never writes into the dataset
    finally:
        report_file.write_bytes(kept)


def test_tomograms_differ_and_style_comes_from_another_tomogram(tiny_dataset):
    folder, _ = tiny_dataset
    first = read_mrc(folder / "tomo_000" / "grandmodel.mrc").data
    second = read_mrc(folder / "tomo_001" / "grandmodel.mrc").data
    assert not np.array_equal(first, second)
    faket = read_mrc(folder / "tomo_000" / "projections_faket.mrc").data
    style = read_mrc(folder / "tomo_001" / "projections_benchmark.mrc").data
    # FAKET's per-tilt statistics are matched to the style tomogram's benchmark.
    np.testing.assert_allclose(faket.mean(axis=(1, 2)), style.mean(axis=(1, 2)), rtol=1e-3)
    np.testing.assert_allclose(faket.std(axis=(1, 2)), style.std(axis=(1, 2)), rtol=1e-3)


def test_rerun_does_no_work_and_a_change_redoes_only_what_depends_on_it(tmp_path):
    folder = tmp_path / "data"
    config = parse_dataset_config({**TINY, "modalities": ["noiseless", "benchmark", "noisy"]})
    run_dataset(config, folder, progress=False)
    before = _digests(folder)
    again = run_dataset(config, folder, progress=False)
    assert again.ran == []
    changed = config.model_copy(
        update={"reconstruction": config.reconstruction.model_copy(update={"filter": "hann"})}
    )
    third = run_dataset(changed, folder, progress=False)
    assert {record.name for record in third.ran} == {
        "reconstruction_noiseless",
        "reconstruction_benchmark",
        "reconstruction_noisy",
        "figures",
    }
    after = _digests(folder)
    assert {k for k in before if before[k] != after[k]} == {
        f"tomo_{i:03d}/reconstruction_{m}.mrc"
        for i in range(3)
        for m in ("noiseless", "benchmark", "noisy")
        if not (i == 2 and m == "noisy")
    }
    log = (folder / "run_log.csv").read_text().splitlines()
    assert log[0] == "run_started,step,folder,ran,seconds,details" and len(log) > 30


def test_the_weights_used_are_recorded_everywhere(tiny_dataset):
    folder, summary = tiny_dataset
    assert (
        yaml.safe_load((folder / "dataset_config.yaml").read_text())["nst"]["weights"] == "random"
    )
    entry = json.loads((folder / "tomo_000" / "manifest.json").read_text())["steps"]
    # Facts about how a step's outputs were made sit under "info" (as datacost reads them).
    assert entry["projections_faket"]["info"]["weights"] == "random"
    assert entry["projections_faket"]["info"]["threads"] >= 1
    assert entry["projections_faket_spectral"]["info"]["weights"] == "random"
    assert entry["projections_faket_random"]["info"]["weights"] == "random"
    assert "weights=random" in (folder / "run_log.csv").read_text()
    assert any(r.details.get("weights") == "random" for r in summary.records)


def test_another_thread_count_or_a_truncated_file_redoes_only_those_steps(tiny_dataset, tmp_path):
    import shutil

    import torch

    folder, _ = tiny_dataset
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    truncated = copy / "tomo_002" / "reconstruction_benchmark.mrc"
    truncated.write_bytes(truncated.read_bytes()[:-1000])
    before = torch.get_num_threads()
    torch.set_num_threads(1 if before > 1 else 2)
    try:
        summary = run_dataset(parse_dataset_config(TINY), copy, progress=False)
    finally:
        torch.set_num_threads(before)
    ran = {(Path(r.folder).name, r.name) for r in summary.ran}
    assert ran == {
        ("tomo_002", "reconstruction_benchmark"),
        ("tomo_000", "projections_faket"),
        ("tomo_001", "projections_faket"),
        ("tomo_000", "reconstruction_faket"),
        ("tomo_001", "reconstruction_faket"),
        (copy.name, "figures"),
        (copy.name, "realism"),  # it reads the FAKET projections
    }
    restored = read_mrc(truncated).data
    np.testing.assert_array_equal(restored, read_mrc(folder / truncated.relative_to(copy)).data)


def test_local_dask_cluster_gives_identical_files(tiny_dataset, tmp_path):
    pytest.importorskip("dask.distributed")
    folder, _ = tiny_dataset
    parallel = tmp_path / "parallel"
    run_dataset(parse_dataset_config(NO_FAKET), parallel, workers=2, progress=False)
    produced, reference = _digests(parallel), _digests(folder)
    assert len(produced) > 40
    assert {name: reference[name] for name in produced} == produced


def test_killed_run_resumes_to_the_same_files(tiny_dataset, tmp_path):
    folder, _ = tiny_dataset
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(parse_dataset_config(NO_FAKET).model_dump(mode="json")))
    target = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "faket.cli.main",
        "run",
        str(config_file),
        "-o",
        str(target),
        "-q",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # Kill as soon as some, but not all, steps are recorded.
    while time.time() < deadline and not (target / "tomo_001" / "manifest.json").exists():
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (target / "figures").exists()
    status = subprocess.run(command, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    produced, reference = _digests(target), _digests(folder)
    assert len(produced) > 40
    assert {name: reference[name] for name in produced} == produced


@pytest.mark.parametrize(
    "change, key",
    [
        ({"unknown_key": 1}, "unknown_key"),
        ({"n_tomograms": "many"}, "n_tomograms"),
        ({"test_tomogram": 7}, "test_tomogram"),
        ({"style": {"offset": 2}}, "style.offset"),
        ({"phantom": {"voxel_size": -1}}, "phantom.voxel_size"),
        ({"microscope": {"optics": {"voltage_kv": "high"}}}, "microscope.optics.voltage_kv"),
        ({"noise": {"estimate_from": [2]}}, "estimate_from"),
    ],
)
def test_invalid_config_is_one_line_naming_the_key(tmp_path, capsys, change, key):
    with pytest.raises(FaketError, match=key.replace(".", r"\.")):
        parse_dataset_config({**TINY, **change})
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(yaml.safe_dump({**TINY, **change}))
    with pytest.raises(SystemExit) as exited:
        main(["run", str(config_file), "-o", str(tmp_path / "out")])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key.split(".")[0] in err[0]
    assert not (tmp_path / "out").exists()


def test_presets_round_trip_through_commented_yaml():
    for name in ("demo", "small", "shrec"):
        config = preset(name)
        text = commented_yaml(config)
        assert text.count("\n# ") > 10  # described settings
        assert parse_dataset_config(yaml.safe_load(text)) == config


def test_config_cli_writes_yaml_and_schema(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["config", "init", "--preset", "small", "-o", str(tmp_path / "small.yaml")])
    assert exited.value.code == 0
    assert parse_dataset_config(yaml.safe_load((tmp_path / "small.yaml").read_text())) == preset(
        "small"
    )
    with pytest.raises(SystemExit):
        main(["config", "schema"])
    schema = json.loads(capsys.readouterr().out)
    assert "microscope" in schema["properties"] and "phantom" in schema["properties"]


def test_cpu_config_lists_the_judges_settings_of_its_experiment_preset(tmp_path):
    from faket.evaluation.classify import classify_config
    from faket.evaluation.training import train_config

    with pytest.raises(SystemExit) as exited:
        main(["config", "init", "--preset", "cpu", "-o", str(tmp_path / "cpu.yaml")])
    assert exited.value.code == 0
    text = (tmp_path / "cpu.yaml").read_text()
    assert parse_dataset_config(yaml.safe_load(text)) == preset("cpu")  # comments only
    listed = {"DeepFinder": {}, "classifier": {}}
    judge = None
    for line in text.splitlines():
        if line.rstrip(":") in ("# DeepFinder", "# classifier"):
            judge = line[2:].rstrip(":")
        elif judge and line.startswith("#   "):
            key, value = line[4:].split("  # ")[0].split(": ", 1)
            listed[judge][key] = json.loads(value)
    # The listed values are the ones the experiment trains with, each with its reason.
    deepfinder = train_config("cpu").model_dump()
    assert listed["DeepFinder"] and all(
        deepfinder[k] == (tuple(v) if isinstance(v, list) and k == "widths" else v)
        for k, v in listed["DeepFinder"].items()
    )
    assert listed["DeepFinder"]["epochs"] == 25 and listed["DeepFinder"]["precision"] == "mixed"
    assert "#   epochs: 25  # " in text
    classifier = classify_config("cpu").model_dump()
    assert all(classifier[k] == v for k, v in listed["classifier"].items())

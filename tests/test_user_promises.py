"""What the README promises, kept with real users' habits (issue 16): unknown voxel
sizes, style stacks of another pixel size, -q, interrupted runs, stored picking settings,
early checks, stale temporaries, and the smaller items."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers import one_torch_thread  # noqa: F401  (fixture)

from faket.cli.main import main
from faket.errors import FaketError
from faket.io import read_mrc, write_mrc, write_tlt

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]


def _run(args, capsys):
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


@pytest.fixture
def no_voxel(tmp_path) -> Path:
    """A volume whose header has no voxel size (as scripts often write)."""
    volume = np.zeros((8, 24, 24), np.float32)
    volume[3:5, 8:16, 8:16] = 1.0
    return write_mrc(tmp_path / "v.mrc", volume, 0.0)


# --- item 1: files without a voxel size --------------------------------------------------


def test_unknown_voxel_size_is_read_written_as_zero_with_a_warning(no_voxel, tmp_path, capsys):
    out = tmp_path / "p.mrc"
    code, _, err = _run(["project", no_voxel, "-o", out, "-q", "--tilt-step", "30"], capsys)
    assert code == 0 and "no voxel size in its header" in err and "--voxel-size" in err
    assert read_mrc(out).voxel_size == 0.0
    code, _, err = _run(["reconstruct", out, "-o", tmp_path / "r.mrc", "-q"], capsys)
    assert code == 0 and read_mrc(tmp_path / "r.mrc").voxel_size == 0.0
    code, _, err = _run(
        ["reconstruct", out, "-o", tmp_path / "r2.mrc", "-q", "--voxel-size", "7.5", "--bin", "2"],
        capsys,
    )
    assert code == 0 and err == "" and read_mrc(tmp_path / "r2.mrc").voxel_size == 15.0


def test_the_microscope_asks_for_a_voxel_size_before_any_work(
    no_voxel, tmp_path, capsys, monkeypatch
):
    import faket.microscope as microscope

    def never(*args, **kwargs):
        raise AssertionError("the simulation must not start")

    monkeypatch.setattr(microscope, "simulate_tilt_series", never)
    code, _, err = _run(["microscope", no_voxel, "-o", tmp_path / "b.mrc", "-q"], capsys)
    assert code == 2 and "--voxel-size" in err and list(tmp_path.iterdir()) == [no_voxel]


def test_noise_apply_and_style_take_voxel_size(tmp_path, capsys):
    from faket.noise import estimate_noise_model, save_noise_model

    rng = np.random.default_rng(0)
    clean = rng.random((3, 32, 32)).astype(np.float32)
    write_mrc(tmp_path / "clean.mrc", clean, 0.0, stack=True)
    model = estimate_noise_model([clean + rng.random(clean.shape)], [clean], [-10, 0, 10], order=0)
    save_noise_model(model, tmp_path / "m.json")
    code, _, err = _run(["noise", "apply", tmp_path / "clean.mrc", "--model", tmp_path / "m.json",
                         "--mode", "noisy", "-o", tmp_path / "n.mrc", "--voxel-size", "6", "-q"],
                        capsys)  # fmt: skip
    assert code == 0, err
    noisy = read_mrc(tmp_path / "n.mrc")
    assert noisy.voxel_size == 6.0 and noisy.is_stack


# --- item 6: style stacks of another pixel size or image size ---------------------------


def _period_px(image: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(image.mean(axis=0) - image.mean()))
    return image.shape[1] / int(np.argmax(spectrum))


def test_style_is_resampled_to_the_content_pixel_size_then_cropped():
    from faket.style.matching import match_style

    x = np.arange(60)
    style = np.tile(np.sin(2 * np.pi * x / 5.0), (2, 60, 1)).astype(np.float32)  # 60 Å at 12 Å
    matched, note = match_style(style, 12.0, (48, 48), 10.0)
    assert matched.shape == (2, 48, 48)
    assert "resampled from 12 to 10 Å" in note and "cropped" in note
    # The texture keeps its physical size: a 60 Å period is 6 content pixels.
    assert _period_px(matched[0]) == pytest.approx(6.0, rel=0.05)
    same, none = match_style(style, 10.0, (60, 60), 10.0)
    assert same is style and none is None


def test_a_small_style_is_mirrored_not_stretched_and_unknown_pixels_say_so():
    from faket.style.matching import match_style

    style = np.arange(2 * 10 * 10, dtype=np.float32).reshape(2, 10, 10)
    matched, note = match_style(style, 0.0, (16, 12), 10.0)
    assert matched.shape == (2, 16, 12) and "not resampled (a pixel size is unknown)" in note
    assert "padded" in note
    np.testing.assert_array_equal(matched[:, 3:13, 1:11], style)  # centred, unchanged


def test_style_cli_warns_and_uses_the_matched_style(tmp_path, capsys):
    rng = np.random.default_rng(1)
    content = rng.random((2, 32, 32)).astype(np.float32)
    write_mrc(tmp_path / "c.mrc", content, 10.0, stack=True)
    write_mrc(tmp_path / "s.mrc", rng.random((2, 40, 40)).astype(np.float32), 12.0, stack=True)
    args = ["style", tmp_path / "c.mrc", tmp_path / "s.mrc", "--init", tmp_path / "c.mrc",
            "-o", tmp_path / "f.mrc", "--weights", "random", "-q", "--device", "cpu"]  # fmt: skip
    code, _, err = _run(args, capsys)
    assert code == 0 and "resampled from 12 to 10 Å pixels" in err, err
    assert read_mrc(tmp_path / "f.mrc").data.shape == (2, 32, 32)


# --- item 7: -q means no bars, and a pipe gets no blank lines ---------------------------


def test_quiet_and_piped_commands_draw_nothing(tmp_path):
    volume = write_mrc(tmp_path / "v.mrc", np.ones((8, 24, 24), np.float32), 10.0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for extra, expected in (([], 1), (["-q"], 0)):
        done = subprocess.run(
            [sys.executable, "-m", "faket", "project", str(volume), "-o",
             str(tmp_path / f"p{len(extra)}.mrc"), *extra],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        lines = done.stderr.splitlines()
        assert len(lines) == expected and all(line.strip() for line in lines), done.stderr


def test_serial_dataset_jobs_get_the_progress_flag():
    from faket.pipeline.dataset import _map_jobs

    seen = []

    def job(index, progress):
        seen.append(progress)
        return []

    _map_jobs(job, [0, 1], (), None, lambda: None, False)
    _map_jobs(job, [2], (), None, lambda: None, True)
    assert seen == [False, False, True]


def test_bars_draw_only_when_enabled_on_a_terminal(monkeypatch):
    from rich.console import Console

    from faket import progress

    assert not progress.bars_visible(True)  # pytest's stderr is not a terminal
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    assert progress.bars_visible(True) and not progress.bars_visible(False)


# --- item 8 and SIGINT: an interrupted style run ----------------------------------------


def test_interrupted_style_leaves_no_output_that_reconstruct_would_take(
    tmp_path, capsys, monkeypatch
):
    from faket.style import files as files_module

    rng = np.random.default_rng(2)
    series = rng.random((4, 32, 32)).astype(np.float32)
    for name in ("c", "s"):
        write_mrc(tmp_path / f"{name}.mrc", series, 10.0, stack=True)
    write_tlt(tmp_path / "f.tlt", [-30, -10, 10, 30])
    real = files_module.iter_style_transfer

    def interrupted(*args, **kwargs):
        for count, item in enumerate(real(*args, **kwargs)):
            if count == 2:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(files_module, "iter_style_transfer", interrupted)
    args = ["style", tmp_path / "c.mrc", tmp_path / "s.mrc", "--init", tmp_path / "c.mrc",
            "-o", tmp_path / "f.mrc", "--weights", "random", "-q", "--device", "cpu"]  # fmt: skip
    code, _, err = _run(args, capsys)
    assert code == 130 and "finished tilts are kept" in err and "run the same command" in err
    assert not (tmp_path / "f.mrc").exists()
    assert read_mrc(files_module.partial_path(tmp_path / "f.mrc")).data.shape == (4, 32, 32)
    code, _, err = _run(["reconstruct", tmp_path / "f.mrc", "-o", tmp_path / "r.mrc"], capsys)
    assert code == 2 and "no such file" in err


def test_sigint_says_what_was_kept(capsys, monkeypatch, tmp_path):
    import faket.cli.info as info

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("faket.describe.describe_file", interrupt)
    del info
    volume = write_mrc(tmp_path / "v.mrc", np.zeros((2, 4, 4), np.float32), 1.0)
    code, _, err = _run(["info", volume], capsys)
    assert code == 130 and err.startswith("faket: interrupted; no output was written")


# --- item 9: picking settings travel with the model --------------------------------------


def test_locate_defaults_to_the_models_settings(monkeypatch, tmp_path):
    from faket.evaluation import inference
    from faket.evaluation.network import DeepFinder, TrainedModel, load_model, save_model

    used = []

    def spy(labels, names, *, bandwidth, min_cluster_size, mode, **_):
        used.append((mode, bandwidth["a"]))
        return pd.DataFrame(columns=["class_name", "x", "y", "z", "phi", "theta", "psi"])

    monkeypatch.setattr(inference, "cluster", spy)
    network = DeepFinder(2, (4, 4, 4))
    stored = {"mode": "joint", "bandwidth_scale": 2.0, "min_size_fraction": 0.2}
    model = TrainedModel(network, ["a"], {"a": 3.0}, 16, 10.0, clustering=stored)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    labels = np.zeros((8, 8, 8), np.int64)
    inference.locate(labels, loaded)
    inference.locate(labels, loaded, mode="per_class", bandwidth_scale=1.0)
    inference.locate(labels, TrainedModel(network, ["a"], {"a": 3.0}, 16))  # an old checkpoint
    assert used == [("joint", 6.0), ("per_class", 3.0), ("per_class", 3.0)]


def test_checkpoints_without_stored_settings_still_load(tmp_path):
    import torch

    from faket.evaluation.network import DeepFinder, TrainedModel, load_model, save_model

    save_model(TrainedModel(DeepFinder(2, (4, 4, 4)), ["a"], {"a": 3.0}), tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["clustering"]  # as written before issue 16
    torch.save(payload, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").clustering == {}


# --- items 11, 12, 13, 14, 15 -----------------------------------------------------------


def test_thread_count_is_part_of_the_faket_step_identity(monkeypatch):
    import torch

    from faket.pipeline.steps import compute_identity

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compute_identity("cpu")
        torch.set_num_threads(2)
        two = compute_identity("cpu")
    finally:
        torch.set_num_threads(before)
    assert one == {"device": "cpu", "threads": 1} and two["threads"] == 2


def test_corrupt_template_cache_entry_is_rebuilt(tmp_path):
    from faket.phantom import cache
    from faket.phantom.templates_map import template_from_map

    density = np.exp(-((np.indices((15, 15, 15)) - 7.0) ** 2).sum(0) / 6.0).astype(np.float32)
    path = write_mrc(tmp_path / "blob.mrc", density * 5.0, 10.0)
    first = template_from_map(path, 10.0, cache_dir=tmp_path / "cache", mass_kda=25.0)
    (entry,) = (tmp_path / "cache" / "templates").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])  # truncated: zipfile.BadZipFile
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = template_from_map(path, 10.0, cache_dir=tmp_path / "cache", mass_kda=25.0)
    np.testing.assert_array_equal(first.potential, again.potential)
    assert cache.load_template(tmp_path / "cache", entry.stem, "blob", "x") is not None


def test_out_of_memory_advice_names_only_options_that_exist(capsys, monkeypatch, tmp_path):
    import faket.describe as describe

    def oom(*args):
        raise MemoryError

    monkeypatch.setattr(describe, "describe_file", oom)
    volume = write_mrc(tmp_path / "v.mrc", np.zeros((2, 4, 4), np.float32), 1.0)
    code, _, err = _run(["info", volume], capsys)
    assert code == 2 and "--memory-budget" not in err
    options = set(_all_options())
    named = {word.strip("(),") for word in err.split() if word.startswith("--")}
    assert named and named <= options, named - options


def _commands():
    import typer

    from faket.cli.main import register_commands

    stack = [typer.main.get_command(register_commands())]
    while stack:
        command = stack.pop()
        yield command
        stack += list(getattr(command, "commands", {}).values())


def _all_options():
    for command in _commands():
        for parameter in command.params:
            yield from parameter.opts


def test_help_placeholders_do_not_suggest_commas():
    checked = 0
    for command in _commands():
        for parameter in command.params:
            if getattr(parameter, "nargs", 1) > 1:
                metavar = parameter.metavar or ""
                assert metavar and "," not in metavar and "<" not in metavar, parameter.opts
                checked += 1
    assert checked >= 4  # --tilt-range (3 commands), --shape, --z-valid


def test_weights_that_cannot_be_had_fail_before_the_first_step(tmp_path, capsys, monkeypatch):
    from faket.style import weights as weights_module

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setattr(weights_module, "IMAGENET_URL", (tmp_path / "none.pth").as_uri())
    (tmp_path / "c.yaml").write_text("preset: demo\nnst: {weights: imagenet}\n")
    code, _, err = _run(["run", tmp_path / "c.yaml", "-o", tmp_path / "ds", "-q"], capsys)
    assert code == 2 and "could not be downloaded" in err and not (tmp_path / "ds").exists()


def test_preset_key_and_auto_weights_are_resolved_once(tmp_path, monkeypatch):
    from faket.pipeline.config import load_dataset_config
    from faket.pipeline.preflight import preflight

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))  # no cached ImageNet weights
    (tmp_path / "c.yaml").write_text("preset: small\nseed: 7\nphantom: {per_class: 1}\n")
    config = load_dataset_config(tmp_path / "c.yaml")
    assert config.seed == 7 and config.phantom.per_class == 1 and config.n_tomograms == 5
    assert config.phantom.shape == (64, 160, 160)  # the preset's, kept where not changed
    assert config.nst.weights == "auto" and preflight(config).nst.weights == "transfer"


def test_a_standalone_command_removes_its_own_stale_temporaries(tmp_path, capsys):
    volume = write_mrc(tmp_path / "v.mrc", np.ones((4, 8, 8), np.float32), 10.0)
    stale = tmp_path / ".p.mrc.tmp-0123456789ab"  # left by a kill -9
    other = tmp_path / ".q.mrc.tmp-0123456789ab"  # another output's: not ours to touch
    stale.write_bytes(bytes(1000))
    other.write_bytes(bytes(10))
    code, _, err = _run(["project", volume, "-o", tmp_path / "p.mrc", "-q"], capsys)
    assert code == 0, err
    assert not stale.exists() and other.exists()


# --- smaller items ----------------------------------------------------------------------


def test_microscope_warns_about_inputs_that_are_not_potentials(tmp_path):
    from faket.microscope.checks import potential_problem

    tomogram = np.random.default_rng(0).integers(0, 256, (4, 8, 8)).astype(np.uint8)
    assert "uint8 data" in potential_problem(tomogram)
    assert "--potential-scale" in potential_problem(np.full((2, 4, 4), -3.0, np.float32))
    grand_model = np.zeros((4, 8, 8), np.float32)
    grand_model[1:3, 2:6, 2:6] = 7.9  # protein, in volts
    assert potential_problem(grand_model) is None
    assert potential_problem(grand_model, potential_scale=100.0) is not None


def test_negative_fitted_r_is_clipped_with_a_warning():
    from faket.noise import NoiseModel
    from faket.noise.model import NoiseCurves

    n = 11
    angles = np.linspace(-60, 60, n)
    r = np.linspace(0.5, -0.02, n)  # a fit overshooting below 0 at the last tilt
    curves = NoiseCurves(r, np.full(n, 0.8), np.zeros(n), np.ones(n))
    with pytest.warns(RuntimeWarning, match=r"r is negative at 1 tilt.*-0.02 at 60 deg"):
        model = NoiseModel.from_curves([curves], angles, order=-1)
    assert model.curves.r.min() == 0.0 and model.curves.r[0] == 0.5


def test_anticorrelation_advice_fits_either_projection_convention():
    from faket.noise.estimate import estimate_curves

    rng = np.random.default_rng(5)
    clean = rng.random((4, 16, 16))
    flipped = np.concatenate([-clean[:3], clean[3:]])  # mostly the other contrast
    with pytest.warns(RuntimeWarning) as mostly:
        estimate_curves(flipped + 0.1 * rng.random(clean.shape), clean)
    message = str(mostly[0].message)
    assert "3 of 4 tilt(s)" in message
    assert "if they were made without it" in message and "with it" in message
    faint = clean.copy()
    faint[3] = rng.random((16, 16)) - 0.3 * clean[3]  # a noise-dominated tilt, r < 0
    with pytest.warns(RuntimeWarning) as few:
        estimate_curves(faint, clean)
    assert "--negate" not in str(few[0].message) and "noise" in str(few[0].message)


def test_score_creates_missing_parent_folders_and_warns_on_unknown_classes(tmp_path, capsys):
    code, _, err = _run(["phantom", "-o", tmp_path / "truth", "--shape", "16", "48", "48",
                         "--classes", "globule_4nm", "--per-class", "2", "--vesicles", "0",
                         "--fiducials", "0", "-q", "--no-cache"], capsys)  # fmt: skip
    assert code == 0, err
    picks = tmp_path / "picks.txt"
    truth = (tmp_path / "truth" / "particle_locations.txt").read_text()
    picks.write_text(truth + "nonesuch 1 1 1 0 0 0\n")
    out = tmp_path / "a" / "b" / "scores"
    code, _, err = _run(["evaluate", "score", picks, "--truth", tmp_path / "truth", "-o", out,
                         "--no-figure", "-q"], capsys)  # fmt: skip
    assert code == 0 and (out / "scores.json").is_file(), err
    assert "nonesuch" in err and "do not occur in the ground truth" in err


def test_truncated_outputs_are_not_taken_as_done(tmp_path):
    from faket.pipeline.manifest import Manifest

    (tmp_path / "a.mrc").write_bytes(bytes(2000))
    manifest = Manifest(tmp_path)
    manifest.record("step", "h1", ["a.mrc"], 1.0, weights="random")
    assert Manifest(tmp_path).is_done("step", "h1", ["a.mrc"])
    assert Manifest(tmp_path).steps["step"]["weights"] == "random"
    (tmp_path / "a.mrc").write_bytes(bytes(1500))  # cut short by a full disk or a crash
    assert not Manifest(tmp_path).is_done("step", "h1", ["a.mrc"])


def test_reconstruct_takes_a_tilt_range(tmp_path, capsys):
    series = write_mrc(tmp_path / "s.mrc", np.ones((5, 16, 16), np.float32), 10.0, stack=True)
    args = ["reconstruct", series, "-o", tmp_path / "r.mrc", "--tilt-range", "-40", "40",
            "--tilt-step", "20", "-q"]  # fmt: skip
    code, _, err = _run(args, capsys)
    assert code == 0, err
    assert read_mrc(tmp_path / "r.mrc").data.shape == (16, 16, 16)


def test_readme_tour_creates_other_tomo_before_using_it():
    tour = (REPO / "README.md").read_text()
    first = tour.index("other_tomo/")
    line = tour[tour.rfind("\n", 0, first) + 1 : tour.find("\n", first)]
    assert "-o other_tomo/" in line, line


def test_figures_say_which_tomogram_weights_and_units(monkeypatch, tmp_path):
    from faket.plots import modalities

    figures = []
    monkeypatch.setattr(modalities, "save_figure", lambda figure, path: figures.append(figure))
    stacks = {m: np.random.default_rng(0).random((3, 16, 16)) for m in ("benchmark", "faket")}
    labels = {"faket": "faket (random VGG-19)"}
    modalities.plot_projections(stacks, np.array([-40, 0, 40]), tmp_path / "p.png", 10.0,
                                source="tomo_001", labels=labels)  # fmt: skip
    modalities.plot_reconstruction_slices(stacks, tmp_path / "r.png", 10.0, source="tomo_001")
    projections, slices = figures
    assert "tomo_001" in projections._suptitle.get_text()
    titles = [axis.get_title() for axis in projections.axes]
    assert any(t.startswith("faket (random VGG-19)") for t in titles)
    bars = {axis.get_ylabel() for axis in projections.axes} | {
        axis.get_ylabel() for axis in slices.axes
    }
    assert "electrons / pixel" in bars and modalities.RECONSTRUCTION_UNIT in bars
    assert "tomo_001" in slices._suptitle.get_text()


def test_training_plot_names_the_loss(monkeypatch, tmp_path):
    from faket.plots import training

    figures = []
    monkeypatch.setattr(training, "save_figure", lambda figure, path: figures.append(figure))
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]})
    training.plot_training_history(
        history, tmp_path / "h.png", loss_name="Dice + 1 x cross-entropy"
    )
    assert figures[0].axes[0].get_ylabel() == "training loss (Dice + 1 x cross-entropy)"


def test_warnings_do_not_turn_into_errors_for_plain_inputs(tmp_path):
    # A well-formed file is read silently: the new checks do not cry wolf.
    path = write_mrc(tmp_path / "v.mrc", np.ones((4, 8, 8), np.float32), 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_mrc(path)
    with pytest.raises(FaketError):
        read_mrc(tmp_path / "missing.mrc")

"""Bad input, as users produce it: every case exits with status 2 and one line on stderr
that names the problem, prints no traceback, and leaves no output behind (issue 16)."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from _helpers import one_torch_thread  # noqa: F401  (fixture)

from faket.cli.main import main
from faket.io import write_mrc, write_tlt
from faket.noise import estimate_noise_model, save_noise_model
from faket.pipeline import dataset as dataset_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _em_file(path: Path, data: np.ndarray, machine: int = 6, code: int = 5) -> Path:
    header = struct.pack("<4b3i", machine, 0, 0, code, *data.shape[::-1]) + bytes(496)
    path.write_bytes(header + np.ascontiguousarray(data, dtype="<f4").tobytes())
    return path


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    """Small valid inputs (and a few invalid ones) in one folder."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    write_mrc(folder / "volume.mrc", rng.random((8, 32, 32), np.float32), 10.0)
    write_mrc(folder / "image.mrc", rng.random((32, 32), np.float32), 10.0)
    write_mrc(folder / "series.mrc", rng.random((5, 32, 32), np.float32), 10.0, stack=True)
    write_tlt(folder / "series.tlt", [-20, -10, 0, 10, 20])
    write_mrc(folder / "other.mrc", rng.random((3, 32, 32), np.float32), 10.0, stack=True)
    write_mrc(folder / "no_voxel.mrc", rng.random((8, 32, 32), np.float32), 0.0)
    with warnings.catch_warnings(), mrcfile.new(folder / "nan.mrc") as mrc:
        warnings.simplefilter("ignore")  # mrcfile's "contains NaN": the point of the file
        data = np.zeros((4, 8, 8), np.float32)
        data[1, 2, 3] = np.nan
        mrc.set_data(data)
    (folder / "text.mrc").write_text("not an MRC file\n" * 200)
    (folder / "empty.mrc").write_bytes(b"")
    whole = (folder / "volume.mrc").read_bytes()
    (folder / "truncated.mrc").write_bytes(whole[:-500])
    (folder / "picture.tif").write_bytes(b"II*\x00" + bytes(100))
    (folder / "notes.foo").write_text("hello\n")
    (folder / "align.xf").write_text("1 0 0 1 0 0\n" * 5)
    (folder / "tilts.xtilt").write_text("0\n" * 5)
    (folder / "far.tlt").write_text("-20\n-10\n0\n10\n120\n")
    (folder / "broken.mdoc").write_text("PixelSpacing = 5\n[ZValue = 0]\nDefocus = 2\n")
    _em_file(folder / "bigendian.em", np.zeros((2, 4, 4)), machine=3)
    _em_file(folder / "cut.em", np.zeros((2, 4, 4)))
    (folder / "cut.em").write_bytes((folder / "cut.em").read_bytes()[:-16])
    _em_file(folder / "complex.em", np.zeros((2, 4, 8)), code=8)
    (folder / "garbage.pth").write_bytes(b"PK\x03\x04 not really a zip" * 10)
    (folder / "model.json").write_text("{not json")
    angles = np.array([-20.0, -10, 0, 10, 20])
    style, clean = rng.random((5, 32, 32)), rng.random((5, 32, 32))
    model = estimate_noise_model([clean + 0.3 * style], [clean], angles, order=0)
    save_noise_model(model, folder / "noise.json")
    model3 = estimate_noise_model([clean[:3] + style[:3]], [clean[:3]], angles[:3], order=0)
    save_noise_model(model3, folder / "noise3.json")
    inverted = -np.exp(-((np.indices((16, 16, 16)) - 8.0) ** 2).sum(0) / 8.0).astype(np.float32)
    write_mrc(folder / "inverted_map.mrc", inverted, 10.0)
    write_mrc(folder / "map_no_voxel.mrc", -inverted, 0.0)
    (folder / "empty.yaml").write_text("")
    for name, text in {
        "device.yaml": "preset: demo\ndevice: gpu0\n",
        "filter.yaml": "preset: demo\nreconstruction: {filter: sharp}\n",
        "weights.yaml": "preset: demo\nnst: {weights: /nowhere/vgg.pth}\n",
        "preset.yaml": "preset: huge\n",
        "classes.yaml": "preset: demo\nphantom: {classes: [no_such_protein]}\n",
        "ok.yaml": "preset: demo\n",
    }.items():
        (folder / name).write_text(text)
    (folder / "picks.txt").write_text("1bxn 1 2 3\n")
    (folder / "out").mkdir()
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


OUT = "out/result.mrc"  # an output path that must not appear
CASES = {
    # faket info: every kind of file that is not what it claims to be.
    "info-missing": (["info", "nothing.mrc"], "no such file"),
    "info-folder": (["info", "out"], "is not a file"),
    "info-text-as-mrc": (["info", "text.mrc"], "not an MRC file"),
    "info-empty-mrc": (["info", "empty.mrc"], "empty (0 bytes)"),
    "info-truncated-mrc": (["info", "truncated.mrc"], "truncated"),
    "info-tiff": (["info", "picture.tif"], "tif2mrc"),
    "info-xf": (["info", "align.xf"], "pass the .tlt"),
    "info-unknown-suffix": (["info", "notes.foo"], "does not read .foo files"),
    "info-big-endian-em": (["info", "bigendian.em"], "big-endian EM file"),
    "info-truncated-em": (["info", "cut.em"], "truncated"),
    "info-complex-em": (["info", "complex.em"], "complex data"),
    "info-broken-mdoc": (["info", "broken.mdoc"], "no TiltAngle"),
    # faket project
    "project-missing": (["project", "nothing.mrc", "-o", OUT], "no such file"),
    "project-2d-input": (["project", "image.mrc", "-o", OUT], "expected a 3-D volume"),
    "project-nan": (["project", "nan.mrc", "-o", OUT], "NaN/Inf"),
    "project-exists": (["project", "volume.mrc", "-o", "series.mrc"], "--overwrite"),
    "project-no-folder": (["project", "volume.mrc", "-o", "nowhere/p.mrc"], "does not exist"),
    "project-xtilt": (["project", "volume.mrc", "-o", OUT, "--angles", "tilts.xtilt"], ".xtilt"),
    "project-angles-and-range": (
        ["project", "volume.mrc", "-o", OUT, "--angles", "series.tlt", "--tilt-step", "3"],
        "not both",
    ),
    "project-reversed-range": (
        ["project", "volume.mrc", "-o", OUT, "--tilt-range", "60", "-60"],
        "swap them",
    ),
    "project-zero-step": (["project", "volume.mrc", "-o", OUT, "--tilt-step", "0"], "positive"),
    "project-negative-voxel": (
        ["project", "volume.mrc", "-o", OUT, "--voxel-size", "-1"],
        "--voxel-size -1.0",
    ),
    "project-comma-range": (
        ["project", "volume.mrc", "-o", OUT, "--tilt-range", "-60,60"],
        "Invalid value for '--tilt-range'",
    ),
    "project-unknown-option": (["project", "volume.mrc", "-o", OUT, "--tilts", "3"], "No such"),
    "project-angle-beyond-90": (["project", "volume.mrc", "-o", OUT, "--angles", "far.tlt"], "-90"),
    # faket reconstruct
    "reconstruct-no-angles": (["reconstruct", "other.mrc", "-o", OUT], "no tilt angles"),
    "reconstruct-count": (
        ["reconstruct", "other.mrc", "-o", OUT, "--angles", "series.tlt"],
        "has 5 angles",
    ),
    "reconstruct-filter": (["reconstruct", "series.mrc", "-o", OUT, "--filter", "sharp"], "sharp"),
    "reconstruct-xf": (["reconstruct", "series.mrc", "-o", OUT, "--angles", "align.xf"], ".xf"),
    "reconstruct-text-series": (
        ["reconstruct", "text.mrc", "-o", OUT, "--tilt-range", "-20", "20", "--tilt-step", "10"],
        "not an MRC file",
    ),
    # faket microscope: the physics needs a voxel size.
    "microscope-no-voxel-size": (["microscope", "no_voxel.mrc", "-o", OUT], "--voxel-size"),
    "microscope-bad-dose": (["microscope", "volume.mrc", "-o", OUT, "--dose", "-5"], "dose"),
    # faket noise
    "noise-estimate-no-clean": (
        ["noise", "estimate", "--style", "series.mrc", "-o", "out/m.json"],
        "no --clean",
    ),
    "noise-estimate-count": (
        [
            "noise",
            "estimate",
            "--style",
            "series.mrc",
            "other.mrc",
            "--clean",
            "series.mrc",
            "-o",
            "out/m.json",
        ],
        "1 --clean",
    ),  # fmt: skip
    "noise-apply-bad-json": (
        ["noise", "apply", "series.mrc", "--model", "model.json", "--mode", "noisy", "-o", OUT],
        "model.json",
    ),
    "noise-apply-bad-mode": (
        ["noise", "apply", "series.mrc", "--model", "noise.json", "--mode", "loud", "-o", OUT],
        "loud",
    ),
    "noise-apply-angles": (
        ["noise", "apply", "series.mrc", "--model", "noise3.json", "--mode", "noisy", "-o", OUT],
        "angle",
    ),
    # faket style
    "style-init-shape": (
        [
            "style",
            "series.mrc",
            "series.mrc",
            "--init",
            "other.mrc",
            "-o",
            OUT,
            "--weights",
            "random",
        ],
        "differ in shape",
    ),  # fmt: skip
    "style-style-tilts": (
        [
            "style",
            "series.mrc",
            "other.mrc",
            "--init",
            "series.mrc",
            "-o",
            OUT,
            "--weights",
            "random",
        ],
        "style stack has 3 tilts",
    ),  # fmt: skip
    "style-garbage-weights": (
        [
            "style",
            "series.mrc",
            "series.mrc",
            "--init",
            "series.mrc",
            "-o",
            OUT,
            "--weights",
            "garbage.pth",
        ],
        "not a readable PyTorch state-dict file",
    ),  # fmt: skip
    "style-missing-weights": (
        [
            "style",
            "series.mrc",
            "series.mrc",
            "--init",
            "series.mrc",
            "-o",
            OUT,
            "--weights",
            "vgg.pth",
        ],
        "neither 'imagenet'",
    ),  # fmt: skip
    "style-bad-tilts": (
        [
            "style",
            "series.mrc",
            "series.mrc",
            "--init",
            "series.mrc",
            "-o",
            OUT,
            "--weights",
            "random",
            "--tilts",
            "4:9",
        ],
        "--tilts",
    ),  # fmt: skip
    # faket phantom
    "phantom-unknown-class": (
        ["phantom", "-o", "out/ph", "--classes", "no_such_protein", "--shape", "16", "32", "32"],
        "unknown class",
    ),
    "phantom-inverted-map": (
        ["phantom", "-o", "out/ph", "--classes", "inverted_map.mrc", "--shape", "16", "32", "32"],
        "--invert",
    ),
    "phantom-map-without-voxel-size": (
        ["phantom", "-o", "out/ph", "--classes", "map_no_voxel.mrc", "--shape", "16", "32", "32"],
        "--map-voxel-size",
    ),
    "phantom-negative-map-voxel": (
        ["phantom", "-o", "out/ph", "--classes", "inverted_map.mrc", "--map-voxel-size", "-3"],
        "--map-voxel-size -3",
    ),
    "phantom-tiny-shape": (["phantom", "-o", "out/ph", "--shape", "2", "2", "2"], "too small"),
    # faket run: configs are checked before any work and before the folder exists.
    "run-empty-config": (["run", "empty.yaml", "-o", "out/ds"], "preset"),
    "run-bad-device": (["run", "device.yaml", "-o", "out/ds"], "device"),
    "run-bad-filter": (["run", "filter.yaml", "-o", "out/ds"], "sharp"),
    "run-bad-weights": (["run", "weights.yaml", "-o", "out/ds"], "/nowhere/vgg.pth"),
    "run-unknown-preset": (["run", "preset.yaml", "-o", "out/ds"], "huge"),
    "run-unknown-class": (["run", "classes.yaml", "-o", "out/ds"], "no_such_protein"),
    "run-no-workers": (["run", "ok.yaml", "-o", "out/ds", "--workers", "0"], "--workers"),
    "run-unreachable-scheduler": (
        ["run", "ok.yaml", "-o", "out/ds", "--scheduler", "tcp://127.0.0.1:9"],
        "cannot reach the Dask scheduler",
    ),
    "config-unknown-preset": (["config", "init", "--preset", "huge"], "huge"),
    # faket evaluate
    "score-missing-picks": (
        ["evaluate", "score", "nothing.txt", "--truth", "out", "-o", "out/s"],
        "nothing.txt",
    ),
    "score-no-truth": (
        ["evaluate", "score", "picks.txt", "--truth", "nowhere", "-o", "out/s"],
        "nowhere",
    ),
    "predict-not-a-model": (
        ["evaluate", "predict", "volume.mrc", "--model", "garbage.pth", "-o", "out/p.txt"],
        "checkpoint",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(d, case, capsys, monkeypatch):
    args, expected = CASES[case]
    monkeypatch.chdir(d)
    monkeypatch.setattr(dataset_module, "SCHEDULER_TIMEOUT_S", 1)
    before = _snapshot(d)
    with pytest.raises(SystemExit) as exited:
        main([*args, "-q"] if args[0] not in ("info", "config") else args)
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("faket: error: "), err
    assert "Traceback" not in err and expected in err, err
    assert _snapshot(d) == before  # no output, no temporary file, inputs untouched
    assert not any(p.is_dir() for p in (d / "out").iterdir())


def test_the_suite_is_large_enough():
    assert len(CASES) >= 45


def test_read_only_output_folder_is_one_line(d, capsys, monkeypatch, tmp_path):
    # Tests may run as root, whom permissions do not stop: simulate the folder's mode.
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if "locked" in str(p) else real(p, m))
    (tmp_path / "locked").mkdir()
    for args in (
        ["project", str(d / "volume.mrc"), "-o", str(tmp_path / "locked" / "p.mrc")],
        ["phantom", "-o", str(tmp_path / "locked" / "ph"), "--shape", "16", "32", "32"],
        ["noise", "plot", str(d / "noise.json"), "-o", str(tmp_path / "locked" / "n.png")],
    ):
        with pytest.raises(SystemExit) as exited:
            main([*args])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.count("\n") == 1 and "not writable" in err, err
    assert list((tmp_path / "locked").iterdir()) == []


def test_os_errors_while_writing_are_one_line(d, capsys, monkeypatch, tmp_path):
    # A disk that fills up (or a folder that turns read-only) half-way through.
    from faket.io import mrc as mrc_module

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "p.mrc"))

    monkeypatch.setattr(mrc_module.mrcfile, "new", full)
    with pytest.raises(SystemExit) as exited:
        main(["project", str(d / "volume.mrc"), "-o", str(tmp_path / "p.mrc"), "-q"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert "No space left on device" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_noise_json_fixture_is_a_real_model(d):
    # Guards the suite: "noise-apply-angles" must fail on the angles, not on the file.
    assert json.loads((d / "noise3.json").read_text())["angles_deg"] == [-20.0, -10.0, 0.0]

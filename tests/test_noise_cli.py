"""``faket noise estimate | apply | plot``: end to end, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from _helpers import run_cli

from faket.cli._common import expand_many
from faket.io import read_mrc, read_tlt, write_mrc, write_tlt
from faket.noise import NoiseModel, load_noise_model

N_TILTS = 5
ANGLES = np.linspace(-40.0, 40.0, N_TILTS)


def assert_one_line_error(status, err, fragment):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faket: error:") and fragment in lines[0]


@pytest.fixture
def pairs(tmp_path):
    """Two (style, clean) pairs with a .tlt beside each clean file."""
    rng = np.random.default_rng(0)
    files = []
    for k in range(2):
        clean = ndi.gaussian_filter(rng.normal(size=(N_TILTS, 40, 48)), (0, 2, 2))
        scale = np.linspace(1.0, 2.0, N_TILTS)[:, None, None]
        style = scale * clean + 0.05 * rng.normal(size=clean.shape) + 7.0
        write_mrc(tmp_path / f"clean{k}.mrc", clean, voxel_size=5.0)
        write_mrc(tmp_path / f"style{k}.mrc", style, voxel_size=5.0)
        write_tlt(tmp_path / f"clean{k}.tlt", ANGLES)
        files.append((tmp_path / f"style{k}.mrc", tmp_path / f"clean{k}.mrc"))
    return files


def test_expand_many_splits_values_after_one_flag():
    args = ["--style", "a", "b", "--clean", "c", "d", "-o", "m.json", "--order", "0"]
    assert expand_many(args, ("--style", "--clean")) == [
        "--style", "a", "--style", "b", "--clean", "c", "--clean", "d",
        "-o", "m.json", "--order", "0",
    ]  # fmt: skip


def test_estimate_apply_plot_end_to_end(tmp_path, pairs, capsys):
    (s0, c0), (s1, c1) = pairs
    model_path = tmp_path / "noise_model.json"
    status, _, err = run_cli(
        ["noise", "estimate", "--style", s0, s1, "--clean", c0, c1, "-o", model_path, "-q"],
        capsys,
    )
    assert status == 0, err
    model = load_noise_model(model_path)
    assert model.order == 2 and len(model.raw) == 2
    np.testing.assert_allclose(model.angles_deg, ANGLES)
    assert model.provenance["style"] == [str(s0), str(s1)]
    assert model.provenance["clean"] == [str(c0), str(c1)]

    out = tmp_path / "noisy.mrc"
    args = ["noise", "apply", c0, "--model", model_path, "--mode", "noisy", "-o", out]
    status, _, err = run_cli([*args, "--seed", 4, "-q"], capsys)
    assert status == 0, err
    result = read_mrc(out)
    assert result.voxel_size == pytest.approx(5.0)
    np.testing.assert_allclose(result.data.mean(axis=(1, 2)), model.style_mean, rtol=1e-4)
    np.testing.assert_allclose(result.data.std(axis=(1, 2)), model.style_std, rtol=1e-4)
    np.testing.assert_allclose(read_tlt(out.with_suffix(".tlt")), ANGLES)

    status, _, err = run_cli([*args, "--seed", 4, "-q"], capsys)
    assert_one_line_error(status, err, "already exists")
    status, _, _ = run_cli([*args, "--seed", 4, "-q", "--overwrite"], capsys)
    assert status == 0
    np.testing.assert_array_equal(read_mrc(out).data, result.data)

    png = tmp_path / "curves.png"
    status, _, err = run_cli(["noise", "plot", model_path, "-o", png], capsys)
    assert status == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_background_boxes_without_clean_files(tmp_path, capsys):
    rng = np.random.default_rng(1)
    clean = ndi.gaussian_filter(rng.normal(size=(N_TILTS, 40, 48)), (0, 2, 2))
    clean[:, 0:10, 0:10] = clean[:, 20:40, 30:48] = 0.0  # featureless background
    write_mrc(tmp_path / "real.mrc", clean + 0.02 * rng.normal(size=clean.shape), 5.0)
    write_tlt(tmp_path / "clean0.tlt", ANGLES)
    model_path = tmp_path / "real.json"
    status, _, err = run_cli(
        ["noise", "estimate", "--style", tmp_path / "real.mrc", "--box", "0,0,10,10", "--box",
         "30,20,48,40", "--angles", tmp_path / "clean0.tlt", "--order", "0", "-o", model_path,
         "-q"],
        capsys,
    )  # fmt: skip
    assert status == 0, err
    model = load_noise_model(model_path)
    assert model.provenance["method"] == "background"
    assert model.provenance["region_pixels"] == 100 + 18 * 20
    assert np.all(model.sigma > 0.05) and np.all(model.sigma < 0.5)
    assert np.all(model.r > 0.85)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--clean", "clean0.mrc"], "2 --style files but 1 --clean files"),
        (["--clean", "clean1.mrc", "small.mrc"], "differ in shape"),
        (["--clean", "clean0.mrc", "clean1.mrc", "--angles", "bad.tlt"], "differ from"),
        (["--clean", "clean0.mrc", "clean1.mrc", "--angles", "short.tlt"], "4 tilt angles"),
        (["--clean", "clean0.mrc", "clean1.mrc", "--order", "5"], "order 5 is not possible"),
        ([], "no --clean files"),
        (["--box", "0,0,10"], "four integers"),
    ],
)
def test_estimate_errors_are_one_line(tmp_path, pairs, capsys, extra, fragment):
    write_mrc(tmp_path / "small.mrc", np.ones((N_TILTS, 8, 8)), voxel_size=1.0)
    write_tlt(tmp_path / "bad.tlt", ANGLES + 3.0)
    write_tlt(tmp_path / "short.tlt", ANGLES[:4])
    args = ["noise", "estimate", "--style", "style0.mrc", "style1.mrc", *extra, "-o", "m.json"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        status, _, err = run_cli(args, capsys)
    assert_one_line_error(status, err, fragment)
    assert not (tmp_path / "m.json").exists()


@pytest.fixture
def model_file(tmp_path, pairs, capsys):
    path = tmp_path / "m.json"
    (s0, c0), _ = pairs
    status, _, _ = run_cli(["noise", "estimate", "--style", s0, "--clean", c0, "-o", path], capsys)
    assert status == 0
    return path


def test_apply_errors_are_one_line(tmp_path, pairs, model_file, capsys):
    clean = pairs[0][1]
    base = ["noise", "apply", clean, "--model", model_file, "-o", tmp_path / "o.mrc"]
    write_tlt(tmp_path / "other.tlt", ANGLES * 1.5)
    status, _, err = run_cli([*base, "--mode", "noisy", "--angles", tmp_path / "other.tlt"], capsys)
    assert_one_line_error(status, err, "differ from the noise model")

    write_mrc(tmp_path / "six.mrc", np.ones((N_TILTS + 1, 8, 8)), voxel_size=1.0)
    args = ["noise", "apply", tmp_path / "six.mrc", "--model", model_file, "--mode", "content"]
    status, _, err = run_cli([*args, "-o", tmp_path / "o.mrc"], capsys)
    assert_one_line_error(status, err, "6 tilts but the noise model has 5")

    broken = tmp_path / "broken.json"
    broken.write_text(model_file.read_text().replace('"version": 1', '"version": 99'))
    status, _, err = run_cli(
        ["noise", "apply", clean, "--model", broken, "--mode", "noisy", "-o", tmp_path / "o.mrc"],
        capsys,
    )
    assert_one_line_error(status, err, "version 99 is not supported")

    status, _, err = run_cli([*base, "--mode", "loud"], capsys)
    assert status == 2  # click's own usage error for an invalid choice
    assert not (tmp_path / "o.mrc").exists()


def test_modes_differ_and_models_load_as_noise_models(tmp_path, pairs, model_file, capsys):
    outputs = {}
    for mode in ("baseline", "noisy", "content"):
        out = tmp_path / f"{mode}.mrc"
        args = ["noise", "apply", pairs[0][1], "--model", model_file, "--mode", mode, "-o", out]
        assert run_cli([*args, "-q"], capsys)[0] == 0
        outputs[mode] = read_mrc(out).data
    assert isinstance(load_noise_model(model_file), NoiseModel)
    clean = read_mrc(pairs[0][1]).data
    corr = {m: np.corrcoef(o.ravel(), clean.ravel())[0, 1] for m, o in outputs.items()}
    assert corr["content"] > corr["noisy"]  # a quarter of the noise: closer to the content


def test_mask_file_restricts_paired_estimation(tmp_path, pairs, capsys):
    (s0, c0), _ = pairs
    mask = np.zeros((40, 48), dtype=np.int8)
    mask[5:30, 10:40] = 1
    write_mrc(tmp_path / "mask.mrc", mask, voxel_size=5.0)
    args = ["noise", "estimate", "--style", s0, "--clean", c0, "--order", "-1"]
    status, _, err = run_cli(
        [*args, "--mask", tmp_path / "mask.mrc", "-o", tmp_path / "m.json"], capsys
    )
    assert status == 0, err
    model = load_noise_model(tmp_path / "m.json")
    assert model.provenance["method"] == "paired-region"
    assert model.provenance["region_pixels"] == 25 * 30
    write_mrc(tmp_path / "bad_mask.mrc", np.ones((8, 8), np.int8), voxel_size=5.0)
    status, _, err = run_cli(
        [*args, "--mask", tmp_path / "bad_mask.mrc", "-o", tmp_path / "x.json"], capsys
    )
    assert_one_line_error(status, err, "mask of shape (8, 8)")

"""``faket compare``: realism metrics against known answers, the report files, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage as ndi
from _helpers import run_cli
from scipy import integrate, stats

from faket.errors import FaketError
from faket.io import write_mrc
from faket.realism import compare_stacks, image_statistics
from faket.realism.metrics import wasserstein_1


def _white(seed=0, shape=(6, 128, 128)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_identical_and_affinely_related_stacks_differ_only_in_level():
    reference = _white(0) * 3.0 + 10.0
    same = compare_stacks(reference, reference).summary
    for key in ("mean_error", "std_error", "histogram_w1", "spectrum_log_rms"):
        assert same[key] == 0
    assert same["anisotropy_error"] == 0 and same["autocorrelation_error"] == 0
    scaled = compare_stacks(reference * 2.0 + 4.0, reference)
    # (2 x + 4) against x: the means differ by (m + 4), in units of the reference's std s.
    m = reference.mean(axis=(1, 2), dtype=np.float64)
    s = reference.std(axis=(1, 2), dtype=np.float64)
    np.testing.assert_allclose(scaled.per_image["mean_error"], (m + 4) / s, rtol=1e-5)
    np.testing.assert_allclose(scaled.per_image["std_error"], 1.0, rtol=1e-5)
    assert scaled.summary["spectrum_log_rms"] < 1e-5 and scaled.summary["histogram_w1"] < 1e-5


def test_smoothing_along_y_shows_as_anisotropy_and_correlation():
    white = _white(1, (4, 256, 256))
    smooth = ndi.gaussian_filter(white, (0, 1.5, 0)).astype(np.float32)
    stats_white = image_statistics(white[0])
    stats_smooth = image_statistics(smooth[0])
    assert abs(stats_white.anisotropy) < 0.05
    assert abs(stats_white.autocorrelation["x1"]) < 0.02
    # A Gaussian of sigma s correlates neighbours by exp(-1 / (4 s²)), lag 2 by exp(-1 / s²).
    assert stats_smooth.autocorrelation["y1"] == pytest.approx(np.exp(-1 / 9), abs=0.02)
    assert stats_smooth.autocorrelation["y2"] == pytest.approx(np.exp(-4 / 9), abs=0.02)
    assert abs(stats_smooth.autocorrelation["x1"]) < 0.02
    # The Y-axis wedge loses its high frequencies: X-axis power dominates.
    assert stats_smooth.anisotropy > 0.5
    result = compare_stacks(smooth, white)
    assert result.summary["anisotropy_error"] == pytest.approx(
        stats_smooth.anisotropy - stats_white.anisotropy, abs=0.1
    )
    assert result.summary["spectrum_log_rms"] > 0.3
    # Two white stacks differ only by chance: ~0.4 sqrt(2 / n) per ring of n pixels, ~0.08
    # over the rings of a 128 x 128 image; their tilt-averaged spectra by much less.
    chance = compare_stacks(_white(2), _white(3)).summary
    assert chance["spectrum_log_rms"] < 0.12
    assert chance["mean_spectrum_log_rms"] < 0.5 * chance["spectrum_log_rms"]


def test_histogram_distance_is_wasserstein_1_of_the_standardised_values():
    rng = np.random.default_rng(4)
    gaussian = rng.standard_normal((1, 400, 400))
    laplace = rng.laplace(size=(1, 400, 400)) / np.sqrt(2)  # unit variance
    measured = compare_stacks(laplace, gaussian).summary["histogram_w1"]
    # W1 = integral over u of |F_laplace^-1(u) - F_gauss^-1(u)| (both standardised).
    expected = integrate.quad(
        lambda u: abs(stats.laplace.ppf(u, scale=1 / np.sqrt(2)) - stats.norm.ppf(u)), 0, 1
    )[0]
    assert measured == pytest.approx(expected, abs=0.01)
    a, b = rng.normal(size=3000), rng.gamma(2.0, size=3000)
    assert wasserstein_1(np.sort(a), np.sort(b)) == pytest.approx(
        stats.wasserstein_distance(a, b), rel=1e-9
    )


def test_bad_stacks_are_one_line_errors():
    with pytest.raises(FaketError, match="images"):
        compare_stacks(_white(0, (3, 32, 32)), _white(0, (4, 32, 32)))
    with pytest.raises(FaketError, match="n, Y, X"):
        compare_stacks(np.zeros((32, 32)), np.zeros((32, 32)))
    with pytest.raises(FaketError, match="constant"):
        compare_stacks(np.zeros((1, 32, 32)), _white(0, (1, 32, 32)))


def test_compare_command_writes_the_report_and_figure(tmp_path, capsys):
    smooth = ndi.gaussian_filter(_white(5, (5, 64, 80)), (0, 1.0, 0))
    write_mrc(tmp_path / "sim.mrc", smooth, voxel_size=5.0)
    write_mrc(tmp_path / "ref.mrc", _white(6, (5, 64, 80)), voxel_size=5.0)
    out = tmp_path / "report"
    args = ["compare", tmp_path / "sim.mrc", tmp_path / "ref.mrc", "-o", out]
    status, stdout, err = run_cli([*args, "-q"], capsys)
    assert status == 0, err
    record = json.loads((out / "compare.json").read_text())
    assert record["images"] == 5 and record["kind"] == "tilt series"
    assert len(record["per_image"]["spectrum_log_rms"]) == 5
    assert record["summary"]["anisotropy_simulated"] > 0.3
    assert record["autocorrelation"]["simulated"]["y1"] > 0.5
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert "log10-ratio RMS" in stdout
    status, _, err = run_cli(args, capsys)  # the report exists
    assert status == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert run_cli([*args, "--overwrite", "--tomogram", "-q"], capsys)[0] == 0
    assert json.loads((out / "compare.json").read_text())["kind"] == "tomogram"
    write_mrc(tmp_path / "short.mrc", _white(7, (3, 64, 80)), voxel_size=5.0)
    status, _, err = run_cli(
        ["compare", tmp_path / "short.mrc", tmp_path / "ref.mrc", "-o", tmp_path / "x"], capsys
    )
    assert status == 2 and "3 simulated images but 5" in err


def test_compare_reads_em_files_and_folders_of_images_as_their_mrc_twins(tmp_path, capsys):
    import emfile

    simulated = ndi.gaussian_filter(_white(8, (4, 48, 64)), (0, 0, 1.0))
    reference = _white(9, (4, 48, 64))
    write_mrc(tmp_path / "sim.mrc", simulated, voxel_size=0.0)
    write_mrc(tmp_path / "ref.mrc", reference, voxel_size=0.0)
    emfile.write(tmp_path / "sim.em", simulated)
    folder = tmp_path / "projections"  # PyTom's layout: one .em image per tilt
    folder.mkdir()
    for i, image in enumerate(reference):
        emfile.write(folder / f"projection_{i}.em", image[None])
    reports = {}
    for name, (sim, ref) in {
        "mrc": ("sim.mrc", "ref.mrc"),
        "em": ("sim.em", "projections"),
    }.items():
        out = tmp_path / name
        status, _, err = run_cli(
            ["compare", tmp_path / sim, tmp_path / ref, "-o", out, "-q"], capsys
        )
        assert status == 0, err
        reports[name] = json.loads((out / "compare.json").read_text())["summary"]
    assert reports["em"] == pytest.approx(reports["mrc"], rel=1e-6, abs=1e-9)
    assert reports["em"]["anisotropy_simulated"] < -0.3  # smoothed along X
    status, _, err = run_cli(
        ["compare", tmp_path / "nothing", tmp_path / "ref.mrc", "-o", tmp_path / "x"], capsys
    )
    assert status == 2 and "no such file or folder" in err

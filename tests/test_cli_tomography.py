"""The info / project / reconstruct commands: outputs, voxel sizes, and one-line errors."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
from _helpers import run_cli
from _phantoms import ellipsoids_volume

from faket.io import read_mrc, read_tlt, write_mrc, write_tlt
from faket.tomography import project, reconstruct


@pytest.fixture
def volume_file(tmp_path):
    path = tmp_path / "volume.mrc"
    write_mrc(path, ellipsoids_volume(24), voxel_size=7.5)
    return path


def test_project_then_reconstruct_round_trip(tmp_path, volume_file, capsys):
    tilts = tmp_path / "tilts.mrc"
    status, _, _ = run_cli(
        ["project", volume_file, "-o", tilts, "--tilt-range", -88, 88, "--tilt-step", 4, "-q"],
        capsys,
    )
    assert status == 0
    tilt_series = read_mrc(tilts)
    angles = read_tlt(tmp_path / "tilts.tlt")
    np.testing.assert_allclose(angles, np.arange(-88.0, 89.0, 4.0))
    assert tilt_series.voxel_size == pytest.approx(7.5)
    np.testing.assert_allclose(tilt_series.data, project(ellipsoids_volume(24), angles), rtol=1e-5)

    volume_out = tmp_path / "rec.mrc"
    status, _, _ = run_cli(["reconstruct", tilts, "-o", volume_out, "--bin", 2, "-q"], capsys)
    assert status == 0
    reconstruction = read_mrc(volume_out)
    assert reconstruction.data.shape == (12, 12, 12)
    assert reconstruction.voxel_size == pytest.approx(15.0)
    binned_truth = ellipsoids_volume(24).reshape(12, 2, 12, 2, 12, 2).mean(axis=(1, 3, 5))
    assert np.corrcoef(reconstruction.data.ravel(), binned_truth.ravel())[0, 1] > 0.9


def test_info_prints_shape_voxel_size_and_statistics(volume_file, capsys):
    status, out, _ = run_cli(["info", volume_file], capsys)
    assert status == 0
    assert "24 x 24 x 24" in out and "7.5" in out
    mean = ellipsoids_volume(24).mean()
    assert f"{mean:.4g}"[:4] in out


def _one_line_error(status, err):
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("faket: error:")
    return lines[0]


def test_missing_input_and_wrong_file_type(tmp_path, capsys):
    status, _, err = run_cli(["project", tmp_path / "nope.mrc", "-o", tmp_path / "t.mrc"], capsys)
    assert "no such file" in _one_line_error(status, err)
    text = tmp_path / "notes.mrc"
    text.write_text("this is not an MRC file\n" * 20)
    status, _, err = run_cli(["info", text], capsys)
    _one_line_error(status, err)
    assert not (tmp_path / "t.mrc").exists()


def test_angle_count_mismatch_is_an_error_without_output(tmp_path, volume_file, capsys):
    tilts = tmp_path / "tilts.mrc"
    run_cli(["project", volume_file, "-o", tilts, "-q"], capsys)
    wrong = tmp_path / "wrong.tlt"
    write_tlt(wrong, [-10.0, 0.0, 10.0])
    out = tmp_path / "rec.mrc"
    status, _, err = run_cli(["reconstruct", tilts, "-o", out, "--angles", wrong], capsys)
    assert "3" in _one_line_error(status, err)
    assert not out.exists()


def test_nan_volume_is_rejected_and_nothing_is_written(tmp_path, capsys):
    data = ellipsoids_volume(8)
    data[2, 3, 4] = np.nan
    bad = tmp_path / "bad.mrc"
    # faket's own writer refuses NaN, so write it directly (mrcfile warns about it).
    with pytest.warns(RuntimeWarning, match="NaN"), mrcfile.new(bad) as mrc:
        mrc.set_data(data)
    out = tmp_path / "t.mrc"
    status, _, err = run_cli(["project", bad, "-o", out], capsys)
    assert "NaN" in _one_line_error(status, err)
    assert not out.exists() and not (tmp_path / "t.tlt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mrc"]


def test_existing_output_needs_overwrite(tmp_path, volume_file, capsys):
    out = tmp_path / "t.mrc"
    out.write_bytes(b"keep me")
    status, _, err = run_cli(["project", volume_file, "-o", out], capsys)
    assert "--overwrite" in _one_line_error(status, err)
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--filter", "magic"], "unknown filter"),
        (["--bin", "0"], "post-binning"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_reconstruction_options(tmp_path, volume_file, capsys, extra, message):
    tilts = tmp_path / "tilts.mrc"
    run_cli(["project", volume_file, "-o", tilts, "-q"], capsys)
    status, _, err = run_cli(["reconstruct", tilts, "-o", tmp_path / "r.mrc", *extra], capsys)
    assert message in _one_line_error(status, err)


def test_usage_errors_exit_with_status_two(capsys):
    status, _, _ = run_cli(["project"], capsys)
    assert status == 2
    status, out, _ = run_cli(["--help"], capsys)
    assert status == 0 and "project" in out and "reconstruct" in out


def test_reconstruct_writes_through_a_work_file_and_keeps_the_pixel_size(tmp_path, capsys):
    rng = np.random.default_rng(0)
    tilts = write_mrc(tmp_path / "t.mrc", rng.random((5, 12, 12)).astype(np.float32), 4.0)
    write_tlt(tmp_path / "t.tlt", np.linspace(-40.0, 40.0, 5))
    out = tmp_path / "rec.mrc"
    status, _, _ = run_cli(["reconstruct", tilts, "-o", out, "--filter", "shrec", "-q"], capsys)
    assert status == 0
    expected = reconstruct(read_mrc(tilts).data, read_tlt(tmp_path / "t.tlt"), filter_name="shrec")
    np.testing.assert_allclose(read_mrc(out).data, expected, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.mrc", "t.mrc", "t.tlt"]
    unset = tmp_path / "unset.mrc"
    with mrcfile.new(unset) as mrc:  # no pixel size in the header
        mrc.set_data(rng.random((5, 12, 12)).astype(np.float32))
    write_tlt(tmp_path / "unset.tlt", np.linspace(-40.0, 40.0, 5))
    # Issue 16: an unknown pixel size stays unknown (0) in the output, with a warning;
    # --voxel-size sets it (times the binning).
    status, _, err = run_cli(["reconstruct", unset, "-o", tmp_path / "u.mrc", "-q"], capsys)
    assert status == 0 and "no voxel size" in err and read_mrc(tmp_path / "u.mrc").voxel_size == 0
    args = ["reconstruct", unset, "-o", tmp_path / "v.mrc", "--voxel-size", "2.5", "--bin", "2"]
    status, _, _ = run_cli([*args, "-q"], capsys)
    assert status == 0 and read_mrc(tmp_path / "v.mrc").voxel_size == 5.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

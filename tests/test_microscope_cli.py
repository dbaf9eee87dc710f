"""``faket microscope``: outputs, metadata files, settings files and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _helpers import run_cli

from faket.io import read_mrc, read_tlt, write_mrc, write_tlt
from faket.microscope import METADATA_COLUMNS


@pytest.fixture
def grand_model(tmp_path):
    volume = np.zeros((12, 32, 40), np.float32)
    volume[4:8, 12:20, 14:22] = 7.9
    path = tmp_path / "grandmodel.mrc"
    write_mrc(path, volume, voxel_size=10.0)
    return path


def test_writes_projections_angles_and_metadata(tmp_path, grand_model, capsys):
    output = tmp_path / "proj.mrc"
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "optics:\n  defocus_um: -3.0\n  defocus_std_um: 0\ndose:\n  scheme: sequential\n"
    )
    args = ["microscope", grand_model, "-o", output, "--tilt-range", -30, 30, "--tilt-step", 15]
    args += ["--dose", 50, "--seed", 4, "--config", settings, "--defocus", -2.5, "-q"]
    args += ["--ice-thickness", 80]
    status, _, err = run_cli(args, capsys)
    assert status == 0, err
    projections = read_mrc(output)
    assert projections.data.shape == (5, 32, 40)
    assert projections.voxel_size == pytest.approx(10.0)
    np.testing.assert_allclose(read_tlt(tmp_path / "proj.tlt"), [-30, -15, 0, 15, 30])
    table = pd.read_csv(tmp_path / "proj_metadata.csv")
    assert list(table.columns) == METADATA_COLUMNS
    # The option beats the file, the file beats the defaults.
    np.testing.assert_allclose(table["defocus_um"], -2.5)
    np.testing.assert_array_equal(table["acquisition_order"], np.arange(5))
    assert table["ice_path_nm"][2] == pytest.approx(80.0)
    assert table["dose_e_per_a2"].sum() == pytest.approx(50.0)
    record = json.loads((tmp_path / "proj_metadata.json").read_text())
    assert record["seed"] == 4 and record["config"]["dose"]["total_e_per_a2"] == 50
    assert len(record["tilts"]) == 5
    # Electrons per pixel: the blank corners carry about the expected counts.
    corner = projections.data[:, :6, :6].mean(axis=(1, 2))
    np.testing.assert_allclose(corner, table["counts_per_pixel"], rtol=0.15)

    # The JSON record reproduces the run.
    again = tmp_path / "again.mrc"
    args = ["microscope", grand_model, "-o", again, "--angles", tmp_path / "proj.tlt"]
    args += ["--config", tmp_path / "proj_metadata.json", "--seed", 4, "-q"]
    assert run_cli(args, capsys)[0] == 0
    np.testing.assert_array_equal(read_mrc(again).data, projections.data)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dose", "-5"], "total_e_per_a2"),
        (["--ice-thickness", "0"], "ice.thickness_nm"),
        (["--voltage", "0"], "voltage_kv"),
        (["--seed", "-1"], "seed"),
        (["--tilt-range", "-90", "90"], "90 degrees"),
    ],
)
def test_bad_parameters_exit_2_with_one_line(tmp_path, grand_model, capsys, extra, message):
    status, _, err = run_cli(["microscope", grand_model, "-o", tmp_path / "p.mrc", *extra], capsys)
    assert status == 2
    assert err.startswith("faket: error:") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.mrc").exists()


def test_angle_file_at_90_degrees_and_missing_input_fail(tmp_path, grand_model, capsys):
    angles = tmp_path / "bad.tlt"
    write_tlt(angles, [0.0, 45.0, 90.0])
    status, _, err = run_cli(
        ["microscope", grand_model, "-o", tmp_path / "p.mrc", "--angles", angles], capsys
    )
    assert status == 2 and "90" in err and len(err.strip().splitlines()) == 1
    status, _, err = run_cli(
        ["microscope", tmp_path / "nope.mrc", "-o", tmp_path / "p.mrc"], capsys
    )
    assert status == 2 and "no such file" in err


def test_existing_output_needs_overwrite(tmp_path, grand_model, capsys):
    output = tmp_path / "p.mrc"
    output.write_text("keep me")
    status, _, err = run_cli(["microscope", grand_model, "-o", output, "-q"], capsys)
    assert status == 2 and "--overwrite" in err
    assert output.read_text() == "keep me"


def test_plot_option_writes_a_png(tmp_path, grand_model, capsys):
    output = tmp_path / "p.mrc"
    args = ["microscope", grand_model, "-o", output, "--tilt-range", -20, 20, "--tilt-step", 20]
    status, _, err = run_cli([*args, "--plot", "-q"], capsys)
    assert status == 0, err
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

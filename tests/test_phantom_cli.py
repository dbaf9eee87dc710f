"""``faket phantom``: outputs, options, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faket.cli.main import main
from faket.io import read_mrc, read_shrec_particles

SMALL = ["--shape", 32, 48, 48, "--classes", "globule_4nm,ring5_11nm", "--per-class", 3]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKET_CACHE_DIR", str(tmp_path / "cache"))


def run_cli(args, capsys):
    """Run ``faket ARGS``; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(["phantom", *[str(a) for a in args]])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_writes_a_complete_grand_model(tmp_path, capsys):
    out = tmp_path / "gm"
    args = ["-o", out, *SMALL, "--vesicles", 0, "--fiducials", 1, "--seed", 4, "--plot", "-q"]
    status, _, err = run_cli(args, capsys)
    assert status == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert "grandmodel.mrc" in names and "occupancy_mask.mrc" in names
    assert "grandmodel.png" in names and "classes.png" in names
    potential = read_mrc(out / "grandmodel.mrc")
    assert potential.data.shape == (32, 48, 48) and potential.voxel_size == pytest.approx(10.0)
    particles = read_shrec_particles(out / "particle_locations.txt")
    assert sorted(particles["class_name"].value_counts().items()) == [
        ("fiducial", 1),
        ("globule_4nm", 3),
        ("ring5_11nm", 3),
    ]
    config = json.loads((out / "phantom_config.json").read_text())
    assert config["config"]["seed"] == 4 and config["config"]["shape"] == [32, 48, 48]
    occupancy = read_mrc(out / "occupancy_mask.mrc").data
    assert occupancy.max() == len(particles)


def test_config_file_with_option_override(tmp_path, capsys):
    settings = tmp_path / "phantom.yaml"
    settings.write_text("phantom:\n  shape: [24, 40, 40]\n  classes: [globule_4nm]\n  seed: 9\n")
    args = ["-o", tmp_path / "gm", "--config", settings, "--per-class", 2, "--vesicles", 0, "-q"]
    status, _, err = run_cli(args, capsys)
    assert status == 0, err
    config = json.loads((tmp_path / "gm" / "phantom_config.json").read_text())["config"]
    assert config["shape"] == [24, 40, 40] and config["per_class"] == 2 and config["seed"] == 9
    assert np.isclose(read_mrc(tmp_path / "gm" / "grandmodel.mrc").voxel_size, 10.0)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--classes", "no_such_class"], "unknown class"),
        (["--voxel-size", 0], "voxel_size"),
        (["--voxel-size", -10], "voxel_size"),
        (["--per-class", 500], "could not place"),
        (["--shape", 4, 64, 64], "too small"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, extra, fragment):
    out = tmp_path / "gm"
    status, _, err = run_cli(["-o", out, *SMALL, "--vesicles", 0, *extra, "-q"], capsys)
    assert status == 2
    assert err.startswith("faket: error:") and fragment in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unreadable_pdb_exits_2(tmp_path, capsys):
    bad = tmp_path / "broken.pdb"
    bad.write_text("nothing here\n")
    status, _, err = run_cli(["-o", tmp_path / "gm", "--classes", bad, "-q"], capsys)
    assert status == 2 and "broken.pdb" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "gm").exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    args = ["-o", tmp_path / "gm", *SMALL, "--vesicles", 0, "-q"]
    assert run_cli(args, capsys)[0] == 0
    before = (tmp_path / "gm" / "grandmodel.mrc").read_bytes()
    status, _, err = run_cli([*args, "--seed", 1], capsys)
    assert status == 2 and "--overwrite" in err
    assert (tmp_path / "gm" / "grandmodel.mrc").read_bytes() == before
    assert run_cli([*args, "--seed", 1, "--overwrite"], capsys)[0] == 0
    assert (tmp_path / "gm" / "grandmodel.mrc").read_bytes() != before

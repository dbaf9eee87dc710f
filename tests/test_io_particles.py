"""Tests for faket.io.particles and faket.io.star: SHREC, CSV and STAR particle lists."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import starfile
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from faket.errors import FaketError
from faket.io import (
    COLUMNS,
    read_particles,
    read_particles_csv,
    read_particles_star,
    read_shrec_particles,
    relion_to_zxz,
    validate_particles,
    write_particles_csv,
    write_particles_star,
    write_shrec_particles,
    zxz_to_relion,
)

SHREC_TEXT = """\
# class x y z Z1 X Z2
1s3x 12 34.5 56.125 10 20 30

4V94 1.5 2 3
vesicle 100 200 300 -45.5 90 180 extra columns here
"""

EXPECTED = pd.DataFrame(
    {
        "class_name": ["1s3x", "4V94", "vesicle"],
        "x": [12.0, 1.5, 100.0],
        "y": [34.5, 2.0, 200.0],
        "z": [56.125, 3.0, 300.0],
        "phi": [10.0, 0.0, -45.5],
        "theta": [20.0, 0.0, 90.0],
        "psi": [30.0, 0.0, 180.0],
    }
)


def _random_particles(n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    zxz = Rotation.random(n, random_state=seed).as_euler("ZXZ", degrees=True)
    zxz[:2] = [[30.0, 0.0, 0.0], [10.0, 180.0, 20.0]]  # gimbal-lock cases
    return pd.DataFrame(
        {
            "class_name": rng.choice(["1s3x", "ribosome", "007", "1e5", "NA"], n),
            "x": rng.uniform(0, 512, n),
            "y": rng.uniform(0, 512, n),
            "z": rng.uniform(0, 200, n),
            "phi": zxz[:, 0],
            "theta": zxz[:, 1],
            "psi": zxz[:, 2],
        }
    )


def _matrices(df: pd.DataFrame) -> np.ndarray:
    angles = df[["phi", "theta", "psi"]].to_numpy()
    return Rotation.from_euler("ZXZ", angles, degrees=True).as_matrix()


def _one_line(excinfo: pytest.ExceptionInfo, name: str) -> str:
    message = str(excinfo.value)
    assert name in message and "\n" not in message
    return message


# --- SHREC ------------------------------------------------------------------------------


def test_read_shrec_hand_written(tmp_path):
    path = tmp_path / "particle_locations.txt"
    path.write_text(SHREC_TEXT)
    df = read_shrec_particles(path)
    assert list(df.columns) == COLUMNS
    pd.testing.assert_frame_equal(df, EXPECTED, check_dtype=False)
    assert df["x"].dtype == np.float64


def test_shrec_round_trip_is_exact_and_formatted(tmp_path):
    path = write_shrec_particles(tmp_path / "out.txt", EXPECTED)
    assert path.read_text().splitlines() == [
        "1s3x 12 34.5 56.125 10 20 30",
        "4V94 1.5 2 3 0 0 0",
        "vesicle 100 200 300 -45.5 90 180",
    ]
    pd.testing.assert_frame_equal(read_shrec_particles(path), EXPECTED, check_dtype=False)
    assert os.listdir(tmp_path) == ["out.txt"]


def test_shrec_write_uses_at_most_three_decimals(tmp_path):
    df = EXPECTED.iloc[:1].assign(x=1234567.123456, y=-0.0001, z=2e-7)
    line = write_shrec_particles(tmp_path / "p.txt", df).read_text().split()
    assert line[1:4] == ["1234567.123", "0", "0"]


def test_shrec_empty_file_gives_empty_table(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("# no particles\n\n")
    df = read_shrec_particles(path)
    assert len(df) == 0 and list(df.columns) == COLUMNS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1s3x 1 2 3\n1s3x 1 2\n", "line 2"),
        ("1s3x 1 2 3 10\n", "line 1"),  # partial rotation is ambiguous
        ("# header\n1s3x 1 abc 3\n", "line 2"),
        ("1s3x 1 2 3\n\n1s3x 1 2 nan\n", "line 3"),
        ("1s3x 1 2 3 0 inf 0\n", "line 1"),
    ],
)
def test_malformed_shrec_line_names_line_number(tmp_path, text, expected):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(FaketError) as excinfo:
        read_shrec_particles(path)
    assert expected in _one_line(excinfo, "bad.txt")


# --- CSV --------------------------------------------------------------------------------


def test_csv_round_trip_is_exact(tmp_path):
    df = _random_particles()
    path = write_particles_csv(tmp_path / "p.csv", df)
    back = read_particles_csv(path)
    pd.testing.assert_frame_equal(back, validate_particles(df))
    assert back["class_name"].tolist() == df["class_name"].tolist()  # "007", "1e5", "NA"


def test_csv_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("class_name,x,y,z\nribosome,1,2,3\n")
    with pytest.raises(FaketError, match="phi, theta, psi") as excinfo:
        read_particles_csv(path)
    _one_line(excinfo, "p.csv")


# --- STAR -------------------------------------------------------------------------------


def test_star_round_trip(tmp_path):
    df = _random_particles(seed=1)
    df[["x", "y", "z"]] = df[["x", "y", "z"]].round(3)  # STAR stores six decimals
    path = write_particles_star(tmp_path / "p.star", df, voxel_size=10.0)
    back = read_particles_star(path)
    assert list(back.columns) == COLUMNS
    assert back["class_name"].tolist() == df["class_name"].tolist()
    np.testing.assert_array_equal(back[["x", "y", "z"]], df[["x", "y", "z"]])
    np.testing.assert_allclose(_matrices(back), _matrices(df), atol=1e-6)
    assert os.listdir(tmp_path) == ["p.star"]


def test_star_columns_and_class_numbers(tmp_path):
    df = EXPECTED.assign(class_name=["b", "a", "b"])
    path = write_particles_star(tmp_path / "p.star", df, voxel_size=7.5)
    table = starfile.read(path, always_dict=True)["particles"]
    assert table["rlnClassNumber"].tolist() == [1, 2, 1]  # order of first appearance
    assert table["fktClassName"].tolist() == ["b", "a", "b"]
    assert (table["rlnImagePixelSize"] == 7.5).all()
    assert (table["rlnDetectorPixelSize"] == 7.5).all()
    # ZXZ (10, 20, 30) is ZYZ (-80, 20, 120): the y axis is the x axis turned by 90 degrees.
    np.testing.assert_allclose(
        table.loc[0, ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].astype(float),
        [-80.0, 20.0, 120.0],
        atol=1e-6,
    )
    plain = write_particles_star(tmp_path / "plain.star", df)
    assert "rlnImagePixelSize" not in starfile.read(plain, always_dict=True)["particles"]


def test_star_without_faket_columns(tmp_path):
    table = pd.DataFrame(
        {
            "rlnCoordinateX": [1.0, 2.0],
            "rlnCoordinateY": [3.0, 4.0],
            "rlnCoordinateZ": [5.0, 6.0],
            "rlnClassNumber": [2, 1],
        }
    )
    starfile.write({"particles": table}, tmp_path / "relion.star")
    df = read_particles_star(tmp_path / "relion.star")
    assert df["class_name"].tolist() == ["2", "1"]
    np.testing.assert_array_equal(df[["phi", "theta", "psi"]], np.zeros((2, 3)))
    starfile.write({"particles": table.drop(columns="rlnCoordinateZ")}, tmp_path / "noz.star")
    with pytest.raises(FaketError, match="rlnCoordinateZ"):
        read_particles_star(tmp_path / "noz.star")


def test_star_bad_voxel_size(tmp_path):
    with pytest.raises(FaketError, match="voxel size"):
        write_particles_star(tmp_path / "p.star", EXPECTED, voxel_size=0.0)
    assert os.listdir(tmp_path) == []


angle = st.floats(-180, 180, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(phi=angle, theta=st.floats(0, 180, allow_nan=False), psi=angle)
def test_euler_conversion_preserves_rotation(phi, theta, psi):
    zxz = np.array([[phi, theta, psi]])
    relion = zxz_to_relion(zxz)
    original = Rotation.from_euler("ZXZ", zxz, degrees=True).as_matrix()
    as_zyz = Rotation.from_euler("ZYZ", relion, degrees=True).as_matrix()
    back = Rotation.from_euler("ZXZ", relion_to_zxz(relion), degrees=True).as_matrix()
    np.testing.assert_allclose(as_zyz, original, atol=1e-6)
    np.testing.assert_allclose(back, original, atol=1e-6)


def test_euler_conversion_empty():
    assert zxz_to_relion(np.zeros((0, 3))).shape == (0, 3)


# --- dispatch and validation ------------------------------------------------------------


def test_read_particles_dispatches_on_suffix(tmp_path):
    write_shrec_particles(tmp_path / "p.txt", EXPECTED)
    write_particles_csv(tmp_path / "p.CSV", EXPECTED)
    write_particles_star(tmp_path / "p.star", EXPECTED)
    for name in ["p.txt", "p.CSV", "p.star"]:
        df = read_particles(tmp_path / name)
        np.testing.assert_array_equal(df[["x", "y", "z"]], EXPECTED[["x", "y", "z"]])
        assert df["class_name"].tolist() == EXPECTED["class_name"].tolist()
    with pytest.raises(FaketError, match="unknown particle list format") as excinfo:
        read_particles(tmp_path / "p.json")
    _one_line(excinfo, "p.json")
    with pytest.raises(FaketError, match="does not exist"):
        read_particles(tmp_path / "missing.star")


def test_validate_particles_cleans_and_checks():
    raw = EXPECTED.assign(x=["12", "1.5", "100"], extra=1)[["extra", *COLUMNS[::-1]]]
    clean = validate_particles(raw)
    assert list(clean.columns) == COLUMNS
    assert clean["x"].dtype == np.float64 and clean["x"].tolist() == [12.0, 1.5, 100.0]
    with pytest.raises(FaketError, match="missing column"):
        validate_particles(EXPECTED.drop(columns="z"), "list.csv")
    with pytest.raises(FaketError, match="particle 2 .* y"):
        validate_particles(EXPECTED.assign(y=[1.0, np.nan, 2.0]))
    with pytest.raises(FaketError, match="whitespace"):
        validate_particles(EXPECTED.assign(class_name=["a", "b c", "d"]))
    with pytest.raises(FaketError, match="no class_name"):
        validate_particles(EXPECTED.assign(class_name=["a", None, "d"]))


def test_faket_io_offers_every_particle_function_lazily():
    import subprocess
    import sys

    import faket.io
    import faket.io.particles

    # The lazy name list in faket.io must follow the module's own export list.
    assert set(faket.io._PARTICLE_NAMES) == set(faket.io.particles.__all__)
    assert faket.io.read_particles is faket.io.particles.read_particles
    # And reading MRC files does not import pandas.
    code = "import sys, faket.io; print('pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

"""Tests for faket.io.angles: IMOD .tlt files, tilt schemes and angle-count checks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from faket.errors import FaketError
from faket.io import check_angle_count, read_tlt, tilt_range, write_tlt


def _one_line(excinfo: pytest.ExceptionInfo, name: str) -> str:
    message = str(excinfo.value)
    assert name in message and "\n" not in message
    return message


def test_tlt_round_trip_and_imod_format(tmp_path):
    angles = np.array([-60.0, -1.5, 0.0, 2.25, 59.99])
    path = write_tlt(tmp_path / "series.tlt", angles)
    assert path.read_text() == "-60.00\n-1.50\n0.00\n2.25\n59.99\n"
    result = read_tlt(path)
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, angles)
    assert os.listdir(tmp_path) == ["series.tlt"]


def test_write_tlt_writes_what_was_used_without_negative_zero(tmp_path):
    # Issue 16: -59.986 (a real goniometer angle) used to be written as -59.99.
    angles = [-59.986, -0.001, 1.005, 30.126, -0.0, 1 / 3]
    path = write_tlt(tmp_path / "a.tlt", angles)
    lines = path.read_text().splitlines()
    assert lines[:5] == ["-59.986", "-0.001", "1.005", "30.126", "0.00"]
    np.testing.assert_array_equal(read_tlt(path), np.array(angles) + 0.0)


def test_read_tlt_tolerates_whitespace_and_blank_lines(tmp_path):
    path = tmp_path / "a.tlt"
    path.write_text("\n  -3.0\t\n\n 0 \n   3.5\n\n")
    np.testing.assert_array_equal(read_tlt(path), [-3.0, 0.0, 3.5])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-2.0\n0.0\nabc\n", "line 3"),
        ("-2.0\n\n1.0 2.0\n", "line 3"),
        ("1.0\nnan\n", "line 2"),
        ("1.0\ninf\n", "line 2"),
        ("0.0\n95.0\n", "line 2"),
        ("-90.5\n", "line 1"),
        ("", "contains no angles"),
        ("\n  \n", "contains no angles"),
    ],
)
def test_bad_tlt_files(tmp_path, text, expected):
    path = tmp_path / "bad.tlt"
    path.write_text(text)
    with pytest.raises(FaketError) as excinfo:
        read_tlt(path)
    assert expected in _one_line(excinfo, "bad.tlt")


def test_missing_and_binary_tlt(tmp_path):
    with pytest.raises(FaketError, match="does not exist") as excinfo:
        read_tlt(tmp_path / "missing.tlt")
    _one_line(excinfo, "missing.tlt")
    (tmp_path / "binary.tlt").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(FaketError, match="not a text file"):
        read_tlt(tmp_path / "binary.tlt")


@pytest.mark.parametrize("angles", [[91.0], [0.0, np.nan], [], [[1.0, 2.0]]])
def test_write_tlt_rejects_bad_angles(tmp_path, angles):
    with pytest.raises(FaketError) as excinfo:
        write_tlt(tmp_path / "out.tlt", angles)
    _one_line(excinfo, "out.tlt")
    assert os.listdir(tmp_path) == []


def test_tilt_range_includes_stop_on_grid():
    angles = tilt_range(-60, 60, 2)
    assert len(angles) == 61
    assert angles[0] == -60.0 and angles[-1] == 60.0
    np.testing.assert_allclose(np.diff(angles), 2.0)


def test_tilt_range_off_grid_and_rounding():
    off_grid = tilt_range(-60, 59, 2)
    assert len(off_grid) == 60 and off_grid[-1] == 58.0
    # (0.3 - 0) / 0.1 is 2.9999999999999996 in floating point; 0.3 must still be included.
    fine = tilt_range(0.0, 0.3, 0.1)
    assert len(fine) == 4 and fine[-1] == 0.3
    np.testing.assert_array_equal(tilt_range(10, 10, 3), [10.0])
    assert len(tilt_range(-90, 90, 3)) == 61


@pytest.mark.parametrize(
    ("start", "stop", "step", "expected"),
    [
        (-60, 60, 0, "step must be positive"),
        (-60, 60, -2, "step must be positive"),
        (60, -60, 2, "swap"),
        (-95, 60, 2, "-90..90"),
        (-60, 91, 2, "-90..90"),
        (-60, float("nan"), 2, "finite"),
    ],
)
def test_tilt_range_errors(start, stop, step, expected):
    with pytest.raises(FaketError, match=expected):
        tilt_range(start, stop, step)


def test_check_angle_count():
    check_angle_count(np.zeros(61), 61, "series.tlt")  # matching counts: no error
    with pytest.raises(FaketError) as excinfo:
        check_angle_count(np.zeros(60), 61, "series.tlt")
    message = _one_line(excinfo, "series.tlt")
    assert "tilt series has 61 tilts but the angle file series.tlt has 60 angles" in message
    assert "pass the angle file that belongs to this tilt series" in message
    with pytest.raises(FaketError, match="the angle list has 3 angles"):
        check_angle_count([1.0, 2.0, 3.0], 4)

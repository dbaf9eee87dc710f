"""Tests for faket.io.mrc: round trips, atomic writes, error messages, summaries."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest

import faket.io._mrcutil as mrcutil
from faket.errors import FaketError
from faket.io import (
    MrcData,
    count_nonfinite,
    format_summary,
    mrc_summary,
    read_mrc,
    write_mrc,
)


def _volume(dtype: type, shape: tuple[int, ...] = (4, 5, 6), seed: int = 0) -> np.ndarray:
    """Random data spanning most of the dtype's range (so uint8 has values above 127)."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.normal(10.0, 3.0, size=shape).astype(dtype)


def _raw_write(path: Path, data: np.ndarray, voxel_size: float | None = None) -> None:
    """Write with plain mrcfile, e.g. data that write_mrc would refuse (NaN, empty)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mrcfile and numpy warn about NaN/Inf statistics
        with mrcfile.new(path) as mrc:
            mrc.set_data(data)
            if voxel_size is not None:
                mrc.voxel_size = voxel_size


def _assert_one_line_error(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert path.name in message
    assert "\n" not in message
    return message


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int16, np.uint8, np.uint16])
@pytest.mark.parametrize("voxel_size", [10.0, 3.42])
def test_round_trip_keeps_data_dtype_and_voxel_size(tmp_path, dtype, voxel_size):
    data = _volume(dtype)
    path = write_mrc(tmp_path / "vol.mrc", data, voxel_size)
    result = read_mrc(path)
    assert isinstance(result, MrcData)
    assert result.data.dtype == dtype
    assert result.data.shape == data.shape
    np.testing.assert_array_equal(result.data, data)
    assert result.voxel_size == voxel_size


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16])
def test_header_stats_match_data(tmp_path, dtype):
    data = _volume(dtype, seed=1)
    write_mrc(tmp_path / "vol.mrc", data, 5.0)
    with mrcfile.open(tmp_path / "vol.mrc") as mrc:
        header = mrc.header
        assert float(header.dmin) == pytest.approx(float(data.min()))
        assert float(header.dmax) == pytest.approx(float(data.max()))
        assert float(header.dmean) == pytest.approx(float(data.mean()), rel=1e-5)
        assert float(header.rms) == pytest.approx(float(data.std()), rel=1e-5)


def test_mmap_read_is_identical_read_only_memmap(tmp_path):
    data = _volume(np.float32)
    write_mrc(tmp_path / "vol.mrc", data, 2.0)
    mapped = read_mrc(tmp_path / "vol.mrc", mmap=True)
    assert isinstance(mapped.data, np.memmap)
    assert not mapped.data.flags.writeable
    np.testing.assert_array_equal(mapped.data, data)
    assert mapped.voxel_size == 2.0


def test_mmap_uint8_is_unsigned(tmp_path):
    data = np.array([[[0, 127, 128, 255]]], dtype=np.uint8)
    write_mrc(tmp_path / "bytes.mrc", data, 1.0)
    mapped = read_mrc(tmp_path / "bytes.mrc", mmap=True)
    assert mapped.data.dtype == np.uint8
    np.testing.assert_array_equal(mapped.data, data)


def test_default_dtypes(tmp_path):
    cases = {
        "f64.mrc": (np.linspace(0, 1, 24).reshape(2, 3, 4), np.float32),
        "f16.mrc": (np.ones((2, 3, 4), np.float16), np.float16),
        "i64.mrc": (np.arange(-12, 12, dtype=np.int64).reshape(2, 3, 4), np.int16),
        "bool.mrc": (np.eye(4, dtype=bool)[None], np.int8),
    }
    for name, (data, expected) in cases.items():
        write_mrc(tmp_path / name, data, 1.0)
        result = read_mrc(tmp_path / name).data
        assert result.dtype == expected, name
        np.testing.assert_array_equal(result, data.astype(expected))


def test_explicit_integer_dtype_rounds_floats(tmp_path):
    data = np.array([[[0.4, 1.6, -2.6]]])
    write_mrc(tmp_path / "r.mrc", data, 1.0, dtype=np.int16)
    np.testing.assert_array_equal(read_mrc(tmp_path / "r.mrc").data, [[[0, 2, -3]]])


def test_big_endian_file_reads_as_native(tmp_path):
    data = _volume(np.float32).astype(">f4")
    _raw_write(tmp_path / "be.mrc", data)
    result = read_mrc(tmp_path / "be.mrc").data
    assert result.dtype.isnative and result.dtype == np.float32
    np.testing.assert_array_equal(result, data)


def test_2d_image_and_ndim_tuple(tmp_path):
    image = _volume(np.float32, shape=(6, 7))
    write_mrc(tmp_path / "img.mrc", image, 1.5)
    assert read_mrc(tmp_path / "img.mrc", ndim=(2, 3)).data.shape == (6, 7)
    assert read_mrc(tmp_path / "img.mrc", ndim=2).data.shape == (6, 7)


# --- atomic writes ----------------------------------------------------------------------


def test_write_leaves_only_the_target(tmp_path):
    write_mrc(tmp_path / "vol.mrc", _volume(np.float32), 1.0)
    write_mrc(tmp_path / "vol.mrc", _volume(np.float32, seed=3), 1.0)  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["vol.mrc"]


def _failing_new(real_new):
    def new(path, *args, **kwargs):
        Path(path).write_bytes(b"partial")  # something lands on disk before the failure
        raise OSError("disk full")

    return new


def test_failed_write_leaves_no_target_and_no_temp(tmp_path, monkeypatch):
    monkeypatch.setattr(mrcfile, "new", _failing_new(mrcfile.new))
    with pytest.raises(OSError, match="disk full"):
        write_mrc(tmp_path / "vol.mrc", _volume(np.float32), 1.0)
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_existing_target(tmp_path, monkeypatch):
    target = write_mrc(tmp_path / "vol.mrc", _volume(np.float32), 1.0)
    before = target.read_bytes()

    def explode(header, data):
        raise RuntimeError("failed mid-way")

    # Fails after mrcfile has created the temporary file and stored the data.
    monkeypatch.setattr("faket.io.mrc.update_stats", explode)
    with pytest.raises(RuntimeError, match="mid-way"):
        write_mrc(target, _volume(np.float32, seed=9), 2.0)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


# --- read errors ------------------------------------------------------------------------


def _text_file(path: Path) -> None:
    path.write_text("this is not an MRC file\n" * 100)


def _png_file(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))


def _truncated_file(path: Path) -> None:
    write_mrc(path, _volume(np.float32, shape=(8, 8, 8)), 1.0)
    path.write_bytes(path.read_bytes()[:-100])


def _short_file(path: Path) -> None:
    path.write_bytes(bytes(300))


def _zero_byte_file(path: Path) -> None:
    path.write_bytes(b"")


def _empty_data_file(path: Path) -> None:
    _raw_write(path, np.zeros((0, 4, 4), np.float32))


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_text_file, "not an MRC file"),
        (_png_file, "not an MRC file"),
        (_truncated_file, "truncated"),
        (_short_file, "truncated or not an MRC file"),
        (_zero_byte_file, "empty"),
        (_empty_data_file, "no data"),
    ],
)
def test_bad_files_raise_one_line_error(tmp_path, make, expected, mmap):
    path = tmp_path / "bad_input.mrc"
    make(path)
    with pytest.raises(FaketError) as excinfo:
        read_mrc(path, mmap=mmap)
    assert expected in _assert_one_line_error(excinfo, path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FaketError, match="does not exist") as excinfo:
        read_mrc(tmp_path / "missing.mrc")
    _assert_one_line_error(excinfo, tmp_path / "missing.mrc")
    (tmp_path / "folder.mrc").mkdir()
    with pytest.raises(FaketError, match="folder") as excinfo:
        read_mrc(tmp_path / "folder.mrc")


def test_wrong_dimensionality(tmp_path):
    path = write_mrc(tmp_path / "image.mrc", np.zeros((64, 64), np.float32), 1.0)
    with pytest.raises(FaketError) as excinfo:
        read_mrc(path, ndim=3)
    message = _assert_one_line_error(excinfo, path)
    assert "expected a 3-D volume, got 2-D data of shape (64, 64)" in message
    with pytest.raises(FaketError, match="3-D or 4-D"):
        read_mrc(path, ndim=(3, 4))


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_data_is_rejected_unless_allowed(tmp_path, bad, mmap):
    data = _volume(np.float32)
    data[3, 1, 2] = bad
    _raw_write(tmp_path / "nan.mrc", data)  # write_mrc itself refuses NaN
    with pytest.raises(FaketError, match="1 NaN/Inf") as excinfo:
        read_mrc(tmp_path / "nan.mrc", mmap=mmap)
    _assert_one_line_error(excinfo, tmp_path / "nan.mrc")
    allowed = read_mrc(tmp_path / "nan.mrc", mmap=mmap, allow_nonfinite=True).data
    assert count_nonfinite(allowed) == 1


def test_nonfinite_count_is_chunked(monkeypatch):
    data = np.zeros((10, 3, 4), np.float32)
    data[[0, 4, 9], 1, 1] = [np.nan, np.inf, np.nan]
    monkeypatch.setattr(mrcutil, "_CHUNK_BYTES", data[0].nbytes * 3)  # 3 slices per chunk
    assert len(list(mrcutil.row_chunks(data))) == 4
    assert count_nonfinite(data) == 3
    assert count_nonfinite(np.zeros((10, 3, 4), np.int16)) == 0


def test_header_warnings_are_passed_on_not_raised(tmp_path):
    path = write_mrc(tmp_path / "padded.mrc", _volume(np.float32), 1.0)
    with open(path, "ab") as handle:
        handle.write(bytes(16))  # mrcfile warns: file larger than expected
    with pytest.warns(RuntimeWarning, match="padded.mrc"):
        result = read_mrc(path)
    assert result.data.shape == (4, 5, 6)


# --- write errors -----------------------------------------------------------------------


def test_overwrite_false_keeps_existing_file(tmp_path):
    path = write_mrc(tmp_path / "vol.mrc", _volume(np.float32), 1.0)
    before = path.read_bytes()
    with pytest.raises(FaketError, match="already exists") as excinfo:
        write_mrc(path, _volume(np.float32, seed=5), 1.0, overwrite=False)
    _assert_one_line_error(excinfo, path)
    assert path.read_bytes() == before


def test_unknown_voxel_size_is_written_as_zero(tmp_path):
    path = write_mrc(tmp_path / "vol.mrc", _volume(np.float32), 0.0)
    assert read_mrc(path).voxel_size == 0.0


@pytest.mark.parametrize("voxel_size", [-1.0, np.nan, np.inf])
def test_bad_voxel_size(tmp_path, voxel_size):
    with pytest.raises(FaketError, match="voxel size") as excinfo:
        write_mrc(tmp_path / "vol.mrc", _volume(np.float32), voxel_size)
    _assert_one_line_error(excinfo, tmp_path / "vol.mrc")
    assert not (tmp_path / "vol.mrc").exists()


@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        (np.array([[[1.0, np.nan]]]), {}, "NaN/Inf"),
        (np.zeros((0, 3, 3), np.float32), {}, "empty"),
        (np.zeros(5, np.float32), {}, "2-D or 3-D"),
        (np.array([[[1, 70000]]], np.int64), {}, "do not fit int16"),
        (np.array([[[1e39]]]), {}, "overflow"),
        (np.array([[[300.0]]]), {"dtype": np.uint8}, "do not fit uint8"),
        (np.ones((2, 2, 2)), {"dtype": np.float64}, "not one of"),
        (np.ones((2, 2, 2), np.complex64), {}, "complex64"),
    ],
)
def test_bad_data_is_rejected(tmp_path, data, kwargs, expected):
    with pytest.raises(FaketError, match=expected) as excinfo:
        write_mrc(tmp_path / "out.mrc", data, 1.0, **kwargs)
    _assert_one_line_error(excinfo, tmp_path / "out.mrc")
    assert os.listdir(tmp_path) == []


def test_missing_parent_folder(tmp_path):
    path = tmp_path / "no_such_folder" / "vol.mrc"
    with pytest.raises(FaketError, match="does not exist") as excinfo:
        write_mrc(path, _volume(np.float32), 1.0)
    assert "no_such_folder" in _assert_one_line_error(excinfo, path)


# --- summary ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_bytes", [None, 4 * 5 * 6])
def test_summary_matches_numpy(tmp_path, monkeypatch, chunk_bytes):
    if chunk_bytes:  # one slice of float64 per chunk: exercises the merge of partial stats
        monkeypatch.setattr(mrcutil, "_CHUNK_BYTES", chunk_bytes * 8)
    data = (_volume(np.float32, shape=(7, 5, 6)) + 1000).astype(np.float32)
    data[2, 3, 4] = np.nan
    _raw_write(tmp_path / "vol.mrc", data, voxel_size=4.5)
    summary = mrc_summary(tmp_path / "vol.mrc")
    finite = data[np.isfinite(data)].astype(np.float64)
    assert summary["shape"] == (7, 5, 6)
    assert summary["dtype"] == "float32"
    assert summary["voxel_size"] == 4.5
    assert summary["n_nonfinite"] == 1
    assert summary["min"] == finite.min() and summary["max"] == finite.max()
    assert summary["mean"] == pytest.approx(finite.mean(), rel=1e-6)
    assert summary["std"] == pytest.approx(finite.std(), rel=1e-6)

    text = format_summary(summary, tmp_path / "vol.mrc")
    assert "vol.mrc" in text and "7 x 5 x 6" in text and "4.5 Å" in text
    assert len(text.splitlines()) >= 6

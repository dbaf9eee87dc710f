"""The field's file formats, made here so that no shared data is needed: TOM/PyTom EM,
old-style MRC, SerialEM mdoc, RELION 5 STAR, PyTom projection lists (issue 16)."""

from __future__ import annotations

import struct
import warnings

import emfile
import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from faket.cli.main import main
from faket.errors import FaketError
from faket.io import is_tilt_series, read_angles, read_mrc, write_mrc


def _run(args, capsys):
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


# --- EM ---------------------------------------------------------------------------------


def _em_with_pixel(path, data: np.ndarray, pixel_angstrom: float):
    """An EM file as TOM writes it: 512-byte header, parameter 7 = object pixel (Å x 1000).

    (emfile.write would do, but version 0.3 puts header parameters at the wrong offset.)
    """
    params = [0] * 40
    params[6] = round(pixel_angstrom * 1000)
    header = struct.pack("<4b3i80s40i256s", 6, 0, 0, 5, *data.shape[::-1], b"", *params, b"")
    path.write_bytes(header + np.ascontiguousarray(data, dtype="<f4").tobytes())
    return path


@pytest.mark.parametrize("mmap", [False, True])
def test_em_file_written_by_emfile_reads_back(tmp_path, mmap):
    data = np.random.default_rng(1).random((3, 5, 7), dtype=np.float32)
    emfile.write(tmp_path / "plain.em", data)
    np.testing.assert_array_equal(read_mrc(tmp_path / "plain.em", mmap=mmap).data, data)
    _em_with_pixel(tmp_path / "v.em", data, 12.5)
    result = read_mrc(tmp_path / "v.em", mmap=mmap)
    np.testing.assert_array_equal(result.data, data)
    assert result.voxel_size == 12.5


def test_em_image_is_2d_and_wide_types_become_float32(tmp_path):
    emfile.write(tmp_path / "i.em", np.arange(12, dtype=np.int32).reshape(1, 3, 4))
    result = read_mrc(tmp_path / "i.em")
    assert result.data.shape == (3, 4) and result.data.dtype == np.float32
    assert result.voxel_size == 0.0 and result.data[2, 3] == 11.0


def test_em_files_are_read_wherever_mrc_is(tmp_path, capsys):
    volume = np.zeros((8, 16, 16), np.float32)
    volume[3:5, 6:10, 6:10] = 1.0
    _em_with_pixel(tmp_path / "v.em", volume, 10.0)
    code, _, err = _run(["project", tmp_path / "v.em", "-o", tmp_path / "p.mrc", "-q"], capsys)
    assert code == 0, err
    projections = read_mrc(tmp_path / "p.mrc")
    assert projections.voxel_size == 10.0 and projections.data.shape == (61, 16, 16)
    np.testing.assert_allclose(projections.data[30].sum(), volume.sum(), rtol=1e-4)


# --- old-style MRC ----------------------------------------------------------------------


def _old_style(path, data, voxel=4.0):
    write_mrc(path, data, voxel)
    raw = bytearray(path.read_bytes())
    raw[208:212] = bytes(4)  # no 'MAP ' tag, as before MRC2014
    path.write_bytes(bytes(raw))
    return path


def test_old_style_mrc_is_read_with_a_warning_by_every_reader(tmp_path, capsys):
    data = np.random.default_rng(2).random((6, 8, 10), dtype=np.float32)
    path = _old_style(tmp_path / "old.mrc", data)
    for mmap in (False, True):
        with pytest.warns(RuntimeWarning, match="old-style MRC file"):
            result = read_mrc(path, mmap=mmap)
        np.testing.assert_array_equal(result.data, data)
        assert result.voxel_size == 4.0
    code, out, err = _run(["info", path], capsys)
    assert code == 0 and "6 x 8 x 10" in out and "old-style" in err


def test_a_file_without_the_tag_whose_size_does_not_add_up_is_refused(tmp_path):
    path = _old_style(tmp_path / "odd.mrc", np.zeros((6, 8, 10), np.float32))
    path.write_bytes(path.read_bytes() + bytes(40))
    with pytest.raises(FaketError, match="not an MRC file"):
        read_mrc(path)


# --- voxel sizes and stacks -------------------------------------------------------------


def test_anisotropic_voxels_warn_and_the_x_size_is_used(tmp_path):
    with mrcfile.new(tmp_path / "a.mrc") as mrc:
        mrc.set_data(np.zeros((4, 5, 6), np.float32))
        mrc.voxel_size = (10.0, 10.0, 20.0)
    with pytest.warns(RuntimeWarning, match=r"anisotropic voxel size \(X, Y, Z\) = \(10, 10, 20\)"):
        assert read_mrc(tmp_path / "a.mrc").voxel_size == 10.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # isotropic: silent
        write_mrc(tmp_path / "b.mrc", np.zeros((4, 5, 6), np.float32), 10.0)
        read_mrc(tmp_path / "b.mrc")


def test_tilt_series_are_marked_and_info_labels_them(tmp_path, capsys):
    data = np.zeros((5, 8, 8), np.float32)
    series = write_mrc(tmp_path / "ts.mrc", data, 10.0, stack=True)
    volume = write_mrc(tmp_path / "vol.mrc", data, 10.0)
    assert read_mrc(series).is_stack and not read_mrc(volume).is_stack
    assert is_tilt_series(series, read_mrc(series))
    code, out, _ = _run(["info", series], capsys)
    assert code == 0 and "(n_tilts, Y, X)" in out and "80 x 80 Å  (each tilt)" in out
    code, out, _ = _run(["info", volume], capsys)
    assert code == 0 and "(Z, Y, X)" in out and "50 x 80 x 80 Å" in out
    # A foreign volume file with a .tlt of as many lines beside it is a tilt series too.
    (tmp_path / "vol.tlt").write_text("\n".join(["0"] * 5) + "\n")
    assert is_tilt_series(volume, read_mrc(volume))


# --- tilt angles ------------------------------------------------------------------------

MDOC = """PixelSpacing = 5.4
ImageFile = TS.mrc
DataMode = 1

[T = SerialEM: test]

[ZValue = 0]
TiltAngle = 0.001
ExposureDose = 3

[ZValue = 1]
TiltAngle = 3.001
ExposureDose = 3

[ZValue = 2]
TiltAngle = -2.999
ExposureDose = 3
"""


def test_mdoc_angles_in_z_order(tmp_path):
    (tmp_path / "ts.mrc.mdoc").write_text(MDOC)
    np.testing.assert_array_equal(read_angles(tmp_path / "ts.mrc.mdoc"), [0.001, 3.001, -2.999])


def _tilt_series_star(path, angles, refined=None):
    table = {"rlnMicrographName": [f"t{i}.mrc" for i in range(len(angles))]}
    table["rlnTomoNominalStageTiltAngle"] = angles
    if refined is not None:
        table["rlnTomoYTilt"] = refined
    starfile.write({"TS_01": pd.DataFrame(table)}, path)
    return path


def test_relion5_tilt_series_star_prefers_the_refined_tilt(tmp_path):
    nominal = [-3.0, 0.0, 3.0]
    path = _tilt_series_star(tmp_path / "nominal.star", nominal)
    np.testing.assert_array_equal(read_angles(path), nominal)
    path = _tilt_series_star(tmp_path / "TS_01.star", nominal, refined=[-2.9, 0.1, 3.1])
    np.testing.assert_allclose(read_angles(path), [-2.9, 0.1, 3.1])


def test_relion5_tomograms_star_is_followed_when_it_names_one_series(tmp_path):
    _tilt_series_star(tmp_path / "TS_01.star", [-3.0, 0.0, 3.0])
    one = pd.DataFrame({"rlnTomoName": ["TS_01"], "rlnTomoTiltSeriesStarFile": ["TS_01.star"]})
    starfile.write({"global": one}, tmp_path / "tomograms.star")
    np.testing.assert_array_equal(read_angles(tmp_path / "tomograms.star"), [-3.0, 0.0, 3.0])
    two = pd.concat([one, one.assign(rlnTomoName="TS_02")])
    starfile.write({"global": two}, tmp_path / "two.star")
    with pytest.raises(FaketError, match="lists 2 tilt series"):
        read_angles(tmp_path / "two.star")


def test_projection_matrices_are_refused_not_misread(tmp_path):
    block = pd.DataFrame({"rlnTomoProjX": ["[1,0,0,0]"], "rlnTomoProjZ": ["[0,0,1,0]"]})
    starfile.write(
        {"global": pd.DataFrame({"rlnTomoName": ["a"]}), "a": block}, tmp_path / "m.star"
    )
    with pytest.raises(FaketError, match="projection matrices, not tilt angles"):
        read_angles(tmp_path / "m.star")


def test_pytom_projection_list(tmp_path):
    rows = "".join(
        f'<Projection Filename="p_{i}.em" TiltAngle="{a}" OffsetX="0"/>'
        for i, a in enumerate([-59.986, 0.5, 59.991])
    )
    (tmp_path / "list.xml").write_text(f"<ProjectionList>{rows}</ProjectionList>")
    np.testing.assert_array_equal(read_angles(tmp_path / "list.xml"), [-59.986, 0.5, 59.991])
    (tmp_path / "other.xml").write_text("<Something><Else/></Something>")
    with pytest.raises(FaketError, match="not a PyTom projection list"):
        read_angles(tmp_path / "other.xml")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.xtilt", "0\n0\n", "IMOD .xtilt file"),
        ("a.xf", "1 0 0 1 0 0\n", "IMOD .xf file"),
        ("a.tlt", "1 0 0 1 0 0\n", "6 values where a tilt-angle file has one angle"),
    ],
)
def test_files_that_are_not_angles_are_refused(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(FaketError, match=message):
        read_angles(tmp_path / name)


def test_every_angle_option_takes_every_angle_format(tmp_path, capsys):
    (tmp_path / "ts.mrc.mdoc").write_text(MDOC)
    volume = write_mrc(tmp_path / "v.mrc", np.ones((4, 8, 8), np.float32), 10.0)
    args = ["project", volume, "-o", tmp_path / "p.mrc", "--angles", tmp_path / "ts.mrc.mdoc"]
    code, _, err = _run([*args, "-q"], capsys)
    assert code == 0, err
    # The .tlt written beside says exactly which angles were used (issue 16: not rounded).
    assert (tmp_path / "p.tlt").read_text().splitlines() == ["0.001", "3.001", "-2.999"]
    code, _, err = _run(["reconstruct", tmp_path / "p.mrc", "-o", tmp_path / "r.mrc",
                         "--angles", tmp_path / "ts.mrc.mdoc", "-q"], capsys)  # fmt: skip
    assert code == 0, err

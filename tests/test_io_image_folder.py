"""A tilt series kept as one image file per tilt (PyTom's projection folders)."""

from __future__ import annotations

from pathlib import Path

import emfile
import numpy as np
import pytest

from faket.errors import FaketError
from faket.io import read_angles, read_image_folder, read_mrc, write_mrc

PYTOM = Path(__file__).resolve().parents[2] / "shared" / "data" / "tomo" / "pytom_p1_projections"


def _images(n: int, shape=(6, 8)) -> np.ndarray:
    return np.random.default_rng(n).random((n, *shape), dtype=np.float32)


def _projection_list(folder: Path, names: list[str], angles: list[float]) -> None:
    rows = "".join(
        f'  <Projection Filename="./elsewhere/p1/{n}" TiltAngle="{a}" OffsetX="0"/>\n'
        for n, a in zip(names, angles, strict=True)
    )
    (folder / "projectionList.xml").write_text(f"<ProjectionList>\n{rows}</ProjectionList>\n")


def test_the_projection_list_gives_the_order_and_the_angles(tmp_path):
    images = _images(3)
    for i, image in enumerate(images):
        emfile.write(tmp_path / f"projection_{i}.em", image[None])
    # Listed out of name order, with paths from another machine: only the names count.
    _projection_list(
        tmp_path, ["projection_2.em", "projection_0.em", "projection_1.em"], [-3, 0, 3]
    )
    folder = read_image_folder(tmp_path)
    np.testing.assert_array_equal(folder.data, images[[2, 0, 1]])
    np.testing.assert_array_equal(folder.angles_deg, [-3.0, 0.0, 3.0])
    assert [f.name for f in folder.files][0] == "projection_2.em"
    assert folder.voxel_size == 0.0


def test_without_a_list_images_are_in_natural_name_order(tmp_path):
    images = _images(11)
    for i, image in enumerate(images):  # projection_10 sorts after projection_9
        write_mrc(tmp_path / f"projection_{i}.mrc", image, voxel_size=4.0)
    (tmp_path / "notes.txt").write_text("not an image")
    folder = read_image_folder(tmp_path)
    np.testing.assert_array_equal(folder.data, images)
    assert folder.angles_deg is None and folder.voxel_size == pytest.approx(4.0)


def test_bad_folders_are_one_line_errors(tmp_path):
    with pytest.raises(FaketError, match="holds no .em or .mrc images"):
        read_image_folder(tmp_path)
    write_mrc(tmp_path / "a_0.mrc", _images(1)[0], voxel_size=1.0)
    write_mrc(tmp_path / "a_1.mrc", _images(1, (5, 5))[0], voxel_size=1.0)
    with pytest.raises(FaketError, match="a tilt series has one size"):
        read_image_folder(tmp_path)
    write_mrc(tmp_path / "a_1.mrc", _images(2), voxel_size=1.0, overwrite=True)
    with pytest.raises(FaketError, match="must hold one each"):
        read_image_folder(tmp_path)
    _projection_list(tmp_path, ["a_0.mrc", "gone.em"], [0, 1])
    with pytest.raises(FaketError, match="not in .*first: gone.em"):
        read_image_folder(tmp_path)
    with pytest.raises(FaketError, match="not a folder"):
        read_image_folder(tmp_path / "a_0.mrc")


@pytest.mark.skipif(not PYTOM.is_dir(), reason="needs ../shared/data/tomo/pytom_p1_projections")
def test_the_real_pytom_folder_stacks_in_acquisition_order():
    folder = read_image_folder(PYTOM)
    assert folder.data.shape == (41, 100, 100)
    np.testing.assert_array_equal(folder.data[10], read_mrc(PYTOM / "projection_10.em").data)
    np.testing.assert_array_equal(folder.angles_deg, read_angles(PYTOM / "projectionList.xml"))

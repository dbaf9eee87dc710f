"""Tilt series stored as one image file per tilt, as PyTom keeps its projections.

A PyTom projection folder holds ``projection_0.em``, ``projection_1.em``, ... and a
projection list ``projectionList.xml`` whose ``Projection`` elements name each file
(``Filename``, often a path from another machine: only its name is used) and its
``TiltAngle``, in acquisition order. :func:`read_image_folder` stacks the images in that
order; without a projection list, the folder's ``.em``/``.mrc`` images are taken in the
natural order of their names (``projection_2`` before ``projection_10``).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.io.mrc import read_mrc
from faket.io.tilt_files import read_angles

__all__ = ["IMAGE_SUFFIXES", "PROJECTION_LIST", "ImageFolder", "read_image_folder"]

#: Image files a folder may hold, one tilt each.
IMAGE_SUFFIXES = (".em", ".mrc")
#: PyTom's projection list.
PROJECTION_LIST = "projectionList.xml"


@dataclass(frozen=True)
class ImageFolder:
    """A tilt series read from one file per tilt.

    Attributes
    ----------
    data : np.ndarray, shape (n_tilts, Y, X), float32
    voxel_size : float
        Pixel size in Å from the first image's header (0.0 when unset).
    angles_deg : np.ndarray or None
        Tilt angles from the projection list, in stack order; None without one.
    files : tuple of Path
        The images, in stack order.
    """

    data: np.ndarray
    voxel_size: float
    angles_deg: np.ndarray | None
    files: tuple[Path, ...]


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _listed_files(folder: Path, listing: Path) -> list[Path]:
    try:
        root = ElementTree.parse(listing).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise FaketError(f"cannot read {listing} as XML ({error}); fix or remove it") from None
    names = [p.get("Filename") for p in root.iter("Projection")]
    if not names or any(n is None for n in names):
        raise FaketError(f"{listing} has Projection elements without a Filename; fix it")
    files = [folder / Path(n.replace("\\", "/")).name for n in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FaketError(
            f"{listing} lists {len(missing)} image(s) that are not in {folder} "
            f"(first: {missing[0]}); copy them there"
        )
    return files


def read_image_folder(path: str | os.PathLike[str]) -> ImageFolder:
    """Stack a folder of single-image files (``.em`` or ``.mrc``) into a tilt series.

    Parameters
    ----------
    path
        The folder (see the module docstring for the order of the images).

    Returns
    -------
    ImageFolder

    Raises
    ------
    FaketError
        If the folder holds no images, an image is not 2-D, the images differ in shape
        or pixel size, or the projection list is unreadable or names missing files.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FaketError(f"{folder} is not a folder of images; check the path")
    listing = folder / PROJECTION_LIST
    if listing.is_file():
        files = _listed_files(folder, listing)
        angles = read_angles(listing)
    else:
        candidates = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        files, angles = sorted(candidates, key=_natural_key), None
    if not files:
        raise FaketError(
            f"{folder} holds no .em or .mrc images; pass a tilt-series file or a folder of "
            "one image per tilt"
        )
    images, pixels = [], []
    for file in files:
        image = read_mrc(file, ndim=(2, 3))
        data = image.data[0] if image.data.ndim == 3 and image.data.shape[0] == 1 else image.data
        if data.ndim != 2:
            raise FaketError(
                f"{file} holds {data.shape[0]} images; a folder's files must hold one each"
            )
        if images and data.shape != images[0].shape:
            raise FaketError(
                f"{file} is {data.shape[1]} x {data.shape[0]} pixels, but {files[0].name} is "
                f"{images[0].shape[1]} x {images[0].shape[0]}; a tilt series has one size"
            )
        images.append(np.asarray(data, dtype=np.float32))
        pixels.append(image.voxel_size)
    if any(abs(p - pixels[0]) > 1e-3 * max(pixels[0], 1e-9) for p in pixels):
        raise FaketError(f"the images in {folder} have different pixel sizes; convert them")
    return ImageFolder(np.stack(images), float(pixels[0]), angles, tuple(files))

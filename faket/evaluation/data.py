"""Tomograms with their annotation, and where a dataset's training/validation/test ones are.

Particle coordinates and masks live in the *truth frame* (voxels of the grand model);
a reconstruction may be binned or cropped, so a :class:`Frame` maps truth voxel
coordinates to the volume's voxel coordinates and back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from faket.errors import FaketError
from faket.evaluation.scoring import TRUTH_FILES, GroundTruth, load_truth
from faket.io import read_mrc, read_shrec_particles, validate_particles

#: File names inside a dataset's tomogram folder.
CLASS_MASK = "class_mask.mrc"
DATASET_CONFIG = "dataset_config.yaml"


@dataclass(frozen=True)
class Frame:
    """Axis-aligned map ``volume = truth * scale + offset`` per axis ``(z, y, x)``."""

    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_volume(self, zyx: np.ndarray) -> np.ndarray:
        """Truth-frame ``(n, 3)`` ``(z, y, x)`` voxel coordinates -> volume voxels."""
        return np.asarray(zyx, dtype=np.float64) * self.scale + self.offset

    def to_truth(self, zyx: np.ndarray) -> np.ndarray:
        """Volume ``(n, 3)`` ``(z, y, x)`` voxel coordinates -> truth-frame voxels."""
        return (np.asarray(zyx, dtype=np.float64) - self.offset) / self.scale

    @property
    def mean_scale(self) -> float:
        """Average scale (volume voxels per truth voxel), for radii."""
        return float(np.mean(self.scale))

    def resample(self, labels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """Nearest-neighbour resampling of a truth-frame label volume onto a volume grid.

        Parameters
        ----------
        labels : array, shape (Z, Y, X) of the truth
        shape : the volume's (Z', Y', X')

        Returns
        -------
        array, shape ``shape``, dtype of ``labels``
        """
        index = []
        for axis in range(3):
            source = (np.arange(shape[axis]) - self.offset[axis]) / self.scale[axis]
            index.append(np.clip(np.rint(source).astype(np.int64), 0, labels.shape[axis] - 1))
        return labels[np.ix_(*index)]


def reconstruction_frame(
    phantom_shape: tuple[int, int, int],
    *,
    thickness: int | None = None,
    pre_binning: int = 1,
    z_valid: tuple[int, int] | None = None,
    post_binning: int = 1,
) -> Frame:
    """The frame of a reconstruction made by :func:`faket.tomography.reconstruct`.

    Z is centred on the tilt axis (``thickness`` pre-binned slices around the
    phantom's centre), cropped to ``z_valid`` and binned; Y and X are binned.
    Binning ``b`` maps voxel ``c`` to ``(c - (b - 1) / 2) / b`` (block centres).

    Parameters
    ----------
    phantom_shape : (Z, Y, X) of the grand model.
    thickness, pre_binning, z_valid, post_binning : as in the reconstruction settings.

    Returns
    -------
    Frame
    """
    depth = phantom_shape[0]
    slices = thickness if thickness is not None else depth // pre_binning
    # Z: pre-binned coordinate about the centre, re-centred on the reconstruction.
    z_offset = slices // 2 - (depth // 2) / pre_binning - (z_valid[0] if z_valid else 0)
    offsets = [z_offset, -(pre_binning - 1) / 2 / pre_binning, -(pre_binning - 1) / 2 / pre_binning]
    scale = 1.0 / (pre_binning * post_binning)
    post = -(post_binning - 1) / 2 / post_binning
    return Frame(
        scale=(scale, scale, scale),
        offset=tuple(o / post_binning + post for o in offsets),  # type: ignore[arg-type]
    )


@dataclass
class Tomogram:
    """A volume and its annotation.

    Attributes
    ----------
    volume : array, shape (Z, Y, X)
        The tomogram (any float dtype; normalised before use).
    particles : DataFrame
        Particle list in the truth frame (:data:`faket.io.COLUMNS`).
    truth : GroundTruth or None
        Needed to score predictions (validation / test tomograms).
    class_mask : array or None
        Class ids (truth frame; ids of ``classes["id"]``), for mask targets.
    classes : DataFrame or None
        Class table (``id, name, kind, diameter_nm``).
    frame : Frame
        Truth frame -> volume voxels.
    voxel_size : float or None
        Voxel size of ``volume`` in Å (for class radii from diameters).
    name : str
    """

    volume: np.ndarray
    particles: pd.DataFrame
    truth: GroundTruth | None = None
    class_mask: np.ndarray | None = None
    classes: pd.DataFrame | None = None
    frame: Frame = field(default_factory=Frame)
    voxel_size: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if np.ndim(self.volume) != 3:
            raise FaketError(
                f"tomogram {self.name!r}: volume must be 3-D, got {np.shape(self.volume)}"
            )
        self.particles = validate_particles(
            self.particles, f"particles of {self.name or 'tomogram'}"
        )
        if self.classes is None and self.truth is not None:
            self.classes = self.truth.classes

    @classmethod
    def from_truth(cls, volume: np.ndarray, truth: GroundTruth, **kwargs) -> Tomogram:
        """A tomogram whose particles and class table come from ``truth``."""
        return cls(volume=volume, particles=truth.particles, truth=truth, **kwargs)

    def centres(self) -> np.ndarray:
        """Particle centres in volume voxels, ``(n, 3)`` ``(z, y, x)``."""
        return self.frame.to_volume(self.particles[["z", "y", "x"]].to_numpy(np.float64))


def load_tomogram(
    folder: str | os.PathLike[str],
    volume_file: str,
    *,
    frame: Frame | None = None,
    with_truth: bool = True,
    with_class_mask: bool = False,
) -> Tomogram:
    """A tomogram folder's volume and annotation.

    Parameters
    ----------
    folder : tomogram folder (``tomo_NNN`` of a dataset or a phantom folder).
    volume_file : file name of the volume inside ``folder`` (or a path).
    frame : truth -> volume map; default identity.
    with_truth : read the occupancy mask too (needed to score; training needs only the
        particle list and class table).
    with_class_mask : also map ``class_mask.mrc`` (memory-mapped; for mask targets).
    """
    base = Path(folder)
    path = base / volume_file
    if not path.is_file():
        raise FaketError(f"{path}: no such volume; has the dataset been generated (faket run)?")
    volume = read_mrc(path, ndim=3)
    truth = load_truth(base) if with_truth else None
    table = base / TRUTH_FILES["classes"]
    classes = pd.read_csv(table, keep_default_na=False) if table.is_file() else None
    mask = read_mrc(base / CLASS_MASK, ndim=3, mmap=True).data if with_class_mask else None
    if truth is None and not (base / TRUTH_FILES["particles"]).is_file():
        raise FaketError(f"{base} has no {TRUTH_FILES['particles']}; it is not annotated")
    particles = truth.particles if truth else read_shrec_particles(base / TRUTH_FILES["particles"])
    return Tomogram(
        volume=volume.data,
        particles=particles,
        truth=truth,
        class_mask=mask,
        classes=classes,
        frame=frame or Frame(),
        voxel_size=volume.voxel_size,
        name=f"{base.name}/{path.name}",
    )


@dataclass
class DatasetSplit:
    """Folders of a dataset's training, validation and test tomograms, and its frame."""

    train: list[Path]
    validation: Path | None
    test: Path
    frame: Frame


def dataset_split(dataset_dir: str | os.PathLike[str], validation: bool = True) -> DatasetSplit:
    """Which tomograms of a ``faket run`` dataset train, validate and test.

    The test tomogram is the config's ``test_tomogram``; the last training tomogram
    validates (when ``validation`` and there are at least two).
    """
    from faket.pipeline.config import load_dataset_config

    base = Path(dataset_dir)
    config = (
        load_dataset_config(base / DATASET_CONFIG) if (base / DATASET_CONFIG).is_file() else None
    )
    if config is None:
        raise FaketError(f"{base}: no {DATASET_CONFIG}; pass a dataset folder made by faket run")
    folders = [base / f"tomo_{i:03d}" for i in config.training_indices]
    missing = [f for f in folders if not (f / TRUTH_FILES["particles"]).is_file()]
    if missing:
        raise FaketError(f"{missing[0]} is incomplete; finish the dataset with faket run first")
    held_out = folders.pop() if validation and len(folders) > 1 else None
    settings = config.reconstruction
    frame = reconstruction_frame(
        tuple(config.phantom.shape),
        thickness=settings.thickness,
        pre_binning=settings.pre_binning,
        z_valid=settings.z_valid,
        post_binning=settings.post_binning,
    )
    return DatasetSplit(folders, held_out, base / f"tomo_{config.test_index:03d}", frame)

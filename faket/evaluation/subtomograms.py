"""Subtomograms (boxes) cut at particle positions and at background positions.

The classification judge (:mod:`faket.evaluation.classify`) learns from boxes centred on
the ground-truth particles of a tomogram, plus *background* boxes centred where no
particle is: farther than ``radius + box / 4`` from every particle centre (vesicles
and fiducials included). Volumes are standardised (as DeepFinder feeds them) and padded
with zeros so that boxes near the border can be cut; boxes larger than the network's
input are binned by an integer factor. Augmentation keeps the missing wedge where it
was: a 180° rotation about the tilt axis (Y) and integer shifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from faket.errors import FaketError
from faket.evaluation.data import Tomogram
from faket.evaluation.inference import normalize
from faket.evaluation.targets import class_radii

BACKGROUND = "background"
#: Tries per wanted background position before giving up on finding more.
_BACKGROUND_TRIES = 200


def box_geometry(radii: dict[str, float], jitter: int, box_size: int | None, input_size: int):
    """``(box, binning)``: box side in volume voxels and the integer binning.

    Boxes are binned when the largest particle is wider than ``input_size``; the default
    box holds the largest particle, the jitter and a voxel of margin on each side, but
    the network sees at most ``input_size`` (rounded up to even) voxels.
    """
    diameter = 2 * max(radii.values(), default=4.0)
    binning = max(1, math.ceil(diameter / input_size))
    if box_size is None:
        wanted = math.ceil((diameter + 2 * jitter + 2) / binning)
        side = min(wanted, input_size)
    else:
        side = math.ceil(box_size / binning)
    side = max(16, side + side % 2)
    return side * binning, binning


def background_positions(
    shape: Sequence[int],
    centres: np.ndarray,
    radii: np.ndarray,
    count: int,
    box: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Up to ``count`` box centres ``(z, y, x)`` inside the volume, away from particles.

    A position qualifies when it is farther than ``radius_j + box / 4`` from every
    particle centre ``j`` and the box lies inside the volume (where the volume is
    thinner than the box, centred on that axis).
    """
    low = np.array([min(box / 2, s / 2) for s in shape])
    high = np.array([max(s - box / 2, s / 2) for s in shape])
    found: list[np.ndarray] = []
    for _ in range(_BACKGROUND_TRIES):
        if len(found) >= count:
            break
        candidates = rng.uniform(low, high, size=(max(count, 8), 3))
        if len(centres):
            gap = np.linalg.norm(candidates[:, None] - centres[None], axis=2)
            candidates = candidates[np.all(gap > radii[None] + box / 4, axis=1)]
        for candidate in candidates:
            far = all(np.linalg.norm(candidate - f) > box / 2 for f in found)
            if far and len(found) < count:
                found.append(candidate)
    return np.array(found, dtype=np.float64).reshape(-1, 3)


@dataclass
class SubtomogramSet:
    """Boxes to cut from a list of standardised, padded volumes.

    Attributes
    ----------
    volumes : list of arrays
        Standardised volumes padded by ``pad`` voxels on every side.
    samples : DataFrame
        One row per box: ``tomogram`` (index into ``volumes``), ``z, y, x`` (centre in
        voxels of the unpadded volume), ``label`` (0 = background, k = ``names[k-1]``),
        ``class_name``.
    names : list of str
        Particle classes (label k is ``names[k - 1]``).
    box, binning, pad : int
    """

    volumes: list[np.ndarray]
    samples: pd.DataFrame
    names: list[str]
    box: int
    binning: int
    pad: int

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        """Label of every box, shape (n,)."""
        return np.array(self.samples["label"], dtype=np.int64)

    @property
    def input_size(self) -> int:
        """Side of the boxes the network sees (after binning)."""
        return self.box // self.binning

    def cut(
        self,
        indices: Sequence[int] | np.ndarray,
        rng: np.random.Generator | None = None,
        jitter: int = 0,
        rotate: bool = False,
    ) -> np.ndarray:
        """Boxes ``(n, 1, s, s, s)`` float32; with ``rng``: shifted by up to ``jitter``
        voxels and rotated 180° about Y with probability 1/2."""
        rows = self.samples.iloc[np.asarray(indices, dtype=np.int64)]
        out = np.empty((len(rows), 1, *(self.input_size,) * 3), dtype=np.float32)
        centres = np.rint(rows[["z", "y", "x"]].to_numpy(np.float64)).astype(np.int64)
        for k, (tomogram, centre) in enumerate(zip(rows["tomogram"], centres, strict=True)):
            if rng is not None and jitter:
                centre = centre + rng.integers(-jitter, jitter + 1, size=3)
            start = centre + self.pad - self.box // 2
            volume = self.volumes[int(tomogram)]
            start = np.clip(start, 0, np.array(volume.shape) - self.box)
            image = volume[tuple(slice(s, s + self.box) for s in start)]
            if rng is not None and rotate and rng.random() < 0.5:
                image = image[::-1, :, ::-1]  # 180° about the tilt axis Y
            out[k, 0] = bin_box(image, self.binning)
        return out


def bin_box(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor``-cubed blocks (the side must be a multiple of ``factor``)."""
    if factor == 1:
        return image
    s = image.shape[0] // factor
    return image.reshape(s, factor, s, factor, s, factor).mean(axis=(1, 3, 5))


def subtomogram_set(
    tomograms: Sequence[Tomogram],
    names: Sequence[str],
    *,
    box: int,
    binning: int,
    jitter: int,
    background: int | None,
    seed: int,
) -> SubtomogramSet:
    """Boxes at every particle of the classes ``names`` and background boxes.

    Parameters
    ----------
    tomograms : annotated tomograms (volume, particles, frame, voxel size).
    names : particle classes to cut (others are only kept away from background boxes).
    box, binning : box side (volume voxels) and binning, see :func:`box_geometry`.
    jitter : the largest training shift (voxels); it widens the padding.
    background : background boxes per tomogram (None: the mean number per class).
    seed : seeds the background positions (the same seed gives the same boxes).
    """
    names = list(names)
    rng = np.random.default_rng(seed)
    pad = box // 2 + jitter + 1
    volumes, rows = [], []
    for index, tomogram in enumerate(tomograms):
        volumes.append(np.pad(normalize(tomogram.volume), pad))
        centres = tomogram.centres()
        classes = tomogram.particles["class_name"].astype(str).to_numpy()
        chosen = np.isin(classes, names)
        for centre, name in zip(centres[chosen], classes[chosen], strict=True):
            rows.append((index, *centre, names.index(name) + 1, name))
        radii = class_radii(sorted(set(classes)), tomogram.classes, tomogram.voxel_size)
        wanted = background if background is not None else max(1, round(chosen.sum() / len(names)))
        spots = background_positions(
            tomogram.volume.shape, centres, np.array([radii[c] for c in classes]), wanted, box, rng
        )
        rows += [(index, *spot, 0, BACKGROUND) for spot in spots]
    if not rows:
        raise FaketError("no particles of the chosen classes and no background to cut boxes from")
    samples = pd.DataFrame(rows, columns=["tomogram", "z", "y", "x", "label", "class_name"])
    return SubtomogramSet(volumes, samples, names, box, binning, pad)

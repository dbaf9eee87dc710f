"""Training targets: label volumes with spheres at the particles, or the class mask.

Label 0 is background; label ``k`` is class ``class_names[k - 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from faket.errors import FaketError
from faket.evaluation.classes import class_sizes
from faket.evaluation.data import Tomogram

#: Sphere radius (volume voxels) of a class whose size is unknown.
FALLBACK_RADIUS = 3.0


def label_dtype(n_classes: int) -> np.dtype:
    """uint8 up to 255 labels, else int16."""
    return np.dtype(np.uint8) if n_classes <= 255 else np.dtype(np.int16)


def class_radii(
    class_names: Sequence[str],
    classes: pd.DataFrame | None,
    voxel_size: float | None,
    *,
    scale: float = 1.0,
    overrides: dict[str, float] | None = None,
) -> dict[str, float]:
    """Target sphere radius of each class, in voxels of the volume.

    Parameters
    ----------
    class_names : the classes to train.
    classes : class table with ``diameter_nm`` (or ``diameter`` in Å), or None.
    voxel_size : voxel size of the volume in Å (None: sizes unknown).
    scale : multiplies every radius derived from a diameter.
    overrides : class -> radius (voxels), taking precedence.

    Returns
    -------
    dict of str -> float
        Radius ``scale * diameter / 2 / voxel_size``, at least 1 voxel; classes of
        unknown size get :data:`FALLBACK_RADIUS`.
    """
    sizes = class_sizes(classes)
    overrides = overrides or {}
    radii = {}
    for name in class_names:
        if name in overrides:
            radii[name] = float(overrides[name])
        elif name in sizes and voxel_size:
            radii[name] = max(1.0, scale * sizes[name] * 10.0 / voxel_size / 2.0)
        else:
            radii[name] = FALLBACK_RADIUS
    return radii


def sphere_labels(
    shape: tuple[int, int, int],
    centres: np.ndarray,
    labels: np.ndarray,
    radii: np.ndarray,
) -> np.ndarray:
    """Paint a ball per particle into a label volume.

    Larger balls are painted first so that a small particle next to a large one
    keeps its label where they overlap.

    Parameters
    ----------
    shape : (Z, Y, X) of the volume.
    centres : array, shape (n, 3)
        ``(z, y, x)`` voxel coordinates (may be fractional or outside the volume).
    labels : array, shape (n,), int >= 1
    radii : array, shape (n,), voxels

    Returns
    -------
    array, shape ``shape``
        Voxels within ``radius`` of a centre carry its label, others 0.
    """
    labels = np.asarray(labels, dtype=np.int64)
    out = np.zeros(shape, dtype=label_dtype(int(labels.max(initial=0))))
    upper = np.array(shape)
    for index in np.argsort(-np.asarray(radii, dtype=np.float64), kind="stable"):
        centre, radius = np.asarray(centres[index], dtype=np.float64), float(radii[index])
        low = np.maximum(np.floor(centre - radius).astype(int), 0)
        high = np.minimum(np.ceil(centre + radius).astype(int) + 1, upper)
        if np.any(high <= low):
            continue
        grid = np.ogrid[tuple(slice(a, b) for a, b in zip(low, high, strict=True))]
        inside = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
        out[tuple(slice(a, b) for a, b in zip(low, high, strict=True))][inside] = labels[index]
    return out


def mask_labels(class_mask: np.ndarray, id_to_label: dict[int, int]) -> np.ndarray:
    """Map class-mask ids to training labels (ids not listed become background).

    Parameters
    ----------
    class_mask : array, shape (Z, Y, X), integer class ids
    id_to_label : class id -> label

    Returns
    -------
    array, same shape
    """
    mask = np.asarray(class_mask)
    if mask.dtype.kind == "f":
        mask = np.rint(mask)
    mask = mask.astype(np.int64)
    table = np.zeros(max(int(mask.max(initial=0)), *id_to_label.keys(), 0) + 1, dtype=np.int64)
    for class_id, label in id_to_label.items():
        table[class_id] = label
    return table[np.clip(mask, 0, None)].astype(label_dtype(max(id_to_label.values(), default=0)))


def tomogram_targets(
    tomogram: Tomogram,
    class_names: Sequence[str],
    radii: dict[str, float],
    kind: str = "spheres",
    mask_classes: Sequence[str] = ("vesicle",),
) -> np.ndarray:
    """The label volume a network should learn for ``tomogram``.

    Parameters
    ----------
    tomogram : the annotated tomogram.
    class_names : trained classes (label ``k`` = ``class_names[k - 1]``).
    radii : class -> sphere radius (volume voxels).
    kind : ``spheres`` (balls at the particles; classes in ``mask_classes``, e.g. hollow
        vesicles, are taken from the class mask when there is one) or ``mask`` (the
        class mask for every class).
    mask_classes : see ``kind``.

    Returns
    -------
    array, shape of the volume
    """
    if kind not in ("spheres", "mask"):
        raise FaketError(f"unknown target kind {kind!r}; use spheres or mask")
    shape = tuple(np.shape(tomogram.volume))
    label_of = {name: k + 1 for k, name in enumerate(class_names)}
    from_mask = set(class_names) if kind == "mask" else set(mask_classes) & set(class_names)
    has_mask = (
        tomogram.class_mask is not None
        and tomogram.classes is not None
        and "id" in tomogram.classes.columns
    )
    if kind == "mask" and not has_mask:
        raise FaketError(
            f"{tomogram.name or 'tomogram'}: mask targets need class_mask.mrc and a "
            "classes.csv with id and name columns"
        )
    if not has_mask:
        from_mask = set()
    names = tomogram.particles["class_name"].to_numpy(dtype=object)
    chosen = np.array([n in label_of and n not in from_mask for n in names], dtype=bool)
    labels = sphere_labels(
        shape,
        tomogram.centres()[chosen],
        np.array([label_of[n] for n in names[chosen]], dtype=np.int64),
        np.array([radii[n] for n in names[chosen]], dtype=np.float64),
    )
    if from_mask:
        ids = {
            int(i): label_of[str(n)]
            for i, n in zip(tomogram.classes["id"], tomogram.classes["name"], strict=True)
            if str(n) in from_mask
        }
        painted = mask_labels(tomogram.frame.resample(tomogram.class_mask, shape), ids)
        labels = np.where(painted > 0, painted, labels).astype(labels.dtype)
    return labels

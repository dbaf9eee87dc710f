"""From a tomogram to a particle list: patch-wise segmentation, mean-shift clustering.

Segmentation tiles the volume with overlapping cubic patches that stay inside the
volume (as in training, so the network's zero padding sits where it did there); every
voxel takes its scores from the patch whose centre is nearest, so with a margin
``m`` each voxel more than ``m`` voxels from the volume border has at least ``m``
voxels of context on every side. Clustering groups the particle voxels with
mean shift (:mod:`faket.evaluation.clustering`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from faket.device import chunk_size, memory_budget, reuse_freed_host_memory, select_device
from faket.errors import FaketError
from faket.evaluation.clustering import cluster
from faket.evaluation.network import SIZE_MULTIPLE, TrainedModel, place_network
from faket.evaluation.targets import label_dtype
from faket.progress import progress as progress_bar


def normalize(volume: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (float32), as DeepFinder feeds tomograms."""
    data = np.asarray(volume, dtype=np.float32)
    std = float(data.std())
    return (data - float(data.mean())) / (std if std > 0 else 1.0)


def patch_starts(length: int, patch: int, margin: int) -> tuple[list[int], np.ndarray]:
    """Patch origins along one axis and, for every voxel, the patch it is read from.

    Parameters
    ----------
    length : voxels along the axis (>= ``patch``).
    patch : patch side.
    margin : context kept on each side (the stride is ``patch - 2 * margin``).

    Returns
    -------
    starts : list of int
        Origins, multiples of the stride, the last one ``length - patch``.
    owner : array, shape (length,)
        Index into ``starts`` of the patch whose centre is nearest (ties: the first).
    """
    stride = patch - 2 * margin
    if stride < 1:
        raise FaketError(
            f"margin {margin} leaves no stride in patches of {patch}; use a smaller margin"
        )
    starts = list(range(0, max(length - patch, 0) + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    centres = np.array(starts, dtype=np.float64) + (patch - 1) / 2
    owner = np.argmin(np.abs(np.arange(length)[:, None] - centres[None, :]), axis=1)
    return starts, owner


def _pad_to(volume: np.ndarray, patch: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    # A volume thinner than a patch is padded with zeros (its mean after normalising).
    shape = volume.shape
    padded_shape = tuple(max(s, patch) for s in shape)
    if padded_shape == shape:
        return volume, shape
    padded = np.zeros(padded_shape, dtype=volume.dtype)
    padded[: shape[0], : shape[1], : shape[2]] = volume
    return padded, shape


@torch.no_grad()
def segment(
    volume: np.ndarray,
    network: nn.Module,
    *,
    patch_size: int = 48,
    margin: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    normalise: bool = True,
    return_probabilities: bool = False,
    memory_budget_bytes: int | None = None,
    progress: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Voxel-wise classes of a whole tomogram by overlapping patches.

    Parameters
    ----------
    volume : array, shape (Z, Y, X)
    network : module mapping ``(B, 1, P, P, P)`` to logits ``(B, C, P, P, P)``.
    patch_size : patch side P (a multiple of 4).
    margin : context discarded at patch borders (default ``P // 6``).
    batch_size : patches per forward pass (default: what fits the memory budget).
    device : compute device (``auto`` picks CUDA, MPS, CPU).
    normalise : standardise the volume first (False if already done).
    return_probabilities : also return the softmax scores (C x volume floats).
    memory_budget_bytes : working memory per batch (default: faket.device's budget).
    progress : progress bar.

    Returns
    -------
    labels : array, shape (Z, Y, X)
        Arg-max class per voxel (0 = background).
    probabilities : array, shape (C, Z, Y, X), float32 (only if requested)
    """
    if patch_size % SIZE_MULTIPLE or patch_size < SIZE_MULTIPLE:
        raise FaketError(
            f"patch size must be a positive multiple of {SIZE_MULTIPLE}, got {patch_size}"
        )
    margin = patch_size // 6 if margin is None else int(margin)
    dev = select_device(device)
    was_training = network.training
    place_network(network.eval(), dev)
    data = normalize(volume) if normalise else np.asarray(volume, dtype=np.float32)
    data, shape = _pad_to(data, patch_size)
    grids = [patch_starts(n, patch_size, margin) for n in data.shape]
    origins = [(z, y, x) for z in grids[0][0] for y in grids[1][0] for x in grids[2][0]]
    if batch_size is None:
        batch_size = segment_batch_size(patch_size, len(origins), dev, memory_budget_bytes)
    batches = [origins[i : i + batch_size] for i in range(0, len(origins), batch_size)]
    with reuse_freed_host_memory(dev.type == "cpu"):
        labels, probabilities = _segment_batches(
            network, data, batches, grids, patch_size, dev, return_probabilities, progress
        )
    network.train(was_training)
    crop = tuple(slice(0, s) for s in shape)
    if return_probabilities:
        return labels[crop], probabilities[(slice(None), *crop)]
    return labels[crop]


def segment_batch_size(
    patch_size: int, n_patches: int, device: torch.device, budget_bytes: int | None = None
) -> int:
    """Patches per forward pass that fit the device's memory budget.

    On CUDA the budget is half the free memory at the time of the call
    (:func:`faket.device.memory_budget`), so a bigger or emptier GPU segments in bigger
    batches; elsewhere a fixed default. Live activations peak near 200 float32 channels
    per voxel at full resolution (DeepFinder widths); 256 leaves room for the
    convolution workspace.

    Returns
    -------
    int, between 1 and ``n_patches``
    """
    per_patch = 4 * 256 * patch_size**3
    # elements_per_item: no tensor of a batch may exceed 2**31 elements (some CUDA
    # kernels refuse bigger ones).
    budget = memory_budget(device, budget_bytes)
    return chunk_size(per_patch, n_patches, budget, elements_per_item=per_patch // 4)


def _segment_batches(
    network, data, batches, grids, patch_size, dev, return_probabilities, progress
):
    """Labels (and probabilities) of the padded volume ``data``, batch of patches by batch."""
    labels = probabilities = None
    for batch in progress_bar(batches, "segmenting", total=len(batches), enabled=progress):
        patches = np.stack([data[tuple(slice(o, o + patch_size) for o in at)] for at in batch])
        logits = network(torch.from_numpy(patches[:, None]).to(dev))
        if labels is None:
            labels = np.zeros(data.shape, dtype=label_dtype(logits.shape[1]))
            if return_probabilities:
                probabilities = np.zeros((logits.shape[1], *data.shape), dtype=np.float32)
        best = logits.argmax(dim=1).cpu().numpy()
        scores = torch.softmax(logits, dim=1).cpu().numpy() if return_probabilities else None
        for index, origin in enumerate(batch):
            target, source = _owned(origin, grids)
            labels[target] = best[index][source]
            if scores is not None:
                probabilities[(slice(None), *target)] = scores[index][(slice(None), *source)]
    return labels, probabilities


def _owned(origin, grids) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Volume slices this patch owns, and the same region in patch coordinates."""
    target, source = [], []
    for axis, start in enumerate(origin):
        starts, owner = grids[axis]
        mine = np.flatnonzero(owner == starts.index(start))
        low, high = int(mine[0]), int(mine[-1]) + 1
        target.append(slice(low, high))
        source.append(slice(low - start, high - start))
    return tuple(target), tuple(source)


def default_cluster_settings(
    model: TrainedModel, *, bandwidth_scale: float = 1.0, min_size_fraction: float = 0.1
) -> tuple[dict[str, float], dict[str, int]]:
    """Per-class bandwidth (``scale`` x target radius) and minimum cluster size
    (``fraction`` of the target ball's volume, at least 1 voxel)."""
    bandwidth = {n: max(1.0, bandwidth_scale * r) for n, r in model.radii.items()}
    minimum = {
        n: max(1, int(round(min_size_fraction * 4.0 / 3.0 * np.pi * r**3)))
        for n, r in model.radii.items()
    }
    return bandwidth, minimum


def inference_patch_size(training_patch: int) -> int:
    """Default inference patch: the training patch, at least 64 voxels (bigger patches
    waste less work on overlaps; the network is fully convolutional)."""
    return max(int(training_patch), 64)


#: Picking settings for checkpoints that do not store their own (training's defaults).
DEFAULT_CLUSTERING = {
    "mode": "per_class",
    "bandwidth_scale": 1.0,
    "min_size_fraction": 0.1,
    "suppression_scale": None,
}


def cluster_settings(model: TrainedModel, **given) -> dict:
    """Picking settings: those ``given`` (not None), else the model's, else the defaults."""
    stored = {k: v for k, v in model.clustering.items() if k in DEFAULT_CLUSTERING}
    chosen = {k: v for k, v in given.items() if v is not None}
    return DEFAULT_CLUSTERING | stored | chosen


def predict(
    volume: np.ndarray,
    model: TrainedModel,
    *,
    frame=None,
    bandwidth_scale: float | None = None,
    min_size_fraction: float | None = None,
    mode: str | None = None,
    suppression_scale: float | None = None,
    patch_size: int | None = None,
    margin: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> pd.DataFrame:
    """Segment a tomogram and cluster the segmentation into a particle list.

    Parameters
    ----------
    volume : array, shape (Z, Y, X)
    model : trained network and its class names / radii.
    frame : :class:`~faket.evaluation.data.Frame` to convert the coordinates into the
        ground truth's voxels (default: leave them in voxels of ``volume``).
    bandwidth_scale, min_size_fraction : see :func:`default_cluster_settings`.
    mode : clustering mode (see :func:`cluster`).
    suppression_scale : non-maximum suppression radius / target radius (``per_class``
        mode; None: the bandwidth).
        These four default to the settings stored with the model (those its training
        validated with), else :data:`DEFAULT_CLUSTERING`.
    patch_size : inference patch side (default :func:`inference_patch_size`).
    margin, batch_size, device, progress : see :func:`segment`.

    Returns
    -------
    DataFrame
        :data:`faket.io.COLUMNS` plus ``cluster_size``, largest clusters first.
    """
    labels = segment(
        volume,
        model.network,
        patch_size=patch_size or inference_patch_size(model.patch_size),
        margin=margin,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    return locate(
        labels,
        model,
        frame=frame,
        bandwidth_scale=bandwidth_scale,
        min_size_fraction=min_size_fraction,
        mode=mode,
        suppression_scale=suppression_scale,
    )


def locate(
    labels: np.ndarray,
    model: TrainedModel,
    *,
    frame=None,
    bandwidth_scale: float | None = None,
    min_size_fraction: float | None = None,
    mode: str | None = None,
    suppression_scale: float | None = None,
) -> pd.DataFrame:
    """Particles from a label volume with the model's per-class cluster settings.

    Parameters
    ----------
    labels : array, shape (Z, Y, X)
        Class per voxel as :func:`segment` returns it (float labels are rounded).
    model, frame, bandwidth_scale, min_size_fraction, mode, suppression_scale :
        see :func:`predict`.

    Returns
    -------
    DataFrame
        As :func:`predict`.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        labels = np.rint(labels).astype(np.int64)
    chosen = cluster_settings(
        model,
        bandwidth_scale=bandwidth_scale,
        min_size_fraction=min_size_fraction,
        mode=mode,
        suppression_scale=suppression_scale,
    )
    scale = chosen["suppression_scale"]
    suppression = None if scale is None else {n: scale * r for n, r in model.radii.items()}
    bandwidth, minimum = default_cluster_settings(
        model,
        bandwidth_scale=chosen["bandwidth_scale"],
        min_size_fraction=chosen["min_size_fraction"],
    )
    particles = cluster(
        labels,
        model.class_names,
        bandwidth=bandwidth,
        min_cluster_size=minimum,
        mode=chosen["mode"],
        suppression_radius=suppression,
    )
    if frame is not None and len(particles):
        zyx = frame.to_truth(particles[["z", "y", "x"]].to_numpy(np.float64))
        particles[["z", "y", "x"]] = zyx
    return particles

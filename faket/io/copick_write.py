"""Writing copick runs: tomograms (OME-Zarr pyramids), picks and segmentations.

Everything goes through copick and its OME-Zarr helpers (``copick.util.ome``) or ome-zarr's
writer; see :mod:`faket.io.copick` for the conventions and for reading. Needs the optional
extra ``faket[copick]``.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "CHUNK",
    "mean_pyramid",
    "write_label_segmentation",
    "write_panoptic_segmentation",
    "write_picks",
    "write_tomogram",
]

#: Largest zarr chunk edge (voxels): copick's and the Data Portal's 256.
CHUNK = 256


def mean_pyramid(volume: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` scales of a volume, each the mean of 2 x 2 x 2 blocks of the one before.

    Odd sizes round up (as copick's pyramids do); a block cut by the edge averages the
    voxels it has.

    Parameters
    ----------
    volume : array, shape (Z, Y, X)
    levels : number of scales (1 = the volume alone)

    Returns
    -------
    list of float32 arrays, full resolution first
    """
    import torch
    import torch.nn.functional as F

    level = np.ascontiguousarray(volume, dtype=np.float32)  # no copy of a float32 volume
    out = [level]
    if levels == 1:
        return out
    with warnings.catch_warnings():
        # A read-only (memory-mapped) volume is fine: torch only reads it here.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(level)[None, None]
    for _ in range(1, levels):
        tensor = F.avg_pool3d(tensor, 2, ceil_mode=True)
        out.append(tensor[0, 0].numpy())
    return out


def _chunks(shape) -> tuple[int, ...]:
    # zarr (v2) stores every chunk whole: a small volume in a 256³ chunk costs the
    # compression of 256³ voxels. Chunks of the volume's size (up to 256) do not.
    return tuple(min(CHUNK, int(n)) for n in shape)


def write_tomogram(
    run,
    tomo_type: str,
    volume: np.ndarray,
    voxel_size: float,
    levels: int = 3,
    *,
    compress: bool = False,
):
    """Add a tomogram at ``voxel_size`` Å: OME-Zarr with ``levels`` scales (1, 2, 4, ...).

    copick's OME metadata (``copick.util.ome.ome_metadata``) written by ome-zarr's
    ``write_multiscale``, chunks of the volume's size up to :data:`CHUNK`. Uncompressed
    unless ``compress`` (zarr's default Blosc-LZ4): lossless compression saves ~8% on a
    reconstruction's noise and costs more time than the rest of the export together.
    """
    import zarr
    from copick.util.ome import ome_metadata
    from ome_zarr.writer import write_multiscale

    spacing = run.get_voxel_spacing(voxel_size) or run.new_voxel_spacing(voxel_size)
    existed = bool(spacing.get_tomograms(tomo_type))
    tomogram = spacing.new_tomogram(tomo_type, exist_ok=True)
    levels_ = mean_pyramid(volume, levels)
    meta = ome_metadata(dict(zip((voxel_size * 2**k for k in range(levels)), levels_,
                                 strict=True)))  # fmt: skip
    # One chunking per scale: zarr pads every chunk to its full size, compressed or not.
    storage = [{"chunks": _chunks(level.shape), "overwrite": existed} for level in levels_]
    for options in storage if not compress else ():
        options["compressor"] = None
    write_multiscale(
        levels_,
        group=zarr.group(store=tomogram.zarr(), overwrite=existed),
        axes=meta["axes"],
        coordinate_transformations=meta["coordinate_transformations"],
        storage_options=storage,
        compute=True,
        metadata={},
    )
    return tomogram


def write_picks(
    run,
    name: str,
    positions_A: np.ndarray,
    rotations: np.ndarray,
    *,
    user_id: str,
    session_id: str,
    instance_ids: np.ndarray | None = None,
):
    """Store one object's points: ``(n, 3)`` ``(x, y, z)`` in Å and ``(n, 3, 3)`` rotations."""
    positions = np.asarray(positions_A, dtype=np.float64).reshape(-1, 3)
    transforms = np.tile(np.eye(4), (len(positions), 1, 1))
    transforms[:, :3, :3] = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    picks = run.new_picks(name, session_id=session_id, user_id=user_id, exist_ok=True)
    picks.from_numpy(positions, transforms, instance_ids=instance_ids)
    return picks


def write_label_segmentation(
    run, name: str, labels: np.ndarray, voxel_size: float, *, user_id: str, session_id: str
):
    """Store a multilabel segmentation (voxel = object label, 0 = background).

    What copick's ``from_numpy`` writes (its smallest label type, one scale, compressed),
    through copick's own writer, with chunks of the volume's size (up to 256).
    """
    from copick.util.ome import segmentation_pyramid, write_ome_zarr_3d
    from copick.util.segmentation import label_dtype

    segmentation = run.new_segmentation(
        voxel_size, name, session_id, is_multilabel=True, user_id=user_id, exist_ok=True
    )
    labels = np.asarray(labels)
    pyramid = segmentation_pyramid(labels, voxel_size, 1, dtype=label_dtype(labels))
    write_ome_zarr_3d(segmentation.zarr(), pyramid, chunk_size=_chunks(labels.shape))
    return segmentation


def write_panoptic_segmentation(
    run,
    name: str,
    labels: np.ndarray,
    instances: np.ndarray,
    voxel_size: float,
    *,
    user_id: str,
    session_id: str,
):
    """Store a panoptic segmentation: object labels and instance ids within each object.

    What copick's ``from_numpy`` writes for a panoptic segmentation (checked the same way,
    the same metadata), through copick's own writer, with chunks of the volume's size.
    """
    from copick.util.ome import segmentation_pyramid, write_ome_zarr_3d
    from copick.util.segmentation import (
        PANOPTIC_CHANNELS,
        check_panoptic_values,
        checked_label_cast,
        label_dtype,
    )

    segmentation = run.new_segmentation(
        voxel_size, name, session_id, is_panoptic=True, user_id=user_id, exist_ok=True
    )
    data = np.stack([np.asarray(labels), np.asarray(instances)])
    data = checked_label_cast(data, label_dtype(data, floor=np.uint16))
    check_panoptic_values(data[0], data[1], [o.label for o in run.root.pickable_objects])
    metadata = {"copick": {"segmentation_type": "panoptic", "channels": list(PANOPTIC_CHANNELS)}}
    write_ome_zarr_3d(
        segmentation.zarr(),
        segmentation_pyramid(data, voxel_size, 1, dtype=data.dtype),
        chunk_size=_chunks(labels.shape),
        channel_axis=True,
        metadata=metadata,
    )
    return segmentation

"""Ground truth and tomograms from a copick project run (a faket export or the Data Portal).

Coordinates are voxels of one voxel spacing of the run (its only one, or the one asked
for): the frame of the tomogram that predictions are made on. The instance mask is the
run's panoptic ``instances`` segmentation when the picks' owner wrote one (faket's
export does); otherwise a ball of each object's radius is painted at every pick, which
is what real annotations (points only) allow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from faket.errors import FaketError
from faket.evaluation.scoring import GroundTruth
from faket.io import copick as cp


@dataclass
class CopickTruth:
    """A run's annotation in voxels of ``voxel_size``.

    Attributes
    ----------
    truth : GroundTruth
    voxel_size : float
        Å per voxel of the coordinates and the masks.
    instance_source : str
        ``"segmentation"`` (the run's panoptic instance mask) or ``"spheres"`` (balls of
        the objects' radii at the picks).
    """

    truth: GroundTruth
    voxel_size: float
    instance_source: str


def copick_volume(
    project: str | os.PathLike[str],
    run: str,
    *,
    tomo_type: str | None = None,
    voxel_size: float | None = None,
) -> tuple[np.ndarray, float, str]:
    """A run's tomogram: ``(volume, voxel size in Å, tomo type)``.

    See :func:`faket.io.copick.read_tomogram`.
    """
    return cp.read_tomogram(
        cp.open_project(project), run, tomo_type=tomo_type, voxel_size=voxel_size
    )


def _grid_shape(root, run: str, voxel_size: float, tomo_type: str | None) -> tuple[int, int, int]:
    import zarr

    spacing = cp.resolve_spacing(root.get_run(run), voxel_size, tomo_type)
    tomograms = spacing.tomograms if tomo_type is None else spacing.get_tomograms(tomo_type)
    if not tomograms:
        raise FaketError(f"run {run!r} has no tomogram at {voxel_size} Å to size the masks")
    return tuple(zarr.open(tomograms[0].zarr(), mode="r")["0"].shape)  # type: ignore[return-value]


def _instances_from_segmentation(panoptic: np.ndarray, picks: pd.DataFrame) -> np.ndarray:
    labels, within = panoptic[0].astype(np.int64), panoptic[1].astype(np.int64)
    occupancy = np.zeros(labels.shape, dtype=np.int32)
    for label, rows in picks.groupby("label").groups.items():
        rows = np.asarray(rows)
        lookup = np.zeros(
            int(max(within.max(), picks.loc[rows, "instance_id"].max())) + 1, np.int64
        )
        lookup[picks.loc[rows, "instance_id"].to_numpy(np.int64)] = rows + 1
        where = labels == label
        occupancy[where] = lookup[within[where]]
    return occupancy


def _instances_from_spheres(shape, particles: pd.DataFrame, radii_A: np.ndarray, voxel_size):
    from faket.evaluation.targets import sphere_labels

    centres = particles[["z", "y", "x"]].to_numpy(np.float64)
    ids = np.arange(1, len(particles) + 1)
    return sphere_labels(shape, centres, ids, radii_A / voxel_size).astype(np.int32)


def copick_truth(
    project: str | os.PathLike[str],
    run: str,
    *,
    voxel_size: float | None = None,
    tomo_type: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
) -> CopickTruth:
    """The ground truth of a copick run, for :func:`faket.evaluation.score`.

    Parameters
    ----------
    project : the project's config file (or its folder, for one written by faket).
    run : the run's name.
    voxel_size : the voxel spacing (Å) whose voxels the predictions use; default the
        run's only one (holding ``tomo_type``).
    tomo_type : a tomogram type that must exist at that spacing (disambiguates it).
    user_id, session_id : whose picks are the truth; default the only owner of picks.

    Returns
    -------
    CopickTruth
    """
    root = cp.open_project(project)
    if root.get_run(run) is None:
        cp.read_picks(root, run)  # raises the error that lists the runs
    spacing = cp.resolve_spacing(root.get_run(run), voxel_size, tomo_type)
    size = float(spacing.voxel_size)
    picks = cp.read_picks(root, run, user_id=user_id, session_id=session_id)
    if picks.empty:
        raise FaketError(f"run {run!r} has no picks to score against")
    particles = picks[["class_name", "x", "y", "z", "phi", "theta", "psi"]].copy()
    particles[["x", "y", "z"]] = picks[["x", "y", "z"]].to_numpy() / size
    classes = cp.object_classes(root)
    owner = {"user_id": user_id, "session_id": session_id}
    if user_id is None:
        pick_sets = root.get_run(run).get_picks(object_name=list(picks["object"].unique()))
        owner = {"user_id": pick_sets[0].user_id, "session_id": pick_sets[0].session_id}
    panoptic = cp.read_segmentation(
        root, run, cp.INSTANCE_SEGMENTATION, size, panoptic=True, **owner
    )
    if panoptic is not None:
        occupancy, source = _instances_from_segmentation(panoptic, picks), "segmentation"
    else:
        radius = dict(zip(classes["name"], classes["radius_A"], strict=True))
        radii = picks["class_name"].map(radius).to_numpy(np.float64)
        if np.isnan(radii).any():
            missing = picks.loc[np.isnan(radii), "object"].iloc[0]
            raise FaketError(
                f"object {missing!r} has no radius in the copick config and the run has no "
                "instance segmentation; add a radius (Å) to the object"
            )
        shape = _grid_shape(root, run, size, tomo_type)
        occupancy = _instances_from_spheres(shape, particles, radii, size)
        source = "spheres"
    truth = GroundTruth(particles=particles, occupancy=occupancy, classes=classes, voxel_size=size)
    return CopickTruth(truth=truth, voxel_size=size, instance_source=source)

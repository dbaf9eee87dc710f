"""A ``faket run`` dataset as a copick project (``faket export copick``).

One run per tomogram folder (run name = folder name), every reconstruction modality as a
tomogram of that run (tomo type = modality, OME-Zarr scales 1, 2, 4 at the
reconstruction's voxel spacing), the ground-truth particles as picks per object and the
class and instance masks as segmentations, all in the reconstruction's frame: a binned
or cropped reconstruction gets its picks and masks mapped onto its own grid. The writing
itself is :mod:`faket.io.copick`'s (through the ``copick`` library).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from faket import __version__
from faket.errors import FaketError
from faket.io import atomic_folder, read_mrc, read_shrec_particles
from faket.io import copick as cp
from faket.io import copick_write as cpw
from faket.pipeline.config import MODALITIES, DatasetConfig, load_dataset_config
from faket.pipeline.manifest import Manifest, StepRecord, run_step, settings_hash
from faket.pipeline.steps import reconstruction_file, tomogram_folder

CONFIG_FILE = "dataset_config.yaml"


@dataclass
class ExportSummary:
    """What :func:`export_copick` wrote."""

    project: Path
    config: Path
    runs: list[str] = field(default_factory=list)
    tomograms: int = 0
    picks: int = 0
    seconds: float = 0.0


def _frame(config: DatasetConfig):
    from faket.evaluation.data import reconstruction_frame

    settings = config.reconstruction
    return reconstruction_frame(
        tuple(config.phantom.shape),
        thickness=settings.thickness,
        pre_binning=settings.pre_binning,
        z_valid=settings.z_valid,
        post_binning=settings.post_binning,
    )


def _class_table(folders: list[Path]) -> pd.DataFrame:
    tables = [pd.read_csv(f / "classes.csv", keep_default_na=False) for f in folders]
    for folder, table in zip(folders[1:], tables[1:], strict=True):
        if list(table["name"]) != list(tables[0]["name"]) or list(table["id"]) != list(
            tables[0]["id"]
        ):
            raise FaketError(
                f"{folder / 'classes.csv'} lists other classes than {folders[0] / 'classes.csv'}; "
                "a copick project has one set of objects"
            )
    return tables[0]


def _complete_folders(dataset: Path, config: DatasetConfig) -> list[Path]:
    folders = [tomogram_folder(dataset, i) for i in range(config.n_tomograms)]
    for folder in folders:
        for name in (
            "classes.csv",
            "particle_locations.txt",
            "class_mask.mrc",
            "occupancy_mask.mrc",
            reconstruction_file("benchmark"),
        ):
            if not (folder / name).is_file():
                raise FaketError(
                    f"{folder / name} is missing; finish the dataset with faket run first"
                )
    return folders


def export_copick(
    dataset_dir: str | os.PathLike[str],
    project_dir: str | os.PathLike[str],
    *,
    user_id: str = "faket",
    session_id: str = "0",
    levels: int = 3,
    modalities: list[str] | None = None,
    compress: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> ExportSummary:
    """Write a dataset made by ``faket run`` as a copick project.

    Parameters
    ----------
    dataset_dir : the dataset folder (with ``dataset_config.yaml`` and ``tomo_NNN/``).
    project_dir : the project folder (created): ``copick_config.json`` and the runs.
    user_id, session_id : owner of the picks and segmentations (copick's ``"0"`` session
        marks a tool's output).
    levels : OME-Zarr scales of every tomogram (3: 1, 2 and 4 times the voxel spacing).
    modalities : reconstructions to export; default every one present.
    compress : Blosc-compress the tomograms too (segmentations always are); ~8% smaller
        for a noisy reconstruction, and slower (see :func:`faket.io.copick.write_tomogram`).
    overwrite : replace an existing project folder (one holding a copick config).
    progress : a progress bar on stderr.

    Returns
    -------
    ExportSummary
    """
    cp.import_copick()
    start = time.perf_counter()
    dataset = Path(dataset_dir)
    if not (dataset / CONFIG_FILE).is_file():
        raise FaketError(f"{dataset}: no {CONFIG_FILE}; pass a dataset folder made by faket run")
    if levels < 1:
        raise FaketError(f"levels must be at least 1, got {levels}")
    unknown = sorted(set(modalities or ()) - set(MODALITIES))
    if unknown:
        raise FaketError(f"unknown modality {unknown[0]!r}; choose from {', '.join(MODALITIES)}")
    config = load_dataset_config(dataset / CONFIG_FILE)
    folders = _complete_folders(dataset, config)
    classes = _class_table(folders)
    objects = cp.pickable_objects(classes)
    names = {int(row.id): obj.name for row, obj in zip(classes.itertuples(), objects, strict=True)}
    target = Path(project_dir)
    summary = ExportSummary(project=target, config=target / cp.CONFIG_FILE)
    description = f"faket {__version__} dataset {config.name!r} ({dataset.resolve()})"
    options = {"user_id": user_id, "session_id": session_id, "levels": levels}
    options |= {"compress": compress, "modalities": modalities or MODALITIES}
    with atomic_folder(target, overwrite=overwrite, marker=cp.CONFIG_FILE) as staging:
        root = cp.new_project(
            staging / cp.CONFIG_FILE, staging, objects, name=config.name, description=description
        )
        _export_runs(root, folders, _frame(config), names, options, summary, progress)
        # The final config points at the final folder, which the rename below creates.
        cp.new_project(
            staging / cp.CONFIG_FILE, target, objects, name=config.name, description=description
        )
    summary.seconds = time.perf_counter() - start
    return summary


@contextmanager
def _one_torch_thread():
    # Runs go two at a time; torch's own threads on top would only oversubscribe the cores.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _export_runs(root, folders, frame, names, options, summary, progress) -> None:
    """Every tomogram folder as a run, two at a time (one's file-system work overlaps the
    other's arithmetic: zarr, torch and file writes release the GIL)."""
    runs = [root.new_run(folder.name) for folder in folders]
    with _one_torch_thread(), ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        jobs = [
            pool.submit(_export_run, run, folder, frame, names, **options)
            for run, folder in zip(runs, folders, strict=True)
        ]
        try:
            for job in _bar(as_completed(jobs), len(jobs), progress):
                tomograms, picks = job.result()
                summary.tomograms += tomograms
                summary.picks += picks
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
    summary.runs = [folder.name for folder in folders]


def _bar(items, total: int, enabled: bool):
    if not enabled:
        return items
    from rich.console import Console
    from rich.progress import track

    console = Console(stderr=True)
    return track(items, total=total, description="copick export", console=console, transient=True)


def within_object_ids(class_ids: np.ndarray) -> np.ndarray:
    """Instance number of each particle within its class: 1, 2, ... in list order.

    Parameters
    ----------
    class_ids : array, shape (n,)
        The class of particle ``i`` (instance ``i + 1`` of the occupancy mask).

    Returns
    -------
    array, shape (n + 1,)
        Index = global instance id (0 = background -> 0), value = number within its class.
    """
    ids = np.asarray(class_ids)
    out = np.zeros(len(ids) + 1, dtype=np.int64)
    for value in np.unique(ids):
        members = np.flatnonzero(ids == value)
        out[members + 1] = np.arange(1, len(members) + 1)
    return out


def _export_run(
    run,
    folder: Path,
    frame,
    names: dict[int, str],
    *,
    modalities,
    user_id: str,
    session_id: str,
    levels: int,
    compress: bool,
) -> tuple[int, int]:
    classes = pd.read_csv(folder / "classes.csv", keep_default_na=False)
    label_of_name = dict(zip(classes["name"], classes["id"].astype(int), strict=True))
    particles = read_shrec_particles(folder / "particle_locations.txt")
    present = [m for m in modalities if (folder / reconstruction_file(m)).is_file()]
    # Every tomogram has a BENCHMARK reconstruction: its grid is the run's, even when the
    # modalities asked for are not all there (the test tomogram has only BENCHMARK).
    grid = read_mrc(folder / reconstruction_file("benchmark"), ndim=3, mmap=True)
    shape, voxel_size = grid.data.shape, grid.voxel_size
    run.get_voxel_spacing(voxel_size) or run.new_voxel_spacing(voxel_size)
    for modality in present:
        volume = read_mrc(folder / reconstruction_file(modality), ndim=3, mmap=True)
        if volume.data.shape != shape or volume.voxel_size != voxel_size:
            raise FaketError(
                f"{folder / reconstruction_file(modality)} has another shape or voxel size "
                "than the benchmark reconstruction"
            )
        cpw.write_tomogram(run, modality, volume.data, voxel_size, levels, compress=compress)
    labels = particles["class_name"].map(label_of_name).to_numpy()
    if np.isnan(labels.astype(float)).any():
        raise FaketError(f"{folder}: particle list names a class that classes.csv lacks")
    labels = labels.astype(np.int64)
    _write_picks(run, particles, labels, frame, voxel_size, names, user_id, session_id)
    class_mask = read_mrc(folder / "class_mask.mrc", ndim=3).data
    occupancy = read_mrc(folder / "occupancy_mask.mrc", ndim=3).data
    if occupancy.dtype.kind == "f":  # large instance ids are stored as float32
        occupancy = np.rint(occupancy).astype(np.int32)
    if not (frame.scale == (1.0, 1.0, 1.0) and frame.offset == (0.0, 0.0, 0.0)) or (
        class_mask.shape != shape
    ):
        class_mask, occupancy = frame.resample(class_mask, shape), frame.resample(occupancy, shape)
    cpw.write_label_segmentation(
        run, cp.CLASS_SEGMENTATION, class_mask, voxel_size, user_id=user_id, session_id=session_id
    )
    # Small integer lookup tables keep the two channels small (copick stores uint16).
    small = np.uint16 if len(labels) < 2**16 else np.uint32
    label_of_instance = np.concatenate([[0], labels]).astype(small)
    cpw.write_panoptic_segmentation(
        run,
        cp.INSTANCE_SEGMENTATION,
        label_of_instance[occupancy],
        within_object_ids(labels).astype(small)[occupancy],
        voxel_size,
        user_id=user_id,
        session_id=session_id,
    )
    return len(present), len(particles)


def _write_picks(run, particles, labels, frame, voxel_size, names, user_id, session_id) -> None:
    from faket.phantom.rotations import zxz_to_matrices

    zyx = particles[["z", "y", "x"]].to_numpy(np.float64)
    positions = frame.to_volume(zyx)[:, ::-1] * voxel_size  # (x, y, z) in Å
    rotations = zxz_to_matrices(particles[["phi", "theta", "psi"]].to_numpy(np.float64))
    for label, name in names.items():
        members = np.flatnonzero(labels == label)
        cpw.write_picks(
            run,
            name,
            positions[members],
            rotations[members],
            user_id=user_id,
            session_id=session_id,
            instance_ids=np.arange(1, len(members) + 1),
        )


def copick_step(config: DatasetConfig, dataset_dir: Path) -> StepRecord:
    """``faket run``'s last step when ``copick.enabled``: the dataset as a copick project.

    Redone whenever a phantom or a reconstruction changed, or the copick settings did.
    """
    settings = config.copick
    digests = []
    for index in range(config.n_tomograms):
        manifest = Manifest(tomogram_folder(dataset_dir, index))
        names = sorted(
            n for n in manifest.steps if n == "phantom" or n.startswith("reconstruction_")
        )
        digests.append([manifest.digest(n) for n in names])
    digest = settings_hash("copick", digests, settings.model_dump(mode="json"))
    output = f"{settings.folder}/{cp.CONFIG_FILE}"

    def compute() -> None:
        export_copick(
            dataset_dir,
            Path(dataset_dir) / settings.folder,
            user_id=settings.user_id,
            session_id=settings.session_id,
            levels=settings.levels,
            compress=settings.compress,
            overwrite=True,
            progress=False,
        )

    return run_step(Manifest(dataset_dir), "copick", digest, (output,), compute)

"""Running a whole dataset: tomogram jobs (serially or on Dask), the noise model, figures."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from faket.device import worker_environments, worker_gpu_index
from faket.errors import FaketError
from faket.io import read_mrc, write_text_atomic
from faket.io.atomic import remove_stale_temporaries
from faket.pipeline.config import DatasetConfig
from faket.pipeline.manifest import Manifest, StepRecord, run_step, settings_hash
from faket.pipeline.preflight import modality_weights, preflight
from faket.pipeline.steps import (
    NOISE_MODEL,
    TRANSFER_MODEL,
    modality_steps,
    needed_noise_modes,
    projections_file,
    reconstruction_file,
    specimen_steps,
    tomogram_folder,
    uses_transfer,
)
from faket.progress import bars_visible, stderr_console

CONFIG_FILE = "dataset_config.yaml"
#: Seconds to wait for a remote Dask scheduler before giving up with a message.
SCHEDULER_TIMEOUT_S = 10
RUN_LOG = "run_log.csv"
FIGURES = ("projections.png", "power_spectra.png", "reconstructions.png", "noise_curves.png")


@dataclass
class RunSummary:
    """What a run did: every step's record and the wall time (s)."""

    records: list[StepRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ran(self) -> list[StepRecord]:
        """Steps that were computed in this run (not skipped)."""
        return [record for record in self.records if record.ran]


def _job_device(device: str) -> str:
    """The device of a job on a Dask worker that sees several GPUs: one of them, by worker.

    Local workers see one GPU each (:func:`local_cluster`), so this keeps ``device``;
    a remote worker with several GPUs takes ``cuda:k`` from its name
    (:func:`faket.device.worker_gpu_index`).
    """
    import torch

    if device not in ("auto", "cuda") or torch.cuda.device_count() < 2:
        return device
    try:
        from dask.distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return device
    return f"cuda:{worker_gpu_index(name, torch.cuda.device_count())}"


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    # Workers sharing a machine must share its cores: oversubscribed OpenMP threads make
    # small tensor operations orders of magnitude slower. Restored afterwards, because a
    # threaded worker (or the serial path) runs in the caller's own process.
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _specimen_job(config_data: dict, dataset_dir: str, threads, index: int, progress: bool):
    config = DatasetConfig.model_validate(config_data)
    with _torch_threads(threads):
        return specimen_steps(
            config, Path(dataset_dir), index, _job_device(config.device), progress
        )


def _modality_job(config_data: dict, dataset_dir: str, threads, index: int, progress: bool):
    config = DatasetConfig.model_validate(config_data)
    with _torch_threads(threads):
        return modality_steps(
            config, Path(dataset_dir), index, _job_device(config.device), progress
        )


def _map_jobs(
    job: Callable,
    indices: Sequence[int],
    arguments: tuple,
    client,
    advance: Callable[[], None],
    progress: bool,
) -> list[StepRecord]:
    """Run ``job(*arguments, index, progress)`` for every index; serially or on ``client``.

    Jobs on Dask workers never draw bars (their output would interleave); serial jobs
    draw their steps' bars only when ``progress`` (``-q`` turns it off).
    """
    records: list[StepRecord] = []
    if client is None:
        for index in indices:
            records += job(*arguments, index, progress)
            advance()
        return records
    from dask.distributed import as_completed

    futures = [client.submit(job, *arguments, index, False, pure=False) for index in indices]
    for future in as_completed(futures):
        records += future.result()
        advance()
    return records


def run_dataset(
    config: DatasetConfig,
    dataset_dir: str | os.PathLike[str],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> RunSummary:
    """Produce (or bring up to date) every file of a dataset.

    Parameters
    ----------
    config : DatasetConfig
    dataset_dir : path
        Output folder (created); re-running with it skips finished steps.
    workers : int
        Tomogram jobs in parallel on a local Dask cluster (1 = no cluster).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:port``), e.g. one
        started by dask-jobqueue on SLURM/PBS; overrides ``workers``.
    progress : bool
        Overall and per-step progress bars on stderr.

    Returns
    -------
    RunSummary

    Raises
    ------
    FaketError
        Before any work, for anything :func:`faket.pipeline.preflight.preflight` finds
        (device, classes, VGG weights), and for an unreachable scheduler.
    """
    start = time.perf_counter()
    config = preflight(config, scheduler=scheduler)  # before anything is written
    # Local workers split this machine's cores; remote workers keep their own defaults.
    threads = (
        max(1, (os.cpu_count() or 1) // workers) if scheduler is None and workers > 1 else None
    )
    folder = Path(dataset_dir)
    arguments = (config.model_dump(mode="json"), str(folder), threads)
    n_jobs = config.n_tomograms + len(config.training_indices) + 2 + config.copick.enabled
    # An unreachable scheduler fails here, before anything is written.
    client, cluster = _start_dask(workers, scheduler, config.device)
    summary = RunSummary()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)  # left by a killed run; no job has started yet
        write_text_atomic(folder / CONFIG_FILE, yaml.safe_dump(config.model_dump(mode="json")))
        with _overall_bar(n_jobs, progress) as advance:
            indices = list(range(config.n_tomograms))
            summary.records += _map_jobs(
                _specimen_job, indices, arguments, client, advance, progress
            )
            summary.records.append(noise_model_step(config, folder))
            if uses_transfer(config):
                summary.records.append(transfer_model_step(config, folder))
            advance()
            summary.records += _map_jobs(
                _modality_job, config.training_indices, arguments, client, advance, progress
            )
            summary.records.append(figures_step(config, folder))
            summary.records.append(realism_step(config, folder))
            advance()
            if config.copick.enabled:
                from faket.pipeline.export import copick_step

                summary.records.append(copick_step(config, folder))
                advance()
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    summary.seconds = time.perf_counter() - start
    _append_run_log(folder, summary)
    return summary


def _start_dask(workers: int, scheduler: str | None, device: str = "auto"):
    if scheduler is None and workers <= 1:
        return None, None
    from dask.distributed import Client

    if scheduler is not None:
        try:
            return Client(scheduler, timeout=SCHEDULER_TIMEOUT_S), None
        except (OSError, TimeoutError) as error:
            raise FaketError(
                f"cannot reach the Dask scheduler at {scheduler} within "
                f"{SCHEDULER_TIMEOUT_S} s ({type(error).__name__}); check the address "
                "(tcp://HOST:PORT) and that the scheduler is running"
            ) from None
    gpus = device in ("auto", "cuda")
    cluster = local_cluster(workers, worker_environments(workers) if gpus else None)
    return Client(cluster), cluster


def local_cluster(workers: int, environments: Sequence[dict[str, str]] | None = None):
    """A Dask cluster of ``workers`` local processes, one thread each.

    Parameters
    ----------
    workers : int
    environments : sequence of dict, optional
        Extra environment variables per worker, e.g. from
        :func:`faket.device.worker_environments` (one GPU each); set in the worker
        process before it starts, so before CUDA reads ``CUDA_VISIBLE_DEVICES``.

    Returns
    -------
    distributed.SpecCluster
    """
    from dask.distributed import Nanny, Scheduler, SpecCluster
    from distributed.system import MEMORY_LIMIT

    environments = list(environments or [{} for _ in range(workers)])
    if len(environments) != workers:
        raise ValueError(f"{len(environments)} environments for {workers} workers")
    # Processes, one thread each: the heavy work is in torch, which threads on its own.
    options = {"nthreads": 1, "memory_limit": MEMORY_LIMIT // workers, "host": "127.0.0.1"}
    specs = {
        index: {"cls": Nanny, "options": options | {"env": dict(env)}}
        for index, env in enumerate(environments)
    }
    scheduler_options = {"dashboard": False, "dashboard_address": None, "host": "127.0.0.1"}
    scheduler = {"cls": Scheduler, "options": scheduler_options}
    return SpecCluster(workers=specs, scheduler=scheduler, silence_logs=logging.WARNING)


class _overall_bar:
    """Context manager yielding an ``advance()`` callable for one overall progress bar."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.progress = total, enabled, None

    def __enter__(self) -> Callable[[], None]:
        if not bars_visible(self.enabled):
            return lambda: None
        from rich.progress import Progress

        self.progress = Progress(console=stderr_console(), transient=True)
        self.progress.start()
        task = self.progress.add_task("dataset", total=self.total)
        return lambda: self.progress.advance(task)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def noise_model_step(config: DatasetConfig, dataset_dir: Path) -> StepRecord:
    """Estimate the dataset's noise model from training (benchmark, noiseless) pairs."""
    from faket.noise import estimate_noise_model, save_noise_model

    sources = config.noise.estimate_from or config.training_indices
    manifests = [Manifest(tomogram_folder(dataset_dir, i)) for i in sources]
    digest = settings_hash(
        "noise_model",
        [m.digest("projections_benchmark") for m in manifests],
        [m.digest("projections_noiseless") for m in manifests],
        config.noise.hashed(),
    )
    radial = config.noise.match_radial_spectrum

    def compute() -> None:
        style = [read_mrc(m.folder / projections_file("benchmark")).data for m in manifests]
        clean = [read_mrc(m.folder / projections_file("noiseless")).data for m in manifests]
        provenance = {"tomograms": [m.folder.name for m in manifests]}
        model = estimate_noise_model(
            style,
            clean,
            config.tilt.angles(),
            order=config.noise.order,
            provenance=provenance,
            radial=radial,
        )
        save_noise_model(model, dataset_dir / NOISE_MODEL, overwrite=True)

    if "spectral" in needed_noise_modes(config.modalities):
        _drop_model_without_spectrum(dataset_dir / NOISE_MODEL, radial)
    return run_step(
        Manifest(dataset_dir), "noise_model", digest, (NOISE_MODEL,), compute, device="cpu"
    )


def _drop_model_without_spectrum(path: Path, radial: bool) -> None:
    """Remove a noise model made before noise spectra, so that it is estimated again.

    The model's settings hash is unchanged (so are its curves), so nothing downstream of
    it is redone, but the spectral modalities need the spectrum.
    """
    from faket.noise import load_noise_model

    if not path.is_file():
        return
    spectrum = load_noise_model(path).spectrum
    if spectrum is None or (radial and spectrum.radial_log10 is None):
        path.unlink()


def transfer_model_step(config: DatasetConfig, dataset_dir: Path) -> StepRecord:
    """Estimate FAKET's transfer model (``nst.weights: transfer``) from the same
    (benchmark, noiseless) pairs as the noise model."""
    from faket.noise.transfer import estimate_transfer, save_transfer_model

    sources = config.noise.estimate_from or config.training_indices
    manifests = [Manifest(tomogram_folder(dataset_dir, i)) for i in sources]
    digest = settings_hash(
        "transfer_model",
        [m.digest("projections_benchmark") for m in manifests],
        [m.digest("projections_noiseless") for m in manifests],
    )

    def compute() -> None:
        read = lambda m, name: read_mrc(m.folder / projections_file(name), mmap=True).data  # noqa: E731
        model = estimate_transfer(
            [read(m, "benchmark") for m in manifests], [read(m, "noiseless") for m in manifests]
        )
        save_transfer_model(model, dataset_dir / TRANSFER_MODEL)

    return run_step(
        Manifest(dataset_dir), "transfer_model", digest, (TRANSFER_MODEL,), compute, device="cpu"
    )


def figures_step(config: DatasetConfig, dataset_dir: Path) -> StepRecord:
    """Paper-style figures of the first training tomogram, in ``DATASET/figures``."""
    index = config.training_indices[0]
    manifest = Manifest(tomogram_folder(dataset_dir, index))
    dataset_manifest = Manifest(dataset_dir)
    digests = [manifest.digest(f"reconstruction_{m}") for m in config.modalities]
    digest = settings_hash("figures", digests, dataset_manifest.digest("noise_model"))
    outputs = tuple(f"figures/{name}" for name in FIGURES)

    def compute() -> None:
        write_figures(config, dataset_dir, index)

    return run_step(dataset_manifest, "figures", digest, outputs, compute)


def realism_step(config: DatasetConfig, dataset_dir: Path) -> StepRecord:
    """Every modality against its BENCHMARK style data: ``realism.json``, a figure."""
    from faket.realism.dataset import FIGURE, REPORT, write_dataset_realism

    manifests = {i: Manifest(tomogram_folder(dataset_dir, i)) for i in range(config.n_tomograms)}
    digests = [
        manifests[i].digest(f"projections_{m}")
        for i in config.training_indices
        for m in config.modalities
    ]
    test = manifests[config.test_index].digest("projections_benchmark")
    digest = settings_hash("realism", digests, test, config.modalities)

    def compute() -> None:
        write_dataset_realism(config, dataset_dir)

    return run_step(Manifest(dataset_dir), "realism", digest, (REPORT, FIGURE), compute)


def write_figures(config: DatasetConfig, dataset_dir: Path, index: int) -> None:
    """Projections at 0° and 40°, power spectra, reconstruction slices and noise curves."""
    from faket.noise import load_noise_model
    from faket.plots.modalities import (
        plot_power_spectra,
        plot_projections,
        plot_reconstruction_slices,
    )
    from faket.plots.noise_curves import plot_noise_curves

    folder = tomogram_folder(dataset_dir, index)
    figures = Path(dataset_dir) / "figures"
    figures.mkdir(exist_ok=True)
    remove_stale_temporaries(figures)
    angles = config.tilt.angles()
    # Which tomogram, and for FAKET which VGG weights: a figure must say what it shows.
    labels = {
        name: f"{name} ({style_label(modality_weights(name, config.nst.weights))})"
        for name in ("faket", "faket_spectral", "faket_random")
    }
    named = {"source": folder.name, "labels": labels}
    stacks = {m: read_mrc(folder / projections_file(m)) for m in config.modalities}
    pixel = next(iter(stacks.values())).voxel_size
    arrays = {m: s.data for m, s in stacks.items()}
    plot_projections(arrays, angles, figures / FIGURES[0], pixel, **named)
    plot_power_spectra(arrays, angles, figures / FIGURES[1], pixel, **named)
    volumes = {m: read_mrc(folder / reconstruction_file(m)) for m in config.modalities}
    voxel = next(iter(volumes.values())).voxel_size
    slices = {m: v.data for m, v in volumes.items()}
    plot_reconstruction_slices(slices, figures / FIGURES[2], voxel, **named)
    plot_noise_curves(load_noise_model(Path(dataset_dir) / NOISE_MODEL), figures / FIGURES[3])


def style_label(weights: str) -> str:
    """How a figure or table names a FAKET style: ``imagenet VGG-19``, ``transfer style``."""
    return "transfer style" if weights == "transfer" else f"{weights} VGG-19"


def _append_run_log(folder: Path, summary: RunSummary) -> None:
    """Append this run's step timings to ``run_log.csv`` (rewritten atomically)."""
    log = folder / RUN_LOG
    previous = log.read_text() if log.exists() else ""
    header = "run_started,step,folder,ran,seconds,details"
    if previous and not previous.startswith(header):
        # A log from before the details column: same columns plus one, so upgrade it.
        previous = header + previous[previous.index("\n") :] if "\n" in previous else ""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if not previous:
        writer.writerow(header.split(","))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - summary.seconds))
    for record in summary.records:
        row = asdict(record)
        name = Path(row["folder"]).name
        details = " ".join(f"{k}={v}" for k, v in row["details"].items())
        writer.writerow([stamp, row["name"], name, row["ran"], f"{row['seconds']:.3f}", details])
    write_text_atomic(log, previous + buffer.getvalue())

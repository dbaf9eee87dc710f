"""Independent training runs of an experiment in parallel processes.

An experiment is many small, independent trainings (modalities x seeds x judges). On a
CPU their 3-D convolutions are too small to keep several threads busy: two runs with
one thread each finish more work per second than one run with two threads
(``benchmarks/README.md``), so on a CPU the runs are spread over processes, one torch
thread each. On a GPU the runs share the device one at a time (``jobs = 1``).

Each job reads its tomograms itself and writes only its own run folder, so jobs need no
coordination; an interrupted experiment resumes from the runs that finished. Runs of
different kinds (both judges of an experiment) can share one queue: the long ones first,
so that the short ones fill the cores that would otherwise idle while the last long run
finishes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faket.errors import FaketError

__all__ = [
    "JOB_MEMORY_BYTES",
    "Job",
    "default_jobs",
    "run_folders",
    "run_job_list",
    "run_jobs",
    "threads_per_job",
    "training_jobs",
    "worker_count",
]

#: Host memory one CPU training run may need (tomograms, patches, network, segmentation).
JOB_MEMORY_BYTES = 1536 * 1024**2


def _host_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return None


def default_jobs(device: str, pending: int) -> int:
    """How many runs to train at once: 1 on a GPU; on a CPU one per core, at most one
    per :data:`JOB_MEMORY_BYTES` of host memory and at most ``pending``."""
    from faket.device import select_device

    if pending <= 1 or select_device(device).type != "cpu":
        return 1
    cores = os.cpu_count() or 1
    memory = _host_memory_bytes()
    by_memory = max(1, memory // JOB_MEMORY_BYTES) if memory else cores
    return max(1, min(cores, by_memory, pending))


def worker_count(device: str, pending: int, jobs: int | None = None) -> int:
    """Processes to train ``pending`` runs with: ``jobs`` (None: :func:`default_jobs`),
    and 1 (train here, one after the other) when at most one run is left."""
    if pending <= 1:
        return 1
    return default_jobs(device, pending) if jobs is None else jobs


def run_folders(folder: Path, modalities: Sequence[str], seeds: Sequence[int]):
    """``(runs, pending)``: ``(modality, seed, FOLDER/MODALITY/seed_N)`` of every run, and
    of those without test scores yet (an interrupted experiment redoes only these)."""
    runs = [(m, s, Path(folder) / m / f"seed_{s}") for m in modalities for s in seeds]
    return runs, [r for r in runs if not (r[2] / "test" / "scores.json").is_file()]


def threads_per_job(jobs: int) -> int:
    """Torch threads of each of ``jobs`` parallel runs: the cores shared out."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def _exit_with_parent(parent: int, interval_s: float = 1.0) -> None:
    """Worker initialiser: end this worker when the process that started it is gone.

    A killed experiment (``kill``, a closed terminal, a batch system's time limit)
    would otherwise leave its workers training the runs already queued for them, for
    many minutes, on cores the user believes free and in a results folder they may be
    reusing. The check is one system call every ``interval_s`` seconds.
    """

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="faket-parent-watch", daemon=True).start()


def _run_with_threads(function: Callable[..., Any], threads: int, kwargs: dict) -> Any:
    import torch

    torch.set_num_threads(threads)
    return function(**kwargs)


@dataclass(frozen=True)
class Job:
    """One call of a queue: ``function(**kwargs)``, logged as ``label``.

    ``function`` must be a module-level function (it is pickled by name) and ``kwargs``
    picklable.
    """

    function: Callable[..., Any]
    kwargs: dict
    label: str


def run_jobs(
    function: Callable[..., Any],
    tasks: Sequence[dict],
    jobs: int,
    *,
    labels: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> None:
    """Call ``function(**task)`` for every task, ``jobs`` at a time in spawned processes.

    Parameters
    ----------
    function : a module-level function (it is pickled by name).
    tasks : keyword arguments of each call (picklable).
    jobs : processes; 1 runs the tasks here, one after the other.
    labels : one line per task for ``log`` (started / finished).
    log : progress messages.

    Raises
    ------
    FaketError
        The first failing task's error (the others still running are cancelled).
    """
    labels = list(labels or [str(i) for i in range(len(tasks))])
    queue = [Job(function, task, label) for label, task in zip(labels, tasks, strict=True)]
    run_job_list(queue, jobs, log=log)


def run_job_list(
    queue: Sequence[Job], jobs: int, *, log: Callable[[str], None] | None = None
) -> None:
    """Run every job of ``queue``, ``jobs`` at a time in spawned processes, started in
    queue order (put the longest first: the short ones then fill the cores at the end).

    Parameters
    ----------
    queue : the calls, possibly of different functions.
    jobs : processes; 1 runs them here, one after the other.
    log : progress messages (started / finished).

    Raises
    ------
    FaketError
        The first failing job's error (the others still running are cancelled).
    """
    if jobs <= 1 or len(queue) <= 1:
        for job in queue:
            if log:
                log(f"training {job.label}")
            job.function(**job.kwargs)
        return
    threads = threads_per_job(jobs)
    if log:
        log(f"{len(queue)} runs, {jobs} at a time, {threads} torch thread(s) each")
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = {}
        for job in queue:
            futures[pool.submit(_run_with_threads, job.function, threads, job.kwargs)] = job.label
        try:
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if error is not None:
                        raise error
                    if log:
                        log(f"finished {futures[future]}")
        except BaseException as error:
            for future in futures:
                future.cancel()
            if isinstance(error, (FaketError, KeyboardInterrupt)):
                raise
            raise FaketError(f"a training run failed: {type(error).__name__}: {error}") from error


def training_jobs(
    function: Callable[..., Any],
    dataset_dir,
    pending: Sequence[tuple[str, int, Any]],
    config,
    *,
    judge: str,
) -> list[Job]:
    """The jobs of experiment runs: ``function(dataset_dir, modality, config, run_dir)``
    for each pending ``(modality, seed, run_dir)``, ``config`` (a pydantic settings
    model) with that seed."""
    return [
        Job(
            function,
            {
                "dataset_dir": str(dataset_dir),
                "modality": modality,
                "config": config.model_copy(update={"seed": seed}).model_dump(mode="json"),
                "run_dir": str(run_dir),
            },
            f"{judge} {modality}, seed {seed}",
        )
        for modality, seed, run_dir in pending
    ]

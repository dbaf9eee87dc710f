"""Parallel experiment runs: workers do not outlive the experiment that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TASK = """
import os, time

def record_and_sleep(folder, index):
    with open(os.path.join(folder, f"{index}.pid"), "w") as file:
        file.write(str(os.getpid()))
    time.sleep(120)
"""

PARENT = """
import sys
import worker_task
from faket.evaluation.jobs import run_jobs

if __name__ == "__main__":  # spawned workers import this file again
    tasks = [{"folder": sys.argv[1], "index": i} for i in range(4)]
    run_jobs(worker_task.record_and_sleep, tasks, 2)
"""


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie that nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_experiment_is_killed(tmp_path):
    (tmp_path / "worker_task.py").write_text(textwrap.dedent(TASK))
    (tmp_path / "parent.py").write_text(textwrap.dedent(PARENT))
    folder = tmp_path / "pids"
    folder.mkdir()
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"), str(folder)], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(list(folder.glob("*.pid"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in folder.glob("*.pid")]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)  # two at a time
    finally:
        parent.send_signal(signal.SIGKILL)  # no chance to clean up
        parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)
    # ... and they did not go on to the tasks still queued for them.
    assert len(list(folder.glob("*.pid"))) == 2


def test_both_judges_share_one_queue_deepfinder_first_and_finished_runs_left_out(
    tmp_path, monkeypatch
):
    from faket.evaluation import comparison, jobs
    from faket.evaluation.classify import ClassifyConfig
    from faket.evaluation.experiment import train_run
    from faket.evaluation.train_config import TrainConfig

    queued = []
    monkeypatch.setattr(jobs, "run_job_list", lambda queue, n, log=None: queued.append((queue, n)))
    results = tmp_path / "results"
    done = results / "faket" / "seed_0" / "test"
    done.mkdir(parents=True)
    (done / "scores.json").write_text("{}")  # a finished DeepFinder run: not redone
    settings = ClassifyConfig(threads=2)
    args = (tmp_path, results, ["benchmark", "faket"], [0, 1], TrainConfig(), settings)
    assert comparison.train_judges_together(*args, jobs=2)
    ((queue, n),) = queued
    assert n == 2
    assert [job.label for job in queue] == [
        "DeepFinder benchmark, seed 0",
        "DeepFinder benchmark, seed 1",
        "DeepFinder faket, seed 1",
        "classifier benchmark, seed 0",
        "classifier benchmark, seed 1",
        "classifier faket, seed 0",
        "classifier faket, seed 1",
    ]
    assert {job.function for job in queue} == {train_run, comparison.classify_run}
    assert queue[-1].kwargs["config"]["seed"] == 1
    assert queue[-1].kwargs["config"]["threads"] is None  # one thread per process
    assert queue[2].kwargs["run_dir"] == str(results / "faket" / "seed_1")
    # Not parallel: the judges train their runs themselves, nothing is queued.
    assert not comparison.train_judges_together(*args, jobs=1)
    assert len(queued) == 1

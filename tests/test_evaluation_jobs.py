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

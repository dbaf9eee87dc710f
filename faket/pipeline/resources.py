"""What a step cost: peak host memory (RSS), peak GPU memory and the device it ran on.

The peak resident set size of the *step* (not of the process so far) comes from Linux's
``/proc/self/status`` high-water mark ``VmHWM``, reset before the step by writing ``5``
to ``/proc/self/clear_refs``. Where that is not possible (macOS, Windows, restricted
kernels) the process's lifetime peak (``getrusage``) is recorded instead, marked
``peak_rss_scope: process`` (an upper bound for the step). Steps that share a process
with other threads (threaded Dask workers) see each other's memory. GPU peaks are torch's
``max_memory_allocated`` (tensors, not the caching allocator's reserve).
"""

from __future__ import annotations

import re
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_rss_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _rss_peak_bytes(step_scope: bool) -> tuple[int, str]:
    if step_scope:
        match = re.search(r"VmHWM:\s+(\d+)\s+kB", _STATUS.read_text())
        if match:
            return int(match.group(1)) * 1024, "step"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024), "process"


def _cuda(device: str | None):
    """The CUDA device a step ran on, if torch is loaded and the device is a GPU."""
    torch = sys.modules.get("torch")
    if torch is None or device is None or not str(device).startswith(("cuda", "auto")):
        return None
    if not torch.cuda.is_available():
        return None
    return torch.device("cuda" if device == "auto" else device)


def resolved_device(device: str | None) -> str | None:
    """``auto`` -> the device faket picks here (``cuda``, ``mps``, ``cpu``)."""
    if device is None:
        return None
    from faket.device import select_device

    return str(select_device(device))


@contextmanager
def measure_resources(device: str | None = None) -> Iterator[dict]:
    """Measure the block; the yielded dict is filled on exit.

    Keys: ``peak_rss_bytes``, ``peak_rss_scope`` (``step`` or ``process``), and, when
    ``device`` is given, ``device`` (resolved, e.g. ``cpu`` or ``cuda:0``), ``threads``
    (torch's CPU threads) and on a GPU ``gpu_peak_bytes`` and ``device_name``.
    """
    measured: dict = {}
    step_scope = _reset_rss_peak()
    cuda = _cuda(device)
    if cuda is not None:
        sys.modules["torch"].cuda.reset_peak_memory_stats(cuda)
    yield measured
    measured["peak_rss_bytes"], measured["peak_rss_scope"] = _rss_peak_bytes(step_scope)
    if device is not None:
        measured["device"] = resolved_device(device)
    torch = sys.modules.get("torch")
    if device is not None and torch is not None:
        measured["threads"] = int(torch.get_num_threads())
    if cuda is not None:
        measured["gpu_peak_bytes"] = int(torch.cuda.max_memory_allocated(cuda))
        measured["device_name"] = str(torch.cuda.get_device_name(cuda))

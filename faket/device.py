"""Device selection and memory budgets shared by every PyTorch stage.

One code path serves CPU, CUDA and Apple MPS: callers ask for ``"auto"`` (or a
name) and get a :class:`torch.device`; work that scales with the data is split
into chunks whose size comes from :func:`chunk_size`, so the same call fits a
laptop and a GPU workstation.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from faket.errors import FaketError

#: Memory (bytes) a single chunk of work may use on the CPU unless told otherwise.
DEFAULT_CPU_BUDGET = 512 * 1024**2
#: Bytes of the dense block that one CPU sparse-matrix product gathers from. Projection and
#: back-projection are limited by cache misses, not arithmetic, so on the CPU they work on
#: blocks that stay in cache (measured on a 2-core AMD EPYC at 512^3: 2-4 MB blocks are
#: 3-4x faster than 8 MB ones, and 4-5x faster than whole-volume products).
CPU_GATHER_BYTES = 2 * 1024**2
#: Fraction of the free GPU memory a chunk of work may use.
GPU_BUDGET_FRACTION = 0.5
#: Fraction of the available host memory a whole work item may use (see working_memory).
HOST_BUDGET_FRACTION = 0.5

# glibc's mallopt parameters (malloc.h), the values faket sets while heavy CPU work runs,
# and glibc's documented defaults, restored afterwards.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_KEEP_FREED = {_M_TRIM_THRESHOLD: 2**31 - 1, _M_MMAP_MAX: 0}
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_host_memory_lock = threading.Lock()
_host_memory_users = 0


def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device request to an available :class:`torch.device`.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None) picks CUDA, then MPS, then CPU. Otherwise a torch
        device string such as ``"cpu"``, ``"cuda"`` or ``"cuda:1"``.

    Returns
    -------
    torch.device
        The device to compute on.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise FaketError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FaketError("device 'cuda' was requested but no CUDA GPU is visible; use --device cpu")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise FaketError("device 'mps' was requested but MPS is not available; use --device cpu")
    return resolved


def memory_budget(device: torch.device, budget_bytes: int | None = None) -> int:
    """Bytes that one chunk of work may occupy on ``device``.

    On CUDA this is a fraction of the currently free memory, so the same code
    adapts to a 12 GB or an 80 GB card; elsewhere a fixed default.
    """
    if budget_bytes is not None:
        if budget_bytes <= 0:
            raise FaketError(f"memory budget must be positive, got {budget_bytes} bytes")
        return int(budget_bytes)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * GPU_BUDGET_FRACTION)
    return DEFAULT_CPU_BUDGET


def chunk_size(bytes_per_item: int, n_items: int, budget_bytes: int) -> int:
    """How many items (e.g. Y rows) fit in ``budget_bytes``; at least 1, at most ``n_items``."""
    if n_items <= 0:
        return 1
    return int(max(1, min(n_items, budget_bytes // max(1, bytes_per_item))))


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose ``mallopt`` faket tunes), else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return None
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (AttributeError, ValueError, OSError):  # not Linux, or no such name
        return None


@contextmanager
def reuse_freed_host_memory(enabled: bool = True) -> Iterator[None]:
    """Within the block, freed host memory is kept for reuse instead of given back.

    glibc's ``malloc`` hands every block over 32 MiB (e.g. a 64-channel activation of a
    512x512 image) to the kernel as fresh pages, and each first touch of a page faults:
    ~10% of a 512x512 style-transfer tilt, ~20% of a 1024x1024 one and ~25% of
    segmenting a tomogram with the DeepFinder network on a 2-core CPU.
    In the block, large blocks come from the heap and freed ones stay there for the next
    tensor of the same size (``mallopt``: no ``mmap``, trim threshold 2 GiB). Peak resident
    memory rises by up to ~30% (fragmentation); results do not change. Leaving the
    outermost block (blocks may nest and run in several threads) restores glibc's defaults
    (not values a program set itself) and returns free memory to the system. Without glibc
    (macOS, Windows, musl), with ``enabled=False`` or with the environment variable
    ``FAKET_REUSE_HOST_MEMORY=0`` it does nothing.
    """
    global _host_memory_users
    wanted = enabled and os.environ.get("FAKET_REUSE_HOST_MEMORY", "1") != "0"
    libc = _glibc() if wanted else None
    if libc is None:
        yield
        return
    with _host_memory_lock:
        if _host_memory_users == 0:
            for parameter, value in _KEEP_FREED.items():
                libc.mallopt(parameter, value)
        _host_memory_users += 1
    try:
        yield
    finally:
        with _host_memory_lock:
            _host_memory_users -= 1
            if _host_memory_users == 0:
                for parameter, value in _GLIBC_DEFAULTS.items():
                    libc.mallopt(parameter, value)
                libc.malloc_trim(0)


def available_host_memory() -> int:
    """Bytes of host memory available to a new workload (Linux ``MemAvailable``).

    Elsewhere (or if ``/proc/meminfo`` cannot be read): psutil's figure when psutil is
    installed, else the physical memory size.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def working_memory(device: torch.device, budget_bytes: int | None = None) -> int:
    """Bytes one whole work item (e.g. one tilt's style transfer) may occupy on ``device``.

    ``budget_bytes`` when given; on CUDA :data:`GPU_BUDGET_FRACTION` of the free GPU
    memory; elsewhere :data:`HOST_BUDGET_FRACTION` of the available host memory (the
    work's own arrays on MPS live in unified memory too).
    """
    if budget_bytes is not None or device.type == "cuda":
        return memory_budget(device, budget_bytes)
    return int(available_host_memory() * HOST_BUDGET_FRACTION)

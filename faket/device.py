"""Device selection and memory budgets shared by every PyTorch stage.

One code path serves CPU, CUDA and Apple MPS: callers ask for ``"auto"`` (or a
name) and get a :class:`torch.device`; work that scales with the data is split
into chunks whose size comes from :func:`chunk_size` and :func:`memory_budget`, so the
same call fits a laptop and a GPU workstation. Also here: deterministic CUDA kernels
(:func:`deterministic_algorithms`), one GPU per local Dask worker
(:func:`worker_environments`) and host-memory reuse for heavy CPU work.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
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
#: Elements of the largest tensor a batch may make: several CUDA kernels index with 32-bit
#: integers and refuse larger outputs (e.g. nearest-neighbour 3-D up-sampling in PyTorch
#: 2.x), which an 80-141 GB GPU's memory budget would otherwise allow.
MAX_TENSOR_ELEMENTS = 2**31 - 1
#: Environment variable overriding :data:`GPU_BUDGET_FRACTION`.
GPU_FRACTION_VARIABLE = "FAKET_GPU_MEMORY_FRACTION"
#: cuBLAS is deterministic only with a fixed workspace configuration, which it reads
#: once, before its first use; PyTorch's deterministic mode insists on one of these two.
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC[0])

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
        ``"auto"`` (or None) picks CUDA, then MPS, then CPU. Otherwise ``"cpu"``,
        ``"cuda"`` (the current GPU), ``"cuda:N"`` (GPU N of the visible ones) or
        ``"mps"``; case and surrounding spaces do not matter.

    Returns
    -------
    torch.device
        The device to compute on.

    Raises
    ------
    FaketError
        For an unknown name, or a device this machine does not have.
    """
    if isinstance(device, str):
        device = device.strip().lower()
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    unknown = f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise FaketError(unknown) from error
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise FaketError(unknown)
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise FaketError(
                f"device {device!r} was requested but no CUDA GPU is visible; use --device cpu"
            )
        if resolved.index is not None and resolved.index >= count:
            raise FaketError(
                f"device {device!r} was requested but only {count} CUDA GPU(s) are visible "
                f"(cuda:0 to cuda:{count - 1}; CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
            )
    if resolved.type == "mps" and not _mps_available():
        raise FaketError("device 'mps' was requested but MPS is not available; use --device cpu")
    return resolved


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def memory_budget(device: torch.device, budget_bytes: int | None = None) -> int:
    """Bytes that one chunk of work may occupy on ``device``.

    On CUDA this is a fraction (:func:`gpu_budget_fraction`) of the memory a new tensor
    can use now (:func:`cuda_free_bytes`), so the same code adapts to a 12 GB or an
    80 GB card; elsewhere a fixed default (:data:`DEFAULT_CPU_BUDGET`).
    """
    if budget_bytes is not None:
        if budget_bytes <= 0:
            raise FaketError(f"memory budget must be positive, got {budget_bytes} bytes")
        return int(budget_bytes)
    if device.type == "cuda":
        return int(cuda_free_bytes(device) * gpu_budget_fraction())
    return DEFAULT_CPU_BUDGET


def cuda_free_bytes(device: torch.device) -> int:
    """Bytes a new tensor on the CUDA ``device`` can occupy now.

    That is what the driver reports free plus what PyTorch's caching allocator holds
    without using it: blocks freed by an earlier chunk stay reserved by the process, so
    the driver's figure alone would shrink the budget of every later step of a run.
    """
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(0, cached))


def gpu_budget_fraction() -> float:
    """Fraction of the free GPU memory one chunk of work may use.

    :data:`GPU_BUDGET_FRACTION` unless the environment variable
    ``FAKET_GPU_MEMORY_FRACTION`` (in (0, 1]) says otherwise; local Dask workers that
    share a GPU get their share of it that way (:func:`worker_environments`).
    """
    text = os.environ.get(GPU_FRACTION_VARIABLE)
    if text is None or not text.strip():
        return GPU_BUDGET_FRACTION
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise FaketError(
            f"{GPU_FRACTION_VARIABLE}={text!r} is not a fraction in (0, 1]; "
            "unset it or use e.g. 0.25"
        )
    return value


def chunk_size(
    bytes_per_item: int, n_items: int, budget_bytes: int, elements_per_item: int | None = None
) -> int:
    """How many items (e.g. Y rows) fit in ``budget_bytes``; at least 1, at most ``n_items``.

    With ``elements_per_item`` (elements of the largest tensor one item adds to a batch),
    also few enough that the batch's largest tensor stays within
    :data:`MAX_TENSOR_ELEMENTS`: a large GPU's memory budget would otherwise allow batches
    that some CUDA kernels refuse.
    """
    if n_items <= 0:
        return 1
    items = budget_bytes // max(1, bytes_per_item)
    if elements_per_item is not None:
        items = min(items, MAX_TENSOR_ELEMENTS // max(1, elements_per_item))
    return int(max(1, min(n_items, items)))


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose ``mallopt`` faket tunes), else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return None
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (AttributeError, ValueError, OSError):  # not Linux, or no such name
        return None


def release_freed_host_memory() -> None:
    """Give the heap's free memory back to the system now (glibc ``malloc_trim``).

    Inside :func:`reuse_freed_host_memory` freed blocks stay resident for the next
    request; between work items that are large and few (one detector-sized tilt after
    another) this returns them, so that what one item left behind cannot add to the next
    item's peak. Elsewhere (no glibc) it does nothing.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


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


def mapped_zeros(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    *,
    channels_last: bool = False,
) -> torch.Tensor:
    """A zero tensor that, on the CPU, lives in its own anonymous memory map.

    For large, long-lived arrays (a detector-sized tilt's stored feature maps) between
    many short-lived temporaries: outside ``malloc``'s heap they leave no hole behind
    and go back to the system as soon as they are freed, even where
    :func:`reuse_freed_host_memory` keeps the heap's freed blocks. Fresh mapped pages
    read as zeros and cost memory only once written. On other devices: ``torch.zeros``.

    Parameters
    ----------
    shape : tensor shape; 4-D with ``channels_last`` (N, C, H, W).
    dtype : torch dtype.
    device : where the tensor lives.
    channels_last : lay a 4-D tensor out channels-last (as ``torch.channels_last``).
    """
    if device.type != "cpu":
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return torch.empty(shape, dtype=dtype, device=device, memory_format=fmt).zero_()
    stored = (shape[0], *shape[2:], shape[1]) if channels_last else tuple(shape)
    itemsize = dtype.itemsize
    count = math.prod(stored)
    buffer = mmap.mmap(-1, max(count * itemsize, 1))
    # The tensor keeps the array, the array keeps the map: freed together.
    raw = torch.from_numpy(np.frombuffer(buffer, dtype=np.uint8, count=count * itemsize))
    out = raw.view(dtype).view(stored)
    return out.permute(0, 3, 1, 2) if channels_last else out


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

    ``budget_bytes`` when given; on CUDA :func:`gpu_budget_fraction` of the free GPU
    memory (as :func:`memory_budget`); elsewhere :data:`HOST_BUDGET_FRACTION` of the
    available host memory (the work's own arrays on MPS live in unified memory too).
    """
    if budget_bytes is not None or device.type == "cuda":
        return memory_budget(device, budget_bytes)
    return int(available_host_memory() * HOST_BUDGET_FRACTION)


@contextmanager
def deterministic_algorithms(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """On CUDA, run the block with deterministic kernels; restore PyTorch's settings after.

    cuDNN chooses among convolution algorithms, and several of the fast ones (and a few
    other CUDA kernels) add up partial results with atomics in a varying order, so the
    same inputs and seeds could give slightly different bits from run to run. In the
    block cuDNN uses deterministic algorithms without benchmarking, and
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` makes other operations
    use their deterministic kernels (an operation without one warns rather than fails).
    PyTorch would also fill every new tensor with NaN in this mode; faket never reads
    uninitialised memory, so that costly pass is switched off. cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG`` before its first use: importing this module sets it to
    ``:4096:8`` unless it is set already. On the CPU (deterministic for a fixed thread
    count) and MPS, and with ``enabled=False``, the block runs unchanged.
    """
    if not enabled or device.type != "cuda":
        yield
        return
    import torch.utils.deterministic as deterministic

    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        deterministic.fill_uninitialized_memory,
    )
    _set_deterministic(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        _set_deterministic(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:4]
        deterministic.fill_uninitialized_memory = saved[4]


def _set_deterministic(mode: bool, warn_only: bool) -> None:
    # torch.use_deterministic_algorithms also switches TorchInductor's deterministic mode,
    # and importing TorchInductor for that costs ~3 s of start-up; faket compiles nothing,
    # so it sets the switch that the kernels read directly where PyTorch has it.
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


def visible_cuda_devices(visible: str | None = None, n_gpus: int | None = None) -> list[str]:
    """Names of the GPUs this process sees, as ``CUDA_VISIBLE_DEVICES`` entries.

    Parameters
    ----------
    visible : str, optional
        The ``CUDA_VISIBLE_DEVICES`` value (default: this process's; unset means all).
    n_gpus : int, optional
        How many GPUs CUDA reports (default: ``torch.cuda.device_count()``).

    Returns
    -------
    list of str
        Indices, UUIDs or MIG names, as many as CUDA reports (none without a GPU).
    """
    if n_gpus is None:
        n_gpus = torch.cuda.device_count()
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if n_gpus <= 0:
        return []
    if visible is None:
        return [str(index) for index in range(n_gpus)]
    # CUDA stops at the first invalid entry, so the first n_gpus entries are the GPUs.
    return [entry.strip() for entry in visible.split(",") if entry.strip()][:n_gpus]


def worker_environments(n_workers: int, gpus: list[str] | None = None) -> list[dict[str, str]]:
    """Environment variables that give each of ``n_workers`` local processes its own GPU.

    Worker ``k`` sees only GPU ``gpus[k mod len(gpus)]`` (``CUDA_VISIBLE_DEVICES``), where
    it is ``cuda:0``. With more workers than GPUs, the workers sharing a GPU also share
    its memory: each gets ``1/n`` of the budget fraction (``FAKET_GPU_MEMORY_FRACTION``).
    Without a GPU every environment is empty.

    Parameters
    ----------
    n_workers : int
    gpus : list of str, optional
        ``CUDA_VISIBLE_DEVICES`` entries to hand out (default :func:`visible_cuda_devices`).

    Returns
    -------
    list of dict
        One environment (variable -> value) per worker.
    """
    gpus = visible_cuda_devices() if gpus is None else list(gpus)
    if not gpus:
        return [{} for _ in range(n_workers)]
    assigned = [gpus[k % len(gpus)] for k in range(n_workers)]
    fraction = gpu_budget_fraction()
    out = []
    for gpu in assigned:
        env = {"CUDA_VISIBLE_DEVICES": gpu}
        sharing = assigned.count(gpu)
        if sharing > 1:
            env[GPU_FRACTION_VARIABLE] = f"{fraction / sharing:.6g}"
        out.append(env)
    return out


def worker_gpu_index(worker_name: object, n_gpus: int) -> int:
    """GPU (of ``n_gpus`` visible) for a Dask worker that sees several, from its name.

    Local workers are named 0, 1, ...; dask-jobqueue's end in the process number within
    their job (``SLURMCluster-3-1``): that trailing number modulo ``n_gpus``. Other names
    get a stable digest, so a worker keeps its GPU across tasks.
    """
    if n_gpus <= 0:
        raise FaketError("no GPU to assign a worker to")
    match = re.search(r"(\d+)$", str(worker_name))
    number = int(match.group(1)) if match else zlib.crc32(str(worker_name).encode())
    return number % n_gpus

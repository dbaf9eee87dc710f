"""Device selection and memory budgets shared by every PyTorch stage.

One code path serves CPU, CUDA and Apple MPS: callers ask for ``"auto"`` (or a
name) and get a :class:`torch.device`; work that scales with the data is split
into chunks whose size comes from :func:`chunk_size`, so the same call fits a
laptop and a GPU workstation.
"""

from __future__ import annotations

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

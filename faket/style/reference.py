"""Style targets: Gram matrices of the style tilts, computable once and reused.

A data set often stylises many tomograms against the same few real (or benchmark)
reference tilt series; :func:`prepare_style` computes their Gram matrices once so each
further tomogram costs only its own forward/backward passes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faket.device import chunk_size, memory_budget, reuse_freed_host_memory, select_device
from faket.errors import FaketError
from faket.io import atomic_path, release_pages
from faket.precision import fp32_mode
from faket.progress import progress as progress_bar
from faket.style.network import resolve_net, style_grams
from faket.style.settings import (
    TransferSettings,
    UnitScaled,
    check_size,
    check_stack,
    resize,
    scales,
    tilt_mean_std,
    with_overrides,
)
from faket.style.tile_plan import choose_plan
from faket.style.tiled import tiled_grams
from faket.style.vgg import VGG19Features, min_input_size

__all__ = [
    "StyleReference",
    "prepare_style",
    "reference_key",
    "stack_digest",
    "tilts_per_step",
]

_FORMAT = "faket-style-reference/1"

#: Bytes of activations (incl. autograd and backward peak) per input pixel and tilt,
#: measured for the default layers; used to choose how many tilts share one step.
_BYTES_PER_PIXEL = {"fp32": 6000, "reduced": 4000}


@dataclass
class StyleReference:
    """Style Gram matrices and statistics of a style stack, computed once, reused often.

    Make it with :func:`prepare_style`; pass it as ``style`` to :func:`style_transfer`
    to stylise many tomograms against the same style stack without recomputing.

    Attributes
    ----------
    grams : dict
        ``{(H, W) of a scale: {layer: Tensor (n_tilts, C, C) float32 on CPU}}``.
    mean, std : ndarray, shape (n_tilts,)
        Per-tilt mean and standard deviation of the original style stack.
    shape : tuple
        ``(n_tilts, Y, X)`` of the style stack.
    key : str
        Weights and settings the Gram matrices depend on; checked on use.
    source : str
        Digest of the style stack's values, to recognise a saved reference's origin.
    """

    grams: dict[tuple[int, int], dict[int, torch.Tensor]]
    mean: np.ndarray
    std: np.ndarray
    shape: tuple[int, int, int]
    key: str
    source: str = ""

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (a ``torch.save`` file of tensors and text, atomically)."""
        payload = {
            "format": _FORMAT,
            "key": self.key,
            "source": self.source,
            "shape": list(self.shape),
            "mean": torch.from_numpy(self.mean),
            "std": torch.from_numpy(self.std),
            "grams": {
                f"{h}x{w}": {str(layer): gram for layer, gram in grams.items()}
                for (h, w), grams in self.grams.items()
            },
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> StyleReference:
        """Read a file written by :meth:`save`."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("format") != _FORMAT:
                raise ValueError("not a faket style reference")
            grams = {
                tuple(int(v) for v in size.split("x")): {int(k): g for k, g in layers.items()}
                for size, layers in payload["grams"].items()
            }
            return cls(
                grams=grams,
                mean=payload["mean"].numpy(),
                std=payload["std"].numpy(),
                shape=tuple(payload["shape"]),
                key=payload["key"],
                source=payload["source"],
            )
        except Exception as error:  # a foreign or damaged file, whatever torch raises
            raise FaketError(
                f"{path} is not a readable faket style reference ({error}); delete it to recompute"
            ) from error


def reference_key(net: VGG19Features, settings: TransferSettings) -> str:
    """Text naming the weights and settings that style Gram matrices depend on."""
    return (
        f"{net.weights_id}|{settings.style_layers}|{settings.pooling}|"
        f"{settings.normalization}|{settings.precision}|{settings.reduced_from}|"
        f"{settings.min_scale}"
    )


def tilts_per_step(shape, settings, device, budget, batch_size) -> int:
    """Tilts that share one optimisation step: ``batch_size``, or from the memory budget.

    Parameters
    ----------
    shape : (n_tilts, Y, X)
    settings : TransferSettings
    device : torch.device
    budget : int or None
        Bytes a batch may use (:func:`faket.device.memory_budget`).
    batch_size : int or None
        Explicit choice (at least 1).
    """
    if batch_size is not None:
        if batch_size < 1:
            raise FaketError(f"batch size must be at least 1, got {batch_size}")
        return int(batch_size)
    if device.type == "cpu":
        # One tilt at a time: batching 2 or 4 tilts gained nothing measurable on a CPU
        # (512^2, 2 cores), and one tilt per step is the paper's code's arithmetic.
        return 1
    kind = "fp32" if settings.precision in ("fp32", "tf32") else "reduced"
    per_tilt = _BYTES_PER_PIXEL[kind] * shape[1] * shape[2]
    return chunk_size(per_tilt, shape[0], memory_budget(device, budget))


def _tilt_grams(net, style01, index, sizes, settings, device, plans) -> dict:
    """Gram targets of style tilts ``index`` per scale, tiled where a plan says so."""
    if not any(plans.get(size) for size in sizes):
        batch = torch.from_numpy(style01[index])[:, None]
        return style_grams(net, batch, sizes, settings, device)
    out = {}
    for size in sizes:
        plan = plans.get(size)
        grams = []
        for tilt in index:
            image = resize(torch.from_numpy(style01[[tilt]])[:, None], size)
            if plan is None:
                grams.append(style_grams(net, image, [size], settings, device)[size])
            else:
                grams.append(tiled_grams(net, image, settings, device, plan))
        out[size] = {k: torch.cat([g[k] for g in grams]) for k in settings.style_layers}
    return out


def prepare_style(
    style: np.ndarray,
    *,
    weights: str | VGG19Features = "imagenet",
    settings: TransferSettings | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    tile: int | None = None,
    progress: bool = False,
    **overrides,
) -> StyleReference:
    """Compute the style targets of a whole style stack once, for reuse.

    Parameters
    ----------
    style : ndarray, shape (n_tilts, Y, X)
        The style (reference) tilt series, any real dtype and units.
    weights, settings, device, seed, batch_size, memory_budget, tile, progress, **overrides
        As for :func:`style_transfer`; only the settings that affect the style targets
        matter, and they must equal those of the later transfer.

    Returns
    -------
    StyleReference
    """
    settings = with_overrides(settings, overrides)
    style = check_stack("style", style)
    device = select_device(device)
    net = resolve_net(weights, settings, device, seed)
    check_size(style.shape, settings)
    with fp32_mode(device, settings.precision), reuse_freed_host_memory(device.type == "cpu"):
        sizes = scales(style.shape[1:], settings.min_scale, min_input_size(settings.last_layer))
        plans = {
            size: choose_plan(net, settings, device, size, memory_budget, tile) for size in sizes
        }
        style01 = UnitScaled(style, settings.normalization)
        step = 1 if any(plans.values()) else tilts_per_step(
            style.shape, settings, device, memory_budget, batch_size
        )  # fmt: skip
        parts: list[dict] = []
        starts = range(0, style.shape[0], step)
        for start in progress_bar(starts, "style targets", total=len(starts), enabled=progress):
            index = list(range(start, min(start + step, style.shape[0])))
            grams = _tilt_grams(net, style01, index, sizes, settings, device, plans)
            parts.append({s: {k: v.cpu() for k, v in g.items()} for s, g in grams.items()})
    grams = {s: {k: torch.cat([p[s][k] for p in parts]) for k in parts[0][s]} for s in sizes}
    mean, std = tilt_mean_std(style)
    return StyleReference(
        grams=grams,
        mean=mean,
        std=std,
        shape=tuple(style.shape),
        key=reference_key(net, settings),
        source=stack_digest(style),
    )


def stack_digest(stack: np.ndarray) -> str:
    """Short digest of an array's shape, type and values (read tilt by tilt)."""
    hasher = hashlib.blake2b(digest_size=12)
    hasher.update(f"{stack.dtype}{stack.shape}".encode())
    # Fed in pieces, the hash is that of the whole array's bytes; a memory-mapped stack
    # is read one tilt at a time.
    for part in stack if stack.ndim > 2 else [stack]:
        hasher.update(np.ascontiguousarray(part).tobytes())
        release_pages(part)
    return hasher.hexdigest()

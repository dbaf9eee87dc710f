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
from faket.io import atomic_path
from faket.progress import progress as progress_bar
from faket.style._precision import fp32_mode, reduced_dtype
from faket.style.losses import gram_matrix
from faket.style.settings import (
    TransferSettings,
    _check_size,
    _check_stack,
    _resize,
    _scales,
    _UnitScaled,
    _with_overrides,
)
from faket.style.vgg import VGG19Features, min_input_size
from faket.style.weights import build_feature_net

__all__ = ["StyleReference", "prepare_style", "stack_digest"]

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


def _reference_key(net: VGG19Features, settings: TransferSettings) -> str:
    return (
        f"{net.weights_id}|{settings.style_layers}|{settings.pooling}|"
        f"{settings.normalization}|{settings.precision}|{settings.reduced_from}|"
        f"{settings.min_scale}"
    )


def _features(net, images, layers, device, settings) -> dict[int, torch.Tensor]:
    """Activations without autograd (targets), in the settings' precision."""
    with torch.no_grad():
        return _forward(net, images.to(device), layers, device, settings)


def _forward(net, images, layers, device, settings) -> dict[int, torch.Tensor]:
    dtype = reduced_dtype(device, settings.precision)
    return net(images, layers, reduced=dtype, reduced_from=settings.reduced_from)


def _style_grams(net, style01, sizes, settings, device) -> dict[tuple[int, int], dict]:
    """Gram targets of one batch of normalised style tilts ``(B, 1, H, W)`` per scale."""
    out = {}
    for size in sizes:
        feats = _features(net, _resize(style01, size), settings.style_layers, device, settings)
        out[size] = {layer: gram_matrix(feats[layer]) for layer in settings.style_layers}
    return out


def _resolve_net(weights, settings: TransferSettings, device, seed) -> VGG19Features:
    if isinstance(weights, VGG19Features):
        if weights.last_layer < settings.last_layer or weights.pooling != settings.pooling:
            raise FaketError(
                f"the given feature network stops at layer {weights.last_layer} with "
                f"{weights.pooling} pooling; the settings need layer {settings.last_layer} "
                f"and {settings.pooling} pooling"
            )
        net = weights.to(device)
    else:
        net = build_feature_net(
            weights,
            last_layer=settings.last_layer,
            pooling=settings.pooling,
            seed=seed,
            device=device,
        )
    layout = settings.channels_last
    if layout is None:
        # Channels-last is ~1.15x faster on CPUs (oneDNN's blocked kernels) and on GPUs, but
        # not reliably on Apple's MPS.
        layout = device.type != "mps"
    if net.channels_last != layout:
        net.set_channels_last(layout)
    return net


def _batch_size(shape, settings, device, budget, batch_size) -> int:
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


def prepare_style(
    style: np.ndarray,
    *,
    weights: str | VGG19Features = "imagenet",
    settings: TransferSettings | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    progress: bool = False,
    **overrides,
) -> StyleReference:
    """Compute the style targets of a whole style stack once, for reuse.

    Parameters
    ----------
    style : ndarray, shape (n_tilts, Y, X)
        The style (reference) tilt series, any real dtype and units.
    weights, settings, device, seed, batch_size, memory_budget, progress, **overrides
        As for :func:`style_transfer`; only the settings that affect the style targets
        matter, and they must equal those of the later transfer.

    Returns
    -------
    StyleReference
    """
    settings = _with_overrides(settings, overrides)
    style = _check_stack("style", style)
    device = select_device(device)
    net = _resolve_net(weights, settings, device, seed)
    _check_size(style.shape, settings)
    with fp32_mode(device, settings.precision), reuse_freed_host_memory(device.type == "cpu"):
        sizes = _scales(style.shape[1:], settings.min_scale, min_input_size(settings.last_layer))
        style01 = _UnitScaled(style, settings.normalization)
        step = _batch_size(style.shape, settings, device, memory_budget, batch_size)
        parts: list[dict] = []
        starts = range(0, style.shape[0], step)
        for start in progress_bar(starts, "style targets", total=len(starts), enabled=progress):
            batch = torch.from_numpy(style01[start : start + step])[:, None]
            grams = _style_grams(net, batch, sizes, settings, device)
            parts.append({s: {k: v.cpu() for k, v in g.items()} for s, g in grams.items()})
    grams = {s: {k: torch.cat([p[s][k] for p in parts]) for k in parts[0][s]} for s in sizes}
    values = style.astype(np.float64)
    return StyleReference(
        grams=grams,
        mean=values.mean(axis=(1, 2)),
        std=values.std(axis=(1, 2)),
        shape=tuple(style.shape),
        key=_reference_key(net, settings),
        source=stack_digest(style),
    )


def stack_digest(stack: np.ndarray) -> str:
    """Short digest of an array's shape, type and values."""
    hasher = hashlib.blake2b(digest_size=12)
    hasher.update(f"{stack.dtype}{stack.shape}".encode())
    hasher.update(np.ascontiguousarray(stack).tobytes())
    return hasher.hexdigest()

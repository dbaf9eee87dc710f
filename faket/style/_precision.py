"""Arithmetic precision of the style transfer: names, autocast and TF32 switches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from faket.errors import FaketError

_ALIASES = {
    "fp32": "fp32",
    "float32": "fp32",
    "tf32": "tf32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "mixed": "mixed",
}


def check_precision(precision: str) -> str:
    """Canonical name of ``precision`` (``fp32``, ``tf32``, ``bf16``, ``fp16``, ``mixed``)."""
    if precision not in _ALIASES:
        raise FaketError(
            f"unknown precision {precision!r}; use fp32, tf32 (NVIDIA), bf16, fp16 (GPU) or mixed"
        )
    return _ALIASES[precision]


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used on ``device``; impossible combinations are errors."""
    name = check_precision(precision)
    if name == "mixed":
        return "bf16" if device.type == "cpu" else "fp16"
    if name == "tf32" and device.type != "cuda":
        raise FaketError("precision tf32 needs an NVIDIA GPU; use fp32 or bf16 on this device")
    if name == "fp16" and device.type == "cpu":
        raise FaketError("precision fp16 needs a GPU; use bf16 (or mixed) on the CPU")
    return name


def reduced_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast type of ``precision`` on ``device``: bf16/fp16, or None for fp32/tf32."""
    name = resolve_precision(precision, device)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name)


@contextmanager
def fp32_mode(device: torch.device, precision: str) -> Iterator[None]:
    """On CUDA, allow TF32 only when asked for, and restore the global switches after.

    PyTorch lets cuDNN convolutions use TF32 by default, which would make "fp32" results
    differ from the CPU's; elsewhere this does nothing.
    """
    if device.type != "cuda":
        yield
        return
    tf32 = resolve_precision(precision, device) == "tf32"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        # PyTorch >= 2.9 API; mixing it with the legacy flags is an error there.
        matmul = torch.backends.cuda.matmul
        saved = (conv.fp32_precision, matmul.fp32_precision)
        conv.fp32_precision = matmul.fp32_precision = "tf32" if tf32 else "ieee"
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved

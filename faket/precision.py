"""Arithmetic precision: names, autocast types and TF32 switches (style transfer and
the judges' networks)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch

from faket.device import deterministic_algorithms
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


@cache
def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has fast bfloat16 kernels on this CPU (AVX-512 and newer; native
    bfloat16 arithmetic with AVX-512 BF16 or AMX; whether they are also *faster* than
    float32 is :func:`cpu_prefers_bf16`).

    Without them bfloat16 is emulated, and a bf16 VGG pass is ~10x *slower* than fp32
    (measured on an AVX2-only AMD EPYC: 10 vs 116 GFLOP/s per 3x3 convolution).
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        return False


def bf16_beats_fp32(flags: set[str], vendor: str) -> bool:
    """Whether a CPU with oneDNN's bfloat16 kernels runs them faster than float32, from
    its ``/proc/cpuinfo`` flags and vendor: Intel with AMX, or AMD (Zen 4 on) with
    AVX-512 BF16.

    Why not every CPU with AVX-512 BF16: without AMX, Intel's bfloat16 kernels ran
    slower than float32 (benchmarks/README.md, sixth session), while AMD's ran faster.
    """
    if "amx_bf16" in flags:
        return True
    return vendor == "AuthenticAMD" and "avx512_bf16" in flags


def cpu_flags(cpuinfo: str) -> tuple[set[str], str]:
    """The first processor's flags and vendor in the text of ``/proc/cpuinfo``."""
    flags: set[str] = set()
    vendor = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return flags, vendor


@cache
def cpu_prefers_bf16() -> bool:
    """Whether ``mixed`` picks bfloat16 on this CPU: native bfloat16 kernels
    (:func:`cpu_has_native_bf16`) that are also faster than float32
    (:func:`bf16_beats_fp32`). Where the flags cannot be read (not Linux), native kernels
    are taken as faster."""
    if not cpu_has_native_bf16():
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    flags, vendor = cpu_flags(text)
    return bf16_beats_fp32(flags, vendor) if flags else True


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` is an NVIDIA GPU with bfloat16 tensor cores (compute capability
    8.0, Ampere, or newer)."""
    if device.type != "cuda":
        return False
    try:
        return torch.cuda.get_device_capability(device) >= (8, 0)
    except (RuntimeError, AssertionError):  # no usable CUDA here
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used on ``device``; impossible combinations are errors.

    ``mixed`` means bf16 on a CPU whose bfloat16 kernels beat float32
    (:func:`cpu_prefers_bf16`) and on NVIDIA GPUs from Ampere on, fp32 on other CPUs, and
    fp16 on older GPUs and MPS. bf16 has float32's range, so its gradients cannot underflow
    as fp16's can (the style gradients reaching the deep VGG layers are ~1e-7, fp16's
    subnormal range). An explicit ``bf16`` on a CPU without native bfloat16 runs (see
    :func:`warn_if_emulated`).
    """
    name = check_precision(precision)
    if name == "mixed":
        if device.type == "cpu":
            return "bf16" if cpu_prefers_bf16() else "fp32"
        return "bf16" if cuda_has_native_bf16(device) else "fp16"
    if name == "tf32" and device.type != "cuda":
        raise FaketError("precision tf32 needs an NVIDIA GPU; use fp32 or bf16 on this device")
    if name == "fp16" and device.type == "cpu":
        raise FaketError("precision fp16 needs a GPU; use bf16 (or mixed) on the CPU")
    return name


def warn_if_emulated(precision: str, device: torch.device) -> None:
    """Warn when ``precision`` resolves to bf16 on a CPU that only emulates it."""
    if resolve_precision(precision, device) == "bf16" and device.type == "cpu":
        if not cpu_has_native_bf16():
            warnings.warn(
                "this CPU has no fast bfloat16 kernels (they need AVX-512; AVX-512 BF16 or "
                "AMX for full speed): bf16 is emulated and about 10x slower than fp32 here; "
                "use --precision fp32 (or mixed, which picks fp32)",
                RuntimeWarning,
                stacklevel=3,
            )


def reduced_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast type of ``precision`` on ``device``: bf16/fp16, or None for fp32/tf32."""
    name = resolve_precision(precision, device)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name)


@contextmanager
def fp32_mode(device: torch.device, precision: str) -> Iterator[None]:
    """On CUDA: TF32 only when asked for, deterministic kernels; restored after the block.

    PyTorch lets cuDNN convolutions use TF32 by default, which would make "fp32" results
    differ from the CPU's; here float32 convolutions and matrix products are IEEE
    float32 unless ``precision`` is ``tf32`` (autocast's bf16/fp16 layers are not
    affected). The block also runs with :func:`faket.device.deterministic_algorithms`,
    so equal inputs give equal outputs on the same GPU. Elsewhere this does nothing.
    """
    if device.type != "cuda":
        yield
        return
    tf32 = resolve_precision(precision, device) == "tf32"
    with _tf32_switches(tf32), deterministic_algorithms(device):
        yield


@contextmanager
def _tf32_switches(tf32: bool) -> Iterator[None]:
    cudnn = torch.backends.cudnn
    matmul = torch.backends.cuda.matmul
    if hasattr(getattr(cudnn, "conv", None), "fp32_precision"):
        # PyTorch >= 2.9 API. Mixing it with the legacy flags is an error there (even
        # reading cudnn.allow_tf32 inside the block fails), so only this API is used.
        switches = [cudnn.conv, matmul]
        saved = [switch.fp32_precision for switch in switches]
        for switch in switches:
            switch.fp32_precision = "tf32" if tf32 else "ieee"
        try:
            yield
        finally:
            for switch, value in zip(switches, saved, strict=True):
                switch.fp32_precision = value
        return
    saved_flags = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32 = matmul.allow_tf32 = tf32
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved_flags


#: Precisions the judges' networks (DeepFinder, the subtomogram classifier) accept.
NETWORK_PRECISIONS = ("fp32", "bf16", "mixed")


def check_network_precision(precision: str) -> str:
    """``precision`` if the judges' networks accept it (:data:`NETWORK_PRECISIONS`)."""
    if precision not in NETWORK_PRECISIONS:
        raise FaketError(
            f"unknown network precision {precision!r}; use {', '.join(NETWORK_PRECISIONS)}"
        )
    return precision


def resolve_network_precision(precision: str, device: torch.device) -> str:
    """The precision a judge network's forward pass runs in on ``device``: bf16 or fp32.

    ``mixed`` means bf16 where it is native and faster (a CPU of :func:`cpu_prefers_bf16`,
    an NVIDIA GPU from Ampere on) and float32 elsewhere. Unlike the style transfer, fp16 is
    never chosen: training without loss scaling would let small gradients underflow. The
    weights, the optimiser state and the loss stay float32 either way.
    """
    if check_network_precision(precision) != "mixed":
        return precision
    native = cpu_prefers_bf16() if device.type == "cpu" else cuda_has_native_bf16(device)
    return "bf16" if native else "fp32"


def network_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of :func:`resolve_network_precision`: bf16, or None for float32."""
    return torch.bfloat16 if resolve_network_precision(precision, device) == "bf16" else None

"""Settings of the style transfer and the input checks and transforms they imply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from faket.errors import FaketError
from faket.io import release_pages
from faket.precision import check_precision
from faket.style.vgg import LAYER_NAMES, POOLINGS, min_input_size

__all__ = [
    "TransferSettings",
    "UnitScaled",
    "check_size",
    "check_stack",
    "normalise",
    "resize",
    "scales",
    "tilt_mean_std",
    "with_overrides",
]


@dataclass(frozen=True)
class TransferSettings:
    """Every knob of the style transfer; the defaults are the FakET paper's.

    Attributes
    ----------
    iterations : int
        Adam steps per scale (paper: 1).
    step_size : float
        Adam learning rate, in [0, 1] image units (paper: 0.15).
    ema_decay : float
        Decay of the bias-corrected moving average that is the output (paper: 0.99).
    content_weight, style_weight, tv_weight : float
        Overall weights of the three loss terms (paper: 1, 1, 0).
    content_layers, content_layer_weights : tuple
        VGG-19 layer indices and relative weights (normalised to sum 1; paper: (8,), (100,)).
    style_layers, style_layer_weights : tuple
        Likewise for the style (paper: (1, 6, 11, 20, 29), (256, 64, 16, 4, 1)).
    pooling : {"max", "average", "l2"}
        Pooling in the network (paper: max).
    normalization : {"stack", "tilt"}
        Min-max normalise each stack as a whole (paper) or each tilt on its own.
    match_stats : {"style", "none"}
        Match each output tilt's mean/std to the style tilt's (paper), or return the
        [0, 1] result.
    precision : {"fp32", "tf32", "bf16", "fp16", "mixed"}
        Arithmetic of the network (see the module docstring).
    reduced_from : int
        With bf16/fp16, the first VGG layer computed in reduced precision (default 10,
        conv3_1). The layers before it, which produce the content layer, stay float32:
        the content loss takes the difference of nearly equal activations (init and
        content show the same specimen), and bf16 rounding of both flips the sign of
        the update at ~4% of pixels instead of ~0.03% (measured at 256x256), while
        those layers are only ~25% of the work.
    channels_last : bool or None
        Channels-last memory layout: ~1.15x faster per tilt on CPUs (measured at 512x512
        and 1024x1024 on an AVX2 CPU) and faster on GPUs, the same arithmetic up to float
        round-off. None (default) = on, except on Apple MPS. False uses the paper's
        code's NCHW layout and reproduces its float32 results to ~1e-5 on the same
        machine (see :mod:`faket.style.transfer`): round-off differences flip the sign
        of near-zero gradients at a handful of pixels, and runs of several iterations
        amplify them.
    min_scale : int or None
        None: one scale at full resolution (paper). Otherwise start at this many pixels
        on the long side and grow by sqrt(2) per scale, each scale initialised with the
        previous scale's upsampled result (Adam restarts at each scale).
    eps : float
        Of the scaled-MSE loss.
    """

    iterations: int = 1
    step_size: float = 0.15
    ema_decay: float = 0.99
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.0
    content_layers: tuple[int, ...] = (8,)
    content_layer_weights: tuple[float, ...] = (100.0,)
    style_layers: tuple[int, ...] = (1, 6, 11, 20, 29)
    style_layer_weights: tuple[float, ...] = (256.0, 64.0, 16.0, 4.0, 1.0)
    pooling: str = "max"
    normalization: str = "stack"
    match_stats: str = "style"
    precision: str = "fp32"
    reduced_from: int = 10
    channels_last: bool | None = None
    min_scale: int | None = None
    eps: float = 1e-8

    def __post_init__(self) -> None:
        for name in ("content_layers", "content_layer_weights", "style_layers",
                     "style_layer_weights"):  # fmt: skip
            # Lists would make the frozen settings unhashable and differ in fingerprints.
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.iterations < 1:
            raise FaketError(f"iterations must be at least 1, got {self.iterations}")
        if not self.step_size > 0:
            raise FaketError(f"step size must be positive, got {self.step_size}")
        if not 0 <= self.ema_decay < 1:
            raise FaketError(f"EMA decay must be in [0, 1), got {self.ema_decay}")
        for name in ("content", "style"):
            layers = getattr(self, f"{name}_layers")
            weights = getattr(self, f"{name}_layer_weights")
            if not layers or len(layers) != len(weights) or len(set(layers)) != len(layers):
                raise FaketError(f"{name} layers and weights must be non-empty, equally long")
            if not all(0 <= i < len(LAYER_NAMES) for i in layers):
                raise FaketError(f"{name} layers must be in 0..{len(LAYER_NAMES) - 1}")
            if sum(abs(w) for w in weights) == 0:
                raise FaketError(f"{name} layer weights must not all be 0")
        if self.pooling not in POOLINGS:
            raise FaketError(f"pooling must be one of {', '.join(POOLINGS)}")
        if self.normalization not in ("stack", "tilt"):
            raise FaketError("normalization must be 'stack' or 'tilt'")
        if self.match_stats not in ("style", "none"):
            raise FaketError("match_stats must be 'style' or 'none'")
        check_precision(self.precision)
        if self.reduced_from < 0:
            raise FaketError(f"reduced_from must be a layer index >= 0, not {self.reduced_from}")
        if self.min_scale is not None and self.min_scale < 1:
            raise FaketError(f"min_scale must be a positive number of pixels, not {self.min_scale}")

    @property
    def last_layer(self) -> int:
        """Deepest VGG layer any loss uses."""
        return max(self.content_layers + self.style_layers)

    def layer_weights(self) -> tuple[list[float], list[float]]:
        """Content and style layer weights, each normalised and times its overall weight."""
        out = []
        for name in ("content", "style"):
            weights = getattr(self, f"{name}_layer_weights")
            total = sum(abs(w) for w in weights)
            overall = getattr(self, f"{name}_weight")
            out.append([overall * w / total for w in weights])
        return out[0], out[1]


def with_overrides(settings: TransferSettings | None, overrides: dict) -> TransferSettings:
    """``settings`` (default: the paper's) with the given fields replaced.

    Parameters
    ----------
    settings : TransferSettings or None
    overrides : dict
        Field names and values; an unknown name is a :class:`FaketError`.

    Returns
    -------
    TransferSettings
    """
    unknown = sorted(set(overrides) - {f.name for f in fields(TransferSettings)})
    if unknown:
        raise FaketError(f"unknown style-transfer setting(s) {', '.join(unknown)}")
    return replace(settings or TransferSettings(), **overrides)


def check_stack(name: str, stack: np.ndarray) -> np.ndarray:
    """``stack`` as a real-valued, finite tilt series ``(n_tilts, Y, X)`` (2-D: one tilt).

    Checked tilt by tilt; a memory-mapped stack stays on disk (no copy is made, and the
    pages read are released after each tilt).

    Parameters
    ----------
    name : str
        What the stack is (``"content"``, ...), for the error message.
    stack : array_like

    Returns
    -------
    ndarray
        The same data (a view for 2-D input).
    """
    stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise FaketError(f"{name} must be a tilt series (n_tilts, Y, X), got shape {stack.shape}")
    if not np.issubdtype(stack.dtype, np.number) or np.iscomplexobj(stack):
        raise FaketError(f"{name} must hold real numbers, not {stack.dtype}")
    # Tilt by tilt: a boolean copy of a whole 61 x 4k x 4k stack would cost gigabytes.
    for tilt in stack:
        finite = bool(np.isfinite(tilt).all())
        release_pages(tilt)
        if not finite:
            raise FaketError(f"{name} contains NaN or Inf values; clean the input first")
    return stack


class UnitScaled:
    """A stack min-max scaled to [0, 1], computed per requested tilts (saves a full copy).

    ``how="stack"`` uses the whole stack's min and max (the paper), ``"tilt"`` each
    tilt's own. Indexing returns float32 ``(B, Y, X)``. The minima and maxima are found
    tilt by tilt, so a memory-mapped stack is never resident as a whole.
    """

    def __init__(self, stack: np.ndarray, how: str) -> None:
        self.stack = stack
        lows, highs = [], []
        for tilt in stack:
            lows.append(tilt.min())
            highs.append(tilt.max())
            release_pages(tilt)
        lows, highs = np.array(lows)[:, None, None], np.array(highs)[:, None, None]
        if how == "stack":
            lows, highs = lows.min(keepdims=True), highs.max(keepdims=True)
        # min/max commute with the (monotonic) cast to float32.
        self.low = np.asarray(lows, dtype=np.float32)
        span = np.asarray(highs, dtype=np.float32) - self.low
        # A constant stack has no contrast to keep; map it to 0 instead of dividing by 0.
        self.span = np.where(span > 0, span, np.float32(1))
        self.per_tilt = how != "stack"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.stack.shape

    def __getitem__(self, index) -> np.ndarray:
        values = np.asarray(self.stack[index], dtype=np.float32)
        release_pages(self.stack)
        low, span = (self.low[index], self.span[index]) if self.per_tilt else (self.low, self.span)
        # float32 arithmetic in the paper's order, (x - min) / (max - min): even a one-ulp
        # change of the inputs is amplified by multi-step runs (see TransferSettings).
        return (values - low) / span


def tilt_mean_std(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-tilt mean and population standard deviation (float64), tilt by tilt.

    Equal bit for bit to ``stack.astype(np.float64).mean(axis=(1, 2))`` (and ``std``),
    without the float64 copy of the whole stack.
    """
    means, stds = np.empty(len(stack)), np.empty(len(stack))
    for i, tilt in enumerate(stack):
        values = np.asarray(tilt, dtype=np.float64)
        release_pages(tilt)
        means[i], stds[i] = values.mean(), values.std()
    return means, stds


def normalise(stack: np.ndarray, how: str) -> np.ndarray:
    """The whole stack min-max scaled to [0, 1] (see :class:`UnitScaled`); float32."""
    return UnitScaled(stack, how)[:]


def scales(shape: tuple[int, int], min_scale: int | None, smallest: int) -> list[tuple[int, int]]:
    """Image sizes of the scales, smallest first; the last is ``shape`` itself."""
    h, w = shape
    long = max(h, w)
    if min_scale is None or min_scale >= long:
        return [(h, w)]
    sizes, step = [], 0
    while (side := round(long / 2 ** (step / 2))) >= min_scale:
        size = (max(smallest, round(h * side / long)), max(smallest, round(w * side / long)))
        if size not in sizes:
            sizes.append(size)
        step += 1
    return sizes[::-1]


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``images`` (N, C, H, W) resized to ``size`` (bicubic, antialiased; same size: as is)."""
    if tuple(images.shape[-2:]) == size:
        return images
    return torch.nn.functional.interpolate(
        images, size=size, mode="bicubic", antialias=True, align_corners=False
    )


def check_size(shape: Sequence[int], settings: TransferSettings) -> None:
    """Raise :class:`FaketError` when tilts of ``shape`` are too small for the layers."""
    side = min_input_size(settings.last_layer)
    if min(shape[-2:]) < side:
        raise FaketError(
            f"tilts of {shape[-2]}x{shape[-1]} pixels are too small for VGG layer "
            f"{settings.last_layer} ({LAYER_NAMES[settings.last_layer]}); they need at least "
            f"{side}x{side} pixels (bin less, or use shallower style layers)"
        )

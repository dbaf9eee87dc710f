"""The VGG-19 feature network used by the style transfer, defined in the project.

The layer list is VGG-19's convolutional part (Simonyan & Zisserman 2014) in the order
and with the indices of torchvision's ``vgg19().features``, so a torchvision state dict
(``features.<i>.weight`` / ``features.<i>.bias``) loads directly and layer numbers such as
"content layer 8" (relu2_2) or "style layer 29" (relu5_1) mean the same thing here as in
the FakET paper's code. torchvision itself is not needed.

Differences from a plain VGG-19, all following the paper's style-transfer code:

- the network stops after the deepest layer the losses use;
- the first convolution pads by replicating edge pixels instead of with zeros, which
  reduces edge artefacts in the stylised image;
- the ImageNet mean/std normalisation happens inside the network, and a single-channel
  input is treated as a grey image replicated to three channels;
- max pooling by default; average or L2 pooling as options, rescaled so that their
  activations have roughly the scale max pooling gives (the factors of the paper's code).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from faket.errors import FaketError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LAYER_NAMES",
    "POOLINGS",
    "VGG19Features",
    "conv_indices",
    "min_input_size",
]

#: VGG-19 configuration "E": output channels of each 3x3 convolution, "M" = 2x2 pooling.
# fmt: off
_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)
# fmt: on

#: ImageNet channel statistics torchvision's weights were trained with (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Activation scale of each pooling relative to max pooling (as in the paper's code).
POOLINGS = {"max": 1.0, "average": 2.0, "l2": 0.78}


def _layer_names() -> tuple[str, ...]:
    names, block, conv = [], 1, 1
    for item in _CONFIG:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return tuple(names)


#: Name of every layer index of ``vgg19().features``: ``LAYER_NAMES[8] == "relu2_2"``.
LAYER_NAMES = _layer_names()


def conv_indices(last_layer: int = len(LAYER_NAMES) - 1) -> list[tuple[int, int, int]]:
    """``(index, in_channels, out_channels)`` of every convolution up to ``last_layer``."""
    out, channels, index = [], 3, 0
    for item in _CONFIG:
        if item == "M":
            index += 1
            continue
        if index > last_layer:
            break
        out.append((index, channels, int(item)))
        channels, index = int(item), index + 2
    return out


def min_input_size(last_layer: int) -> int:
    """Smallest image side (pixels) that still has one position at ``last_layer``."""
    # A layer behind p poolings sees floor(side / 2**p) positions per side, and the deepest
    # layer must see at least one for its activations (and Gram matrix) to exist.
    pools = sum(1 for i in range(last_layer + 1) if LAYER_NAMES[i].startswith("pool"))
    return 2**pools


class _ScaledPool(nn.Module):
    """Average or L2 pooling times a constant, so activations keep max pooling's scale."""

    def __init__(self, pooling: str) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2) if pooling == "average" else nn.LPPool2d(2, 2)
        self.scale = POOLINGS[pooling]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) * self.scale


def _check_layer(last_layer: int) -> None:
    if not 0 <= last_layer < len(LAYER_NAMES):
        raise FaketError(f"VGG-19 layer {last_layer} does not exist; use 0..{len(LAYER_NAMES) - 1}")


class VGG19Features(nn.Module):
    """VGG-19's convolutional layers ``0..last_layer``, returning chosen activations.

    Parameters
    ----------
    last_layer : int
        Deepest layer index kept (torchvision numbering; 29 = relu5_1).
    pooling : {"max", "average", "l2"}
        Pooling layers' type.
    device : torch.device or str, optional
        Where the convolutions' parameters are created; ``"meta"`` skips their random
        initialisation when weights will be loaded with ``load_state_dict(..., assign=True)``.

    Notes
    -----
    ``self.features`` is an ``nn.Sequential`` whose parameter names match torchvision's
    (``features.0.weight`` ... ), so ``load_state_dict`` takes a torchvision file's
    ``features.*`` entries unchanged. Parameters never require gradients.
    """

    def __init__(
        self,
        last_layer: int = 29,
        pooling: str = "max",
        *,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _check_layer(last_layer)
        if pooling not in POOLINGS:
            raise FaketError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
        self.last_layer = last_layer
        self.pooling = pooling
        layers: list[nn.Module] = []
        channels = 3
        for item in _CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2) if pooling == "max" else _ScaledPool(pooling))
            else:
                # Replicate padding on the first convolution only, as the paper's code.
                mode = "replicate" if not layers else "zeros"
                layers.append(
                    nn.Conv2d(channels, int(item), 3, padding=1, padding_mode=mode, device=device)
                )
                layers.append(nn.ReLU())
                channels = int(item)
        self.features = nn.Sequential(*layers[: last_layer + 1])
        # Not persistent: the state dict stays exactly torchvision's layout.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD), persistent=False)
        self.requires_grad_(False)
        self.eval()
        #: Channels-last layout (see :meth:`set_channels_last`).
        self.channels_last = False
        #: Short text identifying the weights (set by the loader), for caches and logs.
        self.weights_id = "uninitialised"

    def set_channels_last(self, enabled: bool) -> VGG19Features:
        """Switch the memory layout of weights and activations (in place; returns self).

        Channels-last runs oneDNN's and cuDNN's faster convolution kernels (~1.15x faster
        per tilt on a CPU); the arithmetic is the same up to round-off.
        """
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.features.to(memory_format=fmt)
        self.channels_last = bool(enabled)
        return self

    def forward(
        self,
        x: torch.Tensor,
        layers: Iterable[int],
        *,
        reduced: torch.dtype | None = None,
        reduced_from: int = 0,
        start: int = 0,
    ) -> dict[int, torch.Tensor]:
        """Activations of ``layers`` for images ``x``.

        Parameters
        ----------
        x : Tensor, shape (N, 1 or 3, H, W)
            Images in [0, 1] units (not ImageNet-normalised). One channel means a grey
            image replicated to RGB; three channels are used as they are. With
            ``start > 0``: the activations that enter layer ``start`` instead.
        layers : iterable of int
            Layer indices wanted, each ``<= last_layer`` (and ``>= start``).
        reduced : torch.dtype, optional
            ``torch.bfloat16`` or ``torch.float16``: run layers from ``reduced_from`` on
            under autocast to that type (their activations come out in it).
        reduced_from : int
            First layer index computed in reduced precision.
        start : int
            First layer to run (a segment of the network, for tiled computation).

        Returns
        -------
        dict
            ``{layer: Tensor (N, C, H', W')}``.
        """
        wanted = sorted(set(layers))
        if not wanted or wanted[-1] > self.last_layer or wanted[0] < start or start < 0:
            raise FaketError(f"layers {wanted} are outside {start}..{self.last_layer}")
        if start > 0:
            h = x
        else:
            h = self._normalised(x, wanted[-1])
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        out: dict[int, torch.Tensor] = {}
        for index in range(start, wanted[-1] + 1):
            layer = self.features[index]
            if isinstance(layer, nn.ReLU):
                # In place saves a full activation per conv (the conv's backward needs its
                # input, not its output) unless the conv output itself was asked for (or
                # is the caller's own tensor).
                h = F.relu(h, inplace=index - 1 not in out and index > start)
            elif reduced is not None and index >= reduced_from:
                with torch.autocast(h.device.type, dtype=reduced):
                    h = layer(h)
            else:
                h = layer(h.float())
            if index in wanted:
                out[index] = h
        return out

    def _normalised(self, x: torch.Tensor, deepest: int) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise FaketError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
        side = min_input_size(deepest)
        if min(x.shape[-2:]) < side:
            raise FaketError(
                f"images of {x.shape[-2]}x{x.shape[-1]} pixels are too small for VGG layer "
                f"{deepest} ({LAYER_NAMES[deepest]}); they need at least {side}x{side}"
            )
        # Normalise, then convolve, in exactly the paper's code's order: a multi-step run
        # amplifies float round-off (see TransferSettings), and folding the normalisation
        # and grey-to-RGB replication into conv1_1 would save under 1% of the work.
        return (x.expand(-1, 3, -1, -1) - self.mean.view(1, 3, 1, 1)) / self.std.view(1, 3, 1, 1)

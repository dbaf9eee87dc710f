"""Stored switches: a segment tail's backward pass without recomputing its forward pass.

Behind a segment's deepest loss layer (VGG-19: conv3_2 ... pool3 behind relu3_1,
conv4_2 ... pool4 behind relu4_1), the gradient only has to be carried back from the
segment's output. Through a convolution that takes the weights alone; through a ReLU the
sign of its output (the *mask*), through a max pooling the position of each window's
maximum (the *choice*). The first pass stores these switches for the whole map (masks
as bits, 8 channels per byte; choices as one byte), so the gradient pass needs neither
the tail's activations nor its forward pass: it recomputes only the head, up to the
deepest loss layer. The arithmetic is autograd's: convolutions' input gradients by the
same kernel (:func:`torch.ops.aten.convolution_backward`), ReLU and pooling gradients
by selection, which is exact.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from faket.device import mapped_zeros

__all__ = ["Switches", "conv_input_grad", "pool_choice"]


def pool_choice(x: torch.Tensor) -> torch.Tensor:
    """Which element of each 2x2 window is its maximum (0-3, row-major), as uint8.

    Ties go to the first maximum in row-major order, as PyTorch's max pooling does.
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    best = x[..., 0:h:2, 0:w:2]
    choice = torch.zeros(best.shape, dtype=torch.uint8, device=x.device)
    for k, (dy, dx) in enumerate(((0, 1), (1, 0), (1, 1)), start=1):
        value = x[..., dy:h:2, dx:w:2]
        better = value > best
        choice.masked_fill_(better, k)
        best = torch.where(better, value, best)
    return choice


def _unpool(grad: torch.Tensor, choice: torch.Tensor, shape) -> torch.Tensor:
    out = torch.zeros(shape, dtype=grad.dtype, device=grad.device)
    out = out.contiguous(memory_format=_layout(grad))
    h, w = grad.shape[-2] * 2, grad.shape[-1] * 2
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[..., dy:h:2, dx:w:2] = torch.where(choice == k, grad, 0)
    return out


def _layout(x: torch.Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _pack(mask: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) bool -> (N, H, W, C / 8) uint8, channel ``8 j + k`` in bit ``k``."""
    channels_last = mask.permute(0, 2, 3, 1).contiguous()
    if mask.device.type == "cpu":
        packed = np.packbits(channels_last.numpy(), axis=-1, bitorder="little")
        return torch.from_numpy(packed)
    bits = channels_last.view(*channels_last.shape[:3], -1, 8).to(torch.uint8)
    packed = bits[..., 0].clone()
    for k in range(1, 8):
        packed |= bits[..., k] << k
    return packed


def _unpack(packed: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of :func:`_pack`: (N, C, H, W) bool in channels-last layout."""
    if packed.device.type == "cpu":
        bits = np.unpackbits(packed.numpy(), axis=-1, count=channels, bitorder="little")
        return torch.from_numpy(bits.view(bool)).permute(0, 3, 1, 2)
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed[..., None] >> shifts) & 1
    return bits.view(*packed.shape[:3], channels).bool().permute(0, 3, 1, 2)


class Switches:
    """Full-map switches of one segment's tail, filled tile by tile in the first pass.

    Parameters
    ----------
    features : nn.Sequential
        The network's layers.
    tail : tuple of int
        The tail's layers (:attr:`faket.style.tiling.Segment.tail`).
    """

    def __init__(self, features: nn.Sequential, tail: tuple[int, ...]) -> None:
        self.features, self.tail = features, tail
        self.maps: dict[int, torch.Tensor] = {}

    def layers(self) -> list[int]:
        """Layers whose activations (ReLU outputs, pooling inputs) the first pass needs."""
        out = {i for i in self.tail if isinstance(self.features[i], nn.ReLU)}
        out |= {i - 1 for i in self.tail if isinstance(self.features[i], nn.MaxPool2d)}
        return sorted(out)

    def store(self, layer: int, values: torch.Tensor, place: tuple, shape) -> None:
        """Switches of ``layer`` from a tile's activations ``values`` (its owned part).

        ``values`` are the ReLU's outputs, or for a pooling its input's owned windows;
        ``place`` is where they go in the full map of ``shape`` (H, W).
        """
        if isinstance(self.features[layer], nn.ReLU):
            # Packed masks are (N, H, W, C / 8): the channels are the last axis.
            switch, place = _pack(values > 0), (*place[:-2], *place[-2:], slice(None))
            full = (1, *shape, values.shape[1] // 8)
        else:
            switch, full = pool_choice(values), (1, values.shape[1], *shape)
        if layer not in self.maps:
            self.maps[layer] = mapped_zeros(full, torch.uint8, switch.device)
        self.maps[layer][place] = switch

    def backward(self, grad: torch.Tensor, window: dict[int, tuple], shapes: dict) -> torch.Tensor:
        """The tail's backward pass over one tile window.

        Parameters
        ----------
        grad : Tensor (1, C, h, w)
            Gradient at the tail's output over the tile window's output map.
        window : dict
            ``{layer: slices}`` of each tail layer's map covered by the window.
        shapes : dict
            ``{layer: (C, h, w)}`` of each layer's input over the window.

        Returns
        -------
        Tensor
            Gradient at the tail's input over the window.
        """
        for layer in reversed(self.tail):
            module = self.features[layer]
            if isinstance(module, nn.MaxPool2d):
                grad = _unpool(grad, self.maps[layer][window[layer]], (1, *shapes[layer]))
            elif isinstance(module, nn.ReLU):
                rows_columns = (*window[layer][:-2], *window[layer][-2:], slice(None))
                mask = _unpack(self.maps[layer][rows_columns], grad.shape[1])
                grad = torch.where(mask, grad, 0)
            else:
                grad = conv_input_grad(module, grad, (1, *shapes[layer]))
        return grad


def conv_input_grad(conv: nn.Conv2d, grad: torch.Tensor, shape) -> torch.Tensor:
    """Input gradient of a convolution (autograd's kernel), from its weights alone."""
    dummy = grad.new_empty(1).expand(shape)
    return torch.ops.aten.convolution_backward(
        grad, dummy, conv.weight, None, list(conv.stride), list(conv.padding),
        list(conv.dilation), False, [0, 0], conv.groups, [True, False, False],
    )[0]  # fmt: skip

"""Tile sizes of the exact tiled style transfer: when to tile and how large the tiles are.

:mod:`faket.style.tiling` has the geometry (segments, reaches, halos, spans) and why it
is exact; here a memory budget, or a tile size in pixels, becomes a :class:`TilePlan`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from faket.device import working_memory
from faket.errors import FaketError
from faket.style.settings import TransferSettings
from faket.style.tiling import Segment, network_segments

__all__ = ["TILE_BYTES", "TilePlan", "choose_plan", "plan_tiles", "whole_tilt_bytes"]


#: Working set of one tile in automatic mode: larger tiles only shave the halos' few
#: percent, and the full-tilt maps need room besides, as does the heap that keeps freed
#: blocks for the next tile (benchmarks/README.md: 1 GiB and 2 GiB tiles took the same
#: time at 4096^2).
TILE_BYTES = 1024**3
#: Bytes per activation value of a tile's segment (float32 activations, incl. autograd's
#: saved tensors and the backward pass's gradients; forward-only: the live activations),
#: measured on the CPU (benchmarks/README.md).
BYTES_PER_VALUE = {"forward": 4.0, "backward": 18.0}
#: Bytes per input pixel of a whole-tilt transfer (style, content and iterate passes,
#: autograd, backward), for the default layers; used to decide when to tile.
WHOLE_TILT_BYTES_PER_PIXEL = {"fp32": 6000, "reduced": 4000}


@dataclass(frozen=True)
class TilePlan:
    """How a tilt is tiled: the network's segments and each pass's tile size.

    Attributes
    ----------
    segments : tuple of Segment
    forward, backward : tuple of int
        Owned output positions per tile side of each segment, in the forward-only
        passes and in the gradient pass.
    """

    segments: tuple[Segment, ...]
    forward: tuple[int, ...]
    backward: tuple[int, ...]

    def describe(self, shape: tuple[int, int]) -> str:
        """One line: tiles per segment, e.g. ``"tiles 16/4/4/1 (forward 9/1/1/1)"``."""
        counts = {"forward": [], "backward": []}
        size = shape
        for index, segment in enumerate(self.segments):
            for kind in counts:
                side = getattr(self, kind)[index]
                n = [math.ceil((s // segment.stride) / side) for s in size]
                counts[kind].append(str(n[0] * n[1]))
            size = tuple(s // segment.stride for s in size)
        return f"tiles {'/'.join(counts['backward'])} (forward {'/'.join(counts['forward'])})"


def whole_tilt_bytes(settings: TransferSettings, shape: tuple[int, int]) -> int:
    """Estimated peak memory of the whole-tilt transfer of one tilt of ``shape``."""
    kind = "fp32" if settings.precision in ("fp32", "tf32") else "reduced"
    return WHOLE_TILT_BYTES_PER_PIXEL[kind] * shape[0] * shape[1]


def _side(segment: Segment, kind: str, budget: int) -> int:
    """Owned output positions per tile side whose tile fits ``budget`` bytes."""
    halo = segment.halo_forward if kind == "forward" else segment.halo_backward
    per_position = segment.floats_per_position * BYTES_PER_VALUE[kind]
    window = int(math.sqrt(budget / per_position))
    return max(1, (window - 2 * halo) // segment.stride)


def plan_tiles(
    features: nn.Sequential,
    settings: TransferSettings,
    *,
    tile_bytes: int | None = None,
    tile: int | None = None,
) -> TilePlan:
    """Tile sizes of every segment, from a memory budget or a tile size in pixels.

    Parameters
    ----------
    features : nn.Sequential
        The feature network's layers.
    settings : TransferSettings
    tile_bytes : int, optional
        Working set one tile may use (automatic mode).
    tile : int, optional
        Tiles of ``tile x tile`` pixels (rounded down to the first segment's stride) in
        the first segment; the deeper segments get tiles of the same working set.

    Returns
    -------
    TilePlan
    """
    losses = settings.content_layers + settings.style_layers
    # Stored switches carry float32 gradients; with autocast layers the tails recompute.
    switches = settings.precision in ("fp32", "tf32")
    segments = tuple(network_segments(features, settings.last_layer, losses, switches))
    first = segments[0]
    if tile is not None:
        if tile < first.stride:
            raise FaketError(f"tile size {tile} is too small; use at least {first.stride} pixels")
        side = tile // first.stride
        window = side * first.stride + 2 * first.halo_backward
        tile_bytes = int(window**2 * first.floats_per_position * BYTES_PER_VALUE["backward"])
    if tile_bytes is None:
        raise FaketError("plan_tiles needs tile_bytes or tile")
    forward = [_side(s, "forward", tile_bytes) for s in segments]
    backward = [_side(s, "backward", tile_bytes) for s in segments]
    if tile is not None:
        forward[0] = backward[0] = tile // first.stride
    return TilePlan(segments, tuple(forward), tuple(backward))


def choose_plan(
    net, settings: TransferSettings, device, shape, budget: int | None, tile: int | None
) -> TilePlan | None:
    """The tiling of a tilt of ``shape``: None for the whole-tilt transfer.

    Parameters
    ----------
    net : VGG19Features
    settings : TransferSettings
    device : torch.device
    shape : (int, int)
        Tilt size (Y, X) in pixels.
    budget : int, optional
        Memory (bytes) a tilt may use; default :func:`faket.device.working_memory`
        (part of the free GPU memory, or of the available host memory).
    tile : int, optional
        None: tile only when the whole-tilt working set exceeds the budget; 0: never;
        N: tiles of N x N pixels.
    """
    if tile is not None and tile < 0:
        raise FaketError(f"tile size must be a positive number of pixels (or 0: off), not {tile}")
    if tile == 0:
        return None
    if tile is not None:
        return plan_tiles(net.features, settings, tile=int(tile))
    available = working_memory(device, budget)
    if whole_tilt_bytes(settings, shape) <= available:
        return None
    return plan_tiles(net.features, settings, tile_bytes=min(available, TILE_BYTES))

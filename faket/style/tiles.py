"""Running the feature network tile by tile: windows, owned and valid parts, full maps.

The building blocks of the exact tiled style transfer (:mod:`faket.style.tiled`, which
says how the passes use them; :mod:`faket.style.tiling` says why the tiles reproduce the
whole-image arithmetic): a segment's tiles, the parts of a tile's activations that it
owns or computes exactly, the full maps the tiles' owned parts are stored into, and the
content image's activations per tile (:class:`ContentTargets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from faket.device import mapped_zeros
from faket.style.network import forward
from faket.style.settings import TransferSettings
from faket.style.tile_plan import TilePlan
from faket.style.tiling import Segment, Span, spans, tap_range

__all__ = [
    "ContentTargets",
    "TileContext",
    "forward_segment",
    "iter_tiles",
    "layers_in",
    "new_map",
    "owned_input",
    "row_blocks",
    "tile_part",
    "tile_place",
    "tile_window",
]


@dataclass
class TileContext:
    """What every tile of a tilt shares: the network, settings, device and tile plan."""

    net: torch.nn.Module
    settings: TransferSettings
    device: torch.device
    plan: TilePlan


def iter_tiles(segment: Segment, shape, side: int, halo: int):
    """The ``(row, column)`` spans of a segment's tiles over an input grid of ``shape``."""
    for row in spans(shape[0], segment.stride, side, halo):
        for column in spans(shape[1], segment.stride, side, halo):
            yield row, column


def tile_window(x: torch.Tensor, row: Span, column: Span) -> torch.Tensor:
    """The tile's input window of a map ``x`` (..., H, W) (a view)."""
    return x[..., row.window[0] : row.window[1], column.window[0] : column.window[1]]


def tile_part(x: torch.Tensor, tap, row: Span, column: Span, kind: str) -> torch.Tensor:
    """The ``kind`` positions (owned or valid) of ``tap`` in a tile's activations ``x``."""
    (y0, y1), (x0, x1) = tap_range(row, tap, kind), tap_range(column, tap, kind)
    return x[..., y0:y1, x0:x1]


def tile_place(tap, row: Span, column: Span, kind: str) -> tuple:
    """Index of the tile's ``kind`` positions of ``tap`` in the full map of ``tap``."""
    (y0, y1), (x0, x1) = tap_range(row, tap, kind), tap_range(column, tap, kind)
    dy, dx = row.window[0] // tap.stride, column.window[0] // tap.stride
    return (..., slice(y0 + dy, y1 + dy), slice(x0 + dx, x1 + dx))


def owned_input(row: Span, column: Span) -> tuple[tuple, tuple]:
    """Indices of the tile's owned inputs: in the full input map, and in its window."""
    local = (
        ...,
        slice(row.owned[0] - row.window[0], row.owned[1] - row.window[0]),
        slice(column.owned[0] - column.window[0], column.owned[1] - column.window[0]),
    )
    return (..., slice(*row.owned), slice(*column.owned)), local


def layers_in(segment: Segment, layers) -> list[int]:
    """Those of ``layers`` that lie in ``segment``."""
    return [layer for layer in layers if segment.start <= layer <= segment.stop]


def new_map(like: torch.Tensor, shape) -> torch.Tensor:
    """An empty full map for tiles like ``like``, in its memory layout (the layout decides
    which convolution kernels run, and so their round-off)."""
    channels_last = like.is_contiguous(memory_format=torch.channels_last)
    size = (1, like.shape[1], *shape)
    return mapped_zeros(size, like.dtype, like.device, channels_last=channels_last)


def row_blocks(part: torch.Tensor, budget: int = 2**25):
    """Blocks of rows of ``part`` (N, C, h, w) of about ``budget`` bytes each, as
    ``(rows, (N, rows * w, C))`` matrices (copies only of one block at a time)."""
    n, c, h, w = part.shape
    rows = max(1, budget // max(1, 4 * c * w))
    for start in range(0, h, rows):
        block = part[..., start : start + rows, :]
        yield slice(start, start + rows), block.permute(0, 2, 3, 1).reshape(n, -1, c)


def forward_segment(ctx, index: int, x: torch.Tensor, layers, store, on_tile=None, before=None):
    """Run segment ``index`` over ``x`` tile by tile (no autograd); the stored output map.

    ``before(row, column)`` runs before each tile's forward pass, and its result goes to
    ``on_tile(row, column, activations, result)`` after it.
    """
    segment = ctx.plan.segments[index]
    wanted = sorted(set(layers) | ({segment.stop} if store else set()))
    out = None
    output = segment.taps[segment.stop]
    tiles = iter_tiles(segment, x.shape[-2:], ctx.plan.forward[index], segment.halo_forward)
    with torch.no_grad():
        for row, column in tiles:
            extra = before(row, column) if before is not None else None
            feats = forward(
                ctx.net, tile_window(x, row, column), wanted, ctx.device, ctx.settings,
                start=segment.start,
            )  # fmt: skip
            if on_tile is not None:
                on_tile(row, column, feats, extra)
            del extra
            if store:
                value = feats[segment.stop]
                if out is None:
                    shape = tuple(n // segment.stride for n in x.shape[-2:])
                    out = new_map(value, shape)
                out[tile_place(output, row, column, "owned")] = tile_part(
                    value, output, row, column, "owned"
                )
    return out


class ContentTargets:
    """The content image's activations at the content layers, tile by tile.

    The content image's stored maps (as far as the content layers need them) are
    computed once; the activations are recomputed from them in every pass, because
    storing them costs more than it saves (2 GiB of relu2_2 activations for a 4096 x
    4096 tilt; kept in a temporary file instead, writing them took longer than
    recomputing them: benchmarks/README.md).
    """

    def __init__(self, ctx: TileContext, content01: torch.Tensor):
        self.ctx = ctx
        self.maps = [content01.to(ctx.device)]
        deepest = max(ctx.settings.content_layers)
        for index, segment in enumerate(ctx.plan.segments):
            if deepest <= segment.stop:
                break
            self.maps.append(forward_segment(ctx, index, self.maps[-1], [], True))

    def get(self, index: int, row: Span, column: Span, layers, kind: str) -> dict:
        """``{layer: activations}`` at the tile's ``kind`` positions (see :func:`tap_range`)."""
        ctx, segment = self.ctx, self.ctx.plan.segments[index]
        with torch.no_grad():
            feats = forward(
                ctx.net, tile_window(self.maps[index], row, column), layers, ctx.device,
                ctx.settings, start=segment.start,
            )  # fmt: skip
        # Copies of the parts only: the rest of the activations can go at once.
        return {
            layer: tile_part(feats[layer], segment.taps[layer], row, column, kind).clone()
            for layer in layers
        }

"""Tile geometry of the exact tiled style transfer (see :mod:`faket.style.tiled`).

The network is cut into *segments* after its pooling layers (from the second one on:
VGG-19's ``0-9 | 10-18 | 19-27 | 28-29``). A segment maps a stored full-image map (its
input grid: the image, or the previous segment's output) to its own output map; every
segment is computed tile by tile, each tile being a rectangle of *owned* positions of
the segment's output grid plus a *halo*. Why the tiles reproduce the whole-image
arithmetic, choice by choice:

- **Locality.** Every layer is a 3x3 convolution (stride 1, padding 1), an elementwise
  function or a 2x2 stride-2 pooling, so a position at a layer depends on a finite
  window of the segment's input: a position ``q`` of stride ``s`` (``s`` input positions
  per position) depends on inputs ``[q s - r, q s + s - 1 + r]``, where the *reach* ``r``
  grows by ``s`` per convolution and is unchanged by pooling (its window is the two
  positions the pooled one covers). :func:`network_segments` walks the layers and gets
  ``s`` and ``r`` of every layer a loss uses (a *tap*) and of the segment's output.
- **Image borders (padding of conv1_1 and all later convolutions).** A tile that touches
  a border of the image has its edge exactly there, at every layer: the first
  convolution replicates the image's own edge pixels and later ones pad with zeros, as
  for the whole image, because the tile's maps end where the image's maps end (next
  point). So nothing is approximated at the image border; a tile's halo exists only on
  its interior sides.
- **Pooling alignment.** Tiles start at multiples of the segment's stride (2 per
  pooling; 16 input pixels for the deepest VGG segment as a whole), so the tile's
  2x2 pooling windows are the whole image's windows, and with a far edge at the image's
  edge the floor of odd sizes drops the same last row or column: ``floor((N - A) / 2^p)
  = floor(N / 2^p) - A / 2^p`` exactly when ``2^p`` divides the offset ``A``. Owned
  regions are aligned the same way, so the owned positions of all tiles partition every
  map exactly, odd sizes and tile sizes that do not divide the image included (the last
  tile in a row owns the remainder, including input rows that the floor drops from the
  deeper maps but whose activations still feed shallower taps).
- **Forward values.** A tile position whose dependency window lies inside the tile's
  input window (or reaches beyond it only at an image border) is computed from exactly
  the inputs, and through exactly the intermediate positions, of the whole-image
  computation: it is *valid*. The forward-only passes (style Gram matrices, content and
  loss sums, the stored maps) use a halo of the largest tap reach, so every owned
  position is valid and the sums over owned positions are the whole image's sums.
- **Gradients.** With the global Gram matrices and loss sums known, the gradient of the
  loss with respect to a tap's activation at a position is a function of that position's
  activation only (``S F(q)`` with a global ``C x C`` matrix ``S`` for a Gram loss, the
  scaled-MSE derivative of the difference for a content loss), and the gradient
  with respect to the segment's output comes from the next segment. Injecting these
  gradients at all valid positions of a tile (and none elsewhere) and back-propagating
  through the tile gives the exact gradient at every input position all of whose
  dependent positions are valid. The positions that depend on input ``x`` lie within
  ``r + s - 1`` of it and depend on inputs within ``r`` further, so a backward halo of
  ``2 r + s - 1`` (rounded up to the segment's stride) covers the owned inputs.
- **Tails from stored switches.** Behind a segment's deepest loss layer the backward
  pass needs only the ReLU masks and max-pool choices, which the forward pass stores
  for the whole map (:mod:`faket.style.switches`): they are exact everywhere, so the
  tail's gradient at a position is exact as soon as every output position it feeds
  lies in the tile, ``r_out + s_head + s_out - 2`` positions of halo instead of
  ``2 r_out + s_out - 1`` (VGG-19: 6 instead of 10 for relu3_1 ... pool3).

How large the tiles are (:func:`plan_tiles`, :func:`choose_plan`) changes only how
much memory and halo work a tilt costs, never the result beyond round-off.

What is not bit-for-bit: sums over positions (Gram matrices, the content loss's sums)
are added tile by tile instead of in one reduction, which changes float round-off
(~1e-7 relative), and the per-position arithmetic of a convolution kernel may differ
in round-off with the size of the map it runs on. Both are far below the effect of
thread counts or memory layouts, which one Adam step turns into the update direction
of the few pixels whose gradient is ~0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

from faket.errors import FaketError

__all__ = ["Segment", "Span", "Tap", "network_segments", "spans", "tail_range", "tap_range"]

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)


@dataclass(frozen=True)
class Tap:
    """A layer seen from its segment's input grid.

    Attributes
    ----------
    layer : int
        Layer index.
    stride : int
        Segment-input positions per position of the layer (2 per pooling in between).
    reach : int
        Segment-input positions, beyond its own block, that a position depends on.
    channels : int
        Channels of the layer's activations.
    """

    layer: int
    stride: int
    reach: int
    channels: int


@dataclass(frozen=True)
class Segment:
    """Layers ``start..stop`` (inclusive), computed tile by tile from a stored map.

    Attributes
    ----------
    start, stop : int
        First and last layer index; ``stop`` is the stored output.
    taps : dict
        ``{layer: Tap}`` for every layer in the segment, incl. ``stop``.
    level : int
        Poolings before the segment: its input grid has ``2**level`` pixels per position.
    halo_forward, halo_backward : int
        Halo (segment-input positions) of the forward-only and the gradient passes.
    floats_per_position : float
        Activation values per segment-input position summed over the segment's layers
        (the basis of its memory estimate).
    tail : tuple of int
        Layers after the deepest loss layer whose backward pass runs from stored
        switches (:mod:`faket.style.switches`) instead of a recomputed forward pass.
    """

    start: int
    stop: int
    taps: dict[int, Tap]
    level: int
    halo_forward: int
    halo_backward: int
    floats_per_position: float
    tail: tuple[int, ...] = ()

    @property
    def head(self) -> int:
        """The last layer recomputed with autograd (``start - 1``: none)."""
        return self.tail[0] - 1 if self.tail else self.stop

    @property
    def stride(self) -> int:
        """Segment-input positions per output position."""
        return self.taps[self.stop].stride


def _pool_of(module: nn.Module) -> nn.Module | None:
    if isinstance(module, _POOLS):
        return module
    inner = getattr(module, "pool", None)  # faket's rescaled average / L2 pooling
    return inner if isinstance(inner, _POOLS) else None


def _as_pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, tuple) else (value, value)


def _conv_half_width(module: nn.Conv2d, index: int) -> int:
    kernel = _as_pair(module.kernel_size)
    same = all(
        k % 2 == 1 and p == k // 2 for k, p in zip(kernel, _as_pair(module.padding), strict=True)
    )
    if not same or _as_pair(module.stride) != (1, 1) or _as_pair(module.dilation) != (1, 1):
        raise FaketError(f"layer {index} is not a 'same' stride-1 convolution; cannot tile it")
    if kernel[0] != kernel[1]:
        raise FaketError(f"layer {index} has a non-square kernel; cannot tile it")
    return kernel[0] // 2


def _check_pool(pool: nn.Module, index: int) -> None:
    kernel = _as_pair(pool.kernel_size)
    stride = _as_pair(pool.stride if pool.stride is not None else pool.kernel_size)
    if kernel != (2, 2) or stride != (2, 2) or _as_pair(getattr(pool, "padding", 0)) != (0, 0):
        raise FaketError(f"layer {index} is not a 2x2 stride-2 pooling; cannot tile it")


def network_segments(
    features: nn.Sequential,
    last_layer: int,
    loss_layers: tuple[int, ...] | None = None,
    switches: bool = False,
) -> list[Segment]:
    """Cut layers ``0..last_layer`` of ``features`` into tiled segments (see module doc).

    Parameters
    ----------
    features : nn.Sequential
        The feature network's layers (3x3 'same' convolutions, elementwise layers and
        2x2 stride-2 poolings).
    last_layer : int
        Deepest layer needed.
    loss_layers : tuple of int, optional
        Layers the losses use (default: treat every layer as one; larger halos).
    switches : bool
        Give segments a tail of layers that back-propagate from stored switches:
        the layers after a segment's deepest loss layer, when they are convolutions,
        ReLUs and max poolings only.

    Returns
    -------
    list of Segment
    """
    segments: list[Segment] = []
    start, level, pools = 0, 0, 0
    stride, reach, floats, channels = 1, 0, 0.0, 3
    taps: dict[int, Tap] = {}
    for index in range(last_layer + 1):
        module = features[index]
        pool = _pool_of(module)
        if isinstance(module, nn.Conv2d):
            reach += _conv_half_width(module, index) * stride
            channels = module.out_channels
        elif pool is not None:
            _check_pool(pool, index)
            stride *= 2
            pools += 1
        if isinstance(module, nn.Conv2d) or pool is not None:
            floats += channels / stride**2  # elementwise layers work in place
        taps[index] = Tap(index, stride, reach, channels)
        # Cut after every pooling from the second on: the first pooling's output (64
        # channels at half resolution) would be the largest map to store.
        if index == last_layer or (pool is not None and level + pools >= 2):
            last = index == last_layer
            losses = [i for i in taps if loss_layers is None or i in loss_layers]
            tail = _tail(features, start, index, losses) if switches and not last else ()
            segments.append(
                Segment(
                    start,
                    index,
                    taps,
                    level,
                    _halo(taps, list(taps), stride, backward=False),
                    _backward_halo(taps, losses, tail, last, stride),
                    floats,
                    tail,
                )
            )
            start, level = index + 1, level + pools
            stride, reach, floats, pools, taps = 1, 0, 0.0, 0, {}
    return segments


def _tail(features: nn.Sequential, start: int, stop: int, losses: list[int]) -> tuple[int, ...]:
    layers = range(max(losses, default=start - 1) + 1, stop + 1)
    kinds = [features[i] for i in layers]
    plain = all(isinstance(m, nn.Conv2d | nn.ReLU | nn.MaxPool2d) for m in kinds)
    convs = [m for m in kinds if isinstance(m, nn.Conv2d)]
    # Masks are stored as bits, 8 channels per byte.
    packable = all(m.out_channels % 8 == 0 for m in convs)
    return tuple(layers) if plain and convs and packable else ()


def _halo(taps: dict[int, Tap], layers, stride: int, backward: bool) -> int:
    """Halo that makes ``layers`` exact (see the module docstring), a multiple of ``stride``."""
    chosen = [taps[i] for i in layers]
    if backward:
        need = max(2 * t.reach + t.stride - 1 for t in chosen)
    else:
        need = max(t.reach for t in chosen)
    return -(-need // stride) * stride


def _backward_halo(taps, losses: list[int], tail: tuple[int, ...], last: bool, stride: int):
    if not tail:
        return _halo(taps, losses + ([] if last else [max(taps)]), stride, backward=True)
    head = [i for i in losses if i < tail[0]]
    out = taps[tail[-1]]
    inner = taps[tail[0] - 1] if head else Tap(tail[0] - 1, 1, 0, 0)
    # The tail's gradient at the head's last layer is exact where every output position
    # it feeds lies in the tile: a reach of the output's, plus the strides' blocks.
    need = out.reach + inner.stride + out.stride - 2
    if head:
        need = max(need, _halo(taps, head, stride, backward=True))
    return -(-need // stride) * stride


@dataclass(frozen=True)
class Span:
    """One tile along one axis of a segment's input grid (half-open ranges).

    Attributes
    ----------
    owned : (int, int)
        Input positions whose results (gradient, stored map, sums) the tile delivers.
    window : (int, int)
        Input positions the tile computes on: ``owned`` plus the halo, clipped to the
        image; tiles at its edges are widened inwards to the interior tiles' size.
    size : int
        Length of the input grid.
    """

    owned: tuple[int, int]
    window: tuple[int, int]
    size: int


def spans(size: int, stride: int, tile: int, halo: int) -> Iterator[Span]:
    """Tiles of ``tile`` output positions (``tile * stride`` inputs) along an axis.

    Parameters
    ----------
    size : int
        Input positions along the axis.
    stride : int
        Input positions per output position (the segment's stride).
    tile : int
        Most owned output positions per tile: the axis gets as many tiles as that needs,
        of equal size (the last one owns the rest, less than ``tile`` only by the
        division's remainder).
    halo : int
        Positions added on the interior sides, a multiple of ``stride``. Windows at the
        image's edges reach further inwards, so that all windows of a pass have the size
        of an interior one (the last one up to ``stride - 1`` more, to start on a
        multiple of ``stride``).
    """
    outputs = size // stride
    if outputs < 1 or tile < 1 or halo % stride:
        raise FaketError(f"cannot tile {size} positions with stride {stride} and halo {halo}")
    # As many tiles as ``tile`` needs, of equal size: the last one owns no small remainder.
    tile = -(-outputs // -(-outputs // tile))
    length = min(size, tile * stride + 2 * halo)
    for first in range(0, outputs, tile):
        last = min(first + tile, outputs)
        begin = first * stride
        end = size if last == outputs else last * stride
        # Tiles at the image's edges widen inwards to the interior tiles' size (interior
        # windows are unchanged by the min/max): a larger window only makes more positions
        # valid, and with one window size per pass a heap that keeps freed blocks serves
        # every tile from the previous tile's blocks.
        low = max(0, min(begin - halo, (size - length) // stride * stride))
        high = size if last == outputs else min(size, max(end + halo, low + length))
        yield Span((begin, end), (low, high), size)


def tap_range(span: Span, tap: Tap, kind: str) -> tuple[int, int]:
    """Positions of ``tap`` in ``span``'s tile, in the tile's own coordinates.

    Parameters
    ----------
    span : Span
    tap : Tap
    kind : {"owned", "valid"}
        ``owned``: the positions whose blocks lie in the owned inputs (they partition
        the tap's map over the tiles); ``valid``: all positions the tile computes
        exactly (their dependency window is inside the tile window, or meets the
        image's own border).

    Returns
    -------
    (int, int)
        Half-open range of the tap's positions, relative to the tile window's start.
    """
    step = tap.stride
    count = span.size // step
    begin, end = span.window
    offset = begin // step
    if kind == "owned":
        first, last = span.owned[0] // step, span.owned[1] // step
        if span.owned[1] == span.size:
            last = count
    else:
        first = 0 if begin == 0 else -(-(begin + tap.reach) // step)
        last = count if end == span.size else (end - tap.reach - step) // step + 1
    return first - offset, last - offset


def tail_range(span: Span, segment: Segment) -> tuple[int, int]:
    """Positions of the head's last layer where a tile's tail gradient is exact and valid.

    The tail back-propagates the output gradient with stored switches, so its result is
    exact at a position when every output position that it feeds lies in the tile (or
    the tile meets the image's border there); the head's injection also needs the
    position to be :func:`tap_range` ``"valid"``.

    Returns
    -------
    (int, int)
        Half-open range in the tile's coordinates at the head's last layer (at the
        segment input when the head is empty).
    """
    out = segment.taps[segment.stop]
    inner = segment.taps.get(segment.head, Tap(segment.head, 1, 0, 0))
    spread = out.reach - inner.reach
    begin, end = span.window
    step = inner.stride
    first, last = begin // step, begin // step + (end - begin) // step
    if begin > 0:
        first = -(-(begin + spread + out.stride - 1) // step)
    if end < span.size:
        last = (end - step + 1 - spread - out.stride) // step + 1
    if segment.head >= segment.start:
        valid = tap_range(span, inner, "valid")
        offset = begin // step
        first, last = max(first, valid[0] + offset), min(last, valid[1] + offset)
    return first - begin // step, last - begin // step

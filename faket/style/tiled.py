"""Exact tiled style transfer: one tilt of any size in bounded memory.

The whole-tilt transfer holds every VGG-19 activation of a tilt at once (~4 GB for a
1024 x 1024 tilt), so detector-sized tilts (Falcon 4i 4096^2, K3 5760 x 4092) do not fit.
Here the network runs segment by segment (:mod:`faket.style.tiling`: cut after its
pooling layers from the second on), each segment tile by tile, and only the segments'
outputs are stored whole (the largest, 128 channels at 1/16 of the pixels, takes 8x a
float32 grey tilt; the three-channel iterate, its gradient, Adam's moments and the
average 3x each). The stored maps live in memory maps of their own
(:func:`faket.device.mapped_zeros`), outside the heap that the tiles' temporaries
churn through, and every tile of a pass has one window size
(:func:`faket.style.tiling.spans`), so a heap that keeps freed blocks serves each tile
from the previous tile's blocks: the peak is the stored maps plus one tile's working
set. One iteration is

1. a forward pass without autograd: the stored maps, the Gram matrices of the style
   layers summed over the tiles' owned positions, the content loss's sums (``sum d^2``
   and ``sum |d|`` of the content difference; the content targets are recomputed per
   tile from the content image, which costs less than storing them:
   :class:`faket.style.tiles.ContentTargets`), and the switches of the segments' tails
   (:mod:`faket.style.switches`);
2. the global losses from these sums, and their gradients with respect to each Gram
   matrix and to the content sums (the same scaled-MSE arithmetic as the whole-tilt
   transfer, on the same values up to the order of summation);
3. a backward pass, segments last to first: each tile's tail carries the output's
   gradient (which the later segment delivered) back with the stored switches, its
   head (up to the deepest loss layer) is recomputed with autograd, and the loss
   gradients are injected at its valid positions and propagated to the tile's input,
   whose owned part is stored (without a tail, the whole segment is recomputed);
4. the per-channel Adam step on the full three-channel iterate (elementwise, in blocks
   of rows), the clamp to [0, 1] and the moving average, as in the whole-tilt transfer.

The output's per-tilt mean/std match happens in :mod:`faket.style.transfer` on the
grey tilt, as for a whole tilt. Why the tiles reproduce the whole-image arithmetic is
explained in :mod:`faket.style.tiling` (:mod:`faket.style.tile_plan` sizes the tiles);
the extra cost is the forward pass of the first segment and of the segments' heads
(VGG-19: ~40% of one forward pass), the content targets computed in both passes, and the halos.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from faket.device import mapped_zeros
from faket.style.losses import gram_backward, scaled_mse, scaled_mse_backward
from faket.style.network import forward
from faket.style.optim import Adam, Ema
from faket.style.settings import TransferSettings
from faket.style.switches import Switches
from faket.style.tile_plan import TilePlan
from faket.style.tiles import (
    ContentTargets,
    TileContext,
    forward_segment,
    iter_tiles,
    layers_in,
    owned_input,
    row_blocks,
    tile_part,
    tile_place,
    tile_window,
)
from faket.style.tiling import Segment, tail_range, tap_range

__all__ = ["loss_and_gradient", "optimise_tiled", "tiled_grams"]


def _sum_dtype(device: torch.device) -> torch.dtype:
    # Sums over tiles in float64 (MPS has none: float32 there).
    return torch.float32 if device.type == "mps" else torch.float64


def _gram_sums(segment: Segment, feats, row, column, layers, sums) -> None:
    for layer in layers:
        part = tile_part(feats[layer], segment.taps[layer], row, column, "owned").float()
        for _rows, mat in row_blocks(part):
            sums[layer] += torch.bmm(mat.transpose(1, 2), mat).to(sums[layer].dtype)


def _positions(segment: Segment, layer: int, shape) -> int:
    stride = segment.taps[layer].stride
    return (shape[0] // stride) * (shape[1] // stride)


def tiled_grams(net, image01: torch.Tensor, settings: TransferSettings, device, plan: TilePlan):
    """Gram matrices of the style layers of one grey image ``(1, 1, H, W)``, tile by tile.

    Returns
    -------
    dict
        ``{layer: Tensor (1, C, C) float32}``, equal to :func:`faket.style.losses.gram_matrix`
        of the whole image's activations up to the order of summation.
    """
    ctx = TileContext(net, settings, device, plan)
    x = image01.to(device)
    sums = _zero_sums(ctx, settings.style_layers, device)
    grams = {}
    deepest = max(settings.style_layers)
    for index, segment in enumerate(plan.segments):
        layers = layers_in(segment, settings.style_layers)
        shape = x.shape[-2:]

        def on_tile(row, column, feats, _extra, segment=segment, layers=layers):
            _gram_sums(segment, feats, row, column, layers, sums)

        x = forward_segment(ctx, index, x, layers, deepest > segment.stop, on_tile)
        for layer in layers:
            grams[layer] = (sums[layer] / _positions(segment, layer, shape)).float()
        if deepest <= segment.stop:
            break
    return {layer: grams[layer] for layer in settings.style_layers}


def _zero_sums(ctx: TileContext, layers, device) -> dict[int, torch.Tensor]:
    out = {}
    for segment in ctx.plan.segments:
        for layer in layers_in(segment, layers):
            c = segment.taps[layer].channels
            out[layer] = torch.zeros((1, c, c), dtype=_sum_dtype(device), device=device)
    return out


@dataclass
class _Sums:
    grams: dict[int, torch.Tensor]
    squares: dict[int, float]
    absolutes: dict[int, float]
    positions: dict[int, int]
    switches: list = field(default_factory=list)  # per segment: Switches or None


def _first_pass(ctx: TileContext, image: torch.Tensor, targets: ContentTargets):
    """Forward pass: stored maps per segment, Gram sums and content sums."""
    settings = ctx.settings
    sums = _Sums(_zero_sums(ctx, settings.style_layers, ctx.device), {}, {}, {})
    for layer in settings.content_layers:
        sums.squares[layer], sums.absolutes[layer] = 0.0, 0.0
    maps = [image]
    for index, segment in enumerate(ctx.plan.segments):
        style = layers_in(segment, settings.style_layers)
        content = layers_in(segment, settings.content_layers)
        shape = maps[-1].shape[-2:]
        for layer in style + content:
            sums.positions[layer] = _positions(segment, layer, shape)

        def before(row, column, index=index, content=content):
            # The content targets first, so that their forward pass and the iterate's
            # never hold their activations at the same time.
            return targets.get(index, row, column, content, "owned")

        def on_tile(row, column, feats, targets, segment=segment, style=style, content=content):
            _gram_sums(segment, feats, row, column, style, sums.grams)
            for layer in content:
                part = tile_part(feats[layer], segment.taps[layer], row, column, "owned")
                dtype = _sum_dtype(part.device)
                for rows, mat in row_blocks(part):
                    target = targets[layer][..., rows, :].permute(0, 2, 3, 1).reshape(mat.shape)
                    diff = mat.float() - target.float()
                    sums.absolutes[layer] += float(diff.abs().sum(dtype=dtype))
                    sums.squares[layer] += float(diff.square_().sum(dtype=dtype))

        layers, switches = style + content, None
        if segment.tail:
            switches = Switches(ctx.net.features, segment.tail)
            layers = layers + switches.layers()
            on_tile = _storing(segment, shape, switches, on_tile)
        last = index == len(ctx.plan.segments) - 1
        maps.append(
            forward_segment(
                ctx, index, maps[-1], layers, not last, on_tile, before if content else None
            )
        )
        sums.switches.append(switches)
    return maps, sums


def _storing(segment: Segment, shape, switches: Switches, on_tile):
    """``on_tile`` that also stores the tile's switches for its owned positions."""

    def store(row, column, feats, extra):
        on_tile(row, column, feats, extra)
        for layer in segment.tail:
            tap = segment.taps[layer]
            size = tuple(n // tap.stride for n in shape)
            place = tile_place(tap, row, column, "owned")
            module = switches.features[layer]
            if isinstance(module, nn.ReLU):
                switches.store(
                    layer, tile_part(feats[layer], tap, row, column, "owned"), place, size
                )
            elif isinstance(module, nn.MaxPool2d):
                (y0, y1), (x0, x1) = (tap_range(s, tap, "owned") for s in (row, column))
                windows = feats[layer - 1][..., 2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
                switches.store(layer, windows, place, size)

    return store


@dataclass
class _Gradients:
    """Gradients of the total loss with respect to the global quantities of pass 1."""

    loss: torch.Tensor
    grams: dict[int, torch.Tensor]
    content: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    tv: float
    positions: dict[int, int]


def _global_losses(ctx: TileContext, sums: _Sums, style_targets, image) -> _Gradients:
    """The losses from the sums, as :func:`faket.style.losses.total_loss` combines them."""
    settings = ctx.settings
    content_weights, style_weights = settings.layer_weights()
    terms, content, grams = [], {}, {}
    for layer, weight in zip(settings.content_layers, content_weights, strict=True):
        numerator = torch.tensor([sums.squares[layer]], dtype=torch.float32)
        denominator = torch.tensor([sums.absolutes[layer]], dtype=torch.float32) + settings.eps
        value = (numerator / denominator).requires_grad_(True)
        content[layer] = (numerator, denominator, value)
        terms.append(weight * value)
    for layer, weight in zip(settings.style_layers, style_weights, strict=True):
        gram = (sums.grams[layer] / sums.positions[layer]).float().cpu().requires_grad_(True)
        grams[layer] = gram
        target = style_targets[layer].float().cpu()
        terms.append(weight * scaled_mse(gram, target, settings.eps))
    if settings.tv_weight:
        terms.append(settings.tv_weight * _tv_value(image))
    total = torch.stack(terms).sum(0)
    total.sum().backward()
    return _Gradients(
        loss=total.detach(),
        grams={layer: g.grad.to(ctx.device) for layer, g in grams.items()},
        content={
            layer: tuple(t.to(ctx.device) for t in (num, den, value.grad))
            for layer, (num, den, value) in content.items()
        },
        tv=float(settings.tv_weight),
        positions=sums.positions,
    )


def _tv_blocks(height: int, rows: int = 256):
    for start in range(0, height, rows):
        yield start, min(start + rows, height)


def _tv_part(image: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of the TV sum (:func:`faket.style.losses.tv_loss` times its
    count), from a window with one row of look-ahead."""
    window = image[..., start : min(stop + 1, image.shape[-2]), :]
    padded = torch.nn.functional.pad(window, (0, 1, 0, 1), mode="replicate")
    dx = padded[..., :-1, 1:] - padded[..., :-1, :-1]
    dy = padded[..., 1:, :-1] - padded[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2))[..., : stop - start, :].sum()


def _tv_value(image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        total = sum(float(_tv_part(image, a, b)) for a, b in _tv_blocks(image.shape[-2]))
    return torch.tensor([total / image[0].numel()], dtype=torch.float32)


def _add_tv_gradient(image: torch.Tensor, grad: torch.Tensor, weight: float) -> None:
    scale = weight / image[0].numel()
    for start, stop in _tv_blocks(image.shape[-2]):
        window = image[..., start : min(stop + 1, image.shape[-2]), :].detach().requires_grad_()
        with torch.enable_grad():
            _tv_part(window, 0, stop - start).backward()
        grad[..., start : start + window.shape[-2], :] += window.grad * scale


def _backward_segment(ctx, index, maps, content: ContentTargets, grads, grad_out, switches):
    """Gradient of the loss with respect to segment ``index``'s input map."""
    settings, segment = ctx.settings, ctx.plan.segments[index]
    x = maps[index]
    style = layers_in(segment, settings.style_layers)
    content_layers = layers_in(segment, settings.content_layers)
    output = [] if grad_out is None or segment.tail else [segment.stop]
    channels_last = x.is_contiguous(memory_format=torch.channels_last)
    grad_in = mapped_zeros(x.shape, torch.float32, x.device, channels_last=channels_last)
    shape = x.shape[-2:]
    for row, column in iter_tiles(segment, shape, ctx.plan.backward[index], segment.halo_backward):
        owned, local = owned_input(row, column)
        tail = None
        if switches is not None:
            tail = _tail_gradient(segment, switches, grad_out, x, row, column)
            if segment.head < segment.start:  # no head: the tail reaches the input
                grad_in[owned] = tail[local]
                continue
        targets = {}
        if content_layers:  # before the autograd forward pass: the two never coexist
            targets = content.get(index, row, column, content_layers, "valid")
        window = tile_window(x, row, column).detach().requires_grad_(True)
        wanted = style + content_layers + output + ([segment.head] if tail is not None else [])
        with torch.enable_grad():
            feats = forward(ctx.net, window, wanted, ctx.device, settings, start=segment.start)
        tensors, injected = _loss_injections(ctx, index, grads, feats, targets, row, column)
        del targets
        if output:
            tap = segment.taps[segment.stop]
            tensors.append(tile_part(feats[segment.stop], tap, row, column, "valid"))
            injected.append(grad_out[tile_place(tap, row, column, "valid")].to(tensors[-1].dtype))
        if tail is not None:
            (y0, y1), (x0, x1) = tail_range(row, segment), tail_range(column, segment)
            tensors.append(feats[segment.head][..., y0:y1, x0:x1])
            injected.append(tail[..., y0:y1, x0:x1].to(tensors[-1].dtype))
        torch.autograd.backward(tensors, injected)
        grad_in[owned] = window.grad[local]
        del feats, tensors, injected, window, tail
    return grad_in


def _loss_injections(ctx, index, grads: _Gradients, feats, targets, row, column):
    """The loss gradients at a tile's valid positions of its style and content layers."""
    settings, segment = ctx.settings, ctx.plan.segments[index]
    tensors, injected = [], []
    for layer in layers_in(segment, settings.style_layers):
        part = tile_part(feats[layer], segment.taps[layer], row, column, "valid")
        n, c, h, w = part.shape
        g = torch.empty((n, h, w, c), dtype=torch.float32, device=part.device)
        for rows, mat in row_blocks(part.detach()):
            block = gram_backward(mat.float(), grads.grams[layer], float(grads.positions[layer]))
            g[:, rows] = block.view(n, -1, w, c)
        tensors.append(part)
        injected.append(g.permute(0, 3, 1, 2).to(part.dtype))
    for layer in layers_in(segment, settings.content_layers):
        part = tile_part(feats[layer], segment.taps[layer], row, column, "valid")
        diff = part.detach().float() - targets[layer].float()
        numerator, denominator, g = grads.content[layer]
        tensors.append(part)
        injected.append(scaled_mse_backward(diff, numerator, denominator, g))
    return tensors, injected


def _tail_gradient(segment: Segment, switches: Switches, grad_out, x, row, column):
    """The tail's gradient over a tile window, at the head's last layer (or the input)."""

    def cover(tap):
        # The positions of the tile's own maps (those its forward pass would compute).
        out = []
        for span in (row, column):
            begin, end = span.window
            out.append(
                slice(begin // tap.stride, begin // tap.stride + (end - begin) // tap.stride)
            )
        return tuple(out)

    window, shapes = {}, {}
    for layer in segment.tail:
        window[layer] = (..., *cover(segment.taps[layer]))
        before = segment.taps.get(layer - 1)
        channels = before.channels if before is not None else x.shape[1]
        stride = before.stride if before is not None else 1
        shapes[layer] = (channels, *((s.window[1] - s.window[0]) // stride for s in (row, column)))
    grad = grad_out[(..., *cover(segment.taps[segment.stop]))]
    return switches.backward(grad, window, shapes)


def loss_and_gradient(net, image, content01, style_targets, settings, device, plan):
    """Total loss and its gradient with respect to the three-channel ``image``, tiled.

    Parameters
    ----------
    net : VGG19Features
    image : Tensor, shape (1, 3, H, W)
        The iterate in [0, 1] units, on ``device``.
    content01 : Tensor, shape (1, 1, H, W)
        The grey content image in [0, 1] units.
    style_targets : dict
        ``{layer: Tensor (1, C, C)}`` Gram targets.
    settings : TransferSettings
    device : torch.device
    plan : TilePlan

    Returns
    -------
    loss : Tensor, shape (1,)
        As :func:`faket.style.losses.total_loss` of the whole image.
    grad : Tensor, shape (1, 3, H, W), float32
    """
    ctx = TileContext(net, settings, device, plan)
    return _loss_and_gradient(ctx, image, ContentTargets(ctx, content01), style_targets)


def _loss_and_gradient(ctx: TileContext, image, content: ContentTargets, style_targets):
    maps, sums = _first_pass(ctx, image, content)
    grads = _global_losses(ctx, sums, style_targets, image)
    grad_out = None
    for index in reversed(range(len(ctx.plan.segments))):
        switches = sums.switches[index]
        grad_out = _backward_segment(ctx, index, maps, content, grads, grad_out, switches)
        sums.switches[index] = None
        if index > 0:
            maps[index] = None  # this segment's input: no longer needed
    if grads.tv:
        _add_tv_gradient(image, grad_out, grads.tv)
    return grads.loss, grad_out


def optimise_tiled(net, image, content01, style_targets, settings, device, plan) -> torch.Tensor:
    """Adam on the three-channel iterate ``image`` (1, 3, H, W), tiled; the EMA.

    The same steps as the whole-tilt optimisation (:mod:`faket.style.transfer`): per
    iteration the gradient, Adam's update of each channel and pixel, the clamp to
    [0, 1] and the bias-corrected moving average; the result clamped to [0, 1].
    ``image`` is the iterate itself (changed in place), to save a copy of it.
    """
    ctx = TileContext(net, settings, device, plan)
    content = ContentTargets(ctx, content01)
    ema = Ema(image, settings.ema_decay)
    optimiser = Adam(image, lr=settings.step_size, steps=settings.iterations)
    rows = max(1, 2**24 // max(1, 3 * image.shape[-1]))  # ~64 MiB blocks of temporaries
    for _ in range(settings.iterations):
        _loss, grad = _loss_and_gradient(ctx, image, content, style_targets)
        optimiser.step(grad, rows=rows)
        del grad
        with torch.no_grad():
            image.clamp_(0, 1)
            ema.update(image)
    return ema.get().clamp_(0, 1)

"""Neural style transfer of tilt series: the FAKET modality (paper section 3.2).

For every tilt ``i`` the image is optimised, starting from ``init[i]``, so that its VGG-19
activations match those of ``content[i]`` and its Gram matrices those of ``style[i]``.
The defaults are the paper's recipe exactly (checked against its code's outputs):

1. each stack (content, style, init) is min-max normalised to [0, 1] over the whole stack
   (no 8-bit conversion anywhere); a grey tilt stands for the RGB image with three equal
   channels, and the ImageNet normalisation happens inside the network;
2. content layer 8 (relu2_2, weight 100 normalised to 1), style layers 1, 6, 11, 20, 29
   with weights 256, 64, 16, 4, 1 normalised to sum 1, Gram matrices divided by the
   number of positions, scaled-MSE losses, content weight 1, style weight 1, TV weight 0;
3. Adam (step size 0.15, betas 0.9/0.999, eps 1e-8) on the three-channel iterate, one
   iteration, clamping the iterate to [0, 1] after every step; the result is the
   bias-corrected exponential moving average (decay 0.99) of the iterates;
4. the output tilt is the mean of the three channels, shifted and scaled so that its
   mean and standard deviation equal those of the (un-normalised) style tilt.

What one Adam step does: the first update is ``-step * sign(grad)`` per channel and
pixel, and the averaged output is ``x0 + (x1 - x0) / (1 + decay)``, so with the paper's
settings every channel moves by 0.15 / 1.99 = 0.0754 (before clamping) and the grey
output by the mean of three such moves. The channels therefore must stay separate
during the optimisation: their gradients differ through conv1_1 and the per-channel
ImageNet statistics.

Exactness: with ``channels_last=False`` on a CPU the arithmetic is the paper's code's
(NCHW layout, one tilt per step, normalise-then-convolve, float32 min-max scaling,
``torch.optim.Adam``'s update), operation for operation except the Gram matrices'
backward, which uses their symmetry (the scaled-MSE backward is fused, but rounds as
autograd does); on the same machine and thread count the outputs match its float32
results to ~1e-5 (tested against golden outputs). The default layout
is channels-last (~1.15x faster on a CPU), which changes only float round-off: the
loss values agree to ~1e-7 relative and the golden outputs are met to the same bounds
(1 iteration, this AMD EPYC: max error 5.5e-4 vs 5.1e-4 of the output std). Why
round-off matters at all: one step moves each pixel by a full +-0.0754 whatever the
size of its gradient, so round-off flips the update of the few pixels whose gradient is
~0, and further iterations spread such flips over the image. Batching tilts, layout,
thread count or other hardware change the 1-iteration output only at such pixels
(~0.003-0.05% of them).

CPU speed: besides the layout, a CPU run keeps freed host memory for the next tensor
(:func:`faket.device.reuse_freed_host_memory`). Without it, every activation over 32 MiB
arrives as fresh pages from the kernel and the page faults cost ~10% of a 512x512 tilt
and ~20% of a 1024x1024 one on a 2-core CPU (~40% of a straightforward implementation's
1024x1024 tilt: ``benchmarks/bench_style.py``, configs ``naive`` and ``naive-reuse``).
Tiled tilts keep it too: all tiles of a pass have one window size, so each tile's
temporaries reuse the previous tile's blocks, and their stored full-tilt maps live in
memory maps of their own (:func:`faket.device.mapped_zeros`), outside that heap.

Precision: ``fp32`` (default; TF32 switched off on NVIDIA GPUs), ``tf32`` (NVIDIA only),
``bf16`` or ``fp16`` (autocast for VGG layers from ``reduced_from`` = conv3_1 on; the
content path, Gram matrices, losses, Adam and the iterate stay float32), or ``mixed``
(bf16 where the CPU or GPU has it, else fp32 on CPUs, fp16 on GPUs). bf16 changes the update
direction at ~0.05% of pixels (benchmark script) and makes a CPU with AVX-512 BF16 about
1.6x faster; on CPUs without it (AVX2 only) bfloat16 is emulated and ~10x slower, so
``mixed`` uses fp32 there and an explicit ``bf16`` warns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from faket.device import release_freed_host_memory, reuse_freed_host_memory, select_device
from faket.errors import FaketError
from faket.precision import fp32_mode, warn_if_emulated
from faket.progress import progress as progress_bar
from faket.style.losses import total_loss
from faket.style.network import forward, resolve_net, style_grams, target_features
from faket.style.optim import Adam, Ema
from faket.style.reference import StyleReference, reference_key, tilts_per_step
from faket.style.settings import (
    TransferSettings,
    UnitScaled,
    check_size,
    check_stack,
    resize,
    scales,
    tilt_mean_std,
    with_overrides,
)
from faket.style.tile_plan import TilePlan, choose_plan
from faket.style.tiled import optimise_tiled, tiled_grams
from faket.style.vgg import VGG19Features, min_input_size

__all__ = ["iter_style_transfer", "style_transfer"]


def _optimise(net, image0, content_targets, style_targets, settings, device) -> torch.Tensor:
    """Adam on the three-channel iterate from ``image0`` (B, 3, H, W); returns the EMA."""
    content_weights, style_weights = settings.layer_weights()
    layers = sorted(set(settings.content_layers + settings.style_layers))
    image = image0.clone().requires_grad_(True)
    ema = Ema(image0.detach().clone(), settings.ema_decay)
    optimiser = Adam(image, lr=settings.step_size)
    for _ in range(settings.iterations):
        feats = forward(net, image, layers, device, settings)
        loss = total_loss(
            feats,
            content_targets,
            style_targets,
            content_weights,
            style_weights,
            image=image,
            tv_weight=settings.tv_weight,
            eps=settings.eps,
        ).sum()
        image.grad = None
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            # Box constraint of the paper's code: the iterate stays a valid [0, 1] image.
            image.clamp_(0, 1)
            ema.update(image)
    return ema.get().clamp_(0, 1)


def _match_stats(out01: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Shift and scale each tilt of ``out01`` (B, Y, X) to the given mean/std (B,)."""
    values = out01.astype(np.float64)
    own_mean = values.mean(axis=(1, 2), keepdims=True)
    own_std = values.std(axis=(1, 2), keepdims=True)
    # A flat output tilt cannot be given contrast; it becomes the style mean.
    scale = np.where(own_std > 0, std[:, None, None] / np.where(own_std > 0, own_std, 1), 0)
    return ((values - own_mean) * scale + mean[:, None, None]).astype(np.float32)


@dataclass
class _Job:
    """Everything one run needs, prepared and checked before the first tilt."""

    net: VGG19Features
    settings: TransferSettings
    device: torch.device
    content01: UnitScaled
    init01: UnitScaled
    style01: UnitScaled | None
    reference: StyleReference | None
    style_mean: np.ndarray
    style_std: np.ndarray
    sizes: list[tuple[int, int]]
    #: Tiling of each scale (None: whole tilts).
    plans: dict[tuple[int, int], TilePlan | None]


def _style_targets(job: _Job, index: list[int], size: tuple[int, int]) -> dict:
    if job.reference is not None:
        grams = job.reference.grams[size]
        return {layer: grams[layer][index].to(job.device) for layer in job.settings.style_layers}
    batch = torch.from_numpy(job.style01[index])[:, None]
    plan = job.plans[size]
    if plan is not None:
        return tiled_grams(job.net, resize(batch, size), job.settings, job.device, plan)
    return style_grams(job.net, batch, [size], job.settings, job.device)[size]


def _stylise_batch(job: _Job, index: list[int]) -> np.ndarray:
    """Stylised tilts ``index`` in [0, 1] units, shape (B, Y, X), float32."""
    settings, device = job.settings, job.device
    content = torch.from_numpy(job.content01[index])[:, None]
    image = torch.from_numpy(job.init01[index])[:, None].expand(-1, 3, -1, -1)
    for size in job.sizes:
        plan = job.plans[size]
        if plan is None:
            feats = target_features(
                job.net, resize(content, size), settings.content_layers, device, settings
            )
            content_targets = {layer: feats[layer].float() for layer in settings.content_layers}
        style_targets = _style_targets(job, index, size)
        start = resize(image.to(device), size).clamp(0, 1)
        if job.net.channels_last:
            start = start.contiguous(memory_format=torch.channels_last)
        else:
            start = start.contiguous()
        if plan is None:
            image = _optimise(job.net, start, content_targets, style_targets, settings, device)
        else:
            # One tilt (the plan forces batches of one), never its whole activations.
            content01 = resize(content, size)
            image = optimise_tiled(job.net, start, content01, style_targets, settings, device, plan)
    # The grey output is the mean of the three separately optimised channels.
    return image.mean(dim=1).float().cpu().numpy()


def _prepare(content, style, init, weights, settings, device, seed, budget, tile) -> _Job:
    content = check_stack("content", content)
    init = check_stack("init", init)
    if init.shape != content.shape:
        raise FaketError(f"init shape {init.shape} differs from content shape {content.shape}")
    check_size(content.shape, settings)
    device = select_device(device)
    net = resolve_net(weights, settings, device, seed)
    warn_if_emulated(settings.precision, device)  # also fails early on impossible ones
    sizes = scales(content.shape[1:], settings.min_scale, min_input_size(settings.last_layer))
    plans = {size: choose_plan(net, settings, device, size, budget, tile) for size in sizes}
    reference, style01 = None, None
    if isinstance(style, StyleReference):
        reference = style
        if reference.key != reference_key(net, settings):
            raise FaketError(
                "the prepared style reference was made with other weights or settings; "
                "prepare it again with the same weights and settings"
            )
        shape, mean, std = reference.shape, reference.mean, reference.std
    else:
        style = check_stack("style", style)
        shape = style.shape
        style01 = UnitScaled(style, settings.normalization)
        mean, std = tilt_mean_std(style)
    if tuple(shape) != content.shape:
        raise FaketError(
            f"style shape {tuple(shape)} differs from content shape {content.shape}; "
            "style tilt i styles content tilt i, so they need the same tilts and size"
        )
    return _Job(
        net=net,
        settings=settings,
        device=device,
        content01=UnitScaled(content, settings.normalization),
        init01=UnitScaled(init, settings.normalization),
        style01=style01,
        reference=reference,
        style_mean=mean,
        style_std=std,
        sizes=sizes,
        plans=plans,
    )


def _tilt_list(tilts: Sequence[int] | None, n_tilts: int) -> list[int]:
    if tilts is None:
        return list(range(n_tilts))
    out = [int(t) for t in tilts]
    bad = [t for t in out if not 0 <= t < n_tilts]
    if bad or not out:
        raise FaketError(f"tilt indices must be in 0..{n_tilts - 1} and not empty, got {bad}")
    return out


def iter_style_transfer(
    content: np.ndarray,
    style: np.ndarray | StyleReference,
    init: np.ndarray,
    *,
    weights: str | VGG19Features = "imagenet",
    settings: TransferSettings | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    tilts: Sequence[int] | None = None,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    tile: int | None = None,
    progress: bool = False,
    **overrides,
) -> Iterator[tuple[int, np.ndarray]]:
    """Like :func:`style_transfer`, but yields ``(tilt index, tilt (Y, X))`` as they finish.

    All checks (shapes, weights, settings) happen before this returns, so errors surface
    at the call, not at the first ``next``.
    """
    settings = with_overrides(settings, overrides)
    job = _prepare(content, style, init, weights, settings, device, seed, memory_budget, tile)
    order = _tilt_list(tilts, job.content01.shape[0])
    step = tilts_per_step(job.content01.shape, settings, job.device, memory_budget, batch_size)
    tiled = any(job.plans.values())
    if tiled:
        step = 1

    # Around the whole run, so that freed activations of one tilt (or tile) serve the
    # next: fresh pages cost a tiled 4096^2 tilt ~30 % of its time (benchmarks/README.md).
    reuse = job.device.type == "cpu"

    def run() -> Iterator[tuple[int, np.ndarray]]:
        with reuse_freed_host_memory(reuse):
            for start in range(0, len(order), step):
                index = order[start : start + step]
                with fp32_mode(job.device, settings.precision):
                    out01 = _stylise_batch(job, index)
                if tiled and reuse:
                    release_freed_host_memory()  # one tilt's heap blocks, not the next's
                if settings.match_stats == "style":
                    out = _match_stats(out01, job.style_mean[index], job.style_std[index])
                else:
                    out = out01
                yield from zip(index, out, strict=True)

    return progress_bar(run(), "style transfer", total=len(order), enabled=progress)


def style_transfer(
    content: np.ndarray,
    style: np.ndarray | StyleReference,
    init: np.ndarray,
    *,
    weights: str | VGG19Features = "imagenet",
    settings: TransferSettings | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    tilts: Sequence[int] | None = None,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    tile: int | None = None,
    progress: bool = False,
    **overrides,
) -> np.ndarray:
    """Stylise a tilt series: the FAKET modality (defaults = the paper's recipe).

    Parameters
    ----------
    content : ndarray, shape (n_tilts, Y, X)
        Content tilt series (FakET: the CONTENT modality, NOISY with 25% of the noise).
    style : ndarray (n_tilts, Y, X) or StyleReference
        Style tilt series, tilt i styles tilt i (FakET: benchmark projections of a
        *different* tomogram), or its :func:`prepare_style` result.
    init : ndarray, shape (n_tilts, Y, X)
        Starting image (FakET: the NOISY modality).
    weights : {"imagenet", "random"}, path or VGG19Features
        VGG-19 weights (see :mod:`faket.style.weights`), or a network to reuse.
    settings : TransferSettings, optional
        All settings; default the paper's.
    device : str or torch.device
        ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda:1"``, ...
    seed : int
        Seed of ``"random"`` weights. The transfer itself draws no random numbers, and
        on the CPU equal inputs and seeds give identical outputs.
    tilts : sequence of int, optional
        Tilt indices to process (default all); the output holds them in this order.
        Normalisation always uses the whole stacks, so a tilt's result does not depend
        on which others are processed with it.
    batch_size : int, optional
        Tilts per optimisation step; default from the device's memory budget.
    memory_budget : int, optional
        Bytes a batch of tilts may use on a GPU (default: 50% of its free memory), and
        bytes one tilt may use before it is tiled (default: that, or 50% of the
        available host memory on a CPU).
    tile : int, optional
        None (default): tile a tilt only when its whole-tilt working set exceeds the
        memory budget; 0: never tile; N: tiles of N x N pixels (see
        :mod:`faket.style.tiled`). Tiled results equal whole-tilt ones up to float
        round-off (the update direction of ~0.01% of pixels), at more time per
        pixel (benchmarks/README.md); tiled tilts are processed one at a time.
    progress : bool
        Progress bar per tilt on stderr.
    **overrides
        Any :class:`TransferSettings` field, e.g. ``iterations=3``, ``precision="bf16"``.

    Returns
    -------
    ndarray, shape (len(tilts), Y, X), float32
        Stylised tilts; with ``match_stats="style"`` (default) each has the mean and
        standard deviation of its style tilt, otherwise it is in [0, 1].
    """
    parts = iter_style_transfer(
        content,
        style,
        init,
        weights=weights,
        settings=settings,
        device=device,
        seed=seed,
        tilts=tilts,
        batch_size=batch_size,
        memory_budget=memory_budget,
        tile=tile,
        progress=progress,
        **overrides,
    )
    return np.stack([tilt for _index, tilt in parts]).astype(np.float32, copy=False)

"""Running the feature network under the transfer settings: weights, layout, precision.

Shared by the whole-tilt transfer (:mod:`faket.style.transfer`), the style targets
(:mod:`faket.style.reference`) and the tiled engine (:mod:`faket.style.tiled`).
"""

from __future__ import annotations

import torch

from faket.errors import FaketError
from faket.precision import reduced_dtype
from faket.style.losses import gram_matrix
from faket.style.settings import TransferSettings, resize
from faket.style.vgg import VGG19Features
from faket.style.weights import build_feature_net

__all__ = ["forward", "resolve_net", "style_grams", "target_features"]


def resolve_net(weights, settings: TransferSettings, device, seed) -> VGG19Features:
    """The feature network for ``settings`` on ``device``, in the settings' memory layout.

    Parameters
    ----------
    weights : {"imagenet", "random"}, path or VGG19Features
        As for :func:`faket.style.style_transfer`; a given network is checked and moved.
    settings : TransferSettings
    device : torch.device
    seed : int
        Of ``"random"`` weights.

    Returns
    -------
    VGG19Features
    """
    if isinstance(weights, VGG19Features):
        if weights.last_layer < settings.last_layer or weights.pooling != settings.pooling:
            raise FaketError(
                f"the given feature network stops at layer {weights.last_layer} with "
                f"{weights.pooling} pooling; the settings need layer {settings.last_layer} "
                f"and {settings.pooling} pooling"
            )
        net = weights.to(device)
    else:
        net = build_feature_net(
            weights,
            last_layer=settings.last_layer,
            pooling=settings.pooling,
            seed=seed,
            device=device,
        )
    layout = settings.channels_last
    if layout is None:
        # Channels-last is ~1.15x faster on CPUs (oneDNN's blocked kernels) and on GPUs, but
        # not reliably on Apple's MPS.
        layout = device.type != "mps"
    if net.channels_last != layout:
        net.set_channels_last(layout)
    return net


def forward(net, images, layers, device, settings, **options) -> dict[int, torch.Tensor]:
    """Activations of ``layers`` in the settings' precision (with autograd if enabled).

    ``options`` go to :meth:`VGG19Features.forward` (``start``/``stop`` of a tiled
    segment).
    """
    dtype = reduced_dtype(device, settings.precision)
    return net(images, layers, reduced=dtype, reduced_from=settings.reduced_from, **options)


def target_features(net, images, layers, device, settings) -> dict[int, torch.Tensor]:
    """Activations without autograd (the content and style targets)."""
    with torch.no_grad():
        return forward(net, images.to(device), layers, device, settings)


def style_grams(net, style01, sizes, settings, device) -> dict[tuple[int, int], dict]:
    """Gram targets of one batch of normalised style tilts ``(B, 1, H, W)`` per scale."""
    out = {}
    for size in sizes:
        feats = target_features(net, resize(style01, size), settings.style_layers, device, settings)
        out[size] = {layer: gram_matrix(feats[layer]) for layer in settings.style_layers}
    return out

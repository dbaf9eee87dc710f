"""Losses of the style transfer, per image so that tilts can be batched exactly.

Every function returns one value per image of the batch. The optimiser minimises the
sum over the batch; since no layer mixes images, the gradient for each tilt is exactly
the gradient of that tilt's own loss, so batching tilts never changes a result.

Definitions (those of the FakET paper's code, which differ from Gatys et al.):

- Gram matrix of features ``F`` (C channels, P positions): ``F F^T / P``.
- Scaled MSE of ``a`` against ``b``: ``sum((a-b)^2) / (sum|a-b| + eps)``, an MSE
  rescaled so that its gradient's L1 norm is about 1 whatever the layer's scale.
- Content loss: scaled MSE of the content layers' activations.
- Style loss: scaled MSE of the Gram matrices of the style layers.
- Total variation: mean of squared horizontal plus vertical differences (edge-replicated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "gram_backward",
    "gram_matrix",
    "scaled_mse",
    "scaled_mse_backward",
    "total_loss",
    "tv_loss",
]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of feature maps, divided by the number of positions.

    Parameters
    ----------
    features : Tensor, shape (N, C, H, W)
        Activations (any float dtype, any memory layout).

    Returns
    -------
    Tensor, shape (N, C, C), float32
        ``G[n, i, j] = sum_p F[n, i, p] F[n, j, p] / (H * W)``.
    """
    n, c, h, w = features.shape
    # (N, H*W, C) is a free view of channels-last activations, and float32 keeps the sums
    # of up to millions of products accurate under mixed precision.
    with torch.autocast(features.device.type, enabled=False):
        mat = features.float().permute(0, 2, 3, 1).reshape(n, h * w, c)
        return _Gram.apply(mat, float(h * w))


class _Gram(torch.autograd.Function):
    """``G = M^T M / P`` for ``M`` (N, P, C), with the gradient ``M (dG + dG^T) / P``.

    Autograd of the plain product would compute the two factors' gradients with two
    (P x C x C) products and add them; using the symmetry of ``G`` takes one product
    and no (N, P, C) sum, ~1.5 s of a 1024x1024 tilt's backward pass on a CPU.
    """

    @staticmethod
    def forward(ctx, mat: torch.Tensor, positions: float) -> torch.Tensor:
        ctx.save_for_backward(mat)
        ctx.positions = positions
        return torch.bmm(mat.transpose(1, 2), mat) / positions

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mat,) = ctx.saved_tensors
        return gram_backward(mat, grad, ctx.positions), None


def gram_backward(mat: torch.Tensor, grad: torch.Tensor, positions: float) -> torch.Tensor:
    """Gradient ``M (dG + dG^T) / P`` of a loss with respect to the features ``M``.

    Parameters
    ----------
    mat : Tensor, shape (N, P', C)
        Features (all positions, or a tile's: the formula is per position).
    grad : Tensor, shape (N, C, C)
        Gradient of the loss with respect to the Gram matrix.
    positions : float
        ``P``, the number of positions the Gram matrix was divided by.

    Returns
    -------
    Tensor, shape (N, P', C)
    """
    symmetric = (grad + grad.transpose(1, 2)) / positions
    return torch.bmm(mat, symmetric)


def scaled_mse(input: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image ``sum((input - target)^2) / (sum|input - target| + eps)``.

    Parameters
    ----------
    input, target : Tensor, shape (N, ...)
        Same shape (``target`` may broadcast).
    eps : float
        Keeps the ratio finite when input equals target.

    Returns
    -------
    Tensor, shape (N,), float32
    """
    return _ScaledMse.apply(input.float(), target.float(), eps)


class _ScaledMse(torch.autograd.Function):
    """``sum(d^2) / (sum|d| + eps)`` per image, ``d = input - target``, with a fused backward.

    The gradient ``2 d g / B - sign(d) g A / B^2`` (``A``, ``B`` numerator and denominator)
    is autograd's, rounded the same way, in three passes over ``d`` instead of seven, and
    the sums run over the activations in their own memory layout (flattening a
    channels-last tensor would copy it): ~0.1 s of a 512x512 tilt on a CPU.
    """

    @staticmethod
    def forward(ctx, input: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
        diff = input - target
        dims = tuple(range(1, diff.ndim))
        numerator = (diff * diff).sum(dims)
        denominator = diff.abs().sum(dims) + eps
        ctx.save_for_backward(diff, numerator, denominator)
        return numerator / denominator

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        diff, numerator, denominator = ctx.saved_tensors
        grad_input = scaled_mse_backward(diff, numerator, denominator, grad)
        return grad_input, (-grad_input if ctx.needs_input_grad[1] else None), None


def scaled_mse_backward(
    diff: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """Gradient of :func:`scaled_mse` with respect to its input, from its sums.

    Parameters
    ----------
    diff : Tensor, shape (N, ...)
        ``input - target`` (all of it, or a tile's part: the formula is elementwise).
    numerator, denominator : Tensor, shape (N,)
        ``sum(diff^2)`` and ``sum|diff| + eps`` over the whole input.
    grad : Tensor, shape (N,)
        Gradient of the loss with respect to the scaled MSE.

    Returns
    -------
    Tensor, shape of ``diff``
    """
    shape = (-1,) + (1,) * (diff.ndim - 1)
    # As autograd's quotient rule: d/dA = g / B, d/dB = -g * ((A / B) / B).
    grad_numerator = (grad / denominator).view(shape)
    grad_denominator = (-grad * ((numerator / denominator) / denominator)).view(shape)
    return diff.sign().mul_(grad_denominator).add_(diff * (2 * grad_numerator))


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Per-image L2 total variation, mean over channels and pixels.

    Parameters
    ----------
    image : Tensor, shape (N, C, H, W)

    Returns
    -------
    Tensor, shape (N,)
    """
    padded = F.pad(image, (0, 1, 0, 1), mode="replicate")
    dx = padded[..., :-1, 1:] - padded[..., :-1, :-1]
    dy = padded[..., 1:, :-1] - padded[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2)).flatten(1).mean(1)


def total_loss(
    features: Mapping[int, torch.Tensor],
    content_targets: Mapping[int, torch.Tensor],
    style_targets: Mapping[int, torch.Tensor],
    content_weights: Sequence[float],
    style_weights: Sequence[float],
    *,
    image: torch.Tensor | None = None,
    tv_weight: float = 0.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Weighted content + style (+ TV) loss of each image.

    Parameters
    ----------
    features : mapping layer -> Tensor (N, C, H, W)
        Activations of the image being optimised.
    content_targets : mapping layer -> Tensor (N, C, H, W)
        Content images' activations; the weights in ``content_weights`` follow the
        mapping's order and already include the overall content weight.
    style_targets : mapping layer -> Tensor (N, C, C)
        Style images' Gram matrices; ``style_weights`` as for content.
    image : Tensor (N, C, H, W), optional
        The image itself, needed only when ``tv_weight`` is not 0.
    tv_weight : float
        Weight of :func:`tv_loss`.
    eps : float
        Of :func:`scaled_mse`.

    Returns
    -------
    Tensor, shape (N,)
    """
    terms = [
        weight * scaled_mse(features[layer], target, eps)
        for (layer, target), weight in zip(content_targets.items(), content_weights, strict=True)
    ]
    terms += [
        weight * scaled_mse(gram_matrix(features[layer]), target, eps)
        for (layer, target), weight in zip(style_targets.items(), style_weights, strict=True)
    ]
    if tv_weight and image is not None:
        terms.append(tv_weight * tv_loss(image))
    return torch.stack(terms).sum(0)

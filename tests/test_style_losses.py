"""Losses of the style transfer against hand-computed values on tiny tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faket.style.losses import gram_matrix, scaled_mse, total_loss, tv_loss
from faket.style.settings import TransferSettings


def test_gram_matrix_by_hand() -> None:
    # One image, 2 channels, 2x2 positions: G = F F^T / 4.
    feats = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])
    expected = np.array([[1 + 4 + 9 + 16, 0 + 2 + 0 - 4], [2 - 4, 0 + 1 + 0 + 1]]) / 4
    np.testing.assert_allclose(gram_matrix(feats)[0].numpy(), expected, rtol=1e-6)


def test_gram_matrix_is_per_image_and_layout_free() -> None:
    rng = np.random.default_rng(0)
    feats = torch.from_numpy(rng.standard_normal((3, 4, 5, 6)).astype(np.float32))
    flat = feats.numpy().reshape(3, 4, 30).astype(np.float64)
    expected = np.einsum("ncp,ndp->ncd", flat, flat) / 30
    np.testing.assert_allclose(gram_matrix(feats).numpy(), expected, rtol=1e-5, atol=1e-6)
    last = feats.contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(gram_matrix(last).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_scaled_mse_by_hand() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 6.0], [0.0, 0.0, 0.0]])
    # Row 0: diffs (0, 2, -3): (0 + 4 + 9) / (0 + 2 + 3) = 2.6; row 1: 0 / eps = 0.
    np.testing.assert_allclose(scaled_mse(a, b).numpy(), [2.6, 0.0], rtol=1e-6)


def test_scaled_mse_gradient_has_unit_scale() -> None:
    # L = S2 / S1 with S2 = sum d^2, S1 = sum |d|: dL/dd = 2 d / S1 - S2 sign(d) / S1^2.
    # For d = (+1, -1, +1, -1): 2 d / 4 - 4 sign(d) / 16 = sign(d) / 4.
    d = torch.tensor([[1.0, -1.0, 1.0, -1.0]], requires_grad=True)
    scaled_mse(d, torch.zeros_like(d)).sum().backward()
    np.testing.assert_allclose(d.grad.numpy(), [[0.25, -0.25, 0.25, -0.25]], rtol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_scaled_mse_gradient_equals_autograd_of_the_formula_bit_for_bit(channels_last) -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((2, 2, 4, 8, 8)).astype(np.float32)
    data[0, 0, 0, :2] = data[1, 0, 0, :2]  # some d == 0 exactly
    layout = torch.channels_last if channels_last else torch.contiguous_format
    weights = torch.tensor([0.3, 1.7])
    grads = []
    for fused in (True, False):
        a, b = (torch.from_numpy(x).contiguous(memory_format=layout) for x in data)
        a.requires_grad_(True)
        b.requires_grad_(True)
        if fused:
            loss = scaled_mse(a, b)
        else:  # the paper's code's formula, through autograd
            diff = a - b
            loss = torch.stack([(d.pow(2).sum() / (d.abs().sum() + 1e-8)) for d in diff])
        (loss * weights).sum().backward()
        grads.append((loss.detach(), a.grad, b.grad))
    (loss_fused, grad_a, grad_b), (loss_plain, grad_a_plain, grad_b_plain) = grads
    torch.testing.assert_close(loss_fused, loss_plain, rtol=1e-6, atol=0)
    assert torch.equal(grad_a, grad_a_plain)
    assert torch.equal(grad_b, -grad_a)


def test_tv_loss_by_hand() -> None:
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # Replicate-padded differences: dx = (1, 0; 2, 0), dy = (2, 3; 0, 0).
    expected = (1 + 0 + 4 + 0 + 4 + 9 + 0 + 0) / 4
    assert tv_loss(image).item() == pytest.approx(expected)


def test_total_loss_weights_and_normalisation() -> None:
    rng = np.random.default_rng(1)

    def t(*shape: int) -> torch.Tensor:
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))

    feats = {1: t(2, 3, 4, 4), 8: t(2, 5, 2, 2)}
    content = {8: t(2, 5, 2, 2)}
    style = {1: t(2, 3, 3)}
    settings = TransferSettings(
        content_layers=(8,),
        content_layer_weights=(100.0,),
        style_layers=(1,),
        style_layer_weights=(7.0,),
        content_weight=0.5,
        style_weight=2.0,
    )
    cw, sw = settings.layer_weights()
    assert cw == [0.5] and sw == [2.0]  # layer weights are normalised to sum 1
    got = total_loss(feats, content, style, cw, sw)

    def smse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = (a - b).reshape(len(a), -1).astype(np.float64)
        return (d**2).sum(1) / np.abs(d).sum(1)

    f1 = feats[1].numpy().reshape(2, 3, 16).astype(np.float64)
    gram = np.einsum("ncp,ndp->ncd", f1, f1) / 16
    expected = 0.5 * smse(feats[8].numpy(), content[8].numpy()) + 2.0 * smse(gram, style[1].numpy())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_paper_style_weights() -> None:
    _, sw = TransferSettings().layer_weights()
    np.testing.assert_allclose(sw, np.array([256, 64, 16, 4, 1]) / 341)


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_matrix_gradient_equals_autograd_of_the_plain_product(channels_last) -> None:
    generator = torch.Generator().manual_seed(5)
    feats = torch.rand(2, 6, 5, 7, generator=generator)
    if channels_last:
        feats = feats.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(2, 6, 6, generator=generator)  # a non-symmetric upstream gradient
    ours = feats.clone().requires_grad_(True)
    (gram_matrix(ours) * weight).sum().backward()
    plain = feats.clone().requires_grad_(True)
    mat = plain.flatten(2)
    ((mat @ mat.transpose(1, 2) / 35) * weight).sum().backward()
    torch.testing.assert_close(ours.grad, plain.grad, rtol=1e-5, atol=1e-6)

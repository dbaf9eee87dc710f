"""Properties of the style-transfer optimisation (exactness: test_style_golden.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _helpers import one_torch_thread  # noqa: F401  (fixture)

from faket.errors import FaketError
from faket.style import TransferSettings, build_feature_net, prepare_style, style_transfer
from faket.style.losses import gram_matrix, total_loss

STYLE_LAYERS = [1, 6, 11, 20, 29]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net():
    return build_feature_net("random", seed=0, device="cpu")


@pytest.fixture(scope="module")
def stacks():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:32, :32]
    blobs = np.stack([-np.exp(-((yy - 10 - 4 * t) ** 2 + (xx - 16) ** 2) / 18) for t in range(3)])
    content = blobs + 0.1 * rng.standard_normal(blobs.shape)
    init = blobs + 0.5 * rng.standard_normal(blobs.shape)
    style = 5.0 + 2.0 * rng.standard_normal(blobs.shape) * np.array([1, 2, 3])[:, None, None]
    return [a.astype(np.float32) for a in (content, style, init)]


def _unit(stack: np.ndarray) -> np.ndarray:
    return ((stack - stack.min()) / (stack.max() - stack.min())).astype(np.float32)


def test_one_adam_step_is_a_signed_step_then_ema(net, stacks) -> None:
    content, style, init = stacks
    out = style_transfer(content, style, init, weights=net, device="cpu", match_stats="none")
    # Independent gradient of the paper's loss at the three-channel initial image.
    x0 = torch.from_numpy(_unit(init))[:, None].repeat(1, 3, 1, 1).requires_grad_(True)
    with torch.no_grad():
        target = net(torch.from_numpy(_unit(content))[:, None], [8])[8]
        style_feats = net(torch.from_numpy(_unit(style))[:, None], STYLE_LAYERS)
    grams = {layer: gram_matrix(style_feats[layer]) for layer in STYLE_LAYERS}
    cw, sw = TransferSettings().layer_weights()
    total_loss(net(x0, [8, *STYLE_LAYERS]), {8: target}, grams, cw, sw).sum().backward()
    grad, x0 = x0.grad.numpy(), x0.detach().numpy()
    step, decay = 0.15, 0.99
    # Adam's first step is exactly step * g / (|g| + eps); the output is the EMA
    # (decay * x0 + x1) / (1 + decay) of the clamped iterate, averaged over channels.
    x1 = np.clip(x0 - step * grad / (np.abs(grad) + 1e-8), 0, 1)
    expected = ((decay * x0 + x1) / (1 + decay)).mean(axis=1)
    # Round-off may change the step of a channel whose gradient is ~0 (at most a sign
    # flip: 2 * 0.0754 / 3 = 0.050 in the channel mean): allow a handful, nothing else.
    difference = np.abs(out - expected)
    assert (difference > 1e-4).mean() < 0.005
    assert difference.max() <= 1.01 * 2 * step / (1 + decay) / 3
    # Where |grad| >> eps and nothing clamps: x0 - s/(1+d) * sign(grad), +-0.0754 per channel.
    free = (np.abs(grad) > 1e-5).all(axis=1) & ((x0 > step) & (x0 < 1 - step)).all(axis=1)
    assert free.mean() > 0.5
    moves = (out - x0[:, 0])[free] / (step / (1 + decay))
    np.testing.assert_allclose(moves, -np.sign(grad).mean(axis=1)[free], atol=2e-3)
    assert set(np.round(3 * moves).astype(int)) <= {-3, -1, 1, 3}


def _losses(net, image01: np.ndarray, content01: np.ndarray, style01: np.ndarray):
    """(total, style) loss per tilt of a grey image, with the paper's weights."""
    with torch.no_grad():
        feats = net(torch.from_numpy(image01)[:, None], [8, *STYLE_LAYERS])
        content = {8: net(torch.from_numpy(content01)[:, None], [8])[8]}
        style = net(torch.from_numpy(style01)[:, None], STYLE_LAYERS)
    grams = {layer: gram_matrix(style[layer]) for layer in STYLE_LAYERS}
    cw, sw = TransferSettings().layer_weights()
    total = total_loss(feats, content, grams, cw, sw).numpy()
    return total, total_loss(feats, content, grams, [0.0], sw).numpy()


def test_one_iteration_lowers_the_loss(net, stacks) -> None:
    content, style, init = stacks
    units = [_unit(a) for a in stacks]
    total0, style0 = _losses(net, units[2], units[0], units[1])
    out = style_transfer(content, style, init, weights=net, device="cpu", match_stats="none")
    assert (_losses(net, out, units[0], units[1])[0] < total0).all()
    # The content term dominates the paper's update; without it the style loss drops a lot.
    out = style_transfer(
        content, style, init, weights=net, device="cpu", match_stats="none", content_weight=0
    )
    assert (_losses(net, out, units[0], units[1])[1] < 0.7 * style0).all()


def test_output_has_the_style_tilts_mean_and_std(net, stacks) -> None:
    content, style, init = stacks
    out = style_transfer(content, style, init, weights=net, device="cpu")
    assert out.dtype == np.float32 and out.shape == content.shape
    np.testing.assert_allclose(out.mean(axis=(1, 2)), style.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), style.std(axis=(1, 2)), rtol=1e-4)
    assert not np.allclose(out[0], out[1])


def test_deterministic_for_a_seed_on_cpu(stacks) -> None:
    runs = [
        style_transfer(*stacks, weights="random", seed=seed, device="cpu") for seed in (5, 5, 6)
    ]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_tilt_subset_and_prepared_style_give_the_same_tilts(net, stacks) -> None:
    content, style, init = stacks
    full = style_transfer(content, style, init, weights=net, device="cpu")
    part = style_transfer(content, style, init, weights=net, device="cpu", tilts=[2, 0])
    assert np.array_equal(part, full[[2, 0]])
    reference = prepare_style(style, weights=net, device="cpu")
    assert reference.grams[(32, 32)][29].shape == (3, 512, 512)
    reused = style_transfer(content, reference, init, weights=net, device="cpu")
    assert np.array_equal(reused, full)
    other = build_feature_net("random", seed=1)
    with pytest.raises(FaketError, match="other weights or settings"):
        style_transfer(content, reference, init, weights=other, device="cpu")


def test_batching_layout_and_bf16_change_only_few_pixels(net, stacks) -> None:
    content, style, init = stacks
    kwargs = {"weights": net, "device": "cpu", "match_stats": "none"}
    # channels_last=False is the paper's code's arithmetic operation for operation.
    exact = style_transfer(content, style, init, **kwargs, channels_last=False)
    x0 = _unit(init)
    for option in ({"batch_size": 3}, {}, {"precision": "bf16"}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on some CPUs
            other = style_transfer(content, style, init, **kwargs, **option)
        # Round-off can flip the update only where the gradient is ~0: a few pixels move
        # by a different multiple of 0.0754 / 3; all others agree to float precision.
        changed = np.abs(other - exact) > 1e-3
        assert changed.mean() < 0.02, (option, changed.mean())
        agree = np.sign(other - x0) == np.sign(exact - x0)
        assert agree.mean() > 0.98, (option, agree.mean())


def test_multi_scale_option_runs(net, stacks) -> None:
    content, style, init = stacks
    out = style_transfer(content, style, init, weights=net, device="cpu", min_scale=16)
    assert out.shape == content.shape
    np.testing.assert_allclose(out.std(axis=(1, 2)), style.std(axis=(1, 2)), rtol=1e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"init": np.zeros((3, 32, 30))}, "init shape"),
        ({"style": np.zeros((2, 32, 32))}, "style shape"),
        ({"content": np.full((3, 32, 32), np.nan)}, "NaN"),
        ({"content": np.zeros((3, 8, 8)), "init": np.zeros((3, 8, 8))}, "too small"),
        ({"precision": "tf32"}, "NVIDIA"),
        ({"precision": "fp16"}, "needs a GPU"),
        ({"iterations": 0}, "at least 1"),
        ({"tilts": [3]}, "tilt indices"),
        ({"colour": "red"}, "unknown style-transfer setting"),
    ],
)
def test_bad_requests_are_one_line_errors(net, stacks, change, message) -> None:
    content, style, init = stacks
    arrays = {"content": content, "style": style, "init": init}
    arrays.update({k: v for k, v in change.items() if k in arrays})
    options = {k: v for k, v in change.items() if k not in arrays}
    with pytest.raises(FaketError, match=message) as info:
        style_transfer(**arrays, weights=net, device="cpu", **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("native", [True, False])
def test_mixed_precision_uses_bf16_only_where_the_cpu_has_it(monkeypatch, native) -> None:
    import faket.precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_prefers_bf16", lambda: native)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    # pre-Ampere GPU:
    monkeypatch.setattr(precision_module, "cuda_has_native_bf16", lambda device: False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision_module.resolve_precision("mixed", cpu) == ("bf16" if native else "fp32")
    assert precision_module.resolve_precision("mixed", cuda) == "fp16"
    if native:
        assert precision_module.resolve_precision("bf16", cpu) == "bf16"
    else:
        # Emulated bf16 still runs when asked for, but says it is slow.
        assert precision_module.resolve_precision("bf16", cpu) == "bf16"
        with pytest.warns(RuntimeWarning, match="no fast bfloat16"):
            precision_module.warn_if_emulated("bf16", cpu)
    with pytest.raises(FaketError, match="needs a GPU"):
        precision_module.resolve_precision("fp16", cpu)


def test_adam_equals_torch_optim_adam_bit_for_bit() -> None:
    from faket.style.transfer import Adam

    generator = torch.Generator().manual_seed(3)
    start = torch.rand(2, 3, 8, 8, generator=generator)
    grads = [torch.randn(2, 3, 8, 8, generator=generator) for _ in range(4)]
    ours, theirs = start.clone(), start.clone()
    optimiser, reference = Adam(ours, lr=0.15), torch.optim.Adam([theirs], lr=0.15)
    for grad in grads:
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        optimiser.step()
        reference.step()
        assert torch.equal(ours, theirs)
    assert not torch.equal(ours, start)


@pytest.mark.parametrize(
    ("vendor", "flags", "faster"),
    [
        ("GenuineIntel", "avx512f avx512_bf16 amx_bf16 amx_tile", True),  # Sapphire Rapids
        ("GenuineIntel", "avx512f avx512_bf16 avx512_fp16", False),  # AMX hidden (a VM)
        ("AuthenticAMD", "avx512f avx512_bf16", True),  # Zen 4
        ("AuthenticAMD", "avx2 fma", False),  # Zen 2/3
    ],
)
def test_mixed_picks_bf16_only_on_cpus_where_it_beats_fp32(vendor, flags, faster) -> None:
    from faket.precision import bf16_beats_fp32, cpu_flags

    cpuinfo = (
        f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 {flags}\n\n"
        f"processor\t: 1\nvendor_id\t: {vendor}\nflags\t\t: fpu\n"
    )
    parsed, name = cpu_flags(cpuinfo)
    assert name == vendor and "sse2" in parsed and set(flags.split()) <= parsed
    assert bf16_beats_fp32(parsed, name) is faster

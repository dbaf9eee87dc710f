"""Exact tiled style transfer: tiles reproduce the whole-image arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import one_torch_thread  # noqa: F401  (fixture)

from faket.errors import FaketError
from faket.style import TransferSettings, build_feature_net, prepare_style, style_transfer
from faket.style.losses import gram_matrix, total_loss
from faket.style.optim import Adam
from faket.style.switches import Switches, pool_choice
from faket.style.tile_plan import choose_plan, plan_tiles
from faket.style.tiled import loss_and_gradient, tiled_grams
from faket.style.tiling import network_segments, spans, tail_range, tap_range

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def net():
    # Channels-last, as the transfer uses it (faket.style.network.resolve_net).
    return build_feature_net("random", seed=0, device="cpu").set_channels_last(True)


def _images(shape, seed=0):
    """Content, init, style in [0, 1], (1, 1, H, W): blobs with FakET-like noise levels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]

    def blobs():
        image = np.zeros(shape)
        for _ in range(shape[0] // 6):
            cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(2, 8)
            image -= np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        return image

    def unit(a):
        return torch.from_numpy(((a - a.min()) / (a.max() - a.min())).astype(np.float32))[
            None, None
        ]

    clean = blobs()
    noise = rng.standard_normal((2, *shape))
    return unit(clean + 0.1 * noise[0]), unit(clean + 0.4 * noise[1]), unit(blobs() + noise[0])


def _whole_image(net, settings, content, init, style):
    """Loss and gradient of the whole image by plain autograd (the untiled arithmetic)."""
    with torch.no_grad():
        style_feats = net(style, settings.style_layers)
        grams = {layer: gram_matrix(style_feats[layer]) for layer in settings.style_layers}
        targets = {layer: net(content, [layer])[layer] for layer in settings.content_layers}
    image = init.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
    image = image.clone().requires_grad_(True)
    layers = [*settings.content_layers, *settings.style_layers]
    cw, sw = settings.layer_weights()
    loss = total_loss(
        net(image, layers), targets, grams, cw, sw, image=image, tv_weight=settings.tv_weight
    )
    loss.sum().backward()
    return loss.detach(), image.grad, grams, image.detach()


@pytest.mark.parametrize(
    ("shape", "tile", "overrides"),
    [
        ((192, 192), 64, {}),  # the case
        ((150, 131), 48, {}),  # odd sizes, tiles that do not divide them
        (
            # A deep content layer (its targets pass through stored maps), and TV.
            (112, 100),
            48,
            {"tv_weight": 2.0, "content_layers": (8, 22), "content_layer_weights": (1, 1)},
        ),
    ],
)
def test_tiled_loss_and_gradient_equal_the_whole_image(net, shape, tile, overrides) -> None:
    settings = TransferSettings(**overrides)
    content, init, style = _images(shape)
    loss, grad, grams, image = _whole_image(net, settings, content, init, style)
    plan = plan_tiles(net.features, settings, tile=tile)
    # Every segment really is cut into several tiles in the gradient pass.
    sizes, counts = shape, []
    for segment, side in zip(plan.segments, plan.backward, strict=True):
        counts.append(len(list(spans(sizes[0], segment.stride, side, segment.halo_backward))))
        sizes = tuple(n // segment.stride for n in sizes)
    assert min(counts[:-1]) >= 2, counts
    tiled_loss, tiled_grad = loss_and_gradient(
        net, image.clone(), content, grams, settings, CPU, plan
    )
    np.testing.assert_allclose(tiled_loss.numpy(), loss.numpy(), rtol=1e-6)
    same_sign = (torch.sign(tiled_grad) == torch.sign(grad)).double().mean()
    assert same_sign >= 0.9999, float(same_sign)
    # Not just the signs: the values agree to float round-off.
    assert float((tiled_grad - grad).abs().max() / grad.abs().max()) < 1e-5


def test_gram_matrices_accumulated_over_tiles_equal_the_whole_image(net) -> None:
    settings = TransferSettings()
    _, _, style = _images((133, 150), seed=2)
    with torch.no_grad():
        feats = net(style, settings.style_layers)
    plan = plan_tiles(net.features, settings, tile=32)
    assert plan.forward[0] == 8 and "forward 25/" in plan.describe((133, 150))
    tiled = tiled_grams(net, style, settings, CPU, plan)
    for layer in settings.style_layers:
        whole = gram_matrix(feats[layer])
        assert tiled[layer].shape == whole.shape
        np.testing.assert_allclose(tiled[layer], whole, rtol=2e-5, atol=2e-6 * whole.abs().max())


def test_vgg19_segments_and_halos(net) -> None:
    segments = network_segments(net.features, 29)
    assert [(s.start, s.stop, s.stride) for s in segments] == [
        (0, 9, 4),
        (10, 18, 2),
        (19, 27, 2),
        (28, 29, 1),
    ]
    # relu2_2 (content layer 8) sits behind conv1_1, conv1_2, pool1, conv2_1, conv2_2: it
    # reaches 1 + 1 + 2 + 2 = 6 pixels beyond its own 2x2 block.
    assert segments[0].taps[8].reach == 6 and segments[0].taps[8].stride == 2
    # Forward-only halo: the largest reach (6) rounded up to the stride 4; backward:
    # 2 * 6 + 4 - 1 = 15 for pool2, rounded up to 16.
    assert [s.halo_forward for s in segments] == [8, 4, 4, 1]
    assert [s.halo_backward for s in segments] == [16, 10, 10, 2]


@pytest.mark.parametrize(("size", "tile"), [(197, 64), (64, 64), (131, 20), (40, 100)])
def test_owned_positions_partition_every_map_and_valid_ones_cover_them(net, size, tile) -> None:
    for segment in network_segments(net.features, 29):
        if size // segment.stride < 1:
            continue
        for halo in (segment.halo_forward, segment.halo_backward):
            tiles = list(spans(size, segment.stride, max(1, tile // segment.stride), halo))
            assert tiles[0].owned[0] == 0 and tiles[-1].owned[1] == size
            for span in tiles:
                assert span.window[0] % segment.stride == 0  # pooling alignment
                assert span.window[0] <= span.owned[0] < span.owned[1] <= span.window[1]
            for tap in segment.taps.values():
                covered = []
                for span in tiles:
                    offset = span.window[0] // tap.stride
                    first, last = tap_range(span, tap, "owned")
                    covered += range(first + offset, last + offset)
                    valid = tap_range(span, tap, "valid")
                    assert valid[0] <= first and last <= valid[1]
                    if halo == segment.halo_backward:
                        # Every position depending on an owned input is valid.
                        low = max(0, -(-(span.owned[0] - tap.reach - tap.stride + 1) // tap.stride))
                        high = min(
                            size // tap.stride, (span.owned[1] - 1 + tap.reach) // tap.stride + 1
                        )
                        assert valid[0] + offset <= low and high <= valid[1] + offset
                assert covered == list(range(size // tap.stride))


@pytest.mark.parametrize(("size", "stride", "tile", "halo"), [(4096, 4, 135, 16), (197, 2, 20, 6)])
def test_edge_windows_widen_to_the_interior_size(size, stride, tile, halo) -> None:
    # One window size per pass (so that a heap keeping freed blocks reuses them tile
    # after tile), each window still holding its owned positions plus the halo.
    tiles = list(spans(size, stride, tile, halo))
    assert len(tiles) == -(-(size // stride) // tile)  # as many tiles as ``tile`` needs
    owned = [(s.owned[1] - s.owned[0]) // stride for s in tiles]
    assert max(owned) <= tile and max(owned) - min(owned) < len(tiles)  # balanced
    interior = owned[0] * stride + 2 * halo
    lengths = [s.window[1] - s.window[0] for s in tiles]
    assert lengths[:-1] == [interior] * (len(tiles) - 1)
    assert interior <= lengths[-1] < interior + stride
    for span in tiles:
        assert span.window[0] % stride == 0
        assert span.window[0] <= max(0, span.owned[0] - halo)
        assert span.window[1] >= min(size, span.owned[1] + halo)


def test_tiled_transfer_equals_the_whole_tilt_transfer(net) -> None:
    rng = np.random.default_rng(4)
    clean = rng.standard_normal((1, 96, 112)).cumsum(axis=2).astype(np.float32)
    content = clean + 0.3 * rng.standard_normal(clean.shape).astype(np.float32)
    init = clean + rng.standard_normal(clean.shape).astype(np.float32)
    style = 4.0 + 2.0 * rng.standard_normal(clean.shape).astype(np.float32)
    kwargs = {"weights": net, "device": "cpu"}
    whole = style_transfer(content, style, init, **kwargs, match_stats="none", tile=0)
    # Style targets from the cache, made with tiles; content targets, iterate, Adam, EMA
    # and the mean/std match of the output tiled.
    reference = prepare_style(style, **kwargs, tile=48)
    tiled = style_transfer(content, reference, init, **kwargs, tile=48)
    x0 = (init - init.min()) / (init.max() - init.min())
    own = (tiled - tiled.mean()) / tiled.std() * whole.std() + whole.mean()
    assert np.mean(np.sign(own - x0) == np.sign(whole - x0)) >= 0.9999
    assert np.mean(np.abs(own - whole) > 1e-4) < 1e-4
    np.testing.assert_allclose(tiled.mean(axis=(1, 2)), style.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(tiled.std(axis=(1, 2)), style.std(axis=(1, 2)), rtol=1e-4)


def test_tiling_is_chosen_when_a_tilt_does_not_fit(net) -> None:
    settings = TransferSettings()
    # 1024^2 takes ~6 GB as a whole; with 1 GB it is tiled, with 100 GB it is not.
    assert choose_plan(net, settings, CPU, (1024, 1024), 10**9, None) is not None
    assert choose_plan(net, settings, CPU, (1024, 1024), 10**11, None) is None
    assert choose_plan(net, settings, CPU, (64, 64), None, None) is None
    assert choose_plan(net, settings, CPU, (64, 64), None, 0) is None
    assert choose_plan(net, settings, CPU, (64, 64), None, 32).forward[0] == 8
    # Smaller budgets give smaller tiles.
    small = choose_plan(net, settings, CPU, (4096, 4096), 2 * 10**8, None)
    large = choose_plan(net, settings, CPU, (4096, 4096), 2 * 10**9, None)
    assert all(a < b for a, b in zip(small.backward, large.backward, strict=True))
    for bad in (-1, 2):
        with pytest.raises(FaketError, match="tile size"):
            choose_plan(net, settings, CPU, (64, 64), None, bad)


def test_tiled_tilts_keep_freed_memory_and_release_it_after_each_tilt(net, monkeypatch) -> None:
    # Tiles of one window size reuse the kept heap (page faults cost ~30 % of a tiled
    # 4096^2 tilt); what one tilt leaves is given back before the next.
    import faket.style.transfer as transfer

    seen, released = [], []
    original = transfer.reuse_freed_host_memory

    def spy(enabled=True):
        seen.append(enabled)
        return original(enabled)

    monkeypatch.setattr(transfer, "reuse_freed_host_memory", spy)
    monkeypatch.setattr(transfer, "release_freed_host_memory", lambda: released.append(1))
    images = [np.random.default_rng(i).random((2, 64, 64), dtype=np.float32) for i in range(3)]
    style_transfer(*images, weights=net, device="cpu", tile=0)
    assert seen == [True] and released == []
    style_transfer(*images, weights=net, device="cpu", tile=32)
    assert seen == [True, True] and len(released) == 2  # once per tilt


def test_adam_in_blocks_of_rows_equals_the_whole_update() -> None:
    generator = torch.Generator().manual_seed(5)
    start = torch.rand(1, 3, 37, 29, generator=generator)
    grads = [torch.randn(start.shape, generator=generator) for _ in range(3)]
    whole, blocks = Adam(start.clone(), lr=0.15), Adam(start.clone(), lr=0.15)
    for grad in grads:
        whole.step(grad)
        blocks.step(grad, rows=8)
    assert torch.equal(whole.param, blocks.param)
    assert torch.equal(whole.exp_avg_sq, blocks.exp_avg_sq)
    # One step without kept moments (the paper's single iteration) is the same step.
    first, single = Adam(start.clone(), lr=0.15), Adam(start.clone(), lr=0.15, steps=1)
    first.step(grads[0])
    single.step(grads[0], rows=5)
    assert torch.equal(first.param, single.param) and not hasattr(single, "exp_avg")
    with pytest.raises(RuntimeError, match="one step"):
        single.step(grads[1])


def test_segments_with_stored_switches_have_smaller_backward_halos(net) -> None:
    losses = (8, 1, 6, 11, 20, 29)
    segments = network_segments(net.features, 29, losses, switches=True)
    # Behind relu3_1 and relu4_1 the backward runs from switches; pool2 alone has none.
    assert [s.tail for s in segments] == [(), tuple(range(12, 19)), tuple(range(21, 28)), ()]
    # pool3 reaches 4 positions beyond relu3_1's; with both strides' blocks: 4 + 1 + 2 - 2.
    assert [s.halo_backward for s in segments] == [16, 6, 6, 2]
    for segment in segments[1:3]:
        head = segment.taps[segment.head]
        for size, tile in ((64, 7), (97, 16)):
            for span in spans(size, segment.stride, tile, segment.halo_backward):
                first, last = tail_range(span, segment)
                offset = span.window[0] // head.stride
                low = max(0, span.owned[0] - head.reach - head.stride + 1)
                high = min(size, span.owned[1] - 1 + head.reach + 1)
                assert first + offset <= low and high <= last + offset


def test_switches_carry_the_gradient_as_autograd_does() -> None:
    generator = torch.Generator().manual_seed(3)
    tail = torch.nn.Sequential(
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)
    ).requires_grad_(False)
    # Coarse values: many ties inside the pooling windows; odd sizes drop a row and column.
    x = (torch.randn(1, 16, 13, 11, generator=generator) * 2).round() / 2
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.no_grad():
        tail[0].weight.copy_((tail[0].weight * 4).round() / 4)
    hidden = tail[1](tail[0](x))
    out = tail[2](hidden)
    grad = torch.randn(out.shape, generator=generator)
    out.backward(grad)
    _, indices = torch.nn.functional.max_pool2d(hidden, 2, return_indices=True)
    rows, cols = indices // hidden.shape[-1], indices % hidden.shape[-1]
    assert torch.equal(pool_choice(hidden.detach()).long(), (rows % 2) * 2 + cols % 2)
    switches = Switches(tail, (0, 1, 2))
    with torch.no_grad():
        switches.store(1, hidden, (...,), hidden.shape[-2:])
        switches.store(2, hidden, (...,), out.shape[-2:])
    window = {0: (...,), 1: (...,), 2: (...,)}
    shapes = {0: x.shape[1:], 1: hidden.shape[1:], 2: hidden.shape[1:]}
    assert torch.equal(switches.backward(grad, window, shapes), x.grad)

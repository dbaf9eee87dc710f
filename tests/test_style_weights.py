"""VGG-19 network layout and weight loading (ImageNet by URL, files, random)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import one_torch_thread  # noqa: F401  (fixture)

from faket.errors import FaketError
from faket.style import weights as weights_module
from faket.style.vgg import LAYER_NAMES, VGG19Features, conv_indices, min_input_size
from faket.style.weights import (
    build_feature_net,
    fetch_imagenet,
    load_state_dict_file,
    random_state_dict,
)

# torchvision's vgg19().features: conv/relu pairs, pools at 4, 9, 18, 27, 36.
CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
POOLS = [4, 9, 18, 27, 36]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _torchvision_like_state(seed: int = 3) -> dict[str, torch.Tensor]:
    """A whole vgg19 state dict (all 16 convs plus classifier), as torchvision saves it."""
    return dict(_make_state(seed))  # a new dict per test: tests replace entries


@functools.cache
def _make_state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state, cin = {}, 3
    for index in CONVS:
        cout = {0: 64, 2: 64, 5: 128, 7: 128}.get(index, 256 if index < 19 else 512)
        state[f"features.{index}.weight"] = (
            torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        )
        state[f"features.{index}.bias"] = 0.01 * torch.randn(cout, generator=g)
        cin = cout
    state["classifier.0.weight"] = torch.zeros(4, 4)  # ignored by the loader
    return state


def _reference_activations(state, image: torch.Tensor, layers: list[int]) -> dict:
    """Independent VGG-19 forward: normalise, convs (replicate pad first), ReLU, max pool."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h, out = (image - mean) / std, {}
    for index in range(max(layers) + 1):
        if index in CONVS:
            pad = "replicate" if index == 0 else "constant"
            h = F.pad(h, (1, 1, 1, 1), mode=pad)
            w, b = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
            h = F.conv2d(h, w, b)
        elif index in POOLS:
            h = F.max_pool2d(h, 2)
        else:
            h = torch.relu(h)
        if index in layers:
            out[index] = h
    return out


def test_layer_names_and_indices_match_torchvision() -> None:
    assert LAYER_NAMES[0] == "conv1_1" and LAYER_NAMES[8] == "relu2_2"
    assert LAYER_NAMES[29] == "relu5_1" and LAYER_NAMES[36] == "pool5"
    assert [i for i, _, _ in conv_indices()] == CONVS
    assert [i for i, n in enumerate(LAYER_NAMES) if n.startswith("pool")] == POOLS
    assert min_input_size(29) == 16 and min_input_size(8) == 2 and min_input_size(3) == 1


def test_network_is_truncated_with_torchvision_names() -> None:
    net = VGG19Features(last_layer=29)
    keys = set(net.state_dict())
    assert keys == {f"features.{i}.{p}" for i in CONVS if i <= 29 for p in ("weight", "bias")}
    assert len(net.features) == 30
    assert net.features[0].padding_mode == "replicate"
    assert net.features[2].padding_mode == "zeros"


def test_torchvision_layout_file_loads_and_gives_identical_activations(tmp_path: Path) -> None:
    state = _torchvision_like_state()
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    net = build_feature_net(path, device="cpu")
    assert net.weights_id.startswith("file(vgg19.pth)")
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layers = [1, 8, 11, 29]
    got = net(image, layers)
    expected = _reference_activations(state, image, layers)
    for layer in layers:
        torch.testing.assert_close(got[layer], expected[layer], rtol=1e-4, atol=1e-5)
    # A grey single-channel image means the RGB image with three equal channels.
    grey = image[:, :1]
    torch.testing.assert_close(
        net(grey, [29])[29], net(grey.expand(-1, 3, -1, -1), [29])[29], rtol=0, atol=0
    )


def test_features_only_file_loads(tmp_path: Path) -> None:
    # A file saved from ``vgg19().features`` has keys without the "features." prefix.
    state = {k.removeprefix("features."): v for k, v in _torchvision_like_state().items()}
    state.pop("classifier.0.weight")
    torch.save(state, tmp_path / "f.pth")
    loaded = load_state_dict_file(tmp_path / "f.pth")
    assert torch.equal(loaded["features.28.weight"], state["28.weight"])


def test_wrong_shape_file_is_a_clear_error(tmp_path: Path) -> None:
    state = _torchvision_like_state()
    state["features.5.weight"] = torch.zeros(128, 32, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(FaketError, match=r"features\.5\.weight.*\(128, 32, 3, 3\).*\(128, 64"):
        build_feature_net(tmp_path / "bad.pth")


def test_missing_entry_and_garbage_file_are_errors(tmp_path: Path) -> None:
    state = _torchvision_like_state()
    del state["features.28.bias"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(FaketError, match="lacks features.28.bias"):
        load_state_dict_file(tmp_path / "short.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FaketError, match="not a readable PyTorch"):
        load_state_dict_file(tmp_path / "junk.pth")
    with pytest.raises(FaketError, match="neither 'imagenet', 'random' nor an existing file"):
        build_feature_net(tmp_path / "absent.pth")


def test_random_weights_are_seeded_kaiming() -> None:
    a, b, c = random_state_dict(0), random_state_dict(0), random_state_dict(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])
    w = a["features.28.weight"]  # fan_out = 512 * 9
    assert float(w.std()) == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.01)
    assert float(a["features.28.bias"].abs().max()) == 0.0
    assert build_feature_net("random", seed=0).weights_id.startswith("random(seed=0)")


def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # An empty hub cache and a URL that cannot be fetched: no network in tests.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(weights_module, "IMAGENET_URL", (tmp_path / "nowhere.pth").as_uri())


def test_missing_imagenet_weights_error_names_both_fixes(monkeypatch, tmp_path: Path) -> None:
    _offline(monkeypatch, tmp_path)
    with pytest.raises(FaketError) as info:
        build_feature_net("imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "--weights PATH" in message and "--weights random" in message
    assert not any((tmp_path / "torch").rglob("*.pth"))  # nothing half-written in the cache
    with pytest.raises(FaketError, match="not cached"):
        fetch_imagenet(download=False)


def test_hash_check_rejects_a_corrupted_download(tmp_path: Path) -> None:
    source = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(_torchvision_like_state(), source)
    cache = tmp_path / "cache"
    with pytest.raises(FaketError, match="SHA-256"):
        fetch_imagenet(url=source.as_uri(), cache_dir=cache)  # file's hash is not dcbb9e9d
    assert not cache.exists() or not any(cache.iterdir())
    prefix = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    path = fetch_imagenet(url=source.as_uri(), hash_prefix=prefix, cache_dir=cache)
    assert path == cache / source.name and path.read_bytes() == source.read_bytes()
    # Once cached, it is used without any download.
    assert fetch_imagenet(url=source.as_uri(), cache_dir=cache, download=False) == path


def test_too_small_images_are_an_error() -> None:
    net = build_feature_net("random")
    with pytest.raises(FaketError, match="too small.*16x16"):
        net(torch.zeros(1, 1, 15, 40), [29])
    assert net(torch.zeros(1, 1, 16, 16), [29])[29].shape == (1, 512, 1, 1)


def test_pooling_options() -> None:
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    state = random_state_dict(0)
    outs = {}
    for pooling in ("max", "average", "l2"):
        net = VGG19Features(last_layer=11, pooling=pooling)
        net.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[1]) <= 11})
        outs[pooling] = net(image, [5])[5]
    # Pooling acts from layer 4 on: its output at conv2_1 differs, but stays of similar scale.
    assert not torch.allclose(outs["max"], outs["average"])
    for name in ("average", "l2"):
        ratio = float(outs[name].abs().mean() / outs["max"].abs().mean())
        assert 0.5 < ratio < 2.0, (name, ratio)
    with pytest.raises(FaketError, match="unknown pooling"):
        VGG19Features(pooling="median")


def test_channels_last_changes_only_round_off() -> None:
    net = build_feature_net("random")
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    a = net(image, [29])[29].clone()
    b = net.set_channels_last(True)(image, [29])[29]
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)

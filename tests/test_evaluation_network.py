"""The DeepFinder network: architecture, checkpoints, Dice loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faket.errors import FaketError
from faket.evaluation import DeepFinder, TrainedModel, load_model, save_model
from faket.evaluation.optimisation import dice_loss
from faket.evaluation.train_config import TrainConfig, train_config
from faket.evaluation.training import _new_network


def _conv(k: int, cin: int, cout: int) -> int:
    return k**3 * cin * cout + cout


def test_parameter_count_is_that_of_the_deepfinder_architecture():
    a, b, c, n = 32, 48, 64, 16
    expected = (
        _conv(3, 1, a) + _conv(3, a, a)  # full resolution
        + _conv(3, a, b) + _conv(3, b, b)  # half
        + _conv(3, b, c) + 3 * _conv(3, c, c)  # quarter
        + _conv(2, c, c)  # up-sampling convolution
        + _conv(3, c + b, b) + _conv(3, b, b)  # after concatenation with half
        + _conv(2, b, b)
        + _conv(3, b + a, a) + _conv(3, a, a)  # after concatenation with full
        + _conv(1, a, n)
    )  # fmt: skip
    network = DeepFinder(n)
    assert sum(p.numel() for p in network.parameters()) == expected


def test_output_shape_and_input_checks():
    network = DeepFinder(3, (2, 3, 4))
    out = network(torch.zeros(2, 1, 8, 12, 16))
    assert out.shape == (2, 3, 8, 12, 16)
    with pytest.raises(FaketError, match="divisible by 4"):
        network(torch.zeros(1, 1, 8, 10, 8))
    with pytest.raises(FaketError, match="at least 2 classes"):
        DeepFinder(1)


def test_network_is_local_and_translation_equivariant_on_the_pooling_grid():
    # Shifting the input by 4 voxels (one quarter-resolution cell) shifts the output,
    # away from the zero-padded borders: a check on pooling, up-sampling and concatenation.
    torch.manual_seed(0)
    network = DeepFinder(2, (2, 2, 2)).eval()
    x = torch.randn(1, 1, 4, 4, 128)
    with torch.no_grad():
        y = network(x)
        shifted = network(torch.roll(x, 4, dims=-1))
    # The receptive field reaches 29 voxels back and 31 forward: compare the middle,
    # which sees neither the wrapped-around voxels nor the zero-padded ends.
    torch.testing.assert_close(shifted[..., 60:68], y[..., 56:64])
    assert not torch.allclose(shifted[..., 60:68], y[..., 60:68])


def test_same_seed_same_weights_without_touching_the_global_rng():
    state = torch.random.get_rng_state()
    first = _new_network(3, TrainConfig(widths=(2, 2, 2), seed=5))
    second = _new_network(3, TrainConfig(widths=(2, 2, 2), seed=5))
    other = _new_network(3, TrainConfig(widths=(2, 2, 2), seed=6))
    assert torch.equal(torch.random.get_rng_state(), state)
    pairs = zip(first.parameters(), second.parameters(), other.parameters(), strict=True)
    checks = [(torch.equal(p, q), torch.equal(p, r)) for p, q, r in pairs]
    assert all(same for same, _ in checks)
    assert not all(equal for _, equal in checks)


def test_checkpoint_round_trip(tmp_path):
    network = DeepFinder(3, (2, 3, 4))
    model = TrainedModel(network, ["a", "b"], {"a": 2.0, "b": 3.5}, 16, 10.0, {"epoch": 4})
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.class_names == ["a", "b"] and loaded.radii == {"a": 2.0, "b": 3.5}
    assert loaded.patch_size == 16 and loaded.voxel_size == 10.0 and loaded.info == {"epoch": 4}
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(x), network.eval()(x))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FaketError, match="not a readable checkpoint"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(FaketError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")


def test_batch_norm_option_normalises_in_training_and_round_trips_its_statistics(tmp_path):
    torch.manual_seed(1)
    network = DeepFinder(3, (2, 3, 4), batch_norm=True)
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(norms) == 12  # one per 3x3x3 convolution
    plain = DeepFinder(3, (2, 3, 4))
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in plain.modules())
    # In training mode each convolution's output is standardised over the batch, so
    # the first norm layer's output has mean ~0 and std ~1 per channel.
    seen = {}

    def keep_output(module, inputs, output) -> None:  # returns None: output unchanged
        seen["out"] = output.detach().clone()  # before the in-place ReLU

    norms[0].register_forward_hook(keep_output)
    x = 5.0 + 3.0 * torch.randn(4, 1, 8, 8, 8)
    network.train()(x)
    out = seen["out"]
    torch.testing.assert_close(out.mean(dim=(0, 2, 3, 4)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2, 3, 4)), torch.ones(2), atol=1e-2, rtol=0)
    # Evaluation uses the running statistics: a patch's output does not depend on the
    # other patches of its batch, and a checkpoint restores those statistics.
    network.eval()
    with torch.no_grad():
        alone = network(x[:1])
        together = network(x)[:1]
    torch.testing.assert_close(alone, together)
    model = TrainedModel(network, ["a", "b"], {"a": 2.0, "b": 3.5}, 16, 10.0)
    loaded = load_model(save_model(model, tmp_path / "bn.pt"))
    assert loaded.network.batch_norm
    torch.testing.assert_close(loaded.network(x[:1]), alone)


def test_bf16_precision_runs_the_convolutions_in_bfloat16_and_round_trips(tmp_path):
    torch.manual_seed(2)
    exact = DeepFinder(3, (4, 4, 4)).eval()
    reduced = DeepFinder(3, (4, 4, 4), precision="bf16").eval()
    reduced.load_state_dict(exact.state_dict())
    convolution_types = []
    reduced.high[0].register_forward_hook(lambda m, i, o: convolution_types.append(o.dtype))
    x = torch.randn(2, 1, 8, 8, 8)
    with torch.no_grad():
        want, got = exact(x), reduced(x)
    assert convolution_types == [torch.bfloat16] and got.dtype == torch.float32
    # bfloat16 keeps 8 significant bits: close to float32, but not equal to it.
    error = float((got - want).abs().max() / want.abs().max())
    assert 1e-5 < error < 5e-2
    model = TrainedModel(reduced, ["a", "b"], {"a": 2.0, "b": 3.5}, 16, 10.0)
    loaded = load_model(save_model(model, tmp_path / "bf16.pt"))
    assert loaded.network.precision == "bf16"
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(x), got)
    with pytest.raises(FaketError, match="unknown network precision"):
        DeepFinder(3, (4, 4, 4), precision="fp16")


@pytest.mark.parametrize("native", [True, False])
def test_mixed_network_precision_is_bf16_only_where_native(monkeypatch, native):
    import faket.precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_prefers_bf16", lambda: native)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(precision_module, "cuda_has_native_bf16", lambda device: False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    resolve = precision_module.network_autocast_dtype
    assert resolve("mixed", cpu) == (torch.bfloat16 if native else None)
    assert resolve("mixed", cuda) is None  # pre-Ampere: float32, never fp16
    assert resolve("fp32", cpu) is None and resolve("bf16", cpu) == torch.bfloat16
    network = _new_network(3, TrainConfig(widths=(2, 2, 2), precision="mixed"))
    assert network.precision == "mixed"
    with pytest.raises(FaketError, match="training setting precision"):
        train_config("cpu", precision="fp16")  # no loss scaling for the judges


def test_dice_loss_values():
    target = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    target[0, :2] = 1  # 32 voxels of class 1, 32 of class 0
    perfect = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float() * 40.0
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-5)
    # Uniform scores p = 1/2: per class Dice = 2 * 16 / (32 + 32) = 1/2.
    assert float(dice_loss(torch.zeros(1, 2, 4, 4, 4), target)) == pytest.approx(0.5, abs=1e-5)
    # A class absent from the target but predicted everywhere costs a full 1 / n_classes.
    three = torch.zeros(1, 3, 4, 4, 4)
    three[:, 2] = 40.0
    assert float(dice_loss(three, target)) == pytest.approx(1.0, abs=1e-5)


def test_dice_gradient_raises_the_true_class():
    target = torch.randint(0, 3, (2, 4, 4, 4), generator=torch.Generator().manual_seed(0))
    logits = torch.zeros(2, 3, 4, 4, 4, requires_grad=True)
    dice_loss(logits, target).backward()
    grad = logits.grad.numpy()
    truth = np.eye(3)[target.numpy()].transpose(0, 4, 1, 2, 3).astype(bool)
    assert np.all(grad[truth] < 0) and np.all(grad[~truth] > 0)

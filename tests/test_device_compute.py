"""Every torch stage on the device of ``--device`` (default cpu; see conftest.py).

``python -m pytest -m device --device cuda`` runs these on a GPU (``benchmarks/gpu_check.py``
does). Each test compares the stage on the device with an independent answer: analytic
line integrals, a float64 or CPU computation, an explicit gradient, or a rerun (the same
seed must give the same bits). On the CPU they cost a few seconds in all.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _evaluation_data import synthetic_tomogram
from _helpers import one_torch_thread  # noqa: F401  (fixture)
from _phantoms import ellipse_slice

from faket.evaluation import segment, train
from faket.evaluation.training import TrainConfig
from faket.microscope import simulate_tilt_series
from faket.style import TransferSettings, build_feature_net, prepare_style, style_transfer
from faket.style.losses import gram_matrix, total_loss
from faket.tomography import project, reconstruct

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("one_torch_thread")]

STYLE_LAYERS = [1, 6, 11, 20, 29]
FULL = np.arange(-90.0, 90.0, 1.5)


def test_projector_gives_analytic_chords_and_chunks_do_not_matter(device) -> None:
    semi_x, semi_z = 26.0, 14.0
    section = ellipse_slice(48, 72, semi_x, semi_z)
    angles = np.array([0.0, 30.0, -55.0])
    tilts = project(section[:, None, :], angles, device=device)[:, 0, 72 // 2]
    theta = np.deg2rad(angles)
    chords = 2.0 / np.sqrt(np.sin(theta) ** 2 / semi_x**2 + np.cos(theta) ** 2 / semi_z**2)
    assert np.all(np.abs(tilts - chords) / chords < 0.01)
    volume = np.random.default_rng(0).random((9, 13, 11)).astype(np.float32)
    row_bytes = 4 * (9 * 11 + 2 * 11)
    chunked = project(volume, [0.0, 90.0], device=device, memory_budget_bytes=3 * row_bytes)
    np.testing.assert_allclose(chunked[0], volume.astype(np.float64).sum(axis=0), rtol=1e-5)


def test_back_projection_recovers_a_disc_and_equals_the_cpu(device) -> None:
    section = ellipse_slice(64, 64, 22.0, 22.0)
    tilt_series = project(section[:, None, :], FULL, device=device)
    slab = reconstruct(tilt_series, FULL, thickness=64, device=device)[:, 0, :]
    assert abs(slab[24:40, 24:40].mean() - 1.0) < 0.01  # uniform disc of value 1
    stack = np.random.default_rng(1).random((7, 16, 24)).astype(np.float32)
    angles = np.linspace(-60, 60, 7)
    options = {"thickness": 20, "filter_name": "shrec", "post_binning": 2}
    ours = reconstruct(stack, angles, device=device, **options)
    cpu = reconstruct(stack, angles, device="cpu", **options)
    np.testing.assert_allclose(ours, cpu, atol=1e-5 * np.abs(cpu).max())


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


def test_style_transfer_is_one_signed_adam_step_on_the_device(device, stacks) -> None:
    content, style, init = stacks
    net = build_feature_net("random", seed=0, device=device)
    out = style_transfer(content, style, init, weights=net, device=device, match_stats="none")
    again = style_transfer(content, style, init, weights=net, device=device, match_stats="none")
    assert np.array_equal(out, again)  # deterministic kernels: the same bits
    # The independent gradient of the paper's loss, on the CPU.
    reference = build_feature_net("random", seed=0, device="cpu")
    x0 = torch.from_numpy(_unit(init))[:, None].repeat(1, 3, 1, 1).requires_grad_(True)
    with torch.no_grad():
        target = reference(torch.from_numpy(_unit(content))[:, None], [8])[8]
        feats = reference(torch.from_numpy(_unit(style))[:, None], STYLE_LAYERS)
    grams = {layer: gram_matrix(feats[layer]) for layer in STYLE_LAYERS}
    cw, sw = TransferSettings().layer_weights()
    total_loss(reference(x0, [8, *STYLE_LAYERS]), {8: target}, grams, cw, sw).sum().backward()
    grad, x0 = x0.grad.numpy(), x0.detach().numpy()
    x1 = np.clip(x0 - 0.15 * grad / (np.abs(grad) + 1e-8), 0, 1)
    expected = ((0.99 * x0 + x1) / 1.99).mean(axis=1)
    # Only pixels with a ~0 gradient in some channel may step the other way.
    assert (np.abs(out - expected) > 1e-4).mean() < 0.005


def _moves(out: np.ndarray, init: np.ndarray) -> np.ndarray:
    return np.sign(out - _unit(init))


@pytest.mark.parametrize("precision", ["bf16", "fp16", "tf32"])
def test_reduced_precisions_keep_the_update_directions(device, stacks, precision) -> None:
    if precision == "fp16" and device.type == "cpu":
        pytest.skip("fp16 needs a GPU")
    if precision == "tf32" and device.type != "cuda":
        pytest.skip("tf32 needs an NVIDIA GPU")
    content, style, init = stacks
    net = build_feature_net("random", seed=0, device=device)
    kwargs = {"weights": net, "device": device, "match_stats": "none"}
    fp32 = style_transfer(content, style, init, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on some CPUs
        reduced = style_transfer(content, style, init, precision=precision, **kwargs)
    agreement = np.mean(_moves(reduced, init) == _moves(fp32, init))
    assert 0.99 <= agreement  # a broken autocast scope would scramble far more pixels
    prepared = prepare_style(style, weights=net, device=device, precision=precision)
    reused = style_transfer(content, prepared, init, precision=precision, **kwargs)
    assert np.array_equal(reused, reduced)


class _OneConv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv3d(1, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_patch_segmentation_equals_whole_volume_inference(device) -> None:
    volume = np.random.default_rng(0).normal(size=(20, 37, 30)).astype(np.float32)
    network = _OneConv().to(device)
    with torch.no_grad():  # on the device: the same (TF32 on CUDA) products, whole
        whole = network(torch.from_numpy(volume)[None, None].to(device))
        whole = torch.softmax(whole, dim=1)[0].cpu().numpy()
    for budget in (None, 4 * 256 * 12**3 * 3):  # default batches, and batches of 3 patches
        labels, scores = segment(
            volume, network, patch_size=12, margin=2, device=device, normalise=False,
            return_probabilities=True, memory_budget_bytes=budget,
        )  # fmt: skip
        np.testing.assert_allclose(scores, whole, atol=1e-5)
        assert np.mean(labels == whole.argmax(axis=0)) > 0.999


def test_training_on_the_device_is_reproducible_from_its_seed(device) -> None:
    settings = {
        "patch_size": 16, "widths": (4, 4, 4), "batch_size": 2, "ce_weight": 1.0,
        "epochs": 2, "max_batches": 2, "exclude": [], "device": str(device), "seed": 4,
    }  # fmt: skip
    tomogram = synthetic_tomogram(0)
    runs = [train([tomogram], None, TrainConfig(**settings)) for _ in range(2)]
    states = [{k: v.cpu() for k, v in run.model.network.state_dict().items()} for run in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    losses = [run.history["train_loss"].tolist() for run in runs]
    assert losses[0] == losses[1] and np.isfinite(losses[0]).all()


def test_microscope_on_the_device_follows_beer_lambert_and_equals_the_cpu(device) -> None:
    blank = {
        "detector": {"noise": False, "model": "ideal"},
        "dose": {"damage": "none"},
        "alignment": {"shift_std_angstrom": 0.0},
        "ice": {"thickness_nm": 200.0, "mean_free_path_nm": 300.0, "fluctuation_std_volts": 0.0},
    }
    angles = np.array([0.0, 40.0, 55.0])
    images, _ = simulate_tilt_series(np.zeros((20, 32, 32), np.float32), 10.0, angles, blank)
    ours, _ = simulate_tilt_series(
        np.zeros((20, 32, 32), np.float32), 10.0, angles, blank, device=device
    )
    mean = ours.mean(axis=(1, 2))
    expected = np.exp(-200.0 / 300.0 * (1 / np.cos(np.deg2rad(angles)) - 1))
    np.testing.assert_allclose(mean / mean[0], expected, rtol=1e-4)
    np.testing.assert_allclose(ours, images, rtol=1e-5)
    rng = np.random.default_rng(2)
    volume = (8.0 * (rng.random((16, 24, 24)) > 0.97)).astype(np.float32)
    settings = {"multislice": 2, "detector": {"noise": True}}
    cpu, _ = simulate_tilt_series(volume, 10.0, angles, settings, seed=3, device="cpu")
    ours, _ = simulate_tilt_series(volume, 10.0, angles, settings, seed=3, device=device)
    # The Poisson counts are drawn on the CPU from the same seed: a rate that differs in
    # the last bits changes a count rarely, and then by one.
    assert np.mean(np.abs(ours - cpu) > 1e-3 * cpu.mean()) < 0.01


def test_grand_model_on_the_device_is_reproducible_and_equals_the_cpu_one(device) -> None:
    from faket.phantom import make_grand_model

    config = {
        "shape": (24, 48, 48), "classes": ["globule_4nm", "rod_15nm"], "per_class": 2,
        "vesicles": 0, "fiducials": 1, "seed": 3, "cache": False,
    }  # fmt: skip
    first, again = (make_grand_model(config, device=device) for _ in range(2))
    assert np.array_equal(first.potential, again.potential)
    cpu = make_grand_model(config, device="cpu")
    assert first.particles.equals(cpu.particles)
    np.testing.assert_allclose(first.potential, cpu.potential, atol=1e-4 * cpu.potential.max())

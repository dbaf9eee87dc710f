"""FAKET in the network-free ``transfer`` style inside ``faket run``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from faket.io import read_mrc
from faket.pipeline import parse_dataset_config, run_dataset
from faket.pipeline.preflight import modality_weights, resolve_nst_weights

TINY = {
    "name": "tiny-transfer",
    "n_tomograms": 3,
    "device": "cpu",
    "tilt": {"start": -60.0, "stop": 60.0, "step": 10.0},
    "phantom": {
        "shape": (24, 64, 64),
        "classes": ["globule_4nm", "dimer_9nm", "ring5_11nm"],
        "per_class": 3,
        "vesicles": 0,
        "fiducials": 1,
    },
    "reconstruction": {"filter": "ramp"},
    "modalities": ["noiseless", "benchmark", "noisy", "faket"],
}


@pytest.fixture(scope="module")
def transfer_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transfer")
    patch = pytest.MonkeyPatch()
    # No ImageNet weights cached: auto must fall back to the transfer style.
    patch.setattr("faket.style.weights.imagenet_cache_path", lambda *a, **k: folder / "absent.pth")
    try:
        summary = run_dataset(parse_dataset_config(TINY), folder / "data", progress=False)
    finally:
        patch.undo()
    return folder / "data", summary


def test_auto_without_imagenet_weights_is_the_transfer_style(monkeypatch, tmp_path):
    monkeypatch.setattr(
        "faket.style.weights.imagenet_cache_path", lambda *a, **k: tmp_path / "absent.pth"
    )
    assert resolve_nst_weights("auto") == "transfer"
    (tmp_path / "absent.pth").write_bytes(b"")
    assert resolve_nst_weights("auto") == "imagenet"
    assert resolve_nst_weights("random") == "random"
    # The ablation keeps random VGG weights; the NST-only variant cannot use 'transfer'.
    assert modality_weights("faket_random", "imagenet") == "random"
    assert modality_weights("faket_spectral", "transfer") == "random"
    assert modality_weights("faket", "transfer") == "transfer"


def test_the_transfer_style_is_recorded_and_made_from_the_noiseless_projections(
    transfer_dataset,
):
    folder, summary = transfer_dataset
    assert yaml.safe_load((folder / "dataset_config.yaml").read_text())["nst"]["weights"] == (
        "transfer"
    )
    assert (folder / "transfer_model.npz").is_file()
    assert "transfer_model" in json.loads((folder / "manifest.json").read_text())["steps"]
    steps = json.loads((folder / "tomo_000" / "manifest.json").read_text())["steps"]
    assert steps["projections_faket"]["info"]["weights"] == "transfer"
    # No NST inputs were needed.
    assert "projections_content" not in steps
    assert not (folder / "tomo_000" / "projections_content.mrc").exists()
    assert any(r.details.get("weights") == "transfer" for r in summary.records)


def test_transfer_projections_take_the_style_tomograms_moments_and_the_benchmarks_look(
    transfer_dataset,
):
    folder, _ = transfer_dataset
    load = lambda i, m: read_mrc(folder / f"tomo_{i:03d}" / f"projections_{m}.mrc").data  # noqa: E731
    faket, noisy, benchmark = load(0, "faket"), load(0, "noisy"), load(0, "benchmark")
    style = load(1, "benchmark")  # the style of training tomogram 0 (offset 1)
    np.testing.assert_allclose(faket.mean(axis=(1, 2)), style.mean(axis=(1, 2)), rtol=1e-3)
    np.testing.assert_allclose(faket.std(axis=(1, 2)), style.std(axis=(1, 2)), rtol=1e-3)

    def correlation(a, b):
        return np.mean([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b, strict=True)])

    # The CTF's sign flips carried over: FAKET resembles its own tomogram's BENCHMARK
    # better than NOISY (the scaled noiseless projection plus white noise) does.
    assert correlation(faket, benchmark) > correlation(noisy, benchmark) + 0.02
    assert (folder / "tomo_000" / "reconstruction_faket.mrc").is_file()

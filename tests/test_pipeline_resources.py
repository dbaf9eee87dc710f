"""Step costs in the manifest (peak memory, device) and the experiment's data-cost column."""

from __future__ import annotations

import numpy as np
import pytest
from _evaluation_data import write_dataset

from faket.evaluation.datacost import data_cost, modality_steps, vgg_weights
from faket.pipeline.manifest import Manifest, run_step
from faket.pipeline.resources import measure_resources


def test_step_peak_memory_is_the_steps_own_not_the_processes():
    big = 300 * 1024**2
    with measure_resources("cpu") as first:
        block = np.ones(big // 8)  # touched: resident
        del block
    with measure_resources("cpu") as second:
        np.ones(1024)
    assert first["device"] == "cpu" and first["threads"] >= 1
    assert first["peak_rss_bytes"] >= big
    if first["peak_rss_scope"] == "step":  # Linux: the peak is reset per step
        assert second["peak_rss_bytes"] < first["peak_rss_bytes"] - big // 2
    assert "gpu_peak_bytes" not in first


def test_run_step_records_cost_device_and_info(tmp_path):
    manifest = Manifest(tmp_path)

    def compute():
        (tmp_path / "out.txt").write_text("x")

    run_step(manifest, "step", "abc", ["out.txt"], compute, device="cpu", info={"weights": "w"})
    entry = Manifest(tmp_path).steps["step"]
    assert entry["device"] == "cpu" and entry["info"] == {"weights": "w"}
    assert entry["peak_rss_bytes"] > 0 and entry["seconds"] >= 0
    assert Manifest(tmp_path).is_done("step", "abc", ["out.txt"])


def _record(folder, step, seconds, rss, **extra):
    Manifest(folder).record(step, "h", [], seconds, peak_rss_bytes=rss, **extra)


def test_data_cost_sums_a_modalitys_own_steps_over_training_tomograms(tmp_path):
    root = write_dataset(tmp_path / "data")  # tomograms 0, 1 train; 2 tests
    for index in (0, 1):
        folder = root / f"tomo_{index:03d}"
        _record(folder, "phantom", 100.0, 9 << 30, device="cpu")  # shared: not counted
        _record(folder, "projections_noisy", 1.0, 1 << 30, device="cpu", threads=2)
        _record(folder, "projections_content", 2.0, 1 << 30, device="cpu", threads=2)
        _record(
            folder,
            "projections_faket",
            10.0,
            2 << 30,
            device="cuda:0",
            device_name="H200",
            gpu_peak_bytes=(3 + index) << 30,
            info={"weights": "random"},
        )
        _record(folder, "reconstruction_faket", 0.5, 1 << 30, device="cpu", threads=2)
    _record(root / "tomo_002", "projections_faket", 1000.0, 1 << 40)  # test tomogram: no
    _record(root, "noise_model", 0.25, 1 << 29, device="cpu")
    cost = data_cost(root, "faket")
    assert cost.wall_seconds == pytest.approx(2 * 13.5 + 0.25)
    assert cost.peak_rss_bytes == 2 << 30 and cost.gpu_peak_bytes == 4 << 30
    assert cost.devices == ["cpu x2", "cuda:0 (H200)", "cpu"]
    assert cost.n_steps == 9 and cost.missing == []
    assert "GPU" in cost.describe() and cost.describe().startswith("27 s")
    baseline = data_cost(root, "baseline")  # nothing recorded for it
    assert baseline.n_steps == 1 and len(baseline.missing) == 4
    assert vgg_weights(root) == "random"
    assert modality_steps("spectral") == (("projections_spectral", "reconstruction_spectral"), ())

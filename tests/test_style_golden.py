"""Exactness against the FakET paper's own code: ``../shared/golden/nst``.

The golden outputs were computed by the paper's style-transfer code on this project's
reference machine (2 CPU threads, float32) with deterministic stand-in VGG weights that
the folder's ``make_weights.py`` regenerates. With the same thread count our defaults
reproduce them to ~1e-5 absolute (output std 4.3). A different thread count or CPU
changes float round-off inside the convolutions; one Adam step moves every pixel by a
full +-0.0754 whatever its gradient's size, so round-off flips the few pixels whose
gradient is ~0, and further iterations spread such flips. Hence: a strict bound for
one iteration (the paper's setting), and for three a strict bound on the bulk of the
pixels with a looser one on the outliers. A wrong optimiser, EMA or loss moves
most pixels by a sizeable fraction of a step and fails all of them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch

from faket.style import style_transfer

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "nst"

pytestmark = pytest.mark.skipif(not GOLDEN.is_dir(), reason="../shared/golden/nst not available")


def _load(name: str) -> np.ndarray:
    with mrcfile.open(GOLDEN / name, permissive=True) as handle:
        return np.array(handle.data, dtype=np.float32)


@pytest.fixture(scope="module", autouse=True)
def _reference_threads():
    # The golden outputs were made with 2 threads; the round-off depends on the count.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    # Regenerate the README's stand-in weights with its own script.
    spec = importlib.util.spec_from_file_location("make_weights", GOLDEN / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path_factory.mktemp("golden") / "vgg19_seed0.pth"
    torch.save(module.make_state_dict(0), path)
    return path


@pytest.mark.parametrize(
    ("iterations", "channels_last"), [(1, None), (1, False), (3, None), (3, False)]
)
def test_reproduces_the_paper_code_outputs(
    weights_file: Path, iterations: int, channels_last: bool | None
) -> None:
    # None: our default layout (channels-last, faster); False: the paper's NCHW layout.
    content, style, init = (_load(f"{name}.mrc") for name in ("content", "style", "init"))
    expected = _load(f"out_iter{iterations}.mrc")
    out = style_transfer(
        content,
        style,
        init,
        weights=weights_file,
        iterations=iterations,
        device="cpu",
        channels_last=channels_last,
    )
    error = np.abs(out - expected) / expected.std()
    # Measured, 2 threads, NCHW: Intel 1.8e-6 / 2.2e-6 max (1 / 3 iterations); AMD EPYC
    # 5.1e-4 max for 1 iteration, and for 3: median 3.1e-5, 99th percentile 1.2e-2, max
    # 7.7e-2 (Adam turns round-off in near-zero gradients into whole steps that then
    # spread). Channels-last on the AMD EPYC: 5.5e-4 max (1), 2.5e-5 / 1.2e-2 / 7.7e-2 (3).
    assert np.median(error) < 1e-4
    if iterations == 1:
        assert error.max() < 1e-3  # the README's criterion
    else:
        assert np.mean(error > 1e-2) < 0.03 and error.max() < 0.15

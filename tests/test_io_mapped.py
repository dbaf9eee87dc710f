"""Memory-mapped stacks in bounded resident memory: released pages, the stack writer."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from faket.io import MrcStackWriter, read_mrc, release_pages, write_mrc
from faket.style.settings import UnitScaled, tilt_mean_std
from faket.tomography import reconstruct, reconstruction_shape


def _resident_file_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


@pytest.mark.skipif(_resident_file_kib() is None, reason="needs Linux /proc/self/status")
def test_released_pages_leave_the_resident_set(tmp_path: Path) -> None:
    stack = np.ones((6, 1024, 1024), dtype=np.float32)  # 24 MiB
    path = write_mrc(tmp_path / "big.mrc", stack, 1.0)
    data = read_mrc(path, mmap=True).data
    before = _resident_file_kib()
    assert float(data.sum(dtype=np.float64)) == stack.size  # pages every tilt in
    touched = _resident_file_kib()
    release_pages(data[2])  # any view releases its whole map
    after = _resident_file_kib()
    assert touched - before > 20 * 1024 and touched - after > 20 * 1024
    assert float(data[5].sum()) == 1024 * 1024  # still readable afterwards
    release_pages(np.ones(3))  # plain arrays: nothing happens


def test_stack_writer_keeps_work_until_commit_and_resumes(tmp_path: Path) -> None:
    output = tmp_path / "out.mrc"
    rng = np.random.default_rng(0)
    tilts = rng.standard_normal((3, 20, 30)).astype(np.float32)
    with MrcStackWriter(output, tilts.shape, 4.5) as writer:
        writer.write(0, tilts[0])
        writer.write(1, tilts[1])
    # Interrupted: no output, the work file holds what was written.
    assert not output.exists() and writer.work_path.is_file()
    resumed = MrcStackWriter(output, tilts.shape, 4.5, resume=True)
    assert resumed.resumed and np.array_equal(resumed.data[:2], tilts[:2])
    resumed.write(2, tilts[2])
    resumed.commit()
    assert not writer.work_path.exists()
    result = read_mrc(output)
    assert np.array_equal(result.data, tilts) and result.voxel_size == pytest.approx(4.5)
    with mrcfile.open(output) as mrc:
        assert mrc.header.dmean == pytest.approx(tilts.mean(dtype=np.float64), rel=1e-6)
        assert mrc.header.rms == pytest.approx(tilts.std(dtype=np.float64), rel=1e-6)
        assert (mrc.header.dmin, mrc.header.dmax) == (tilts.min(), tilts.max())
    # A work file of another shape is not resumed.
    other = MrcStackWriter(output, (2, 20, 30), 1.0, resume=True)
    assert not other.resumed
    other.discard()
    assert not other.work_path.exists()


def test_memory_mapped_statistics_equal_whole_array_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stack = (100 * rng.standard_normal((4, 33, 17))).astype(np.int16)
    mapped = read_mrc(write_mrc(tmp_path / "s.mrc", stack, 1.0), mmap=True).data
    for how, axes in (("stack", None), ("tilt", (1, 2))):
        unit = UnitScaled(mapped, how)
        low = stack.min(axis=axes, keepdims=True).astype(np.float32)
        span = stack.max(axis=axes, keepdims=True).astype(np.float32) - low
        assert np.array_equal(unit[:], (stack.astype(np.float32) - low) / span)
    mean, std = tilt_mean_std(mapped)
    assert np.array_equal(mean, stack.astype(np.float64).mean(axis=(1, 2)))
    assert np.array_equal(std, stack.astype(np.float64).std(axis=(1, 2)))


@pytest.mark.parametrize("filter_name", ["ramp", "shrec"])
def test_reconstruction_into_a_memory_map_with_blocks_equals_the_plain_one(
    tmp_path: Path, filter_name: str
) -> None:
    rng = np.random.default_rng(2)
    tilt_series = rng.standard_normal((7, 18, 22)).astype(np.float32)
    angles = np.linspace(-60.0, 60.0, 7)
    options = {"thickness": 15, "z_valid": (1, 14), "post_binning": 2, "filter_name": filter_name}
    plain = reconstruct(tilt_series, angles, device="cpu", **options)
    shape = reconstruction_shape(tilt_series.shape, thickness=15, z_valid=(1, 14), post_binning=2)
    assert shape == plain.shape
    mapped_input = read_mrc(write_mrc(tmp_path / "ts.mrc", tilt_series, 2.0), mmap=True).data
    with MrcStackWriter(tmp_path / "v.mrc", shape, 4.0) as writer:
        # A tiny budget: the filtered series goes to a temporary file, the operator
        # into blocks of 2 Z slices.
        reconstruct(mapped_input, angles, device="cpu", memory_budget_bytes=4000,
                    out=writer.data, scratch_dir=tmp_path, **options)  # fmt: skip
        writer.commit()
    # Other chunks of Y rows change only the sparse products' float round-off.
    np.testing.assert_allclose(read_mrc(tmp_path / "v.mrc").data, plain, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts.mrc", "v.mrc"]

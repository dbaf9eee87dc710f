"""faket.device: device strings, memory budgets, GPUs per worker, deterministic and TF32
switches, autocast scopes (on the CPU with fake GPU figures; ``cuda`` tests on a GPU), and
host-memory reuse during heavy CPU work."""

from __future__ import annotations

import ctypes
import os

import pytest
import torch

from faket import device as device_module
from faket.device import (
    DEFAULT_CPU_BUDGET,
    chunk_size,
    cuda_free_bytes,
    deterministic_algorithms,
    mapped_zeros,
    memory_budget,
    release_freed_host_memory,
    reuse_freed_host_memory,
    select_device,
    visible_cuda_devices,
    worker_environments,
    worker_gpu_index,
)
from faket.errors import FaketError

BIG = 64 * 1024**2  # bytes: above glibc's largest automatic mmap threshold (32 MiB)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
        )
    ]


def _mmapped_bytes() -> int:
    """Bytes glibc currently holds in mmap-ed blocks (``mallinfo2().hblkhd``)."""
    libc = device_module._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    libc.mallinfo2.restype = _Mallinfo2
    return int(libc.mallinfo2().hblkhd)


def _mmap_growth_of_a_big_tensor() -> int:
    before = _mmapped_bytes()
    tensor = torch.ones(BIG // 4)  # touch it, as real work does
    grown = _mmapped_bytes() - before
    del tensor
    return grown


def _check_heap_inside_mmap_outside() -> None:
    assert _mmap_growth_of_a_big_tensor() >= BIG  # glibc's default
    with reuse_freed_host_memory():
        assert _mmap_growth_of_a_big_tensor() == 0
    assert _mmap_growth_of_a_big_tensor() >= BIG  # defaults restored on leaving


def _check_nested_blocks() -> None:
    with reuse_freed_host_memory():
        with reuse_freed_host_memory():
            pass
        assert _mmap_growth_of_a_big_tensor() == 0
        assert device_module._host_memory_users == 1
    assert device_module._host_memory_users == 0
    assert _mmap_growth_of_a_big_tensor() >= BIG


def _check_disabled() -> None:
    with reuse_freed_host_memory(enabled=False):
        assert _mmap_growth_of_a_big_tensor() >= BIG
    os.environ["FAKET_REUSE_HOST_MEMORY"] = "0"
    with reuse_freed_host_memory():
        assert _mmap_growth_of_a_big_tensor() >= BIG
    del os.environ["FAKET_REUSE_HOST_MEMORY"]
    device_module._glibc = lambda: None
    with reuse_freed_host_memory():
        assert device_module._host_memory_users == 0


def _check_restored_after_raise() -> None:
    with pytest.raises(ValueError), reuse_freed_host_memory():
        raise ValueError("work failed")
    assert device_module._host_memory_users == 0
    assert _mmap_growth_of_a_big_tensor() >= BIG


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _check_release_returns_kept_memory() -> None:
    with reuse_freed_host_memory():
        tensor = torch.ones(BIG // 4)  # from the heap, touched
        del tensor
        kept = _resident_bytes()
        release_freed_host_memory()
        # The freed block was resident until the release, and is given back by it.
        assert kept - _resident_bytes() >= BIG // 2
        assert _mmap_growth_of_a_big_tensor() == 0  # still reusing after the release


def _in_fresh_interpreter(check: str) -> None:
    """Run ``check`` of this module in a new Python: glibc's allocator state is global,
    and earlier tests in this process (their freed heaps, their threads) change where a
    big block comes from, whatever faket's setting."""
    import subprocess
    import sys

    _mmapped_bytes()  # skips without glibc's mallinfo2
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import test_device; test_device.{check}()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_big_blocks_come_from_the_heap_inside_and_mmap_outside() -> None:
    _in_fresh_interpreter("_check_heap_inside_mmap_outside")


def test_nested_blocks_keep_the_setting_until_the_outermost_ends() -> None:
    _in_fresh_interpreter("_check_nested_blocks")


def test_disabled_or_without_glibc_it_changes_nothing() -> None:
    _in_fresh_interpreter("_check_disabled")


def test_the_setting_is_restored_when_the_block_raises() -> None:
    _in_fresh_interpreter("_check_restored_after_raise")


def test_release_gives_the_kept_heap_back_and_keeps_reusing() -> None:
    _in_fresh_interpreter("_check_release_returns_kept_memory")


# --- device strings -------------------------------------------------------------------


def _fake_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_device_strings_are_normalised_and_checked(monkeypatch) -> None:
    _fake_gpus(monkeypatch, 0)
    assert select_device(" CPU ") == torch.device("cpu")
    assert select_device(None) == select_device("auto") == torch.device("cpu")
    for bad in ("gpu", "meta", "cuda: 1", "xla"):
        with pytest.raises(FaketError, match="unknown device"):
            select_device(bad)
    with pytest.raises(FaketError, match="no CUDA GPU is visible"):
        select_device("cuda:0")
    _fake_gpus(monkeypatch, 2)
    assert select_device("auto") == torch.device("cuda")
    assert select_device("Cuda:1") == torch.device("cuda", 1)
    with pytest.raises(FaketError, match=r"only 2 CUDA GPU\(s\) are visible \(cuda:0 to cuda:1"):
        select_device("cuda:2")


# --- memory budgets from a (fake) free-memory figure -----------------------------------

GB = 10**9


def _fake_gpu_memory(monkeypatch, free: int, reserved: int, allocated: int) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 141 * GB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)


def test_gpu_budget_is_half_of_free_plus_cached_memory(monkeypatch) -> None:
    cuda = torch.device("cuda")
    monkeypatch.delenv("FAKET_GPU_MEMORY_FRACTION", raising=False)
    _fake_gpu_memory(monkeypatch, free=80 * GB, reserved=10 * GB, allocated=4 * GB)
    # 6 GB held by PyTorch's cache but unused count as free: (80 + 6) / 2.
    assert cuda_free_bytes(cuda) == 86 * GB
    assert memory_budget(cuda) == 43 * GB
    # A 1024 x 1024 tilt needing 6000 bytes per pixel: 6.29 GB, so 6 tilts per batch.
    assert chunk_size(6000 * 1024**2, 61, memory_budget(cuda)) == 6
    _fake_gpu_memory(monkeypatch, free=3 * GB, reserved=0, allocated=0)
    assert chunk_size(6000 * 1024**2, 61, memory_budget(cuda)) == 1  # never 0
    assert chunk_size(6000 * 1024**2, 61, memory_budget(cuda, 20 * GB)) == 3  # explicit
    assert memory_budget(torch.device("cpu")) == DEFAULT_CPU_BUDGET
    with pytest.raises(FaketError, match="positive"):
        memory_budget(cuda, 0)


def test_batches_keep_their_largest_tensor_within_32_bit_indexing(monkeypatch) -> None:
    # Segmenting 64^3 patches on a 141 GB GPU: memory would allow ~260 patches per batch,
    # but 256 channels x 64^3 voxels x 260 is past the 2^31 elements some kernels accept.
    _fake_gpu_memory(monkeypatch, free=140 * GB, reserved=0, allocated=0)
    monkeypatch.delenv("FAKET_GPU_MEMORY_FRACTION", raising=False)
    per_patch, elements = 4 * 256 * 64**3, 256 * 64**3
    budget = memory_budget(torch.device("cuda"))
    assert chunk_size(per_patch, 10_000, budget) == 260
    assert chunk_size(per_patch, 10_000, budget, elements_per_item=elements) == 31
    assert 31 * elements <= 2**31 - 1 < 32 * elements
    assert chunk_size(per_patch, 10_000, 10**6, elements_per_item=2**40) == 1  # never 0


def test_the_gpu_fraction_comes_from_the_environment(monkeypatch) -> None:
    cuda = torch.device("cuda")
    _fake_gpu_memory(monkeypatch, free=80 * GB, reserved=0, allocated=0)
    monkeypatch.setenv("FAKET_GPU_MEMORY_FRACTION", "0.25")
    assert memory_budget(cuda) == 20 * GB
    for bad in ("0", "1.5", "half", "-0.1"):
        monkeypatch.setenv("FAKET_GPU_MEMORY_FRACTION", bad)
        with pytest.raises(FaketError, match="FAKET_GPU_MEMORY_FRACTION"):
            memory_budget(cuda)


# --- one GPU per local Dask worker -----------------------------------------------------


def test_visible_gpus_follow_cuda_visible_devices() -> None:
    assert visible_cuda_devices(None, 2) == ["0", "1"]
    assert visible_cuda_devices("2, 3", 2) == ["2", "3"]
    assert visible_cuda_devices("GPU-a1,GPU-b2,MIG-c3", 1) == ["GPU-a1"]
    assert visible_cuda_devices("", 0) == visible_cuda_devices(None, 0) == []


def test_each_worker_gets_one_gpu_and_sharers_split_the_memory(monkeypatch) -> None:
    monkeypatch.delenv("FAKET_GPU_MEMORY_FRACTION", raising=False)
    envs = worker_environments(2, ["4", "6"])
    assert envs == [{"CUDA_VISIBLE_DEVICES": "4"}, {"CUDA_VISIBLE_DEVICES": "6"}]
    envs = worker_environments(3, ["4", "6"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["4", "6", "4"]
    assert [e.get("FAKET_GPU_MEMORY_FRACTION") for e in envs] == ["0.25", None, "0.25"]
    monkeypatch.setenv("FAKET_GPU_MEMORY_FRACTION", "0.8")
    assert worker_environments(4, ["0"])[0]["FAKET_GPU_MEMORY_FRACTION"] == "0.2"
    assert worker_environments(3, []) == [{}, {}, {}]


def test_workers_seeing_several_gpus_pick_one_by_name() -> None:
    assert [worker_gpu_index(k, 2) for k in range(4)] == [0, 1, 0, 1]
    assert worker_gpu_index("SLURMCluster-3-1", 4) == 1
    assert worker_gpu_index("tcp-worker", 4) == worker_gpu_index("tcp-worker", 4)
    with pytest.raises(FaketError):
        worker_gpu_index(0, 0)


def test_local_workers_start_with_their_own_environment() -> None:
    from dask.distributed import Client

    from faket.pipeline.dataset import local_cluster

    envs = [{"CUDA_VISIBLE_DEVICES": "7"}, {"CUDA_VISIBLE_DEVICES": "9"}]
    with local_cluster(2, envs) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        # A lambda travels by value; os.environ.get would carry this process's environment.
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        names = client.run(lambda dask_worker: dask_worker.name)
    by_name = {names[address]: value for address, value in seen.items()}
    assert by_name == {0: "7", 1: "9"}


# --- deterministic kernels, TF32 switches and autocast scopes ---------------------------


def _determinism_flags() -> tuple:
    import torch.utils.deterministic

    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.utils.deterministic.fill_uninitialized_memory,
    )


def test_deterministic_mode_applies_on_cuda_only_and_is_restored() -> None:
    before = _determinism_flags()
    with deterministic_algorithms(torch.device("cpu")):
        assert _determinism_flags() == before
    with deterministic_algorithms(torch.device("cuda")):
        assert _determinism_flags() == (True, True, False, False)
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert _determinism_flags() == before
    with pytest.raises(ValueError), deterministic_algorithms(torch.device("cuda")):
        raise ValueError("work failed")
    assert _determinism_flags() == before
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")


def _tf32_settings() -> tuple:
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    return cudnn.conv.fp32_precision, matmul.fp32_precision


@pytest.mark.parametrize(("precision", "expected"), [("fp32", "ieee"), ("tf32", "tf32")])
def test_fp32_mode_sets_tf32_switches_and_restores_them(precision, expected) -> None:
    from faket.precision import fp32_mode

    if not hasattr(torch.backends.cudnn, "conv"):
        pytest.skip("PyTorch < 2.9 has only the legacy TF32 flags")
    before = _tf32_settings()
    with fp32_mode(torch.device("cpu"), "fp32"):
        assert _tf32_settings() == before
    with fp32_mode(torch.device("cuda"), precision):
        assert _tf32_settings() == (expected,) * 2
        assert torch.are_deterministic_algorithms_enabled()
    assert _tf32_settings() == before
    assert torch.backends.cudnn.allow_tf32  # the legacy flag is readable again
    with fp32_mode(torch.device("cuda"), "bf16"):  # autocast layers; float32 ones stay IEEE
        assert _tf32_settings() == ("ieee",) * 2


def test_mixed_precision_is_bf16_on_gpus_with_bf16_tensor_cores(monkeypatch) -> None:
    from faket.precision import resolve_precision

    cuda = torch.device("cuda")
    for capability, expected in (((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=capability: c)
        assert resolve_precision("mixed", cuda) == expected
    assert resolve_precision("mixed", torch.device("mps")) == "fp16"


def test_reduced_precision_starts_at_its_layer_and_grams_stay_float32() -> None:
    from faket.style import build_feature_net
    from faket.style.losses import gram_matrix

    net = build_feature_net("random", seed=0, device="cpu", last_layer=11)
    images = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    feats = net(images, [1, 6, 8, 11], reduced=torch.bfloat16, reduced_from=10)
    assert [feats[k].dtype for k in (1, 6, 8)] == [torch.float32] * 3
    assert feats[11].dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(feats[11])
    assert gram.dtype == torch.float32
    exact = feats[11].double().flatten(2)
    expected = exact @ exact.transpose(1, 2) / exact.shape[-1]
    torch.testing.assert_close(gram.double(), expected, rtol=1e-5, atol=1e-6)


# --- on a real GPU -------------------------------------------------------------------------


@pytest.mark.cuda
def test_cuda_budget_counts_memory_cached_by_pytorch() -> None:
    cuda = torch.device("cuda")
    torch.cuda.empty_cache()
    before = cuda_free_bytes(cuda)
    block = torch.empty(256 * 2**20, dtype=torch.uint8, device=cuda)
    assert cuda_free_bytes(cuda) <= before - 250 * 2**20
    del block  # back in PyTorch's cache, not the driver's: still free for faket
    assert abs(cuda_free_bytes(cuda) - before) < 8 * 2**20
    assert 0 < memory_budget(cuda) <= torch.cuda.mem_get_info(cuda)[1]
    count = torch.cuda.device_count()
    with pytest.raises(FaketError, match="visible"):
        select_device(f"cuda:{count}")


@pytest.mark.cuda
def test_fp32_mode_is_ieee_float32_and_tf32_is_not() -> None:
    from faket.precision import fp32_mode

    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("TF32 needs an Ampere or newer GPU")
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(1024, 1024, generator=generator) for _ in range(2))
    exact = a.double() @ b.double()
    errors = {}
    for precision in ("fp32", "tf32"):
        with fp32_mode(torch.device("cuda"), precision):
            product = (a.cuda() @ b.cuda()).cpu().double()
        errors[precision] = float((product - exact).norm() / exact.norm())
    # Relative RMS error: ~1e-7 for IEEE float32, ~4e-4 with TF32's 10-bit mantissa.
    assert errors["fp32"] < 1e-5 < 1e-4 < errors["tf32"]


@pytest.mark.cuda
def test_cuda_convolution_gradients_repeat_bit_for_bit_in_deterministic_mode() -> None:
    cuda = torch.device("cuda")
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(8, 16, 3, padding=1).to(cuda)
    x = torch.randn(4, 8, 24, 24, 24, device=cuda, requires_grad=True)
    grads = []
    with deterministic_algorithms(cuda):
        for _ in range(2):
            conv.zero_grad()
            x.grad = None
            torch.nn.functional.max_pool3d(conv(x), 2).square().sum().backward()
            grads.append((x.grad.clone(), conv.weight.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
def test_mapped_zeros_are_zero_writable_and_laid_out_like_torch_zeros(dtype):
    cpu = torch.device("cpu")
    for channels_last in (False, True):
        shape = (1, 5, 6, 7)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        mapped = mapped_zeros(shape, dtype, cpu, channels_last=channels_last)
        expected = torch.empty(shape, dtype=dtype, memory_format=fmt).zero_()
        assert mapped.dtype == dtype and mapped.shape == expected.shape
        assert mapped.stride() == expected.stride()  # the layout picks the kernels
        assert torch.equal(mapped, expected)
        mapped[0, 4, 5, 6] = 3
        mapped[0, 0, 0, 0] = 1
        assert int(mapped.sum()) == 4 and int(mapped[0, 4, 5, 6]) == 3
    flat = mapped_zeros((3, 4), dtype, cpu)
    assert flat.is_contiguous() and flat.shape == (3, 4) and not flat.any()
    assert mapped_zeros((0, 4), dtype, cpu).numel() == 0
    # Elsewhere (here: the meta device) plain torch tensors of the same layout.
    meta = mapped_zeros((1, 5, 6, 7), dtype, torch.device("meta"), channels_last=True)
    assert meta.device.type == "meta" and meta.is_contiguous(memory_format=torch.channels_last)

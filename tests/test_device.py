"""Host-memory reuse during heavy CPU work (faket.device.reuse_freed_host_memory)."""

from __future__ import annotations

import ctypes

import pytest
import torch

from faket import device as device_module
from faket.device import reuse_freed_host_memory

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


def test_big_blocks_come_from_the_heap_inside_and_mmap_outside() -> None:
    assert _mmap_growth_of_a_big_tensor() >= BIG  # glibc's default
    with reuse_freed_host_memory():
        assert _mmap_growth_of_a_big_tensor() == 0
    assert _mmap_growth_of_a_big_tensor() >= BIG  # defaults restored on leaving


def test_nested_blocks_keep_the_setting_until_the_outermost_ends() -> None:
    with reuse_freed_host_memory():
        with reuse_freed_host_memory():
            pass
        assert _mmap_growth_of_a_big_tensor() == 0
        assert device_module._host_memory_users == 1
    assert device_module._host_memory_users == 0
    assert _mmap_growth_of_a_big_tensor() >= BIG


def test_disabled_or_without_glibc_it_changes_nothing(monkeypatch) -> None:
    with reuse_freed_host_memory(enabled=False):
        assert _mmap_growth_of_a_big_tensor() >= BIG
    monkeypatch.setenv("FAKET_REUSE_HOST_MEMORY", "0")
    with reuse_freed_host_memory():
        assert _mmap_growth_of_a_big_tensor() >= BIG
    monkeypatch.delenv("FAKET_REUSE_HOST_MEMORY")
    monkeypatch.setattr(device_module, "_glibc", lambda: None)
    with reuse_freed_host_memory():
        assert device_module._host_memory_users == 0


def test_the_setting_is_restored_when_the_block_raises() -> None:
    with pytest.raises(ValueError), reuse_freed_host_memory():
        raise ValueError("work failed")
    assert device_module._host_memory_users == 0
    assert _mmap_growth_of_a_big_tensor() >= BIG

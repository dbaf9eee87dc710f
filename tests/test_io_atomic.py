"""Tests for faket.io.atomic: temporary files never leak and targets never half-change."""

from __future__ import annotations

import os

import pytest

from faket.errors import FaketError
from faket.io import atomic_path, atomic_write, write_text_atomic
from faket.io.atomic import remove_stale_temporaries


def test_atomic_path_replaces_target_on_success(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".out.json.tmp-")
        assert not tmp.exists()
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible until the block ends
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_path_cleans_up_on_error(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(KeyError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_write_text_and_bytes(tmp_path):
    with atomic_write(tmp_path / "a.txt") as handle:
        handle.write("line\n")
    with atomic_write(tmp_path / "b.bin", "wb") as handle:
        handle.write(b"\x00\x01")
    assert (tmp_path / "a.txt").read_bytes() == b"line\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "c.txt", "a"):
        pass


def test_write_text_atomic_checks_target(tmp_path):
    path = write_text_atomic(tmp_path / "t.txt", "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    with pytest.raises(FaketError, match="already exists"):
        write_text_atomic(path, "x", overwrite=False)
    assert path.read_text(encoding="utf-8") == "héllo\n"
    with pytest.raises(FaketError, match="does not exist"):
        write_text_atomic(tmp_path / "nope" / "t.txt", "x")
    with pytest.raises(FaketError, match="is a folder"):
        write_text_atomic(tmp_path, "x")


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    stale = tmp_path / ".tilts.mrc.tmp-0123456789ab"
    keep = [tmp_path / "tilts.mrc", tmp_path / ".hidden", tmp_path / ".a.tmp-notahexname"]
    for path in [stale, *keep]:
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and all(path.exists() for path in keep)
    assert remove_stale_temporaries(tmp_path / "missing") == []

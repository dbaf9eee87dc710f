"""``faket style`` and the resumable file driver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _helpers import one_torch_thread  # noqa: F401  (fixture)

from faket.cli.main import main
from faket.errors import FaketError
from faket.io import read_mrc, write_mrc
from faket.style import files as files_module
from faket.style import parse_tilts, style_transfer, style_transfer_files
from faket.style import weights as weights_module
from faket.style.files import partial_path, sidecar_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("style_inputs")
    rng = np.random.default_rng(3)
    base = rng.standard_normal((4, 32, 32))
    arrays = {
        "content": base + 0.1 * rng.standard_normal(base.shape),
        "style": 3.0 + rng.standard_normal(base.shape),
        "init": base + 0.5 * rng.standard_normal(base.shape),
        "small": rng.standard_normal((4, 12, 12)),
        "other": rng.standard_normal((3, 32, 32)),
    }
    paths = {}
    for name, array in arrays.items():
        paths[name] = write_mrc(folder / f"{name}.mrc", array.astype(np.float32), 7.5)
    return paths


def _run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["style", *map(str, args), "--quiet"])
    return info.value.code, capsys.readouterr().err


def _style_args(inputs, output: Path, *extra: str) -> list[str]:
    """``faket style`` arguments for the standard inputs with random weights."""
    files = [inputs["content"], inputs["style"], "--init", inputs["init"], "-o", output]
    return [*map(str, files), "--weights", "random", *extra]


def _cli(inputs, output: Path, *extra: str) -> None:
    main(["style", *_style_args(inputs, output, "--quiet", *extra)])


def _library(inputs, **kwargs) -> np.ndarray:
    stacks = [read_mrc(inputs[n]).data for n in ("content", "style", "init")]
    return style_transfer(*stacks, weights="random", device="cpu", **kwargs)


def test_cli_writes_the_library_result(inputs, tmp_path: Path) -> None:
    output = tmp_path / "faket.mrc"
    try:
        _cli(inputs, output)
    except SystemExit as stop:  # typer exits 0 after a command in standalone mode
        assert stop.code in (0, None)
    result = read_mrc(output)
    assert result.voxel_size == pytest.approx(7.5)
    assert np.array_equal(result.data, _library(inputs))
    assert not sidecar_path(output).exists()
    try:
        _cli(inputs, tmp_path / "part.mrc", "--tilts", "1:3")
    except SystemExit as stop:
        assert stop.code in (0, None)
    assert np.array_equal(read_mrc(tmp_path / "part.mrc").data, result.data[1:3])


@pytest.mark.parametrize(
    ("swap", "extra", "message"),
    [
        ({"init": "other"}, [], "init (3, 32, 32) tilt series differ"),
        ({"content": "small", "init": "small", "style": "small"}, [], "too small"),
        ({}, ["--tilts", "2:9"], "--tilts"),
        ({}, ["--precision", "fp64"], "unknown precision"),
        ({}, ["--weights", "missing.pth"], "neither 'imagenet'"),
    ],
)
def test_cli_errors_are_one_line_exit_2(inputs, tmp_path, capsys, swap, extra, message) -> None:
    names = {"content": "content", "style": "style", "init": "init"} | swap
    code, err = _run(
        capsys,
        inputs[names["content"]],
        inputs[names["style"]],
        "--init",
        inputs[names["init"]],
        "-o",
        tmp_path / "out.mrc",
        "--weights",
        "random",
        *extra,
    )
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.mrc").exists()


def test_cli_missing_imagenet_weights(inputs, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setattr(weights_module, "IMAGENET_URL", (tmp_path / "none.pth").as_uri())
    code, err = _run(
        capsys, inputs["content"], inputs["style"], "--init", inputs["init"], "-o", tmp_path / "o"
    )
    assert code == 2 and err.count("\n") == 1
    assert "--weights PATH" in err and "--weights random" in err


def test_existing_output_needs_overwrite(inputs, tmp_path, capsys) -> None:
    output = tmp_path / "exists.mrc"
    output.write_bytes(b"old")
    code, err = _run(capsys, *_style_args(inputs, output))
    assert code == 2 and "--overwrite" in err
    assert output.read_bytes() == b"old"


def test_interrupted_run_resumes_without_redoing_tilts(inputs, tmp_path, monkeypatch) -> None:
    output = tmp_path / "resumed.mrc"
    real = files_module.iter_style_transfer
    requested: list[list[int]] = []

    def interrupted(*args, **kwargs):
        requested.append(list(kwargs["tilts"]))
        parts = real(*args, **kwargs)
        for count, item in enumerate(parts):
            if count == 2 and len(requested) == 1:
                raise KeyboardInterrupt  # stop after two finished tilts
            yield item

    monkeypatch.setattr(files_module, "iter_style_transfer", interrupted)
    paths = [inputs[n] for n in ("content", "style", "init")]
    kwargs = {"weights": "random", "device": "cpu", "checkpoint_seconds": 0}
    with pytest.raises(KeyboardInterrupt):
        style_transfer_files(*paths, output, **kwargs)
    state = json.loads(sidecar_path(output).read_text())
    # Issue 16: the unfinished tilts never sit at the output's name, where a reader
    # (faket reconstruct) would take zeros for data; they wait in a hidden partial file,
    # written tilt by tilt through a memory map (issue 19).
    assert state["done"] == [0, 1] and not output.exists()
    assert read_mrc(partial_path(output)).data.shape == (4, 32, 32)
    output.write_bytes(b"old")
    # Other settings do not match the sidecar: no resume, and the output is not replaced.
    with pytest.raises(FaketError, match="--overwrite"):
        style_transfer_files(*paths, output, iterations=2, **kwargs)
    assert output.read_bytes() == b"old"
    output.unlink()
    style_transfer_files(*paths, output, **kwargs)
    assert requested == [[0, 1, 2, 3], [2, 3]]
    assert not sidecar_path(output).exists() and not partial_path(output).exists()
    assert np.array_equal(read_mrc(output).data, _library(inputs))
    # A complete output is not replaced by a run with other settings without --overwrite.
    with pytest.raises(FaketError, match="--overwrite"):
        style_transfer_files(*paths, output, iterations=2, **kwargs)


def test_style_cache_is_reused(inputs, tmp_path, monkeypatch) -> None:
    paths = [inputs[n] for n in ("content", "style", "init")]
    cache = tmp_path / "style.pt"
    kwargs = {"weights": "random", "device": "cpu", "style_cache": cache}
    style_transfer_files(*paths, tmp_path / "a.mrc", **kwargs)
    assert cache.is_file()

    def fail(*args, **kwargs):
        raise AssertionError("the cached style reference should have been used")

    monkeypatch.setattr(files_module, "prepare_style", fail)
    style_transfer_files(*paths, tmp_path / "b.mrc", **kwargs)
    expected = _library(inputs)
    assert np.array_equal(read_mrc(tmp_path / "b.mrc").data, expected)
    assert np.array_equal(read_mrc(tmp_path / "a.mrc").data, expected)


def test_tile_option_tiles_and_rejects_bad_sizes(inputs, tmp_path, capsys, monkeypatch) -> None:
    from faket.style import transfer as transfer_module

    chosen = []
    real = transfer_module.choose_plan

    def spy(*args):
        chosen.append(real(*args))
        return chosen[-1]

    monkeypatch.setattr(transfer_module, "choose_plan", spy)
    output = tmp_path / "tiled.mrc"
    code, _ = _run(capsys, *_style_args(inputs, output, "--tile", "16", "--tilts", "0:2"))
    assert code == 0
    assert chosen[-1] is not None and chosen[-1].forward[0] == 4  # 16 px = 4 pool2 positions
    untiled = _library(inputs, tilts=[0, 1])
    x0 = read_mrc(inputs["init"]).data[:2]
    # Same update direction as the whole-tilt transfer (round-off aside).
    assert np.mean(np.sign(read_mrc(output).data - x0) == np.sign(untiled - x0)) > 0.999
    code, _ = _run(
        capsys, *_style_args(inputs, tmp_path / "off.mrc", "--tile", "off", "--tilts", "0")
    )
    assert code == 0
    assert chosen[-1] is None
    for bad in ("0", "-3", "big"):
        code, err = _run(capsys, *_style_args(inputs, tmp_path / "bad.mrc", "--tile", bad))
        assert code == 2 and "--tile" in err and err.count("\n") == 1


def test_parse_tilts() -> None:
    assert parse_tilts(None, 5) == [0, 1, 2, 3, 4]
    assert parse_tilts("0:61", 61) == list(range(61))
    assert parse_tilts("1:5:2", 6) == [1, 3]
    assert parse_tilts(":2", 6) == [0, 1]
    assert parse_tilts("4,0", 6) == [4, 0]
    for bad in ("3:9", "a:b", "2,2", "5", "1:1", "0:4:0"):
        with pytest.raises(FaketError):
            parse_tilts(bad, 5)


def test_emulated_bf16_warns_in_one_line(inputs, tmp_path: Path, capsys, monkeypatch) -> None:
    import faket.precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    output = tmp_path / "bf16.mrc"
    status, err = _run(capsys, *_style_args(inputs, output, "--precision", "bf16", "--tilts", "0"))
    assert status == 0 and output.exists()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("faket: warning: this CPU has no fast bfloat16")

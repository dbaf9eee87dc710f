"""Style transfer from MRC files to an MRC file, resumable after an interruption.

While it runs, the tilts finished so far are saved (atomically, at most every
``checkpoint_seconds`` and when the run is interrupted) under a hidden temporary name
next to the output, ``.OUT.mrc.partial.mrc``, and a small JSON sidecar
(``OUT.mrc.progress.json``) lists which tilts those are and fingerprints the inputs,
weights and settings. The output's own name appears only when every tilt is done, so no
reader (``faket reconstruct`` included) can take an unfinished tilt series for a finished
one. Running the same command again skips the finished tilts; a sidecar whose
fingerprint does not match is ignored. Because every tilt's result depends only on its
own inputs (and whole-stack normalisation constants), a resumed run gives exactly the
uninterrupted run's output.

A style stack with another pixel size or image size than the content is brought to the
content's (see :mod:`faket.style.matching`), with a warning that says what was done.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from faket.device import select_device
from faket.errors import FaketError
from faket.io import read_mrc, write_mrc, write_text_atomic
from faket.style.matching import match_style
from faket.style.reference import StyleReference, _reference_key, prepare_style, stack_digest
from faket.style.settings import TransferSettings, _with_overrides
from faket.style.transfer import iter_style_transfer
from faket.style.weights import build_feature_net

__all__ = ["parse_tilts", "partial_path", "sidecar_path", "style_transfer_files"]


def parse_tilts(text: str | None, n_tilts: int) -> list[int]:
    """Tilt indices from ``"START:STOP[:STEP]"`` (half-open, like Python), ``"7"`` or ``"1,4,9"``.

    Parameters
    ----------
    text : str or None
        The selection; None or ``""`` means all tilts.
    n_tilts : int
        Number of tilts in the series.

    Returns
    -------
    list of int
        Indices in ``0..n_tilts-1``, in the given order.
    """
    if not text:
        return list(range(n_tilts))
    try:
        if ":" in text:
            parts = [int(p) if p.strip() else None for p in text.split(":")]
            if len(parts) > 3 or (len(parts) == 3 and parts[2] == 0):
                raise ValueError
            start, stop = parts[0], parts[1]
            for value in (start, stop):
                if value is not None and not 0 <= value <= n_tilts:
                    raise FaketError(
                        f"--tilts {text}: bounds must be in 0..{n_tilts} for {n_tilts} tilts"
                    )
            out = list(range(n_tilts))[slice(*parts)]
        else:
            out = [int(p) for p in text.split(",")]
    except ValueError as error:
        if isinstance(error, FaketError):
            raise
        raise FaketError(f"--tilts {text!r}: use START:STOP[:STEP], an index, or a list") from None
    bad = [t for t in out if not 0 <= t < n_tilts]
    if bad or not out or len(set(out)) != len(out):
        raise FaketError(
            f"--tilts {text}: selects no tilts, repeats some, or leaves 0..{n_tilts - 1}"
        )
    return out


def sidecar_path(output: str | Path) -> Path:
    """The progress sidecar of ``output``: ``<output>.progress.json`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".progress.json")


def partial_path(output: str | Path) -> Path:
    """Where the finished tilts of an unfinished ``output`` are kept: ``.<name>.partial.mrc``."""
    output = Path(output)
    return output.with_name(f".{output.name}.partial.mrc")


def _fingerprint(settings, weights_id: str, tilts: list[int], arrays: Sequence[np.ndarray]) -> str:
    hasher = hashlib.sha256()
    hasher.update(json.dumps(asdict(settings), sort_keys=True).encode())
    hasher.update(weights_id.encode())
    hasher.update(json.dumps(tilts).encode())
    for array in arrays:
        hasher.update(stack_digest(array).encode())
    return hasher.hexdigest()


def _resume(output: Path, fingerprint: str, shape: tuple, overwrite: bool):
    """Finished tilts and their data from a matching partial output, else a fresh start."""
    sidecar, partial = sidecar_path(output), partial_path(output)
    if sidecar.is_file() and partial.is_file():
        try:
            state = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        if state.get("fingerprint") == fingerprint:
            try:
                data = read_mrc(partial).data
            except FaketError:
                data = None  # a damaged partial file only costs the work again
            if data is not None and data.shape == shape:
                return np.array(data, dtype=np.float32), set(state.get("done", []))
    if output.exists() and not overwrite:
        raise FaketError(f"{output} already exists; pass --overwrite to replace it")
    sidecar.unlink(missing_ok=True)
    partial.unlink(missing_ok=True)
    return np.zeros(shape, dtype=np.float32), set()


def _cached_reference(path: Path, style: np.ndarray, net, settings, progress) -> StyleReference:
    if path.is_file():
        reference = StyleReference.load(path)
        if reference.source == stack_digest(style) and reference.key == _reference_key(
            net, settings
        ):
            return reference
    reference = prepare_style(
        style,
        weights=net,
        settings=settings,
        progress=progress,
        device=next(net.parameters()).device,
    )
    reference.save(path)
    return reference


def _checkpoint(output, result, voxel, fingerprint, selected, done) -> None:
    # Data first, then the sidecar: if we die in between, the sidecar under-reports.
    write_mrc(partial_path(output), result, voxel, stack=True)
    state = {"fingerprint": fingerprint, "tilts": selected, "done": sorted(done)}
    write_text_atomic(sidecar_path(output), json.dumps(state))


def style_transfer_files(
    content: str | Path,
    style: str | Path,
    init: str | Path,
    output: str | Path,
    *,
    weights: str | Path = "imagenet",
    settings: TransferSettings | None = None,
    tilts: str | Sequence[int] | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
    checkpoint_seconds: float = 60.0,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    style_cache: str | Path | None = None,
    voxel_size: float | None = None,
    **overrides,
) -> Path:
    """Stylise MRC tilt series into ``output`` (see :func:`faket.style.style_transfer`).

    Parameters
    ----------
    content, style, init : path
        MRC/EM tilt series ``(n_tilts, Y, X)``: content and init of equal shape, the
        style with as many tilts (its pixel size and image size are matched to the
        content's, see :mod:`faket.style.matching`).
    output : path
        Output MRC; gets the content's pixel size. Holds the selected tilts in order.
    weights, settings, device, seed, batch_size, memory_budget, progress, **overrides
        As for :func:`faket.style.style_transfer`.
    tilts : str or sequence of int, optional
        Selection as :func:`parse_tilts` text or indices; default all.
    overwrite : bool
        Replace an existing complete output (a matching partial one is always resumed).
    checkpoint_seconds : float
        Least time between rewrites of the partial output.
    style_cache : path, optional
        File of the style stack's Gram matrices (:class:`StyleReference`): used when it
        matches the style stack, weights and settings, else (re)computed for all tilts
        and written, so further tomograms styled by the same stack skip that work.
    voxel_size : float, optional
        The content's pixel size in Å, instead of its header's.

    Returns
    -------
    Path
        ``output``.
    """
    settings = _with_overrides(settings, overrides)
    output = Path(output)
    arrays, voxel = _read_stacks(Path(content), Path(style), Path(init), voxel_size)
    n_tilts = arrays[0].shape[0]
    selected = parse_tilts(tilts, n_tilts) if isinstance(tilts, str | None) else list(tilts)
    device = select_device(device)
    net = build_feature_net(
        weights,
        last_layer=settings.last_layer,
        pooling=settings.pooling,
        seed=seed,
        device=device,
        progress=progress,
    )
    fingerprint = _fingerprint(settings, net.weights_id, selected, arrays)
    shape = (len(selected), *arrays[0].shape[1:])
    result, done = _resume(output, fingerprint, shape, overwrite)
    position = {tilt: i for i, tilt in enumerate(selected)}
    remaining = [t for t in selected if t not in done]
    if remaining:
        style_input = arrays[1]
        if style_cache is not None:
            style_input = _cached_reference(Path(style_cache), arrays[1], net, settings, progress)
        parts = iter_style_transfer(
            arrays[0],
            style_input,
            arrays[2],
            weights=net,
            settings=settings,
            device=device,
            tilts=remaining,
            batch_size=batch_size,
            memory_budget=memory_budget,
            progress=progress,
        )
        last, saved = time.monotonic(), len(done)
        try:
            for tilt, image in parts:
                result[position[tilt]] = image
                done.add(tilt)
                if time.monotonic() - last >= checkpoint_seconds and len(done) < len(selected):
                    _checkpoint(output, result, voxel, fingerprint, selected, done)
                    last, saved = time.monotonic(), len(done)
        except KeyboardInterrupt:
            if len(done) > saved:  # keep what was finished since the last checkpoint
                _checkpoint(output, result, voxel, fingerprint, selected, done)
            raise
    write_mrc(output, result, voxel, overwrite=True, stack=True)
    sidecar_path(output).unlink(missing_ok=True)
    partial_path(output).unlink(missing_ok=True)
    return output


def _read_stacks(content: Path, style: Path, init: Path, voxel_size: float | None):
    """Content, matched style and init stacks, and the output's pixel size (Å)."""
    stacks = {name: read_mrc(path, ndim=3) for name, path in
              (("content", content), ("style", style), ("init", init))}  # fmt: skip
    shape = stacks["content"].data.shape
    if stacks["init"].data.shape != shape:
        raise FaketError(
            f"content {shape} and init {stacks['init'].data.shape} tilt series differ in "
            "shape; the init (FakET: NOISY) must be made from the same projections"
        )
    if stacks["style"].data.shape[0] != shape[0]:
        raise FaketError(
            f"the style stack has {stacks['style'].data.shape[0]} tilts but the content "
            f"has {shape[0]}; style tilt i styles content tilt i, so pass a style tilt "
            "series of the same tilt scheme"
        )
    voxel = voxel_size if voxel_size is not None else stacks["content"].voxel_size
    matched, note = match_style(stacks["style"].data, stacks["style"].voxel_size, shape[1:], voxel)
    if note is not None:
        warnings.warn(f"{style}: {note}", RuntimeWarning, stacklevel=3)
    return [stacks["content"].data, matched, stacks["init"].data], voxel
